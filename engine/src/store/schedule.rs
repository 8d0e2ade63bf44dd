//! The scheduler's state of each pipeline, kept in the run store
//! (`.schedules/<pipeline>.json`): the ticks it handled and the runs it fired. The scheduler
//! writes it; retention keeps the last fired run; `tweetflow ui` shows it.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::RunStore;
use crate::atomic_file::write_atomic;
use crate::error::EngineError;

/// What happened to a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TickAction {
    /// A run was started.
    Fired,
    /// Not run, by policy (overlap, catch-up).
    Skipped,
    /// Not run in time (scheduler down with `catchup: none`, or past `start_deadline`).
    Missed,
}

/// The decision about one tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TickRecord {
    /// The scheduled time.
    pub tick: DateTime<Utc>,
    /// When the decision was made.
    pub decided_at: DateTime<Utc>,
    /// What was done.
    pub action: TickAction,
    /// The run started for it.
    pub run_id: Option<String>,
    /// Why it was skipped or missed.
    pub reason: Option<String>,
}

/// The scheduler's persistent state for one pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The latest tick handled.
    pub last_tick: Option<DateTime<Utc>>,
    /// The latest tick fired and its run id.
    pub last_fired: Option<TickRecord>,
    /// Recent decisions, oldest first (at most [`HISTORY`]).
    pub history: Vec<TickRecord>,
}

/// How many decisions the state file keeps.
pub const HISTORY: usize = 500;

impl RunStore {
    /// The schedule state file of `pipeline`.
    pub fn schedule_state_path(&self, pipeline: &str) -> PathBuf {
        self.root()
            .join(".schedules")
            .join(format!("{pipeline}.json"))
    }

    /// Reads the schedule state of `pipeline` (empty if it was never scheduled).
    pub fn schedule_state(&self, pipeline: &str) -> Result<ScheduleState, EngineError> {
        let path = self.schedule_state_path(pipeline);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ScheduleState::default()),
            Err(e) => Err(EngineError::io("read", &path)(e)),
        }
    }

    /// Writes the schedule state of `pipeline` atomically.
    pub fn save_schedule_state(
        &self,
        pipeline: &str,
        state: &ScheduleState,
    ) -> Result<(), EngineError> {
        let path = self.schedule_state_path(pipeline);
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| EngineError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &bytes)
    }
}
