//! The worker side of an executor: `tweetflow task exec` runs one resolved attempt (written
//! by the engine, see [`crate::executor`]) with this build's task types and writes how it
//! ended.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::executor::{AttemptResult, ResolvedAttempt, exit_code};
use crate::registry::Registry;
use crate::task::{ErrorKind, TaskContext, TaskError};

/// Runs the attempt described by the file at `file` with the task types of `registry`,
/// writes its output or error to `result` and returns the exit code (see
/// [`crate::executor::exit_code`]). `cancel` (a signal) stops the attempt, which then ends as
/// cancelled.
pub async fn task_exec(
    registry: &Registry,
    file: &Path,
    result: &Path,
    cancel: CancellationToken,
) -> u8 {
    let outcome = match ResolvedAttempt::read(file) {
        Ok(resolved) => run_resolved(registry, resolved, cancel).await,
        Err(e) => Err(TaskError {
            kind: ErrorKind::Config,
            message: format!("cannot read the attempt file {}: {e}", file.display()),
        }),
    };
    let code = exit_code(&outcome);
    let written = match outcome {
        Ok(o) => AttemptResult::Output(o),
        Err(e) => {
            tracing::warn!(kind = ?e.kind, error = %e.message, "attempt failed");
            AttemptResult::Error(e)
        }
    }
    .write(result);
    if let Err(e) = written {
        tracing::error!(path = %result.display(), error = %e, "cannot write the result");
        return exit_code(&Err(TaskError::retryable("no result")));
    }
    code
}

async fn run_resolved(
    registry: &Registry,
    resolved: ResolvedAttempt,
    cancel: CancellationToken,
) -> Result<crate::task::TaskOutput, TaskError> {
    if let Some(cwd) = resolved.cwd.as_ref().filter(|d| d.is_dir())
        && let Err(e) = std::env::set_current_dir(cwd)
    {
        tracing::warn!(cwd = %cwd.display(), error = %e, "cannot enter the engine's working directory");
    }
    let task = registry.get(&resolved.task_type).ok_or_else(|| TaskError {
        kind: ErrorKind::Config,
        message: format!(
            "this build of tweetflow has no task type `{}`",
            resolved.task_type
        ),
    })?;
    if task.version() != resolved.task_version {
        return Err(TaskError {
            kind: ErrorKind::Config,
            message: format!(
                "task type `{}` is at version {} in this build but {} in the engine's: run the same tweetflow binary everywhere",
                resolved.task_type,
                task.version(),
                resolved.task_version
            ),
        });
    }
    let span = tracing::info_span!("attempt", task = %resolved.task_id, number = resolved.attempt,
        shard = resolved.shard.map(|s| s.index), run_id = %resolved.run_id,
        pipeline = %resolved.pipeline, r#type = %resolved.task_type);
    // The engine's attempt span goes on here (a local child process, a Ray job).
    let parent = resolved
        .traceparent
        .clone()
        .or_else(|| std::env::var(crate::telemetry::context::TRACEPARENT_ENV).ok());
    if let Some(parent) = parent {
        crate::telemetry::context::continue_trace(&span, &parent);
    }
    let ctx = TaskContext {
        run_id: resolved.run_id.clone(),
        task_id: resolved.task_id.clone(),
        attempt: resolved.attempt,
        pipeline: Arc::new(resolved.pipeline_info()),
        upstream: Arc::new(resolved.upstream.clone()),
        cancel: cancel.child_token(),
        span: span.clone(),
        artifacts_dir: resolved.artifacts_dir.clone(),
        shard: resolved.shard,
    };
    let run = task.run(&ctx, &resolved.params).instrument(span.clone());
    tokio::select! {
        r = run => r,
        _ = cancel.cancelled() => {
            span.in_scope(|| tracing::warn!("stopped"));
            Err(TaskError::cancelled())
        }
    }
}
