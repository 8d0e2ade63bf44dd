//! Progress of a run: progress events for a console's bar (see
//! [`tweetflow_engine::progress`]), and a log line every [`LOG_EVERY_ROWS`] rows for the run
//! log.

use std::time::Instant;

use tweetflow_engine::ProgressReporter;

/// A progress log line every this many silver rows.
pub const LOG_EVERY_ROWS: u64 = 50_000;

/// Rows scored so far out of the planned total.
pub(super) struct Progress {
    reporter: ProgressReporter,
    total: u64,
    next_log: u64,
    started: Instant,
}

impl Progress {
    /// A reporter for `total` rows.
    pub(super) fn new(total: u64) -> Self {
        Progress {
            reporter: ProgressReporter::new("rows", Some(total)),
            total,
            next_log: LOG_EVERY_ROWS,
            started: Instant::now(),
        }
    }

    /// Counts `rows` more rows.
    pub(super) fn add(&mut self, rows: u64) {
        self.reporter.add(rows);
        let done = self.reporter.done();
        if done >= self.next_log {
            self.next_log = done + LOG_EVERY_ROWS;
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                rows = done,
                total = self.total,
                rows_per_sec = (done as f64 / secs).round(),
                "infer: progress"
            );
        }
    }
}
