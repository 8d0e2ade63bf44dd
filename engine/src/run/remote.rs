//! An attempt that runs outside the engine's process: on a registered executor, or (a shard
//! of a `local` task) as a `tweetflow task exec` child process.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Shared;
use crate::duration::format_duration;
use crate::executor::{self, JobReporter, RemoteAttempt, ResolvedAttempt};
use crate::spec::TaskSpec;
use crate::store::Event;
use crate::task::{DynTask, ErrorKind, TaskContext, TaskError, TaskOutput};

/// How long a stopped attempt (timeout, cancellation) may take to stop its job.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// The id of an attempt's job: the same for the same run, task, shard and attempt, so a
/// resumed run finds the job it submitted before.
pub(super) fn submission_id(ctx: &TaskContext) -> String {
    let shard = ctx.shard.map_or_else(|| "all".to_string(), |s| s.label());
    format!(
        "tweetflow-{}-{}-{shard}-attempt-{}",
        ctx.run_id, ctx.task_id, ctx.attempt
    )
}

/// Runs one attempt elsewhere, with the task's timeout; a timeout or cancellation stops the
/// job (the executor gets [`STOP_WAIT`] to do so).
pub(super) async fn run_remote(
    shared: &Arc<Shared>,
    spec: &TaskSpec,
    task: &dyn DynTask,
    ctx: &TaskContext,
    cancel: &CancellationToken,
) -> Result<TaskOutput, TaskError> {
    let submission_id = submission_id(ctx);
    let run_dir = std::path::absolute(&shared.run_dir).unwrap_or_else(|_| shared.run_dir.clone());
    let dir = run_dir.join("exec").join(&submission_id);
    let artifacts_dir = run_dir.join("artifacts").join(&spec.id);
    let resolved = ResolvedAttempt {
        run_id: ctx.run_id.clone(),
        task_id: spec.id.clone(),
        task_type: spec.task_type.clone(),
        task_version: task.version().to_string(),
        attempt: ctx.attempt,
        shard: ctx.shard,
        params: spec.with.clone(),
        upstream: (*ctx.upstream).clone(),
        pipeline: shared.info.name.clone(),
        spec_hash: shared.info.spec_hash.clone(),
        pipeline_params: shared.info.params.clone(),
        sections: shared.info.sections.clone(),
        expect: spec.expect.clone(),
        artifacts_dir,
        cwd: std::env::current_dir().ok(),
        secrets: shared.pipeline.attempt_secrets(&spec.id),
        run_store: ctx
            .run
            .store_root()
            .map(|r| std::path::absolute(&r).unwrap_or(r)),
        links: (*ctx.links).clone(),
        traceparent: crate::telemetry::context::traceparent(&ctx.span),
    };
    let file = dir.join("attempt.json");
    resolved.write(&file).map_err(|e| {
        TaskError::retryable(format!(
            "cannot write the attempt file {}: {e}",
            file.display()
        ))
    })?;
    let stop = CancellationToken::new();
    let reporter = {
        let shared = shared.clone();
        let task = spec.id.clone();
        let number = ctx.attempt;
        let shard = ctx.shard.map(|s| s.index);
        let span = ctx.span.clone();
        JobReporter::new(move |job| {
            span.record("job", job);
            shared.record(Event::AttemptJob {
                task: task.clone(),
                number,
                shard,
                job: job.to_string(),
            })
        })
    };
    let attempt = RemoteAttempt {
        resolved,
        file,
        dir,
        submission_id,
        exec_command: shared.exec_command.clone().unwrap_or_default(),
        cancel: stop.clone(),
        jobs: reporter,
    };
    let run = async {
        match &spec.executor.name {
            None => executor::run_process(&attempt).await,
            Some(name) => match shared.registry.executor(name) {
                Some(executor) => executor.run(&spec.executor.config, attempt.clone()).await,
                None => Err(TaskError::new(
                    ErrorKind::Config,
                    format!("executor `{name}` is not registered in this build"),
                )),
            },
        }
    };
    tokio::pin!(run);
    let limit = async {
        match spec.timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let error = tokio::select! {
        result = &mut run => return result,
        _ = limit => TaskError::new(ErrorKind::Timeout, format!(
                "timed out after {}",
                format_duration(spec.timeout.unwrap_or_default())
            )),
        _ = cancel.cancelled() => TaskError::cancelled(),
    };
    stop.cancel();
    if tokio::time::timeout(STOP_WAIT, &mut run).await.is_err() {
        warn!(
            "the attempt's job did not stop within {}",
            format_duration(STOP_WAIT)
        );
    }
    Err(error)
}
