//! `tweetflow task exec`: one task attempt, as an executor's worker runs it.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tweetflow_engine::Registry;

use super::spawn_signal_handler_quiet;
use crate::cli::TaskCommand;

/// Runs a `task` command; returns the exit code.
pub(crate) async fn task(registry: &Arc<Registry>, command: TaskCommand) -> anyhow::Result<u8> {
    match command {
        TaskCommand::Exec { file, result } => {
            let cancel = CancellationToken::new();
            spawn_signal_handler_quiet(cancel.clone());
            use tweetflow_engine::{AttemptSource, ResultSink, task_exec_from};
            let source = file.map_or(AttemptSource::Env, AttemptSource::File);
            let sink = result.map_or(ResultSink::Stdout, ResultSink::File);
            Ok(task_exec_from(registry, source, sink, cancel).await)
        }
    }
}
