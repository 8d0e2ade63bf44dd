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
