//! A run: the [`Engine`] runs a pipeline's tasks as soon as their dependencies succeed, up to
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
//!
//! `queue` holds the ready queue (which task runs when), `task` one task's run (cache lookup,
//! then its attempts or, with `shards: N`, its shards' attempts in `shards`), `attempt` the
//! attempts of a task or shard (retries, timeouts), `remote` an attempt handed to an
//! [`crate::executor::Executor`]; this module starts and resumes runs and tells the run
//! observers. Each depends only on the ones after it: `queue → task → shards → attempt →
//! remote`.

mod attempt;
mod queue;
mod remote;
mod shards;
mod task;
mod trace_context;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span, info, info_span, warn};

use crate::cache::Cache;
use crate::error::EngineError;
use crate::listener::RunListener;
use crate::logging;
use crate::observer::{RunObserver, pending_tag};
use crate::registry::Registry;
use crate::spec::Pipeline;
use crate::store::{Event, RunHandle, RunRecord, RunStatus, RunStore, TaskStatus};
use crate::task::{PipelineInfo, RunLinks, RunView, TaskError, TaskOutput, TaskState};
use queue::run_tasks;

/// The tracing target of the warnings about failed attempts and tasks (a console that prints
/// its own line for each can leave them out of stderr).
pub const OUTCOME_TARGET: &str = "tweetflow_engine::run::outcome";

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
    /// Resume only a run whose engine died (`interrupted`): checked once its lock is taken,
    /// so two processes never resume the same interruption twice.
    pub only_interrupted: bool,
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
            only_interrupted: false,
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
    listeners: Vec<Arc<dyn RunListener>>,
    exec_command: Option<Vec<String>>,
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
            listeners: Vec::new(),
            exec_command: None,
        }
    }

    /// Adds a listener told about every recorded event of every run.
    pub fn with_listener(mut self, listener: Arc<dyn RunListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// The command line of `tweetflow task exec` (program and leading arguments), for shards
    /// of `local` tasks (one child process each) and for executors. Without it, the shards of
    /// a `local` task run in the engine's process.
    pub fn with_exec_command(mut self, command: Vec<String>) -> Self {
        self.exec_command = Some(command);
        self
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
    /// A run whose engine died is recorded as interrupted first, and the processes that
    /// engine left are stopped (see [`crate::orphans`]) before any task starts again.
    pub async fn resume(
        &self,
        run_id: &str,
        options: RunOptions,
    ) -> Result<RunRecord, EngineError> {
        let (mut handle, pipeline) = self.store.reopen(run_id, &crate::secrets::process_env)?;
        // The lock is ours: a record that says running is a dead engine's.
        let interrupted = matches!(
            handle.record().status,
            RunStatus::Running | RunStatus::Interrupted
        );
        if options.only_interrupted && !interrupted {
            return Err(EngineError::NotInterrupted {
                run_id: run_id.into(),
                status: handle.record().status.as_str().into(),
            });
        }
        if interrupted {
            crate::store::liveness::note_interrupted(&mut handle)?;
            crate::orphans::stop_orphans(run_id);
        }
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
        let run_span = info_span!("run", run_id = %run_id, pipeline = %pipeline.name,
            resumed = tracing::field::Empty, status = tracing::field::Empty,
            otel.status_code = tracing::field::Empty);
        trace_context::mark_run(&run_span, &run_dir, resumed);
        let info = Arc::new(PipelineInfo {
            name: pipeline.name.clone(),
            spec_hash: pipeline.spec_hash.clone(),
            params: pipeline.params.clone(),
            sections: pipeline.sections.clone(),
            expectations: pipeline
                .tasks
                .iter()
                .filter(|t| !t.expect.is_empty())
                .map(|t| (t.id.clone(), t.expect.clone()))
                .collect(),
        });
        // `cancel` stops the run as a whole (signal, `tweetflow runs cancel`, the cron scheduler);
        // `run_cancel` also fires on --fail-fast.
        let cancel = options.cancel.child_token();
        let run_cancel = cancel.child_token();
        self.store.clear_cancel_request(&run_id);
        let _active = self.store.mark_active(&pipeline.name, &run_id)?;
        let _counted_active = crate::metrics::global().run_active(&pipeline.name);
        let watcher = tokio::spawn(watch_cancel_request(
            self.store.clone(),
            run_id.clone(),
            cancel.clone(),
        ));
        let observers: Vec<Arc<dyn RunObserver>> = self
            .observers
            .iter()
            .filter(|o| o.wants(&pipeline))
            .cloned()
            .collect();
        let start_record = handle.record().clone();
        let mut links = RunLinks::new();
        for o in &observers {
            // A failure here is retried by `run_finished`, whose outcome decides `.pending`.
            match o
                .run_started(&run_dir, &pipeline, &start_record)
                .instrument(run_span.clone())
                .await
            {
                Ok(linked) => links.extend(linked),
                Err(e) => {
                    warn!(observer = o.name(), error = %e, retryable = e.retryable, "observer could not record the start");
                }
            }
        }
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
            listeners: self.listeners.clone(),
            exec_command: self.exec_command.clone(),
            store_root: self.store.root().to_path_buf(),
            links: Arc::new(links),
            observers: observers.clone(),
        });
        let result = run_tasks(&shared, &options, &cancel, &run_cancel, resumed)
            .instrument(run_span.clone())
            .await;
        watcher.abort();
        let end_record = shared.lock_handle().record().clone();
        trace_context::end_run(&run_span, end_record.status);
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
        // What callers print (`run --json`, summaries) shows no secret either.
        Ok(crate::secrets::masked(handle.record().clone()))
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
    listeners: Vec<Arc<dyn RunListener>>,
    exec_command: Option<Vec<String>>,
    /// The run store's root, as tasks see it through [`RunView`].
    store_root: PathBuf,
    /// What the observers attached to the run when it started.
    links: Arc<RunLinks>,
    /// The observers that want this run.
    observers: Vec<Arc<dyn RunObserver>>,
}

/// Tasks see their run through the engine's live record.
impl RunView for Shared {
    fn store_root(&self) -> Option<PathBuf> {
        Some(self.store_root.clone())
    }

    fn tasks(&self) -> Vec<TaskState> {
        self.lock_handle().record().task_states()
    }
}

impl Shared {
    /// Tells the observers that an attempt failed and will be retried.
    fn attempt_retrying(&self, notice: &crate::observer::RetryNotice<'_>) {
        for o in &self.observers {
            o.attempt_retrying(&self.pipeline, notice);
        }
    }

    fn lock_handle(&self) -> MutexGuard<'_, RunHandle> {
        self.handle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an event; a run-store failure is kept and reported at the end of the run.
    fn record(&self, event: Event) {
        if !self.listeners.is_empty() {
            // Listeners print: they see what the run store holds, secrets masked.
            let shown = crate::secrets::masked(event.clone());
            for listener in &self.listeners {
                listener.event(&self.run_id, &shown);
            }
        }
        let finished = match &event {
            Event::TaskFinished { task, .. } => Some(Some(task.clone())),
            Event::RunFinished { .. } => Some(None),
            _ => None,
        };
        let mut handle = self.lock_handle();
        let appended = handle.append(event);
        if appended.is_ok() {
            // The metrics count from the record, as a daemon seeded from the store does.
            match finished {
                Some(Some(task)) => crate::metrics::global().task_finished(handle.record(), &task),
                Some(None) => crate::metrics::global().run_finished(handle.record()),
                None => {}
            }
        }
        drop(handle);
        if let Err(e) = appended {
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
