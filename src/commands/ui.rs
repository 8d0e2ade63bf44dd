//! `tweetflow ui`: serves the web UI until Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tweetflow_engine::Registry;
use tweetflow_ui::{UiConfig, UiError};

use super::spawn_signal_handler;
use crate::cli::UiArgs;
use crate::exit;

/// Runs the web UI.
pub async fn ui(registry: Arc<Registry>, runs_dir: &Path, args: UiArgs) -> anyhow::Result<u8> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("pipelines")]
    } else {
        args.paths
    };
    let engine = super::new_engine(&registry, runs_dir);
    let config = UiConfig {
        paths,
        runs_dir: runs_dir.to_path_buf(),
        listen: args.listen,
        token: args.token,
        exe: std::env::current_exe()?,
        registry,
    };
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    tokio::spawn(watch_interrupted(engine, shutdown.clone()));
    let stop = shutdown.clone();
    let served = tokio::select! {
        r = tweetflow_ui::serve(config, shutdown.cancelled_owned()) => r,
        // Live logs keep connections open: do not wait for them for long.
        () = async move {
            stop.cancelled().await;
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        } => Ok(()),
    };
    match served {
        Ok(()) => Ok(exit::OK),
        Err(e @ (UiError::TokenRequired { .. } | UiError::Bind { .. })) => {
            eprintln!("error: {e}");
            if let Some(source) = std::error::Error::source(&e) {
                eprintln!("  caused by: {source}");
            }
            Ok(exit::INVALID)
        }
        Err(e) => Err(e.into()),
    }
}

/// While the UI serves: every [`tweetflow_engine::scheduler::RECOVER_EVERY`], records the runs
/// whose engine died (found by their active markers) as interrupted and tells their observers
/// (MLflow sets the run KILLED), so a run shown interrupted is not shown running in MLflow.
async fn watch_interrupted(engine: tweetflow_engine::Engine, stop: CancellationToken) {
    let active = engine.store().root().join(".active");
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(tweetflow_engine::scheduler::RECOVER_EVERY) => {}
        }
        let pipelines: Vec<String> = std::fs::read_dir(&active)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        for pipeline in pipelines {
            for record in engine.store().interrupted_marked(&pipeline) {
                if let Err(e) = engine.note_interrupted(&record.run_id).await {
                    tracing::warn!(run_id = %record.run_id, error = %e, "cannot record the interruption");
                }
            }
        }
    }
}
