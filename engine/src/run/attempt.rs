//! The attempts of a task (or of one shard of it), each with its timeout, retried with
//! backoff while the error is retryable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::{Instrument, info, info_span, warn};

use super::{OUTCOME_TARGET, Shared, remote};
use crate::duration::format_duration;
use crate::retry;
use crate::store::Event;
use crate::task::{DynTask, ErrorKind, Shard, TaskContext, TaskError, TaskOutput};

/// Fills an empty fingerprint with a hash of the output values.
pub(super) fn with_fingerprint(mut output: TaskOutput) -> TaskOutput {
    if output.fingerprint.is_empty() {
        let json = serde_json::Value::Object(output.values.clone()).to_string();
        output.fingerprint = blake3::hash(json.as_bytes()).to_hex().to_string();
    }
    output
}

/// The attempts of a task (or of one of its shards), retried with backoff while the error is
/// retryable; the output of the first that succeeds.
pub(super) async fn run_attempts(
    shared: &Arc<Shared>,
    i: usize,
    task: &Arc<dyn DynTask>,
    upstream: &Arc<BTreeMap<String, TaskOutput>>,
    cancel: &CancellationToken,
    shard: Option<Shard>,
) -> Result<TaskOutput, TaskError> {
    let spec = &shared.pipeline.tasks[i];
    let policy = &spec.retries;
    let mut last_error = TaskError::fatal("no attempt was made");
    for number in 1..=policy.max_attempts {
        if cancel.is_cancelled() {
            return Err(TaskError::cancelled());
        }
        shared.record(Event::AttemptStarted {
            task: spec.id.clone(),
            number,
            at: Utc::now(),
            shard: shard.map(|s| s.index),
        });
        let attempt_cancel = cancel.child_token();
        // Integers as i64: trace exporters take signed ones (an u64 would become a string).
        let attempt_span = info_span!(
            "attempt",
            number = i64::from(number),
            status = Empty,
            error = Empty,
            job = Empty,
            otel.status_code = Empty
        );
        let ctx = TaskContext {
            run_id: shared.run_id.clone(),
            task_id: spec.id.clone(),
            attempt: number,
            pipeline: shared.info.clone(),
            upstream: upstream.clone(),
            cancel: attempt_cancel.clone(),
            span: attempt_span.clone(),
            artifacts_dir: shared.run_dir.join("artifacts").join(&spec.id),
            shard,
            run: shared.clone(),
            links: shared.links.clone(),
        };
        info!(attempt = number, "started");
        let result =
            if spec.executor.is_local() && (shard.is_none() || shared.exec_command.is_none()) {
                run_attempt(&**task, &ctx, &spec.with, spec.timeout, cancel)
                    .instrument(attempt_span)
                    .await
            } else {
                remote::run_remote(shared, spec, &**task, &ctx, cancel)
                    .instrument(attempt_span)
                    .await
            };
        attempt_cancel.cancel();
        super::trace_context::end_attempt(&ctx.span, &result);
        shared.record(Event::AttemptFinished {
            task: spec.id.clone(),
            number,
            at: Utc::now(),
            error: result.as_ref().err().cloned(),
            shard: shard.map(|s| s.index),
        });
        match result {
            Ok(output) => {
                info!(attempt = number, "succeeded");
                return Ok(output);
            }
            Err(e) => {
                if let Some(cause) = e.source_chain() {
                    // The record keeps the message; the log also keeps what caused it.
                    info!(target: OUTCOME_TARGET, attempt = number, error = %e.message, cause = %cause, "attempt failed");
                }
                let retry =
                    e.is_retryable() && number < policy.max_attempts && !cancel.is_cancelled();
                last_error = e;
                if !retry {
                    break;
                }
                let wait = retry::delay(policy, number + 1);
                let shown = crate::secrets::masked(last_error.clone());
                shared.attempt_retrying(&crate::observer::RetryNotice {
                    run_id: &shared.run_id,
                    run_dir: &shared.run_dir,
                    task: &spec.id,
                    shard: shard.map(|s| s.index),
                    attempt: number,
                    max_attempts: policy.max_attempts,
                    error: &shown,
                    retry_in: wait,
                });
                warn!(target: OUTCOME_TARGET, attempt = number, error = %last_error.message, retry_in = %format_duration(round_ms(wait)), "attempt failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.cancelled() => return Err(TaskError::cancelled()),
                }
            }
        }
    }
    Err(last_error)
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// Runs one attempt; on timeout or cancellation the task's future is dropped, which stops it
/// (tasks release their resources, e.g. kill their child processes, on drop).
async fn run_attempt(
    task: &dyn crate::task::DynTask,
    ctx: &TaskContext,
    params: &serde_json::Value,
    timeout: Option<Duration>,
    cancel: &CancellationToken,
) -> Result<TaskOutput, TaskError> {
    let attempt = task.run(ctx, params);
    let limited = async {
        match timeout {
            Some(limit) => tokio::time::timeout(limit, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(TaskError::new(
                        ErrorKind::Timeout,
                        format!("timed out after {}", format_duration(limit)),
                    ))
                }),
            None => attempt.await,
        }
    };
    tokio::select! {
        result = limited => result,
        _ = cancel.cancelled() => Err(TaskError::cancelled()),
    }
}
