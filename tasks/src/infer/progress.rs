//! Progress of a run: a bar on a terminal, otherwise a log line every [`LOG_EVERY_ROWS`] rows.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Without a terminal, a progress log line every this many silver rows.
pub const LOG_EVERY_ROWS: u64 = 50_000;

/// Rows scored so far out of the planned total.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    next_log: u64,
    started: Instant,
}

impl Progress {
    /// A reporter for `total` rows.
    pub(super) fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "infer {bar:40} {pos}/{len} rows {per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            total,
            done: 0,
            next_log: LOG_EVERY_ROWS,
            started: Instant::now(),
        }
    }

    /// Counts `rows` more rows.
    pub(super) fn add(&mut self, rows: u64) {
        self.done += rows;
        if let Some(bar) = &self.bar {
            bar.inc(rows);
        } else if self.done >= self.next_log {
            self.next_log = self.done + LOG_EVERY_ROWS;
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                rows = self.done,
                total = self.total,
                rows_per_sec = (self.done as f64 / secs).round(),
                "infer: progress"
            );
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
