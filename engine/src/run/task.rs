//! One task of a run: its cache lookup, then its attempts (or its shards' attempts when it
//! has `shards: N`), then its cache entry and outcome.
//!
//! ```text
//!  run_task ──cache hit──▶ Cached
//!     │ miss
//!     ├── shards > 1 ──▶ shards::run_shards ──▶ attempt::run_attempts (per shard)
//!     └── otherwise ───────────────────────────▶ attempt::run_attempts
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::{Instrument, info, info_span, warn};

use super::attempt::{run_attempts, with_fingerprint};
use super::{OUTCOME_TARGET, Outcome, Shared, finished, shards, trace_context};
use crate::cache::{CacheEntry, cache_key};
use crate::store::{Event, TaskStatus};
use crate::task::{ErrorKind, TaskError, TaskOutput};

/// Runs task `i` of the run to its end and records how it ended.
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
        let error = TaskError::new(
            ErrorKind::Config,
            format!("unknown task type `{}`", spec.task_type),
        );
        shared.record(finished(&spec.id, TaskStatus::Failed, None, Some(error)));
        return Outcome {
            status: TaskStatus::Failed,
            output: None,
        };
    };
    // Secrets are not part of the key: it is written in the run record and names the entry.
    // Expectations change what is committed: they are part of the key when there are any.
    let key_params = match shared.pipeline.redacted_with(i) {
        with if spec.expect.is_empty() => with,
        with => serde_json::json!({"with": with, "expect": spec.expect}),
    };
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
