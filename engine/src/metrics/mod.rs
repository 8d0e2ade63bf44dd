//! Prometheus metrics: counters, gauges and histograms of runs, tasks, attempts, schedules and
//! alerts, in the Prometheus text format (the `prometheus-client` crate).
//!
//! ```text
//!  executor ── each task / run end ───▶ global().task_finished / run_finished(record)
//!  scheduler ─ each fired tick ───────▶ global().schedule_lag(pipeline, seconds)
//!  alerts ──── each message sent ─────▶ alert_sent(channel, outcome)
//!  daemon start ─ finished runs ──────▶ global().count_finished_run(record)   (seeding)
//!  `tweetflow ui` ─ run store ────────▶ StoreMetrics (its own Metrics, read on each scrape)
//! ```
//!
//! Every task, attempt and run counter is computed from the run's record (what the run store
//! holds), so a daemon seeded from the store at start and one that saw the runs live count
//! alike. Labels are bounded: pipeline and task ids, statuses, error kinds; never a run id.

mod store_metrics;

pub use store_metrics::StoreMetrics;

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::{RunRecord, RunStatus, TaskRecord};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the task duration histogram: 5 ms to about 3 hours.
const DURATION_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
    10800.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabel {
    pipeline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    pipeline: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    pipeline: String,
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskStatusLabels {
    pipeline: String,
    task: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    pipeline: String,
    task: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    channel: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// One set of tweetflow's metrics and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    runs_active: Family<PipelineLabel, Gauge>,
    task_duration: Family<TaskStatusLabels, Histogram, fn() -> Histogram>,
    attempts: Family<AttemptLabels, Counter>,
    rows: Family<TaskLabels, Counter>,
    last_success: Family<PipelineLabel, FloatGauge>,
    schedule_lag: Family<PipelineLabel, FloatGauge>,
    alerts: Family<AlertLabels, Counter>,
    spans_dropped: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty set (every counter at zero), with `tweetflow_build_info` set.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "tweetflow_runs",
            "Runs that reached a final state (a resumed run counts again when it ends)",
            runs.clone(),
        );
        let runs_active = Family::<PipelineLabel, Gauge>::default();
        registry.register(
            "tweetflow_runs_active",
            "Runs executing now",
            runs_active.clone(),
        );
        let task_duration =
            Family::<TaskStatusLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        registry.register(
            "tweetflow_task_duration_seconds",
            "Wall time of finished tasks, from start to final state (retries included)",
            task_duration.clone(),
        );
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "tweetflow_task_attempts",
            "Finished task attempts by outcome (succeeded, or the error kind)",
            attempts.clone(),
        );
        let rows = Family::<TaskLabels, Counter>::default();
        registry.register(
            "tweetflow_task_rows",
            "Rows written by succeeded tasks (the `rows` of their output)",
            rows.clone(),
        );
        let last_success = Family::<PipelineLabel, FloatGauge>::default();
        registry.register(
            "tweetflow_last_success_timestamp_seconds",
            "When the pipeline's latest succeeded run ended (Unix time)",
            last_success.clone(),
        );
        let schedule_lag = Family::<PipelineLabel, FloatGauge>::default();
        registry.register(
            "tweetflow_schedule_lag_seconds",
            "Fire time minus planned time of the latest scheduled tick",
            schedule_lag.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "tweetflow_alerts",
            "Alert messages by channel and outcome",
            alerts.clone(),
        );
        let spans_dropped = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "tweetflow_trace_spans_dropped",
            "Trace spans not exported (queue_full: the export queue was full; export_failed: the collector did not take them)",
            spans_dropped.clone(),
        );
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register(
            "tweetflow_build_info",
            "The tweetflow version (always 1)",
            build_info,
        );
        Metrics {
            registry,
            runs,
            runs_active,
            task_duration,
            attempts,
            rows,
            last_success,
            schedule_lag,
            alerts,
            spans_dropped,
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts task `task` of `record` (the run's record right after the task finished): its
    /// duration, attempts and rows.
    pub fn task_finished(&self, record: &RunRecord, task: &str) {
        if let Some(t) = record.tasks.get(task) {
            self.count_task(&record.pipeline, task, t);
        }
    }

    /// Counts the run of `record` (its record right after it finished).
    pub fn run_finished(&self, record: &RunRecord) {
        if let Some(ended) = record.ended_at {
            self.count_run(&record.pipeline, record.status, ended);
        }
    }

    /// Counts a finished run read from the run store: its tasks that ended after `since` (all
    /// of them when `None`), then the run itself.
    pub fn count_finished_run(&self, record: &RunRecord, since: Option<DateTime<Utc>>) {
        if record.status == RunStatus::Running {
            return;
        }
        for (id, task) in &record.tasks {
            let after = match (since, task.ended_at) {
                (Some(since), Some(ended)) => ended > since,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if after {
                self.count_task(&record.pipeline, id, task);
            }
        }
        if let Some(ended) = record.ended_at {
            self.count_run(&record.pipeline, record.status, ended);
        }
    }

    fn count_task(&self, pipeline: &str, id: &str, task: &TaskRecord) {
        if let (Some(start), Some(end)) = (task.started_at, task.ended_at) {
            let seconds = (end - start).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
            self.task_duration
                .get_or_create(&TaskStatusLabels {
                    pipeline: pipeline.to_string(),
                    task: id.to_string(),
                    status: task.status.as_str().to_string(),
                })
                .observe(seconds);
        }
        for attempt in task.attempts.iter().filter(|a| a.ended_at.is_some()) {
            let outcome = match &attempt.error {
                None => "succeeded",
                Some(e) => error_kind_label(e.kind),
            };
            self.attempts
                .get_or_create(&AttemptLabels {
                    pipeline: pipeline.to_string(),
                    task: id.to_string(),
                    outcome: outcome.to_string(),
                })
                .inc();
        }
        if task.status == crate::store::TaskStatus::Succeeded
            && let Some(rows) = task
                .output
                .as_ref()
                .and_then(|o| o.values.get("rows"))
                .and_then(serde_json::Value::as_u64)
        {
            self.rows
                .get_or_create(&TaskLabels {
                    pipeline: pipeline.to_string(),
                    task: id.to_string(),
                })
                .inc_by(rows);
        }
    }

    fn count_run(&self, pipeline: &str, status: RunStatus, ended: DateTime<Utc>) {
        self.runs
            .get_or_create(&RunLabels {
                pipeline: pipeline.to_string(),
                status: status.as_str().to_string(),
            })
            .inc();
        if status == RunStatus::Succeeded {
            let gauge = self.last_success.get_or_create(&PipelineLabel {
                pipeline: pipeline.to_string(),
            });
            let at = ended.timestamp_micros() as f64 / 1e6;
            if at > gauge.get() {
                gauge.set(at);
            }
        }
    }

    /// A run of `pipeline` starts executing; it counts in `tweetflow_runs_active` until the
    /// returned guard is dropped.
    pub fn run_active(&self, pipeline: &str) -> ActiveRun<'_> {
        let label = PipelineLabel {
            pipeline: pipeline.to_string(),
        };
        self.runs_active.get_or_create(&label).inc();
        ActiveRun {
            metrics: self,
            label,
        }
    }

    /// Sets the number of runs of `pipeline` executing now (when counted from the run store).
    pub fn set_runs_active(&self, pipeline: &str, active: i64) {
        self.runs_active
            .get_or_create(&PipelineLabel {
                pipeline: pipeline.to_string(),
            })
            .set(active);
    }

    /// A scheduled tick of `pipeline` fired `seconds` after its planned time.
    pub fn schedule_lag(&self, pipeline: &str, seconds: f64) {
        self.schedule_lag
            .get_or_create(&PipelineLabel {
                pipeline: pipeline.to_string(),
            })
            .set(seconds);
    }

    /// An alert message on `channel` ended with `outcome` (e.g. `sent`, `failed`).
    pub fn alert(&self, channel: &str, outcome: &str) {
        self.alerts
            .get_or_create(&AlertLabels {
                channel: channel.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// `n` trace spans were not exported, for `reason` (`queue_full`, `export_failed`).
    pub fn spans_dropped(&self, reason: &str, n: u64) {
        self.spans_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(n);
    }
}

/// Keeps a run counted in `tweetflow_runs_active` while it lives.
pub struct ActiveRun<'a> {
    metrics: &'a Metrics,
    label: PipelineLabel,
}

impl Drop for ActiveRun<'_> {
    fn drop(&mut self) {
        self.metrics.runs_active.get_or_create(&self.label).dec();
    }
}

/// The label of an attempt that failed with `kind`.
fn error_kind_label(kind: crate::task::ErrorKind) -> &'static str {
    use crate::task::ErrorKind;
    match kind {
        ErrorKind::Retryable => "retryable_error",
        ErrorKind::Fatal => "fatal_error",
        ErrorKind::Config => "config_error",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Cancelled => "cancelled",
    }
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics: what the engine, the scheduler and the alerts of this process count
/// (`tweetflow schedule --metrics-listen` serves them).
pub fn global() -> &'static Metrics {
    &GLOBAL
}

/// Counts an alert message on `channel` (e.g. `email`, `slack`) that ended with `outcome`
/// (`sent` or `failed`) in `tweetflow_alerts_total`.
pub fn alert_sent(channel: &str, outcome: &str) {
    global().alert(channel, outcome);
}

/// Counts the finished runs of `store` that ended before `before` into the process's metrics,
/// so a restarted daemon's counters go on from what the store holds. Returns how many runs
/// were read; unreadable records are skipped.
pub fn seed_from_store(store: &crate::store::RunStore, before: DateTime<Utc>) -> usize {
    let Ok(ids) = store.run_ids() else { return 0 };
    let mut n = 0;
    // One record in memory at a time.
    for id in ids {
        let Ok(record) = store.load(&id) else {
            continue;
        };
        if record.ended_at.is_some_and(|e| e <= before) {
            global().count_finished_run(&record, None);
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests;
