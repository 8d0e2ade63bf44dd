//! `tweetflow run`: one run of a pipeline (or resumes one, or watches for new input), and the
//! end-of-run table.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tweetflow_engine::human_duration;
use tweetflow_engine::{Engine, EngineError, Registry, RunOptions, RunRecord, RunStatus};

use super::{load_or_report, new_engine, spawn_signal_handler, text_table};
use crate::cli::RunArgs;
use crate::exit;

/// Runs (or resumes) a pipeline; returns the exit code of its outcome.
pub(crate) async fn run(
    registry: &Arc<Registry>,
    runs_dir: &Path,
    args: RunArgs,
) -> anyhow::Result<u8> {
    let mut engine = new_engine(registry, runs_dir);
    if let Some(console) = crate::console::get() {
        engine = engine.with_listener(console);
    }
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    let options = RunOptions {
        max_parallel: args
            .max_parallel
            .unwrap_or(RunOptions::default().max_parallel),
        fail_fast: args.fail_fast,
        use_cache: !args.no_cache,
        refresh: args.refresh.iter().cloned().collect::<HashSet<_>>(),
        cancel,
        tags: BTreeMap::from([("trigger".to_string(), "manual".to_string())]),
        run_id: None,
        only_interrupted: false,
    };
    let result = if let Some(run_id) = &args.resume {
        engine.resume(run_id, options).await
    } else {
        let Some(file) = &args.file else {
            anyhow::bail!("name a pipeline file or --resume RUN_ID")
        };
        let Some(pipeline) = load_or_report(registry, file, &args.params) else {
            return Ok(exit::INVALID);
        };
        if let Some(code) =
            super::schedule::obey_overlap(engine.store(), &pipeline, &options.cancel).await
        {
            return Ok(code);
        }
        for id in &args.refresh {
            if pipeline.task(id).is_none() {
                eprintln!("error: --refresh {id}: the pipeline has no task `{id}`");
                return Ok(exit::INVALID);
            }
        }
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        if args.watch {
            return watch(
                &engine,
                &pipeline,
                &file.display().to_string(),
                &text,
                options,
                &args,
            )
            .await;
        }
        engine
            .run(pipeline, &file.display().to_string(), &text, options)
            .await
    };
    let record = match result {
        Ok(r) => r,
        Err(
            e @ (EngineError::RunNotFound { .. }
            | EngineError::Locked { .. }
            | EngineError::NotResumable { .. }
            | EngineError::MissingSecret { .. }),
        ) => {
            eprintln!("error: {e}");
            return Ok(exit::INVALID);
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        print!("{}", summary(&record));
        if let Some(link) = tweetflow_tasks::mlflow_link::MlflowRunLink::read(
            &engine.store().run_dir(&record.run_id),
        ) {
            println!("MLflow run: {}", link.url);
        }
    }
    Ok(match record.status {
        RunStatus::Succeeded => exit::OK,
        RunStatus::Cancelled => exit::CANCELLED,
        RunStatus::Failed | RunStatus::Running | RunStatus::Interrupted => exit::FAILED,
    })
}

async fn watch(
    engine: &Engine,
    pipeline: &tweetflow_engine::Pipeline,
    file: &str,
    text: &str,
    options: RunOptions,
    args: &RunArgs,
) -> anyhow::Result<u8> {
    let watch_options = tweetflow_engine::WatchOptions {
        interval: args.interval,
        until_idle: args.until_idle,
        paths: args.watch_path.clone(),
    };
    let summary =
        tweetflow_engine::watch(engine, pipeline, file, text, options, watch_options).await?;
    let rows: Vec<Vec<String>> = summary
        .batches
        .iter()
        .enumerate()
        .map(|(i, r)| {
            vec![
                (i + 1).to_string(),
                r.run_id.clone(),
                r.status.as_str().to_string(),
                human_duration(r.duration()),
            ]
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary.batches)?);
    } else {
        print!(
            "{}",
            text_table::render(&["BATCH", "RUN", "STATUS", "DURATION"], &rows)
        );
    }
    Ok(match summary.batches.last().map(|r| r.status) {
        _ if summary.cancelled => exit::CANCELLED,
        Some(RunStatus::Succeeded) | None => exit::OK,
        Some(_) => exit::FAILED,
    })
}

/// One row per expectation of each task that reported them (`expectations` in its output).
fn expectation_rows(record: &RunRecord) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (id, t) in record.ordered_tasks() {
        let Some(tallies) = t
            .output
            .as_ref()
            .and_then(|o| o.get("expectations"))
            .and_then(|v| v.as_object())
        else {
            continue;
        };
        for (name, tally) in tallies {
            rows.push(vec![
                id.to_string(),
                name.clone(),
                tally
                    .get("failed")
                    .and_then(|v| v.as_u64())
                    .map_or_else(|| "-".into(), |n| n.to_string()),
                tally
                    .get("action")
                    .and_then(|v| v.as_str())
                    .unwrap_or("-")
                    .to_string(),
            ]);
        }
    }
    rows
}

/// The end-of-run table.
pub fn summary(record: &RunRecord) -> String {
    let rows: Vec<Vec<String>> = record
        .ordered_tasks()
        .map(|(id, t)| {
            vec![
                id.to_string(),
                t.status.as_str().to_string(),
                t.attempts.len().to_string(),
                t.duration()
                    .map(human_duration)
                    .unwrap_or_else(|| "-".into()),
                if t.status == tweetflow_engine::TaskStatus::Cached {
                    "yes".into()
                } else {
                    "no".into()
                },
            ]
        })
        .collect();
    let mut out = format!(
        "run {} of {}: {} in {}\n",
        record.run_id,
        record.pipeline,
        record.status.as_str(),
        human_duration(record.duration())
    );
    if let Some(t) = record
        .last_event_at
        .filter(|_| record.status == RunStatus::Interrupted)
    {
        out.push_str(&format!(
            "its engine died; last event {} UTC: `tweetflow runs recover` or `tweetflow run --resume {}` resumes it\n",
            t.format("%Y-%m-%d %H:%M:%S%.3f"),
            record.run_id
        ));
    }
    for (key, value) in &record.tags {
        if let Some(table) = key.strip_prefix("trigger.") {
            out.push_str(&format!("started by new versions of {table}: {value}\n"));
        }
    }
    if let Some(reason) = &record.reason {
        out.push_str(&format!("reason: {reason}\n"));
    }
    if !record.resumed_at.is_empty() {
        let times: Vec<String> = record
            .resumed_at
            .iter()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .collect();
        out.push_str(&format!("resumed at {} UTC\n", times.join(", ")));
    }
    out.push_str(&text_table::render(
        &["TASK", "STATUS", "ATTEMPTS", "DURATION", "CACHED"],
        &rows,
    ));
    let jobs: Vec<Vec<String>> = record
        .ordered_tasks()
        .flat_map(|(id, t)| {
            t.attempts.iter().filter_map(move |a| {
                let job = a.job.as_ref()?;
                Some(vec![
                    id.to_string(),
                    a.shard.map_or_else(|| "-".into(), |s| s.to_string()),
                    a.number.to_string(),
                    job.clone(),
                    match (&a.error, a.ended_at) {
                        (Some(e), _) => format!("{:?}", e.kind).to_lowercase(),
                        (None, Some(_)) => "succeeded".into(),
                        (None, None) => "running".into(),
                    },
                ])
            })
        })
        .collect();
    if !jobs.is_empty() {
        out.push('\n');
        out.push_str(&text_table::render(
            &["TASK", "SHARD", "ATTEMPT", "JOB", "ENDED"],
            &jobs,
        ));
    }
    let expectations = expectation_rows(record);
    if !expectations.is_empty() {
        out.push('\n');
        out.push_str(&text_table::render(
            &["TASK", "EXPECTATION", "FAILED", "ACTION"],
            &expectations,
        ));
    }
    let left: Vec<Vec<String>> = record
        .ordered_tasks()
        .flat_map(|(id, t)| {
            let items = t.output.as_ref().map(|o| o.left()).unwrap_or_default();
            items
                .into_iter()
                .map(move |item| vec![id.to_string(), item])
        })
        .collect();
    if !left.is_empty() {
        out.push('\n');
        out.push_str(&text_table::render(&["TASK", "LEFT"], &left));
    }
    for (id, t) in record.ordered_tasks() {
        if let Some(e) = &t.error
            && !matches!(
                t.status,
                tweetflow_engine::TaskStatus::Cancelled
                    | tweetflow_engine::TaskStatus::UpstreamFailed
            )
        {
            out.push_str(&format!("\n{id} failed: {}\n", e.message));
        }
    }
    if record.status != RunStatus::Succeeded {
        out.push_str(&format!(
            "\nresume with: tweetflow run --resume {}\n",
            record.run_id
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_lists_what_each_task_left() {
        let record: RunRecord = serde_json::from_value(serde_json::json!({
            "run_id": "r1", "pipeline": "p", "pipeline_file": "p.yaml", "spec_hash": "h",
            "params": {}, "status": "succeeded", "created_at": "2026-01-01T00:00:00Z",
            "ended_at": "2026-01-01T00:00:01Z", "task_order": ["ingest", "clean"],
            "tasks": {
                "ingest": {
                    "task_type": "ingest", "status": "succeeded", "cache_key": null,
                    "error": null, "started_at": null, "ended_at": null,
                    "output": { "values": { "rows": 0, "left": [
                        "4 files waiting: modified in the last 5s (settle_time)",
                        "2 skipped by name (skip_names)"
                    ] } }
                },
                "clean": {
                    "task_type": "clean", "status": "succeeded", "cache_key": null,
                    "error": null, "started_at": null, "ended_at": null,
                    "output": { "values": { "rows": 0, "left": [] } }
                }
            },
            "last_seq": 1
        }))
        .unwrap();
        let text = summary(&record);
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("TASK") && l.contains("LEFT"))
            .unwrap_or_else(|| panic!("no LEFT table:\n{text}"));
        assert!(
            lines[at + 1].contains("ingest")
                && lines[at + 1].contains("4 files waiting: modified in the last 5s (settle_time)"),
            "{text}"
        );
        assert!(
            lines[at + 2].contains("ingest")
                && lines[at + 2].contains("2 skipped by name (skip_names)"),
            "{text}"
        );
        assert_eq!(text.matches("clean").count(), 1, "{text}");
    }
}
