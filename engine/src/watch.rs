//! Streaming mode (`tweetflow run FILE --watch`): the pipeline runs again as micro-batches,
//! each an ordinary recorded run, whenever new files land in a watched directory or the
//! interval passes, until cancelled or idle.
//!
//! ```text
//!  batch 1 ─▶ wait (interval | a watched directory changes | cancel) ─▶ batch 2 ─▶ ...
//!                                  └─ stop when no batch changed anything for `until_idle`
//! ```
//!
//! A batch "changed something" when any task's output fingerprint differs from the previous
//! batch's (a new Delta version, a new file, different output). Incremental tasks only
//! process what is new, so each batch costs what arrived since the last one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::duration::human_duration as human;
use crate::error::EngineError;
use crate::run::{Engine, RunOptions};
use crate::spec::Pipeline;
use crate::store::{RunRecord, RunStatus};

/// How streaming mode runs.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Longest wait between batches (default 5s).
    pub interval: Duration,
    /// Stop after this long without a batch that changed anything (default: never).
    pub until_idle: Option<Duration>,
    /// Extra directories to watch, besides those the tasks name.
    pub paths: Vec<PathBuf>,
}

/// What a streaming session did.
#[derive(Clone, Debug)]
pub struct WatchSummary {
    /// Every batch's run record, in order.
    pub batches: Vec<RunRecord>,
    /// Whether it ended by cancellation.
    pub cancelled: bool,
}

type Listing = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn listing(dirs: &[PathBuf]) -> Listing {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            if let Ok(meta) = e.metadata() {
                out.push((e.path(), meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    out
}

fn fingerprints(record: &RunRecord) -> BTreeMap<String, String> {
    record
        .tasks
        .iter()
        .map(|(id, t)| {
            (
                id.clone(),
                t.output
                    .as_ref()
                    .map(|o| o.fingerprint.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

async fn finish(
    observers: &[std::sync::Arc<dyn crate::observer::RunObserver>],
    session: &str,
    pipeline: &Pipeline,
    batches: Vec<RunRecord>,
    cancelled: bool,
) -> Result<WatchSummary, EngineError> {
    for o in observers {
        if let Err(e) = o.session_finished(session, pipeline, cancelled).await {
            warn!(observer = o.name(), error = %e, retryable = e.retryable, "observer could not record the end of the session");
        }
    }
    Ok(WatchSummary { batches, cancelled })
}

/// Runs `pipeline` as micro-batches until `cancel` fires or it has been idle long enough.
pub async fn watch(
    engine: &Engine,
    pipeline: &Pipeline,
    file: &str,
    text: &str,
    base: RunOptions,
    options: WatchOptions,
) -> Result<WatchSummary, EngineError> {
    let cancel: CancellationToken = base.cancel.clone();
    let session = crate::store::RunStore::new_run_id();
    let mut dirs = options.paths.clone();
    for task in &pipeline.tasks {
        if let Some(t) = engine.registry().get(&task.task_type) {
            dirs.extend(t.watch_paths(&task.with));
        }
    }
    dirs.sort();
    dirs.dedup();
    info!(session = %session, watched = ?dirs, interval = ?options.interval, until_idle = ?options.until_idle, "streaming mode");
    let observers = engine.observers_for(pipeline);
    let mut batches = Vec::new();
    let mut previous: Option<BTreeMap<String, String>> = None;
    let mut last_change = Instant::now();
    loop {
        let number = batches.len() + 1;
        let mut run_options = base.clone();
        run_options.cancel = cancel.child_token();
        run_options
            .tags
            .insert("watch_session".into(), session.clone());
        run_options
            .tags
            .insert("watch_batch".into(), number.to_string());
        let seen = listing(&dirs);
        let record = engine
            .run(pipeline.clone(), file, text, run_options)
            .await?;
        let prints = fingerprints(&record);
        let changed = previous.as_ref() != Some(&prints);
        if changed {
            last_change = Instant::now();
        }
        previous = Some(prints);
        for (id, t) in record.ordered_tasks() {
            let values = t
                .output
                .as_ref()
                .map(|o| serde_json::Value::Object(o.values.clone()))
                .unwrap_or_default();
            info!(batch = number, task = id, status = t.status.as_str(), duration = %t.duration().map(human).unwrap_or_default(), outputs = %values, "batch task");
        }
        info!(batch = number, run_id = %record.run_id, status = record.status.as_str(), changed, duration = %human(record.duration()), "batch finished");
        for o in &observers {
            if let Err(e) = o.batch_finished(&session, number, pipeline, &record).await {
                warn!(observer = o.name(), error = %e, retryable = e.retryable, "observer could not record the batch");
            }
        }
        let status = record.status;
        batches.push(record);
        if cancel.is_cancelled() || status == RunStatus::Cancelled {
            return finish(&observers, &session, pipeline, batches, true).await;
        }
        if options
            .until_idle
            .is_some_and(|idle| last_change.elapsed() >= idle)
        {
            info!(batches = batches.len(), "idle: stopping");
            return finish(&observers, &session, pipeline, batches, false).await;
        }
        // Wait for the interval, new files, the idle limit or cancellation.
        let started = Instant::now();
        loop {
            let idle_over = options
                .until_idle
                .is_some_and(|idle| last_change.elapsed() >= idle);
            if started.elapsed() >= options.interval || listing(&dirs) != seen || idle_over {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => return finish(&observers, &session, pipeline, batches, true).await,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}
