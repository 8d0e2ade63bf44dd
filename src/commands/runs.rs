//! `tweetflow runs list|show|cancel|prune|recover`: the recorded runs.

use std::path::Path;

use tweetflow_engine::human_duration;
use tweetflow_engine::process_env;
use tweetflow_engine::store::{PruneOptions, default_policy};
use tweetflow_engine::{EngineError, Registry, RunRecord, RunStatus};

use super::run::summary;
use super::text_table;
use crate::cli::RunsCommand;
use crate::exit;

/// Runs a `runs` command against the runs under `runs_dir`.
pub(crate) async fn runs(
    registry: &std::sync::Arc<Registry>,
    runs_dir: &Path,
    command: RunsCommand,
) -> anyhow::Result<u8> {
    let store = tweetflow_engine::RunStore::new(runs_dir);
    match command {
        RunsCommand::List { json, limit } => {
            let records: Vec<RunRecord> = store
                .list_newest(limit)?
                .into_iter()
                .filter_map(|r| r.map_err(|e| eprintln!("warning: {e}")).ok())
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
                return Ok(exit::OK);
            }
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    let ok = r.tasks.values().filter(|t| t.status.is_success()).count();
                    vec![
                        r.run_id.clone(),
                        r.pipeline.clone(),
                        match r
                            .last_event_at
                            .filter(|_| r.status == RunStatus::Interrupted)
                        {
                            Some(t) => format!("interrupted (last event {})", t.format("%H:%M:%S")),
                            None => r.status.as_str().to_string(),
                        },
                        r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        human_duration(r.duration()),
                        format!("{ok}/{}", r.tasks.len()),
                    ]
                })
                .collect();
            print!(
                "{}",
                text_table::render(
                    &[
                        "RUN",
                        "PIPELINE",
                        "STATUS",
                        "STARTED (UTC)",
                        "DURATION",
                        "TASKS OK"
                    ],
                    &rows
                )
            );
            Ok(exit::OK)
        }
        RunsCommand::Prune {
            pipeline,
            dry_run,
            json,
        } => prune(registry, &store, pipeline, dry_run, json).await,
        RunsCommand::Recover {
            run_ids,
            pipeline,
            dry_run,
            fail,
        } => {
            let engine = super::new_engine(registry, runs_dir);
            super::runs_recover::recover(&engine, run_ids, pipeline, dry_run, fail).await
        }
        RunsCommand::Cancel { run_id } => match store.request_cancel(&run_id) {
            Ok(()) => {
                println!("cancel requested for run {run_id}");
                Ok(exit::OK)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(exit::INVALID)
            }
        },
        RunsCommand::Show { run_id, json } => {
            let record = match store.load(&run_id) {
                Ok(r) => r,
                Err(e @ EngineError::RunNotFound { .. }) => {
                    eprintln!("error: {e}");
                    return Ok(exit::INVALID);
                }
                Err(e) => return Err(e.into()),
            };
            let deliveries = tweetflow_notify::DeliveryLog::read(&store.run_dir(&run_id));
            if json {
                let mut shown = serde_json::to_value(&record)?;
                if !deliveries.deliveries.is_empty() {
                    shown["deliveries"] = serde_json::to_value(&deliveries.deliveries)?;
                }
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                print!("{}", summary(&record));
                print!("{}", super::notify::deliveries_table(&deliveries));
            }
            Ok(exit::OK)
        }
    }
}

/// `runs prune`: applies the retention policies, then removes the cache entries whose
/// output is gone, and prints what was removed.
async fn prune(
    registry: &Registry,
    store: &tweetflow_engine::RunStore,
    pipeline: Option<String>,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let default_policy = match default_policy(&process_env) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::INVALID);
        }
    };
    let mut report = store.prune(&PruneOptions {
        pipeline: pipeline.clone(),
        dry_run,
        default_policy,
        ..PruneOptions::default()
    })?;
    let gone = store
        .prune_gone_outputs(registry, pipeline.as_deref(), dry_run)
        .await?;
    report.removed_entries.extend(gone);
    for (run_id, error) in &report.unreadable {
        eprintln!("warning: run {run_id} is kept: its record cannot be read: {error}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(exit::OK);
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for run in &report.removed {
        println!(
            "{verb} run {}  {}  {}  {}",
            run.run_id,
            run.pipeline,
            run.status.as_str(),
            human_bytes(run.bytes)
        );
    }
    for entry in &report.removed_entries {
        let of = if entry.run_id.is_empty() {
            String::new()
        } else {
            format!(" of run {}", entry.run_id)
        };
        println!(
            "{verb} cache entry {}{of} ({})",
            entry.key,
            entry.reason.as_str()
        );
    }
    let kept: Vec<String> = report
        .kept
        .iter()
        .map(|(reason, n)| {
            let reason = serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!("{n} {reason}")
        })
        .collect();
    let freed = if dry_run { "would free" } else { "freed" };
    println!(
        "{verb} {} runs and {} cache entries; {freed} {}; kept {} runs ({})",
        report.removed.len(),
        report.removed_entries.len(),
        human_bytes(report.bytes_freed()),
        report.kept.values().sum::<usize>(),
        if kept.is_empty() {
            "none".to_string()
        } else {
            kept.join(", ")
        }
    );
    Ok(exit::OK)
}

/// `1536` as `1.5 KB` (powers of 1024).
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
