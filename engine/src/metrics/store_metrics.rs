//! Metrics read from a run store, for a process that does not execute the runs itself
//! (`tweetflow ui`): each scrape reads the runs it has not counted yet.

use std::collections::HashSet;
use std::sync::Mutex;

use super::Metrics;
use crate::store::{RunStatus, RunStore};

/// The metrics of the runs in a run store, brought up to date on each [`StoreMetrics::encode`].
///
/// A finished run is counted once, when first seen finished; a run seen running is read again
/// on the next scrape. A run resumed after it was counted is not counted again.
pub struct StoreMetrics {
    store: RunStore,
    metrics: Metrics,
    counted: Mutex<HashSet<String>>,
}

impl StoreMetrics {
    /// Metrics of the runs in `store`.
    pub fn new(store: RunStore) -> Self {
        StoreMetrics {
            store,
            metrics: Metrics::new(),
            counted: Mutex::new(HashSet::new()),
        }
    }

    /// Reads the runs not counted yet and the active runs, then encodes the metrics in the
    /// Prometheus text format.
    pub fn encode(&self) -> String {
        self.refresh();
        self.metrics.encode()
    }

    fn refresh(&self) {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(ids) = self.store.run_ids() {
            for id in ids {
                if counted.contains(&id) {
                    continue;
                }
                let Ok(record) = self.store.load(&id) else {
                    continue;
                };
                if record.status != RunStatus::Running || !self.store.is_executing(&id) {
                    if record.status != RunStatus::Running {
                        self.metrics.count_finished_run(&record, None);
                    }
                    counted.insert(id);
                }
            }
        }
        let active_dir = self.store.root().join(".active");
        if let Ok(entries) = std::fs::read_dir(&active_dir) {
            for entry in entries.filter_map(Result::ok) {
                let pipeline = entry.file_name().to_string_lossy().to_string();
                let active = self.store.active_runs(&pipeline).len();
                self.metrics.set_runs_active(&pipeline, active as i64);
            }
        }
    }
}
