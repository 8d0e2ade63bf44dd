//! `tweetflow runs recover [RUN_ID...] [--pipeline P] [--dry-run] [--fail]`: resumes (or marks
//! failed) the runs whose engine died, printing what it did.

use tweetflow_engine::engine_died_reason;
use tweetflow_engine::{Engine, EngineError, RunOptions, RunRecord, RunStatus};

use crate::exit;

/// Recovers the interrupted runs chosen; exit 0 when each was resumed to success (or marked
/// failed as asked), 1 when a resumed run failed, 2 when a run named is not interrupted.
pub(crate) async fn recover(
    engine: &Engine,
    run_ids: Vec<String>,
    pipeline: Option<String>,
    dry_run: bool,
    fail: bool,
) -> anyhow::Result<u8> {
    let store = engine.store().clone();
    let mut code = exit::OK;
    let chosen: Vec<RunRecord> = if run_ids.is_empty() {
        let p = pipeline.clone();
        tokio::task::spawn_blocking(move || store.interrupted_runs(p.as_deref())).await??
    } else {
        let mut chosen = Vec::new();
        for id in &run_ids {
            match store.load(id) {
                Ok(r) if r.status == RunStatus::Interrupted => {
                    if pipeline.as_ref().is_none_or(|p| *p == r.pipeline) {
                        chosen.push(r);
                    } else {
                        println!(
                            "run {id} is of pipeline {}, not {}: left as it is",
                            r.pipeline,
                            pipeline.as_deref().unwrap_or("")
                        );
                    }
                }
                Ok(r) => {
                    println!(
                        "run {id} is not interrupted: it {}{}; nothing changed",
                        r.status.as_str(),
                        if r.status == RunStatus::Running {
                            " (a live process holds it)"
                        } else {
                            ""
                        }
                    );
                    code = exit::INVALID;
                }
                Err(e @ EngineError::RunNotFound { .. }) => {
                    eprintln!("error: {e}");
                    code = exit::INVALID;
                }
                Err(e) => return Err(e.into()),
            }
        }
        chosen
    };
    if chosen.is_empty() && run_ids.is_empty() {
        println!(
            "no interrupted runs{}",
            pipeline
                .map(|p| format!(" of pipeline {p}"))
                .unwrap_or_default()
        );
        return Ok(code);
    }
    let verb = match (dry_run, fail) {
        (true, true) => "would mark failed",
        (true, false) => "would resume",
        (false, true) => "marking failed",
        (false, false) => "resuming",
    };
    for record in chosen {
        let last = record
            .last_event_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
            .unwrap_or_else(|| "unknown".into());
        println!(
            "{verb} run {} of {} (last event {last}, resumed {} times before)",
            record.run_id,
            record.pipeline,
            record.resumed_at.len()
        );
        if dry_run {
            continue;
        }
        let id = record.run_id.clone();
        if fail {
            match engine
                .fail_interrupted(&id, &engine_died_reason(&record))
                .await
            {
                Ok(r) => println!(
                    "run {id}: failed ({})",
                    r.reason.as_deref().unwrap_or("engine died")
                ),
                Err(e @ (EngineError::NotInterrupted { .. } | EngineError::Locked { .. })) => {
                    println!("run {id}: left as it is: {e}");
                }
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        if let Err(e) = engine.note_interrupted(&id).await {
            eprintln!("warning: run {id}: cannot record the interruption: {e}");
        }
        let options = RunOptions {
            only_interrupted: true,
            tags: Default::default(),
            ..RunOptions::default()
        };
        match engine.resume(&id, options).await {
            Ok(r) => {
                println!(
                    "run {id}: {} in {}",
                    r.status.as_str(),
                    tweetflow_engine::human_duration(r.duration())
                );
                if r.status != RunStatus::Succeeded {
                    code = code.max(exit::FAILED);
                }
            }
            Err(e @ (EngineError::NotInterrupted { .. } | EngineError::Locked { .. })) => {
                println!("run {id}: left as it is: {e}");
            }
            Err(e) => {
                eprintln!("error: run {id}: {e}");
                code = code.max(exit::FAILED);
            }
        }
    }
    Ok(code)
}
