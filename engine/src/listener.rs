//! Run listeners: told about each state change of a run right after it is recorded (the
//! CLI's console prints its task lines from them).
//!
//! Unlike a [`crate::observer::RunObserver`], a listener is synchronous, cannot fail and is
//! not retried on `--resume`: it is for display, not for records kept elsewhere.

use crate::store::Event;

/// Told about every event of every run the engine executes.
pub trait RunListener: Send + Sync {
    /// `event` of the run `run_id` was recorded.
    fn event(&self, run_id: &str, event: &Event);
}
