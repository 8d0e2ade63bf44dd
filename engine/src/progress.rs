//! Progress of a long task attempt: how many rows (files, tweets, ...) of how many are done.
//!
//! A task counts its work with a [`ProgressReporter`]; the reporter emits, at most every
//! [`REPORT_INTERVAL`], a `trace` event with the target [`PROGRESS_TARGET`] and the fields
//! `done`, `total` (0: unknown) and `unit`. The event happens inside the task's tracing span
//! (which names the task), so a front end such as the CLI's console can draw a bar per task
//! without the task knowing who listens. Nothing is written to the run log: the default
//! filters stop at `info`.

use std::time::{Duration, Instant};

/// The tracing target of progress events.
pub const PROGRESS_TARGET: &str = "tweetflow::progress";

/// Most one progress event per reporter in this interval (the last one is always sent).
pub const REPORT_INTERVAL: Duration = Duration::from_millis(200);

/// Counts a task's work and reports it as progress events (see the module docs).
#[derive(Debug)]
pub struct ProgressReporter {
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    last_report: Option<Instant>,
}

impl ProgressReporter {
    /// A reporter of `unit`s (e.g. `"rows"`), `total` of them when known.
    pub fn new(unit: &'static str, total: Option<u64>) -> Self {
        ProgressReporter {
            unit,
            total,
            done: 0,
            last_report: None,
        }
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Counts `n` more units done.
    pub fn add(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        let finished = self.total.is_some_and(|t| self.done >= t);
        let due = self
            .last_report
            .is_none_or(|at| at.elapsed() >= REPORT_INTERVAL);
        if finished || due {
            self.last_report = Some(Instant::now());
            tracing::trace!(
                target: PROGRESS_TARGET,
                done = self.done,
                total = self.total.unwrap_or(0),
                unit = self.unit,
            );
        }
    }
}
