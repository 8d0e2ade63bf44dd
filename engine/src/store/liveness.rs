//! Whether a run's engine is alive: a run whose record says `running` but whose lock
//! (`runs/<id>/lock`) no process holds is *interrupted*.
//!
//! The process executing a run holds an exclusive `flock(2)` on its lock file from before the
//! first record is written until after the last one; the kernel releases it when the process
//! dies, however it dies (`kill -9`, the OOM killer), and a reboot releases every lock. So a
//! reader tells a live run from a dead one at once, with no heartbeat or timeout: it tries to
//! take the lock (without waiting) and lets it go at once.
//!
//! Readers ([`RunStore::load`], [`RunStore::list`], [`RunStore::list_newest`]) show such a run
//! as [`RunStatus::Interrupted`] with `last_event_at`, the time of its last recorded event (the
//! newer of the modification times of `events.jsonl` and `run.json`); its duration stops
//! there. Nothing is written by a reader: the first process that acts on the run (the
//! scheduler, `runs recover`, `run --resume`) records [`Event::RunInterrupted`] while holding
//! the lock.
//!
//! Run directories on NFS: see `docs/reliability.md` ("The run lock on local disk and NFS").

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{RunHandle, RunStore, is_run_id, log::load_record};
use crate::error::EngineError;
use crate::store::record::{Event, RunRecord, RunStatus};

/// How often, and how long apart, taking a free-looking lock is tried again: a reader probing
/// the lock holds it for a few microseconds, which must not make a resume fail.
const LOCK_TRIES: u32 = 20;
const LOCK_RETRY: Duration = Duration::from_millis(10);

/// Whether some process holds the lock file at `lock` (a missing file is not held).
pub(super) fn lock_held(lock: &Path) -> bool {
    match OpenOptions::new().write(true).open(lock) {
        Ok(f) => matches!(f.try_lock(), Err(fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

/// Takes the lock of the run in `dir`, or says who holds it. A lock held only for an instant
/// (a reader probing it) is waited for.
pub(super) fn take_lock(dir: &Path, run_id: &str) -> Result<File, EngineError> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(EngineError::io("open lock", &path))?;
    for _ in 1..LOCK_TRIES {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) => std::thread::sleep(LOCK_RETRY),
            Err(fs::TryLockError::Error(e)) => return Err(EngineError::io("lock", &path)(e)),
        }
    }
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(EngineError::Locked {
            run_id: run_id.to_string(),
            lock: path,
        }),
        Err(fs::TryLockError::Error(e)) => Err(EngineError::io("lock", &path)(e)),
    }
}

/// The time of the last event recorded in the run directory `dir`: when `events.jsonl` (only
/// ever appended to) was last written, else when `run.json` was.
pub fn last_event_at(dir: &Path) -> Option<DateTime<Utc>> {
    ["events.jsonl", "run.json"]
        .iter()
        .find_map(|f| fs::metadata(dir.join(f)).ok()?.modified().ok())
        .map(DateTime::<Utc>::from)
}

/// Records [`Event::RunInterrupted`] for a locked run whose record still says running (its
/// engine died); whether it did.
pub(crate) fn note_interrupted(handle: &mut RunHandle) -> Result<bool, EngineError> {
    if handle.record().status != RunStatus::Running {
        return Ok(false);
    }
    let created = handle.record().created_at;
    let last = last_event_at(handle.dir()).map_or(created, |t| t.max(created));
    handle.append(Event::RunInterrupted {
        at: Utc::now(),
        last_event_at: last,
    })?;
    handle.snapshot()?;
    Ok(true)
}

impl RunStore {
    /// `record` as readers show it: `interrupted` (with `last_event_at`) when it says running
    /// and no process holds its lock.
    pub fn live_view(&self, mut record: RunRecord) -> RunRecord {
        if record.status == RunStatus::Running {
            let dir = self.run_dir(&record.run_id);
            if !lock_held(&dir.join("lock")) {
                record.status = RunStatus::Interrupted;
                // A file's time comes from the kernel's coarse clock, a few ms behind the
                // clock that stamped the record: never before the run's creation.
                record.last_event_at = Some(
                    last_event_at(&dir).map_or(record.created_at, |t| t.max(record.created_at)),
                );
            }
        }
        record
    }

    /// The record of run `run_id` as written, without the liveness check: a dead engine's
    /// run still says `running` until a process records the interruption.
    pub fn load_as_written(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        load_record(&self.existing_dir(run_id)?)
    }

    pub(super) fn load_live(&self, dir: &Path) -> Result<RunRecord, EngineError> {
        load_record(dir).map(|r| self.live_view(r))
    }

    /// Every interrupted run (of `pipeline` when given), oldest first. Reads every record.
    pub fn interrupted_runs(&self, pipeline: Option<&str>) -> Result<Vec<RunRecord>, EngineError> {
        let mut out: Vec<RunRecord> = self
            .list()?
            .into_iter()
            .filter_map(Result::ok)
            .filter(|r| r.status == RunStatus::Interrupted)
            .filter(|r| pipeline.is_none_or(|p| r.pipeline == p))
            .collect();
        out.reverse();
        Ok(out)
    }

    /// The interrupted runs of `pipeline` among those marked active (`.active/<pipeline>/`):
    /// a cheap scan, since a run's marker lives only while it runs or after its engine died.
    pub fn interrupted_marked(&self, pipeline: &str) -> Vec<RunRecord> {
        let dir = self.root().join(".active").join(pipeline);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out: Vec<RunRecord> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| is_run_id(id) && !self.is_executing(id))
            .filter_map(|id| self.load(&id).ok())
            .filter(|r| r.status == RunStatus::Interrupted)
            .collect();
        out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_held_while_its_file_is_locked_and_free_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("lock");
        assert!(!lock_held(&lock), "a missing lock file is not held");
        let file = take_lock(dir.path(), "r").expect("lock");
        assert!(lock_held(&lock));
        assert!(matches!(
            take_lock(dir.path(), "r"),
            Err(EngineError::Locked { .. })
        ));
        drop(file);
        assert!(!lock_held(&lock));
        assert!(take_lock(dir.path(), "r").is_ok());
    }
}
