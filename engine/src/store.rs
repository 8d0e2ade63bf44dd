//! The durable run store.
//!
//! Layout under the runs directory (default `runs/`):
//!
//! ```text
//! runs/<run_id>/run.json       compacted snapshot of the run record (written atomically)
//! runs/<run_id>/events.jsonl   append-only log of every state change since the run began
//! runs/<run_id>/log.jsonl      the run's tracing events
//! runs/<run_id>/pipeline.yaml  the pipeline file as it was run
//! runs/<run_id>/plan.json      the validated pipeline, used by `--resume`
//! runs/<run_id>/lock           held (flock) by the process executing the run
//! runs/<run_id>/artifacts/     task artifacts
//! runs/.cache/                 cache entries (see `crate::cache`)
//! ```
//!
//! Every state change is one line appended to `events.jsonl` and flushed to the OS before the
//! engine goes on, so a `kill -9` loses nothing already reported. Rewriting the whole record
//! at every change would make a run quadratic in its number of tasks, so `run.json` is a
//! snapshot compacted at most every [`SNAPSHOT_INTERVAL`] and at the end of the run; readers
//! load the snapshot and replay the events after its sequence number (a torn last line from a
//! crash is ignored). Both files are always readable.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::EngineError;
use crate::spec::Pipeline;
use crate::task::{TaskError, TaskOutput};

/// The shortest time between two snapshots of a running run.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);

/// The state of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Tasks are executing (or the process died while they were).
    Running,
    /// Every task succeeded.
    Succeeded,
    /// At least one task failed.
    Failed,
    /// Stopped by a signal or `--fail-fast`.
    Cancelled,
}

/// The state of a task within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for its dependencies or a free slot.
    Pending,
    /// An attempt is executing, or a retry is waiting.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Skipped: a cached result was reused.
    Cached,
    /// Every attempt failed, or a non-retryable error stopped it.
    Failed,
    /// Not run because a dependency failed.
    UpstreamFailed,
    /// Not run, or stopped, because the run was cancelled.
    Cancelled,
}

impl TaskStatus {
    /// Whether the task produced a usable output (ran or came from the cache).
    pub fn is_success(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Cached)
    }

    /// The status as written in tables (`upstream_failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Cached => "cached",
            TaskStatus::Failed => "failed",
            TaskStatus::UpstreamFailed => "upstream_failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

impl RunStatus {
    /// The status as written in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// One attempt of a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based attempt number.
    pub number: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (`None` while running, or if the process died).
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<TaskError>,
}

/// The record of one task in a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task's type.
    pub task_type: String,
    /// Its state.
    pub status: TaskStatus,
    /// Every attempt, in order.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// The cache key, when caching is on for the task.
    pub cache_key: Option<String>,
    /// Outputs (of the run, or of the reused cache entry).
    pub output: Option<TaskOutput>,
    /// The final error.
    pub error: Option<TaskError>,
    /// When the task started (first attempt or cache lookup).
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached its final state.
    pub ended_at: Option<DateTime<Utc>>,
}

impl TaskRecord {
    fn new(task_type: &str) -> Self {
        TaskRecord {
            task_type: task_type.to_string(),
            status: TaskStatus::Pending,
            attempts: Vec::new(),
            cache_key: None,
            output: None,
            error: None,
            started_at: None,
            ended_at: None,
        }
    }

    /// Wall time from start to end, if both are known.
    pub fn duration(&self) -> Option<Duration> {
        Some(
            (self.ended_at? - self.started_at?)
                .to_std()
                .unwrap_or_default(),
        )
    }
}

/// The record of a run: what `runs/<id>/run.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The pipeline file as given.
    pub pipeline_file: String,
    /// Hash of the pipeline file.
    pub spec_hash: String,
    /// Resolved params.
    pub params: BTreeMap<String, Json>,
    /// The run's state.
    pub status: RunStatus,
    /// When the run was created.
    pub created_at: DateTime<Utc>,
    /// When it last ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// When it was resumed, oldest first.
    #[serde(default)]
    pub resumed_at: Vec<DateTime<Utc>>,
    /// Free-form labels (e.g. the scheduled time of a cron run).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Task ids in pipeline order.
    pub task_order: Vec<String>,
    /// Per task.
    pub tasks: BTreeMap<String, TaskRecord>,
    /// Sequence number of the last event folded into this record.
    pub last_seq: u64,
}

impl RunRecord {
    /// A new record for `pipeline` with every task pending.
    pub fn new(run_id: String, pipeline: &Pipeline, pipeline_file: &str) -> Self {
        RunRecord {
            run_id,
            pipeline: pipeline.name.clone(),
            pipeline_file: pipeline_file.to_string(),
            spec_hash: pipeline.spec_hash.clone(),
            params: pipeline.params.clone(),
            status: RunStatus::Running,
            created_at: Utc::now(),
            ended_at: None,
            resumed_at: Vec::new(),
            tags: BTreeMap::new(),
            task_order: pipeline.tasks.iter().map(|t| t.id.clone()).collect(),
            tasks: pipeline
                .tasks
                .iter()
                .map(|t| (t.id.clone(), TaskRecord::new(&t.task_type)))
                .collect(),
            last_seq: 0,
        }
    }

    /// Tasks in pipeline order.
    pub fn ordered_tasks(&self) -> impl Iterator<Item = (&str, &TaskRecord)> {
        self.task_order
            .iter()
            .filter_map(|id| self.tasks.get(id).map(|t| (id.as_str(), t)))
    }

    /// Wall time of the run (to now if still running).
    pub fn duration(&self) -> Duration {
        let start = self.created_at;
        let end = self.ended_at.unwrap_or_else(Utc::now);
        (end - start).to_std().unwrap_or_default()
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::RunResumed { at } => {
                self.status = RunStatus::Running;
                self.ended_at = None;
                self.resumed_at.push(*at);
            }
            Event::TaskReset { task } => {
                if let Some(t) = self.tasks.get_mut(task) {
                    let task_type = std::mem::take(&mut t.task_type);
                    *t = TaskRecord::new(&task_type);
                }
            }
            Event::TaskStarted {
                task,
                at,
                cache_key,
            } => {
                if let Some(t) = self.tasks.get_mut(task) {
                    t.status = TaskStatus::Running;
                    t.started_at = Some(*at);
                    t.cache_key = cache_key.clone();
                }
            }
            Event::AttemptStarted { task, number, at } => {
                if let Some(t) = self.tasks.get_mut(task) {
                    t.attempts.push(Attempt {
                        number: *number,
                        started_at: *at,
                        ended_at: None,
                        error: None,
                    });
                }
            }
            Event::AttemptFinished {
                task,
                number,
                at,
                error,
            } => {
                if let Some(a) = self
                    .tasks
                    .get_mut(task)
                    .and_then(|t| t.attempts.iter_mut().rev().find(|a| a.number == *number))
                {
                    a.ended_at = Some(*at);
                    a.error = error.clone();
                }
            }
            Event::TaskFinished {
                task,
                status,
                at,
                output,
                error,
            } => {
                if let Some(t) = self.tasks.get_mut(task) {
                    t.status = *status;
                    t.ended_at = Some(*at);
                    t.started_at.get_or_insert(*at);
                    t.output = output.clone();
                    t.error = error.clone();
                }
            }
            Event::RunFinished { status, at } => {
                self.status = *status;
                self.ended_at = Some(*at);
            }
        }
    }
}

/// A state change of a run, as appended to `events.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run was resumed.
    RunResumed {
        /// When.
        at: DateTime<Utc>,
    },
    /// A task that did not succeed is set back to pending for a resume.
    TaskReset {
        /// The task.
        task: String,
    },
    /// A task left pending.
    TaskStarted {
        /// The task.
        task: String,
        /// When.
        at: DateTime<Utc>,
        /// Its cache key, when caching is on.
        cache_key: Option<String>,
    },
    /// An attempt began.
    AttemptStarted {
        /// The task.
        task: String,
        /// 1-based attempt number.
        number: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// An attempt ended.
    AttemptFinished {
        /// The task.
        task: String,
        /// 1-based attempt number.
        number: u32,
        /// When.
        at: DateTime<Utc>,
        /// Why it failed.
        error: Option<TaskError>,
    },
    /// A task reached a final state.
    TaskFinished {
        /// The task.
        task: String,
        /// The final state.
        status: TaskStatus,
        /// When.
        at: DateTime<Utc>,
        /// Its outputs.
        output: Option<TaskOutput>,
        /// The error that ended it.
        error: Option<TaskError>,
    },
    /// The run reached a final state.
    RunFinished {
        /// The final state.
        status: RunStatus,
        /// When.
        at: DateTime<Utc>,
    },
}

#[derive(Serialize)]
struct EventLineRef<'a> {
    seq: u64,
    #[serde(flatten)]
    event: &'a Event,
}

#[derive(Deserialize)]
struct EventLine {
    seq: u64,
    #[serde(flatten)]
    event: Event,
}

/// A run store rooted at a directory.
#[derive(Clone, Debug)]
pub struct RunStore {
    root: PathBuf,
}

impl RunStore {
    /// A run store at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunStore { root: root.into() }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of run `run_id`.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join(run_id)
    }

    /// A fresh run id: UTC time (sortable) and a random suffix.
    pub fn new_run_id() -> String {
        format!(
            "{}-{:06x}",
            Utc::now()
                .format("%Y%m%dT%H%M%S%.3fZ")
                .to_string()
                .replace('.', ""),
            rand::random::<u32>() & 0xff_ffff
        )
    }

    /// Creates the directory of a new run, takes its lock and writes its first snapshot,
    /// the pipeline file and the plan.
    pub fn create(
        &self,
        record: RunRecord,
        pipeline: &Pipeline,
        pipeline_text: &str,
    ) -> Result<RunHandle, EngineError> {
        let dir = self.run_dir(&record.run_id);
        fs::create_dir_all(&dir).map_err(EngineError::io("create run directory", &dir))?;
        let lock = take_lock(&dir, &record.run_id)?;
        write_atomic(&dir.join("pipeline.yaml"), pipeline_text.as_bytes())?;
        let plan =
            serde_json::to_vec_pretty(pipeline).map_err(|e| corrupt(&dir.join("plan.json"), e))?;
        write_atomic(&dir.join("plan.json"), &plan)?;
        RunHandle::open(dir, record, lock)
    }

    /// Takes the lock of an existing run and loads it, for `--resume`.
    pub fn reopen(&self, run_id: &str) -> Result<(RunHandle, Pipeline), EngineError> {
        let dir = self.existing_dir(run_id)?;
        let lock = take_lock(&dir, run_id)?;
        let record = load_record(&dir)?;
        let plan_path = dir.join("plan.json");
        let plan = fs::read(&plan_path).map_err(EngineError::io("read", &plan_path))?;
        let pipeline: Pipeline =
            serde_json::from_slice(&plan).map_err(|e| corrupt(&plan_path, e))?;
        Ok((RunHandle::open(dir, record, lock)?, pipeline))
    }

    /// Loads the record of run `run_id` (snapshot plus later events).
    pub fn load(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        load_record(&self.existing_dir(run_id)?)
    }

    /// Every run, newest first. Unreadable runs are returned as errors in place.
    pub fn list(&self) -> Result<Vec<Result<RunRecord, EngineError>>, EngineError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EngineError::io("list", &self.root)(e)),
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("run.json").is_file())
            .collect();
        dirs.sort();
        dirs.reverse();
        Ok(dirs.iter().map(|d| load_record(d)).collect())
    }

    /// Marks run `run_id` of `pipeline` as active until the returned guard is dropped, so
    /// [`RunStore::active_runs`] (schedulers, overlap policies) can see it from any process.
    pub fn mark_active(&self, pipeline: &str, run_id: &str) -> Result<ActiveMarker, EngineError> {
        let dir = self.root.join(".active").join(pipeline);
        fs::create_dir_all(&dir).map_err(EngineError::io("create", &dir))?;
        let path = dir.join(run_id);
        fs::write(&path, std::process::id().to_string())
            .map_err(EngineError::io("write", &path))?;
        Ok(ActiveMarker { path })
    }

    /// Runs of `pipeline` being executed right now, by any process. Markers left by a
    /// process that died are removed.
    pub fn active_runs(&self, pipeline: &str) -> Vec<String> {
        let dir = self.root.join(".active").join(pipeline);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut active = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let run_id = entry.file_name().to_string_lossy().to_string();
            let lock = self.run_dir(&run_id).join("lock");
            let held = match OpenOptions::new().write(true).open(&lock) {
                Ok(f) => matches!(f.try_lock(), Err(fs::TryLockError::WouldBlock)),
                Err(_) => false,
            };
            if held {
                active.push(run_id);
            } else {
                let _ = fs::remove_file(entry.path());
            }
        }
        active.sort();
        active
    }

    /// Asks the process executing run `run_id` to cancel it (it checks a few times a second).
    pub fn request_cancel(&self, run_id: &str) -> Result<(), EngineError> {
        let dir = self.existing_dir(run_id)?;
        let path = dir.join("cancel.request");
        fs::write(&path, Utc::now().to_rfc3339()).map_err(EngineError::io("write", &path))
    }

    /// Forgets an earlier cancel request (a resumed run starts clean).
    pub fn clear_cancel_request(&self, run_id: &str) {
        let _ = fs::remove_file(self.run_dir(run_id).join("cancel.request"));
    }

    /// Whether a cancel request is pending for run `run_id`.
    pub fn cancel_requested(&self, run_id: &str) -> bool {
        self.run_dir(run_id).join("cancel.request").exists()
    }

    fn existing_dir(&self, run_id: &str) -> Result<PathBuf, EngineError> {
        let dir = self.run_dir(run_id);
        if run_id.is_empty() || run_id.contains('/') || !dir.join("run.json").is_file() {
            return Err(EngineError::RunNotFound {
                run_id: run_id.to_string(),
                runs_dir: self.root.clone(),
            });
        }
        Ok(dir)
    }
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn take_lock(dir: &Path, run_id: &str) -> Result<File, EngineError> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(EngineError::io("open lock", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(EngineError::Locked {
            run_id: run_id.to_string(),
            lock: path,
        }),
        Err(fs::TryLockError::Error(e)) => Err(EngineError::io("lock", &path)(e)),
    }
}

/// Removes a run's active marker when dropped.
pub struct ActiveMarker {
    path: PathBuf,
}

impl Drop for ActiveMarker {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = File::create(&tmp).map_err(EngineError::io("create", &tmp))?;
    f.write_all(bytes).map_err(EngineError::io("write", &tmp))?;
    f.sync_data().map_err(EngineError::io("sync", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(EngineError::io("rename into", path))
}

fn load_record(dir: &Path) -> Result<RunRecord, EngineError> {
    let snapshot = dir.join("run.json");
    let bytes = fs::read(&snapshot).map_err(EngineError::io("read", &snapshot))?;
    let mut record: RunRecord =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(&snapshot, e))?;
    let events = dir.join("events.jsonl");
    let file = match File::open(&events) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(record),
        Err(e) => return Err(EngineError::io("read", &events)(e)),
    };
    for line in BufReader::new(file).lines() {
        let line = line.map_err(EngineError::io("read", &events))?;
        // A line torn by a crash does not parse: it and anything after it were never
        // acknowledged, so they are skipped.
        let Ok(EventLine { seq, event }) = serde_json::from_str::<EventLine>(&line) else {
            break;
        };
        if seq > record.last_seq {
            record.apply(&event);
            record.last_seq = seq;
        }
    }
    Ok(record)
}

/// An open run: its record in memory, its event log and its lock.
pub struct RunHandle {
    dir: PathBuf,
    record: RunRecord,
    events: File,
    last_snapshot: Instant,
    _lock: File,
}

impl RunHandle {
    fn open(dir: PathBuf, record: RunRecord, lock: File) -> Result<Self, EngineError> {
        let path = dir.join("events.jsonl");
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(EngineError::io("open", &path))?;
        let mut handle = RunHandle {
            dir,
            record,
            events,
            last_snapshot: Instant::now(),
            _lock: lock,
        };
        handle.snapshot()?;
        Ok(handle)
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record as of the last event.
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Mutable access to the record's labels (written with the next snapshot).
    pub fn tags_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.record.tags
    }

    /// Applies `event`, appends it to the event log (flushed to the OS before returning) and
    /// compacts the snapshot when it is due.
    pub fn append(&mut self, event: Event) -> Result<(), EngineError> {
        let seq = self.record.last_seq + 1;
        let mut line = serde_json::to_vec(&EventLineRef { seq, event: &event })
            .map_err(|e| corrupt(&self.dir.join("events.jsonl"), e))?;
        line.push(b'\n');
        self.events
            .write_all(&line)
            .map_err(EngineError::io("append to", self.dir.join("events.jsonl")))?;
        self.record.apply(&event);
        self.record.last_seq = seq;
        if self.last_snapshot.elapsed() >= SNAPSHOT_INTERVAL {
            self.snapshot()?;
        }
        Ok(())
    }

    /// Writes `run.json` atomically from the in-memory record.
    pub fn snapshot(&mut self) -> Result<(), EngineError> {
        let path = self.dir.join("run.json");
        let bytes = serde_json::to_vec_pretty(&self.record).map_err(|e| corrupt(&path, e))?;
        write_atomic(&path, &bytes)?;
        self.last_snapshot = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskSpec;
    use crate::spec::{CachePolicy, RetryPolicy};

    fn pipeline(n: usize) -> Pipeline {
        Pipeline {
            name: "p".into(),
            description: None,
            params: BTreeMap::new(),
            tasks: (0..n)
                .map(|i| TaskSpec {
                    id: format!("t{i}"),
                    task_type: "noop".into(),
                    with: serde_json::json!({}),
                    depends_on: vec![],
                    retries: RetryPolicy::default(),
                    timeout: None,
                    cache: CachePolicy::default(),
                    description: None,
                })
                .collect(),
            spec_hash: "h".into(),
            schedule: None,
            sections: BTreeMap::new(),
        }
    }

    fn done(task: &str) -> Event {
        Event::TaskFinished {
            task: task.into(),
            status: TaskStatus::Succeeded,
            at: Utc::now(),
            output: None,
            error: None,
        }
    }

    #[test]
    fn events_after_the_snapshot_are_replayed_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let p = pipeline(3);
        let mut handle = store
            .create(RunRecord::new("r1".into(), &p, "p.yaml"), &p, "name: p")
            .unwrap();
        handle.append(done("t0")).unwrap();
        handle.append(done("t1")).unwrap();
        drop(handle);
        // A crash in the middle of writing an event.
        let mut events = OpenOptions::new()
            .append(true)
            .open(dir.path().join("r1/events.jsonl"))
            .unwrap();
        events
            .write_all(br#"{"seq":3,"event":"task_finished","task":"t2","sta"#)
            .unwrap();
        let record = store.load("r1").unwrap();
        assert_eq!(record.tasks["t0"].status, TaskStatus::Succeeded);
        assert_eq!(record.tasks["t1"].status, TaskStatus::Succeeded);
        assert_eq!(record.tasks["t2"].status, TaskStatus::Pending);
        assert_eq!(record.last_seq, 2);
    }

    #[test]
    fn a_run_cannot_be_opened_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let p = pipeline(1);
        let handle = store
            .create(RunRecord::new("r1".into(), &p, "p.yaml"), &p, "")
            .unwrap();
        assert!(matches!(
            store.reopen("r1"),
            Err(EngineError::Locked { .. })
        ));
        drop(handle);
        let (reopened, plan) = store.reopen("r1").unwrap();
        assert_eq!(plan.tasks.len(), 1);
        assert_eq!(reopened.record().run_id, "r1");
        assert!(matches!(
            store.load("nope"),
            Err(EngineError::RunNotFound { .. })
        ));
    }

    #[test]
    fn snapshot_plus_events_equal_the_in_memory_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let p = pipeline(50);
        let mut handle = store
            .create(RunRecord::new("r1".into(), &p, "p.yaml"), &p, "")
            .unwrap();
        for i in 0..50 {
            handle
                .append(Event::AttemptStarted {
                    task: format!("t{i}"),
                    number: 1,
                    at: Utc::now(),
                })
                .unwrap();
            if i == 25 {
                handle.snapshot().unwrap();
            }
            handle.append(done(&format!("t{i}"))).unwrap();
        }
        handle
            .append(Event::RunFinished {
                status: RunStatus::Succeeded,
                at: Utc::now(),
            })
            .unwrap();
        let in_memory = handle.record().clone();
        assert_eq!(store.load("r1").unwrap(), in_memory);
    }
}
