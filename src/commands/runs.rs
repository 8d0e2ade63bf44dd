//! `tweetflow runs list|show|cancel`: the recorded runs.

use std::path::Path;

use tweetflow_engine::duration::human;
use tweetflow_engine::{EngineError, RunRecord};

use super::run::summary;
use super::text_table;
use crate::cli::RunsCommand;
use crate::exit;

/// Runs a `runs` command against the runs under `runs_dir`.
pub(crate) fn runs(runs_dir: &Path, command: RunsCommand) -> anyhow::Result<u8> {
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
                        r.status.as_str().to_string(),
                        r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        human(r.duration()),
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
            if json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                print!("{}", summary(&record));
            }
            Ok(exit::OK)
        }
    }
}
