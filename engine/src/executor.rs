//! The executor: runs a pipeline's tasks as soon as their dependencies succeed, up to
//! `max_parallel` at once, with retries, per-attempt timeouts, caching and cancellation, and
//! records every state change in the run store.
//!
//! ```text
//!  ready queue ──▶ spawn (≤ max_parallel) ──▶ cache lookup ──hit──▶ cached
//!       ▲                                        │ miss
//!       │                                        ▼
//!       │                       attempt 1..=max_attempts (timeout, cancel)
//!       │                                        │
//!       └── dependents whose deps all succeeded ◀┴─ failed ──▶ dependents: upstream_failed
//! ```

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span, info, info_span, warn};

use crate::cache::{Cache, CacheEntry, cache_key};
use crate::duration::format_duration;
use crate::error::EngineError;
use crate::logging;
use crate::observer::{RunObserver, pending_tag};
use crate::registry::Registry;
use crate::retry;
use crate::spec::Pipeline;
use crate::store::{Event, RunHandle, RunRecord, RunStatus, RunStore, TaskStatus};
use crate::task::{ErrorKind, PipelineInfo, TaskContext, TaskError, TaskOutput};

/// How a run is executed.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Most tasks running at once (default: number of cores).
    pub max_parallel: usize,
    /// Cancel every other task as soon as one fails.
    pub fail_fast: bool,
    /// Read and write the cache (`--no-cache` turns it off).
    pub use_cache: bool,
    /// Tasks that run even on a cache hit (`--refresh TASK`).
    pub refresh: HashSet<String>,
    /// Cancels the run (Ctrl-C, SIGTERM).
    pub cancel: CancellationToken,
    /// Labels stored in the run record.
    pub tags: BTreeMap<String, String>,
    /// The id of a new run (default: a fresh one).
    pub run_id: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            max_parallel: std::thread::available_parallelism().map_or(2, |n| n.get()),
            fail_fast: false,
            use_cache: true,
            refresh: HashSet::new(),
            cancel: CancellationToken::new(),
            tags: BTreeMap::new(),
            run_id: None,
        }
    }
}

/// Runs pipelines against a registry and a run store.
#[derive(Clone)]
pub struct Engine {
    registry: Arc<Registry>,
    store: RunStore,
    cache: Cache,
    observers: Vec<Arc<dyn RunObserver>>,
}

impl Engine {
    /// An engine with the run store (and cache) under `runs_dir`.
    pub fn new(registry: Arc<Registry>, runs_dir: impl Into<PathBuf>) -> Self {
        let store = RunStore::new(runs_dir);
        let cache = Cache::new(store.root().join(".cache"));
        Engine {
            registry,
            store,
            cache,
            observers: Vec::new(),
        }
    }

    /// Adds an observer told about every run it wants.
    pub fn with_observer(mut self, observer: Arc<dyn RunObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// The observers that want `pipeline`'s runs.
    pub fn observers_for(&self, pipeline: &Pipeline) -> Vec<Arc<dyn RunObserver>> {
        self.observers
            .iter()
            .filter(|o| o.wants(pipeline))
            .cloned()
            .collect()
    }

    /// The registry of task types.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The run store.
    pub fn store(&self) -> &RunStore {
        &self.store
    }

    /// Starts a new run of `pipeline` (read from `file`, whose text is `text`) and runs it to
    /// the end.
    pub async fn run(
        &self,
        pipeline: Pipeline,
        file: &str,
        text: &str,
        options: RunOptions,
    ) -> Result<RunRecord, EngineError> {
        let run_id = options.run_id.clone().unwrap_or_else(RunStore::new_run_id);
        let mut record = RunRecord::new(run_id, &pipeline, file);
        record.tags = options.tags.clone();
        let handle = self.store.create(record, &pipeline, text)?;
        self.execute(Arc::new(pipeline), handle, options, false)
            .await
    }

    /// Resumes run `run_id`: tasks that succeeded keep their outputs; the others run again.
    pub async fn resume(
        &self,
        run_id: &str,
        options: RunOptions,
    ) -> Result<RunRecord, EngineError> {
        let (handle, pipeline) = self.store.reopen(run_id)?;
        let record = handle.record();
        let pending = record.tags.keys().any(|k| k.ends_with(".pending"));
        if record.status == RunStatus::Succeeded && !pending {
            return Err(EngineError::NotResumable {
                run_id: run_id.into(),
                reason: "it already succeeded".into(),
            });
        }
        for task in &pipeline.tasks {
            if self.registry.get(&task.task_type).is_none() {
                return Err(EngineError::NotResumable {
                    run_id: run_id.into(),
                    reason: format!(
                        "task `{}` has type `{}`, which this build does not register",
                        task.id, task.task_type
                    ),
                });
            }
        }
        self.execute(Arc::new(pipeline), handle, options, true)
            .await
    }

    async fn execute(
        &self,
        pipeline: Arc<Pipeline>,
        handle: RunHandle,
        options: RunOptions,
        resumed: bool,
    ) -> Result<RunRecord, EngineError> {
        let run_id = handle.record().run_id.clone();
        let run_dir = handle.dir().to_path_buf();
        let _log = logging::attach_run_log(&run_id, &run_dir.join("log.jsonl"))
            .map_err(EngineError::io("open", run_dir.join("log.jsonl")))?;
        let run_span = info_span!("run", run_id = %run_id, pipeline = %pipeline.name);
        let info = Arc::new(PipelineInfo {
            name: pipeline.name.clone(),
            spec_hash: pipeline.spec_hash.clone(),
            params: pipeline.params.clone(),
            sections: pipeline.sections.clone(),
        });
        // `cancel` stops the run as a whole (signal, `tweetflow runs cancel`, the cron scheduler);
        // `run_cancel` also fires on --fail-fast.
        let cancel = options.cancel.child_token();
        let run_cancel = cancel.child_token();
        self.store.clear_cancel_request(&run_id);
        let _active = self.store.mark_active(&pipeline.name, &run_id)?;
        let watcher = tokio::spawn(watch_cancel_request(
            self.store.clone(),
            run_id.clone(),
            cancel.clone(),
        ));
        let shared = Arc::new(Shared {
            pipeline: pipeline.clone(),
            info,
            registry: self.registry.clone(),
            cache: self.cache.clone(),
            use_cache: options.use_cache,
            refresh: options.refresh.clone(),
            handle: Mutex::new(handle),
            store_error: Mutex::new(None),
            run_id,
            run_dir,
            run_span: run_span.clone(),
        });
        let observers: Vec<Arc<dyn RunObserver>> = self
            .observers
            .iter()
            .filter(|o| o.wants(&pipeline))
            .cloned()
            .collect();
        let start_record = shared.lock_handle().record().clone();
        for o in &observers {
            // A failure here is retried by `run_finished`, whose outcome decides `.pending`.
            if let Err(e) = o
                .run_started(&shared.run_dir, &pipeline, &start_record)
                .instrument(run_span.clone())
                .await
            {
                warn!(observer = o.name(), error = %e, retryable = e.retryable, "observer could not record the start");
            }
        }
        let result = run_tasks(&shared, &options, &cancel, &run_cancel, resumed)
            .instrument(run_span.clone())
            .await;
        watcher.abort();
        let end_record = shared.lock_handle().record().clone();
        for o in &observers {
            let outcome = o
                .run_finished(&shared.run_dir, &pipeline, &end_record)
                .instrument(run_span.clone())
                .await;
            let mut handle = shared.lock_handle();
            match outcome.err() {
                Some(e) => {
                    warn!(observer = o.name(), error = %e, retryable = e.retryable, "observer failed; `--resume` retries it");
                    handle
                        .tags_mut()
                        .insert(pending_tag(o.name()), e.to_string());
                }
                None => {
                    handle.tags_mut().remove(&pending_tag(o.name()));
                }
            }
        }
        let mut handle = shared.lock_handle();
        handle.snapshot()?;
        if let Some(e) = shared
            .store_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            return Err(e);
        }
        result?;
        Ok(handle.record().clone())
    }
}

struct Shared {
    pipeline: Arc<Pipeline>,
    info: Arc<PipelineInfo>,
    registry: Arc<Registry>,
    cache: Cache,
    use_cache: bool,
    refresh: HashSet<String>,
    handle: Mutex<RunHandle>,
    store_error: Mutex<Option<EngineError>>,
    run_id: String,
    run_dir: PathBuf,
    run_span: Span,
}

impl Shared {
    fn lock_handle(&self) -> MutexGuard<'_, RunHandle> {
        self.handle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an event; a run-store failure is kept and reported at the end of the run.
    fn record(&self, event: Event) {
        if let Err(e) = self.lock_handle().append(event) {
            warn!(error = %e, "cannot write the run store");
            self.store_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(e);
        }
    }
}

struct Outcome {
    status: TaskStatus,
    output: Option<TaskOutput>,
}

/// Cancels `cancel` when a cancel request for the run appears in the run store.
async fn watch_cancel_request(store: RunStore, run_id: String, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        if store.cancel_requested(&run_id) {
            info!("cancel requested");
            cancel.cancel();
            return;
        }
    }
}

/// Runs the tasks of the run to the end, in dependency order, and records the run's status.
async fn run_tasks(
    shared: &Arc<Shared>,
    options: &RunOptions,
    cancel: &CancellationToken,
    run_cancel: &CancellationToken,
    resumed: bool,
) -> Result<(), EngineError> {
    let tasks = &shared.pipeline.tasks;
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = tasks
        .iter()
        .map(|t| {
            t.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }

    let mut status = vec![TaskStatus::Pending; tasks.len()];
    let mut outputs: Vec<Option<TaskOutput>> = vec![None; tasks.len()];
    if resumed {
        shared.record(Event::RunResumed { at: Utc::now() });
        let previous: Vec<_> = {
            let handle = shared.lock_handle();
            tasks
                .iter()
                .map(|t| {
                    handle
                        .record()
                        .tasks
                        .get(&t.id)
                        .map(|r| (r.status, r.output.clone()))
                })
                .collect()
        };
        for (i, prev) in previous.into_iter().enumerate() {
            match prev {
                Some((s, out)) if s.is_success() => {
                    status[i] = s;
                    outputs[i] = out;
                }
                Some((TaskStatus::Pending, _)) => {}
                _ => shared.record(Event::TaskReset {
                    task: tasks[i].id.clone(),
                }),
            }
        }
        info!(
            kept = status.iter().filter(|s| s.is_success()).count(),
            "resuming run"
        );
    } else {
        info!(tasks = tasks.len(), "run started");
    }

    let mut waiting: Vec<usize> = deps
        .iter()
        .map(|ds| ds.iter().filter(|&&d| !status[d].is_success()).count())
        .collect();
    let mut ready: VecDeque<usize> = (0..tasks.len())
        .filter(|&i| status[i] == TaskStatus::Pending && waiting[i] == 0)
        .collect();
    let mut join: JoinSet<(usize, Outcome)> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, usize> = HashMap::new();
    let max_parallel = options.max_parallel.max(1);
    let mut failed = false;

    loop {
        while running.len() < max_parallel && !run_cancel.is_cancelled() {
            let Some(i) = ready.pop_front() else { break };
            status[i] = TaskStatus::Running;
            let upstream: BTreeMap<String, TaskOutput> = deps[i]
                .iter()
                .filter_map(|&d| outputs[d].clone().map(|o| (tasks[d].id.clone(), o)))
                .collect();
            let handle = join.spawn(run_task(
                shared.clone(),
                i,
                Arc::new(upstream),
                run_cancel.clone(),
            ));
            running.insert(handle.id(), i);
        }
        let Some(joined) = join.join_next_with_id().await else {
            break;
        };
        let (i, outcome) = match joined {
            Ok((_, result)) => result,
            Err(e) => {
                let Some(i) = running.get(&e.id()).copied() else {
                    continue;
                };
                let error = TaskError::fatal(format!("task panicked: {e}"));
                shared.record(finished(
                    &tasks[i].id,
                    TaskStatus::Failed,
                    None,
                    Some(error),
                ));
                (
                    i,
                    Outcome {
                        status: TaskStatus::Failed,
                        output: None,
                    },
                )
            }
        };
        running.retain(|_, &mut v| v != i);
        status[i] = outcome.status;
        outputs[i] = outcome.output;
        if outcome.status.is_success() {
            for &d in &dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 && status[d] == TaskStatus::Pending {
                    ready.push_back(d);
                }
            }
        } else if outcome.status == TaskStatus::Failed {
            failed = true;
            if options.fail_fast {
                info!(task = %tasks[i].id, "fail-fast: cancelling the run");
                run_cancel.cancel();
            }
            mark_upstream_failed(shared, i, &dependents, &mut status);
        }
        // A cancelled task leaves its dependents pending; they are recorded as cancelled below.
    }

    for (i, s) in status.iter_mut().enumerate() {
        if *s == TaskStatus::Pending {
            *s = TaskStatus::Cancelled;
            shared.record(finished(
                &tasks[i].id,
                TaskStatus::Cancelled,
                None,
                Some(TaskError::cancelled()),
            ));
        }
    }
    let run_status = if cancel.is_cancelled() {
        RunStatus::Cancelled
    } else if failed || status.iter().any(|s| !s.is_success()) {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    info!(status = run_status.as_str(), "run finished");
    shared.record(Event::RunFinished {
        status: run_status,
        at: Utc::now(),
    });
    Ok(())
}

fn mark_upstream_failed(
    shared: &Shared,
    failed: usize,
    dependents: &[Vec<usize>],
    status: &mut [TaskStatus],
) {
    let tasks = &shared.pipeline.tasks;
    let mut queue: VecDeque<usize> = dependents[failed].iter().copied().collect();
    while let Some(d) = queue.pop_front() {
        if status[d] != TaskStatus::Pending {
            continue;
        }
        status[d] = TaskStatus::UpstreamFailed;
        let error = TaskError::fatal(format!(
            "upstream task `{}` did not succeed",
            tasks[failed].id
        ));
        shared.record(finished(
            &tasks[d].id,
            TaskStatus::UpstreamFailed,
            None,
            Some(error),
        ));
        queue.extend(dependents[d].iter().copied());
    }
}

fn finished(
    task: &str,
    status: TaskStatus,
    output: Option<TaskOutput>,
    error: Option<TaskError>,
) -> Event {
    Event::TaskFinished {
        task: task.to_string(),
        status,
        at: Utc::now(),
        output,
        error,
    }
}

/// Fills an empty fingerprint with a hash of the output values.
fn with_fingerprint(mut output: TaskOutput) -> TaskOutput {
    if output.fingerprint.is_empty() {
        let json = serde_json::Value::Object(output.values.clone()).to_string();
        output.fingerprint = blake3::hash(json.as_bytes()).to_hex().to_string();
    }
    output
}

async fn run_task(
    shared: Arc<Shared>,
    i: usize,
    upstream: Arc<BTreeMap<String, TaskOutput>>,
    cancel: CancellationToken,
) -> (usize, Outcome) {
    let spec = &shared.pipeline.tasks[i];
    let span =
        info_span!(parent: &shared.run_span, "task", task = %spec.id, r#type = %spec.task_type);
    let outcome = run_task_inner(&shared, i, upstream, cancel)
        .instrument(span)
        .await;
    (i, outcome)
}

async fn run_task_inner(
    shared: &Shared,
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
    let key = if spec.cache.enabled && shared.use_cache {
        let paths = task.cache_inputs(&spec.with);
        if paths.is_empty() {
            Some(cache_key(
                task.type_name(),
                task.version(),
                &spec.with,
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
                    &spec.with,
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

    let policy = &spec.retries;
    let mut last_error = TaskError::fatal("no attempt was made");
    for number in 1..=policy.max_attempts {
        if cancel.is_cancelled() {
            last_error = TaskError::cancelled();
            break;
        }
        shared.record(Event::AttemptStarted {
            task: spec.id.clone(),
            number,
            at: Utc::now(),
        });
        let attempt_cancel = cancel.child_token();
        let attempt_span = info_span!("attempt", number);
        let ctx = TaskContext {
            run_id: shared.run_id.clone(),
            task_id: spec.id.clone(),
            attempt: number,
            pipeline: shared.info.clone(),
            upstream: upstream.clone(),
            cancel: attempt_cancel.clone(),
            span: attempt_span.clone(),
            artifacts_dir: shared.run_dir.join("artifacts").join(&spec.id),
        };
        info!(attempt = number, "started");
        let result = run_attempt(&*task, &ctx, &spec.with, spec.timeout, &cancel)
            .instrument(attempt_span)
            .await;
        attempt_cancel.cancel();
        let error = result.as_ref().err().cloned();
        shared.record(Event::AttemptFinished {
            task: spec.id.clone(),
            number,
            at: Utc::now(),
            error: error.clone(),
        });
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
                    };
                    if let Err(e) = shared.cache.put(&entry) {
                        warn!(error = %e, "cannot write the cache entry");
                    }
                }
                info!(attempt = number, "succeeded");
                shared.record(finished(
                    &spec.id,
                    TaskStatus::Succeeded,
                    Some(output.clone()),
                    None,
                ));
                return Outcome {
                    status: TaskStatus::Succeeded,
                    output: Some(output),
                };
            }
            Err(e) => {
                let retry =
                    e.is_retryable() && number < policy.max_attempts && !cancel.is_cancelled();
                last_error = e;
                if !retry {
                    break;
                }
                let wait = retry::delay(policy, number + 1);
                warn!(attempt = number, error = %last_error.message, retry_in = %format_duration(round_ms(wait)), "attempt failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.cancelled() => {
                        last_error = TaskError::cancelled();
                        break;
                    }
                }
            }
        }
    }
    let status = if last_error.kind == ErrorKind::Cancelled {
        TaskStatus::Cancelled
    } else {
        TaskStatus::Failed
    };
    warn!(error = %last_error.message, kind = ?last_error.kind, "{}", status.as_str());
    shared.record(finished(&spec.id, status, None, Some(last_error)));
    Outcome {
        status,
        output: None,
    }
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
