//! A run's event log and snapshot: [`RunHandle`] appends events to `events.jsonl` and
//! compacts `run.json`; `load_record` reads them back.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{SNAPSHOT_INTERVAL, corrupt, write_atomic};
use crate::error::EngineError;
use crate::secrets;
use crate::store::record::{Event, RunRecord};

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

pub(super) fn load_record(dir: &Path) -> Result<RunRecord, EngineError> {
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
    pub(super) fn open(dir: PathBuf, record: RunRecord, lock: File) -> Result<Self, EngineError> {
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
        let mut line = secrets::masked_json(&EventLineRef { seq, event: &event })
            .and_then(|j| serde_json::to_vec(&j))
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
        let bytes = secrets::masked_json(&self.record)
            .and_then(|j| serde_json::to_vec_pretty(&j))
            .map_err(|e| corrupt(&path, e))?;
        write_atomic(&path, &bytes)?;
        self.last_snapshot = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskSpec;
    use crate::spec::Pipeline;
    use crate::spec::{CachePolicy, RetryPolicy};
    use crate::store::{RunStatus, RunStore, TaskStatus, is_run_id};
    use chrono::Utc;

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
                    executor: Default::default(),
                    shards: 1,
                    expect: Default::default(),
                })
                .collect(),
            spec_hash: "h".into(),
            schedule: None,
            trigger: None,
            trigger_slots: Vec::new(),
            secrets: Vec::new(),
            retention: None,
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
            store.reopen("r1", &|_| None),
            Err(EngineError::Locked { .. })
        ));
        drop(handle);
        let (reopened, plan) = store.reopen("r1", &|_| None).unwrap();
        assert_eq!(plan.tasks.len(), 1);
        assert_eq!(reopened.record().run_id, "r1");
        assert!(matches!(
            store.load("nope"),
            Err(EngineError::RunNotFound { .. })
        ));
    }

    #[test]
    fn run_ids_are_listed_newest_first_without_reading_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        assert!(store.run_ids().unwrap().is_empty());
        let p = pipeline(1);
        let ids = [
            "20260101T000000000Z-aaaaaa",
            "20260101T000001000Z-000001",
            "20251231T235959999Z-ffffff",
        ];
        for id in ids {
            store
                .create(RunRecord::new(id.into(), &p, "p.yaml"), &p, "")
                .unwrap();
        }
        fs::create_dir_all(dir.path().join(".cache")).unwrap();
        fs::write(dir.path().join("stray-file"), "").unwrap();
        assert_eq!(
            store.run_ids().unwrap(),
            [ids[1], ids[0], ids[2]].map(String::from)
        );
        assert_eq!(store.list().unwrap().len(), 3);
        assert!(!store.is_executing(ids[0]));
        assert!(!is_run_id("..") && !is_run_id("a/b") && !is_run_id(""));
        assert!(matches!(
            store.load("../x"),
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
                    shard: None,
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
