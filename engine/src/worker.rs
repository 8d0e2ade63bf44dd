//! The worker side of an executor: `tweetflow task exec` runs one resolved attempt (written
//! by the engine, see [`crate::executor`]) with this build's task types and writes how it
//! ended.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::executor::{ATTEMPT_ENV, AttemptResult, ResolvedAttempt, exit_code};
use crate::registry::Registry;
use crate::store::RunStore;
use crate::task::{ErrorKind, RunView, TaskContext, TaskError, TaskState};

/// The run of an attempt run outside the engine, read from the run store when the worker sees
/// it (a shared file system).
struct StoredRun {
    root: Option<std::path::PathBuf>,
    run_id: String,
}

impl RunView for StoredRun {
    fn store_root(&self) -> Option<std::path::PathBuf> {
        self.root.clone()
    }

    fn tasks(&self) -> Vec<TaskState> {
        let Some(root) = self.root.as_ref().filter(|r| r.is_dir()) else {
            return Vec::new();
        };
        match RunStore::new(root).load(&self.run_id) {
            Ok(record) => record.task_states(),
            Err(_) => Vec::new(),
        }
    }
}

/// Where `tweetflow task exec` reads its attempt.
#[derive(Clone, Debug)]
pub enum AttemptSource {
    /// A file the engine wrote (`attempt.json`), on a disk the worker shares.
    File(PathBuf),
    /// The environment variable [`ATTEMPT_ENV`] ([`ResolvedAttempt::to_inline`]), for a worker
    /// that shares no disk with the engine.
    Env,
}

/// Where `tweetflow task exec` writes how the attempt ended.
#[derive(Clone, Debug)]
pub enum ResultSink {
    /// A JSON file, written atomically.
    File(PathBuf),
    /// One marked line on stdout after the attempt's log lines
    /// ([`AttemptResult::to_line`]), read back from the job's logs by the engine.
    Stdout,
}

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
    task_exec_from(
        registry,
        AttemptSource::File(file.to_path_buf()),
        ResultSink::File(result.to_path_buf()),
        cancel,
    )
    .await
}

/// [`task_exec`] with the attempt from `source` and the result to `sink`.
pub async fn task_exec_from(
    registry: &Registry,
    source: AttemptSource,
    sink: ResultSink,
    cancel: CancellationToken,
) -> u8 {
    let read = match &source {
        AttemptSource::File(file) => ResolvedAttempt::read(file)
            .map_err(|e| format!("cannot read the attempt file {}: {e}", file.display())),
        AttemptSource::Env => match std::env::var(ATTEMPT_ENV) {
            Ok(text) => ResolvedAttempt::from_inline(&text)
                .map_err(|e| format!("cannot read the attempt in ${ATTEMPT_ENV}: {e}")),
            Err(_) => Err(format!(
                "no attempt: give the attempt file, or set ${ATTEMPT_ENV} (the engine's executor does)"
            )),
        },
    };
    let outcome = match read {
        Ok(resolved) => run_resolved(registry, resolved, cancel).await,
        Err(message) => Err(TaskError::new(ErrorKind::Config, message)),
    };
    let code = exit_code(&outcome);
    let ended = match outcome {
        Ok(o) => AttemptResult::Output(o),
        Err(e) => {
            tracing::warn!(kind = ?e.kind, error = %e.message, "attempt failed");
            AttemptResult::Error(e)
        }
    };
    match sink {
        ResultSink::File(result) => {
            if let Err(e) = ended.write(&result) {
                tracing::error!(path = %result.display(), error = %e, "cannot write the result");
                return exit_code(&Err(TaskError::retryable("no result")));
            }
        }
        ResultSink::Stdout => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{}", ended.to_line())
                .and_then(|()| out.flush())
                .is_err()
            {
                return exit_code(&Err(TaskError::retryable("no result")));
            }
        }
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
    let task = registry.get(&resolved.task_type).ok_or_else(|| {
        TaskError::new(
            ErrorKind::Config,
            format!(
                "this build of tweetflow has no task type `{}`",
                resolved.task_type
            ),
        )
    })?;
    if task.version() != resolved.task_version {
        return Err(TaskError::new(
            ErrorKind::Config,
            format!(
                "task type `{}` is at version {} in this build but {} in the engine's: run the same tweetflow binary everywhere",
                resolved.task_type,
                task.version(),
                resolved.task_version
            ),
        ));
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
        run: Arc::new(StoredRun {
            root: resolved.run_store.clone(),
            run_id: resolved.run_id.clone(),
        }),
        links: Arc::new(resolved.links.clone()),
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
