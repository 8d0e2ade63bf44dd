//! The trigger state of each pipeline with a `trigger:` (`.schedules/<pipeline>.trigger.json`):
//! per watched table the last version a successful run covered (the cursor), the run started
//! for the versions after it and not yet finished, and the recent triggered runs.
//!
//! The cursor moves only when a run succeeds; the pending run is written before it starts, so
//! after a crash the daemon finds the run (or starts it, with the same range) instead of
//! starting a second one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::RunStore;
use crate::atomic_file::write_atomic;
use crate::error::EngineError;
use crate::trigger::TriggerValues;

/// How far a pipeline consumed one watched table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCursor {
    /// The table's location (a cursor of another location is not reused).
    pub table: String,
    /// The last version covered by a successful run; `None`: nothing consumed yet.
    pub consumed: Option<i64>,
}

/// A run started for a range of versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggerFire {
    /// The run's id (chosen before it starts).
    pub run_id: String,
    /// When the run was decided.
    pub decided_at: DateTime<Utc>,
    /// The versions it covers, by trigger table name.
    pub ranges: TriggerValues,
    /// How it ended (`succeeded`, `failed`, …); `None` while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// The trigger state of one pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerState {
    /// The cursors, by trigger table name.
    pub tables: BTreeMap<String, TableCursor>,
    /// The run covering the versions after the cursors, until it finishes.
    pub pending: Option<TriggerFire>,
    /// The newest version a failed run covered, by table: a failed range is taken again by
    /// the next run, which starts once the table has a newer version.
    #[serde(default)]
    pub failed_to: BTreeMap<String, i64>,
    /// Recent triggered runs with their outcome, oldest first (at most
    /// [`super::HISTORY`]).
    #[serde(default)]
    pub history: Vec<TriggerFire>,
}

impl RunStore {
    /// The trigger state file of `pipeline`.
    pub fn trigger_state_path(&self, pipeline: &str) -> PathBuf {
        self.root()
            .join(".schedules")
            .join(format!("{pipeline}.trigger.json"))
    }

    /// Reads the trigger state of `pipeline` (empty if it was never triggered).
    pub fn trigger_state(&self, pipeline: &str) -> Result<TriggerState, EngineError> {
        let path = self.trigger_state_path(pipeline);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TriggerState::default()),
            Err(e) => Err(EngineError::io("read", &path)(e)),
        }
    }

    /// Writes the trigger state of `pipeline` atomically.
    pub fn save_trigger_state(
        &self,
        pipeline: &str,
        state: &TriggerState,
    ) -> Result<(), EngineError> {
        let path = self.trigger_state_path(pipeline);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(EngineError::io("create", dir))?;
        }
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| EngineError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &bytes)
    }
}
