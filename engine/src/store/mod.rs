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
//! runs/.trash/                 runs being removed by `prune`
//! ```
//!
//! Every state change is one line appended to `events.jsonl` and flushed to the OS before the
//! engine goes on, so a `kill -9` loses nothing already reported. Rewriting the whole record
//! at every change would make a run quadratic in its number of tasks, so `run.json` is a
//! snapshot compacted at most every [`SNAPSHOT_INTERVAL`] and at the end of the run; readers
//! load the snapshot and replay the events after its sequence number (a torn last line from a
//! crash is ignored). Both files are always readable.
//!
//! `record` holds the run record and its events, `log` the event log and snapshots of an
//! open run, `prune` the retention policies; this module places runs on disk, locks them and
//! lists them.

pub(crate) mod liveness;
mod log;
mod prune;
mod prune_outputs;
mod record;
mod schedule;
mod trigger_state;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use crate::error::EngineError;
use crate::spec::{Pipeline, PlanError};

pub use crate::atomic_file::write_atomic;
use liveness::{lock_held, take_lock};
pub use log::RunHandle;
use log::load_record;
pub use prune::{
    EntryRemoval, KeepReason, PruneOptions, PruneReport, PrunedEntry, PrunedRun, RetentionEnvError,
    default_policy,
};
pub use record::{Attempt, Event, RunRecord, RunStatus, TaskRecord, TaskStatus};
pub use schedule::{HISTORY, ScheduleState, TickAction, TickRecord};
pub use trigger_state::{TableCursor, TriggerFire, TriggerState};

/// The shortest time between two snapshots of a running run.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);

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
        let plan = pipeline
            .to_plan()
            .and_then(|p| serde_json::to_vec_pretty(&p))
            .map_err(|e| corrupt(&dir.join("plan.json"), e))?;
        write_atomic(&dir.join("plan.json"), &plan)?;
        RunHandle::open(dir, record, lock)
    }

    /// Takes the lock of an existing run and loads its record as written (a dead engine's run
    /// still says `running`), without its plan.
    pub fn lock_record(&self, run_id: &str) -> Result<RunHandle, EngineError> {
        let dir = self.existing_dir(run_id)?;
        let lock = take_lock(&dir, run_id)?;
        let record = load_record(&dir)?;
        RunHandle::open(dir, record, lock)
    }

    /// Takes the lock of an existing run and loads it, for `--resume`. The secrets of the
    /// plan are read from `env` again.
    pub fn reopen(
        &self,
        run_id: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(RunHandle, Pipeline), EngineError> {
        let dir = self.existing_dir(run_id)?;
        let lock = take_lock(&dir, run_id)?;
        let record = load_record(&dir)?;
        let plan_path = dir.join("plan.json");
        let plan = fs::read(&plan_path).map_err(EngineError::io("read", &plan_path))?;
        let plan: serde_json::Value =
            serde_json::from_slice(&plan).map_err(|e| corrupt(&plan_path, e))?;
        let pipeline = Pipeline::from_plan(plan, env).map_err(|e| match e {
            PlanError::MissingSecret(source) => EngineError::MissingSecret {
                run_id: run_id.to_string(),
                source,
            },
            PlanError::Decode(e) => corrupt(&plan_path, e),
        })?;
        Ok((RunHandle::open(dir, record, lock)?, pipeline))
    }

    /// Loads the record of run `run_id` (snapshot plus later events).
    /// A run whose engine died reads `interrupted` (see [`liveness`]).
    pub fn load(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        self.load_live(&self.existing_dir(run_id)?)
    }

    /// Every run, newest first. Unreadable runs are returned as errors in place.
    pub fn list(&self) -> Result<Vec<Result<RunRecord, EngineError>>, EngineError> {
        Ok(self
            .run_ids()?
            .iter()
            .map(|id| self.run_dir(id))
            .filter(|d| d.join("run.json").is_file())
            .map(|d| self.load_live(&d))
            .collect())
    }

    /// The ids of the runs, newest first, from the directory names alone (no run is read):
    /// run ids begin with their creation time, so their order is the order of creation.
    /// A page of a long listing reads only its own records with [`RunStore::load`].
    pub fn run_ids(&self) -> Result<Vec<String>, EngineError> {
        let mut ids = self.run_dir_names()?;
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// Whether the process executing run `run_id` is alive (it holds the run's lock).
    pub fn is_executing(&self, run_id: &str) -> bool {
        is_run_id(run_id) && lock_held(&self.run_dir(run_id).join("lock"))
    }

    /// The newest `limit` runs (all of them if `limit` is 0), newest first. Only the names of
    /// the run directories are listed and only the chosen runs' files are read, so the cost
    /// does not grow with the size of the store beyond one directory listing.
    pub fn list_newest(
        &self,
        limit: usize,
    ) -> Result<Vec<Result<RunRecord, EngineError>>, EngineError> {
        let names = self.run_dir_names()?;
        // Directories without a record (being created, or not runs) are skipped, so a few
        // more names than asked for are taken first; all of them only if that is not enough.
        let first = if limit == 0 {
            None
        } else {
            Some(limit * 2 + 16)
        };
        let total = names.len();
        let out = self.load_newest(names, first, limit);
        if limit != 0 && out.len() < limit && total > limit * 2 + 16 {
            return Ok(self.load_newest(self.run_dir_names()?, None, limit));
        }
        Ok(out)
    }

    fn load_newest(
        &self,
        mut names: Vec<String>,
        first: Option<usize>,
        limit: usize,
    ) -> Vec<Result<RunRecord, EngineError>> {
        if let Some(k) = first.filter(|&k| k < names.len()) {
            names.select_nth_unstable_by(k, |a, b| b.cmp(a));
            names.truncate(k);
        }
        names.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Vec::new();
        for name in names {
            if limit != 0 && out.len() >= limit {
                break;
            }
            let dir = self.run_dir(&name);
            if dir.join("run.json").is_file() {
                out.push(self.load_live(&dir));
            }
        }
        out
    }

    /// Names of the run directories, in no order: directories whose name is a run id (hidden
    /// store directories such as `.cache` are not). Only the directory is listed; its
    /// entries' types come with the listing on common file systems.
    fn run_dir_names(&self) -> Result<Vec<String>, EngineError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EngineError::io("list", &self.root)(e)),
        };
        Ok(entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| is_run_id(name))
            .collect())
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
    /// process that died are removed, unless the run is interrupted (the scheduler finds
    /// interrupted runs by them, see [`RunStore::interrupted_marked`]).
    pub fn active_runs(&self, pipeline: &str) -> Vec<String> {
        let dir = self.root.join(".active").join(pipeline);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut active = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let run_id = entry.file_name().to_string_lossy().to_string();
            if self.is_executing(&run_id) {
                active.push(run_id);
            } else if !self
                .load(&run_id)
                .is_ok_and(|r| r.status == RunStatus::Interrupted)
            {
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
        if !is_run_id(run_id) || !dir.join("run.json").is_file() {
            return Err(EngineError::RunNotFound {
                run_id: run_id.to_string(),
                runs_dir: self.root.clone(),
            });
        }
        Ok(dir)
    }
}

/// Whether `name` can be a run id: a single path component of letters, digits, `-`, `_` and
/// `.`, not beginning with `.` (so it never names a parent or a hidden store directory).
pub fn is_run_id(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn corrupt(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
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
