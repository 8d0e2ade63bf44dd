//! One task of a run: its cache lookup, then its attempts, each with its timeout, retried
//! with backoff while the error is retryable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::{Instrument, info, info_span, warn};

use super::{Outcome, Shared, finished};
use super::{remote, shards, trace_context};
use crate::cache::{CacheEntry, cache_key};
use crate::duration::format_duration;
use crate::retry;
use crate::store::{Event, TaskStatus};
use crate::task::{DynTask, ErrorKind, Shard, TaskContext, TaskError, TaskOutput};

/// The tracing target of the warnings about failed attempts and tasks (a console that prints
/// its own line for each can leave them out of stderr).
pub const OUTCOME_TARGET: &str = "tweetflow_engine::executor::outcome";

/// Fills an empty fingerprint with a hash of the output values.
pub(super) fn with_fingerprint(mut output: TaskOutput) -> TaskOutput {
    if output.fingerprint.is_empty() {
        let json = serde_json::Value::Object(output.values.clone()).to_string();
        output.fingerprint = blake3::hash(json.as_bytes()).to_hex().to_string();
    }
    output
}

pub(super) async fn run_task(
    shared: Arc<Shared>,
    i: usize,
    upstream: Arc<BTreeMap<String, TaskOutput>>,
    cancel: CancellationToken,
) -> (usize, Outcome) {
    let spec = &shared.pipeline.tasks[i];
    let span = info_span!(parent: &shared.run_span, "task", task = %spec.id, r#type = %spec.task_type,
        rows = Empty, status = Empty, error = Empty, otel.status_code = Empty);
    let outcome = run_task_inner(&shared, i, upstream, cancel)
        .instrument(span.clone())
        .await;
    let error = shared
        .lock_handle()
        .record()
        .tasks
        .get(&spec.id)
        .and_then(|t| t.error.clone());
    trace_context::end_task(&span, &outcome, &error);
    (i, outcome)
}

async fn run_task_inner(
    shared: &Arc<Shared>,
    i: usize,
    upstream: Arc<BTreeMap<String, TaskOutput>>,
    cancel: CancellationToken,
) -> Outcome {
    let spec = &shared.pipeline.tasks[i];
    let Some(task) = shared.registry.get(&spec.task_type).cloned() else {
        let error = TaskError {
            kind: ErrorKind::Config,
            message: format!("unknown task type `{}`", spec.task_type),
        };
        shared.record(finished(&spec.id, TaskStatus::Failed, None, Some(error)));
        return Outcome {
            status: TaskStatus::Failed,
            output: None,
        };
    };
    // Secrets are not part of the key: it is written in the run record and names the entry.
    let key_params = shared.pipeline.redacted_with(i);
    let key = if spec.cache.enabled && shared.use_cache {
        let paths = task.cache_inputs(&spec.with);
        if paths.is_empty() {
            Some(cache_key(
                task.type_name(),
                task.version(),
                &key_params,
                &upstream,
                None,
            ))
        } else {
            for missing in paths.iter().filter(|p| !p.exists()) {
                warn!(input = %missing.display(), "a declared cache input does not exist (a typo?): it counts as missing in the cache key");
            }
            match tokio::task::spawn_blocking(move || crate::cache::hash_inputs(&paths)).await {
                Ok(inputs) => Some(cache_key(
                    task.type_name(),
                    task.version(),
                    &key_params,
                    &upstream,
                    Some(&inputs),
                )),
                Err(e) => {
                    warn!(error = %e, "hashing the cache inputs failed: the cache is not used for this task");
                    None
                }
            }
        }
    } else {
        None
    };
    shared.record(Event::TaskStarted {
        task: spec.id.clone(),
        at: Utc::now(),
        cache_key: key.clone(),
    });

    if let Some(key) = &key
        && !shared.refresh.contains(&spec.id)
        && let Some(entry) = shared.cache.get(key, spec.cache.ttl)
    {
        if task.output_still_valid(&spec.with, &entry.output).await {
            info!(from_run = %entry.run_id, "cache hit");
            shared.record(finished(
                &spec.id,
                TaskStatus::Cached,
                Some(entry.output.clone()),
                None,
            ));
            return Outcome {
                status: TaskStatus::Cached,
                output: Some(entry.output),
            };
        }
        info!("cached output no longer valid: running");
    }

    let result = if spec.shards > 1 {
        shards::run_shards(shared, i, &task, &upstream, &cancel).await
    } else {
        run_attempts(shared, i, &task, &upstream, &cancel, None).await
    };
    match result {
        Ok(output) => {
            let output = with_fingerprint(output);
            if let Some(key) = &key {
                let entry = CacheEntry {
                    key: key.clone(),
                    task_type: spec.task_type.clone(),
                    created_at: Utc::now(),
                    run_id: shared.run_id.clone(),
                    task_id: spec.id.clone(),
                    output: output.clone(),
                    params: Some(spec.with.clone()),
                };
                if let Err(e) = shared.cache.put(&entry) {
                    warn!(error = %e, "cannot write the cache entry");
                }
            }
            shared.record(finished(
                &spec.id,
                TaskStatus::Succeeded,
                Some(output.clone()),
                None,
            ));
            Outcome {
                status: TaskStatus::Succeeded,
                output: Some(output),
            }
        }
        Err(last_error) => {
            let status = if last_error.kind == ErrorKind::Cancelled {
                TaskStatus::Cancelled
            } else {
                TaskStatus::Failed
            };
            warn!(target: OUTCOME_TARGET, error = %last_error.message, kind = ?last_error.kind, "{}", status.as_str());
            shared.record(finished(&spec.id, status, None, Some(last_error)));
            Outcome {
                status,
                output: None,
            }
        }
    }
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
        let attempt_span = info_span!("attempt", number = i64::from(number), status = Empty, error = Empty, job = Empty,
            otel.status_code = Empty);
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
        trace_context::end_attempt(&ctx.span, &result);
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
                let retry =
                    e.is_retryable() && number < policy.max_attempts && !cancel.is_cancelled();
                last_error = e;
                if !retry {
                    break;
                }
                let wait = retry::delay(policy, number + 1);
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
                    Err(TaskError {
                        kind: ErrorKind::Timeout,
                        message: format!("timed out after {}", format_duration(limit)),
                    })
                }),
            None => attempt.await,
        }
    };
    tokio::select! {
        result = limited => result,
        _ = cancel.cancelled() => Err(TaskError::cancelled()),
    }
}
