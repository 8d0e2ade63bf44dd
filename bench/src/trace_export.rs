//! `tweetflow bench engine --trace-export`: the engine's overhead per task with the OTLP trace
//! export on and off, measured alternately in one process on the same wide DAG of no-op tasks.

use std::sync::Arc;
use std::time::Duration;

use tweetflow_engine::{Engine, Registry, telemetry};

use crate::engine::{Shape, generate, timed_run};
use crate::error::BenchError;
use crate::heap::HeapCounter;

/// Rounds of each setting (export off, export on, alternating).
const ROUNDS: usize = 5;

/// Walls of the rounds with export off and on, and the spans dropped meanwhile.
pub struct TraceExportReport {
    /// Tasks per DAG.
    pub tasks: usize,
    /// Wall times with export paused.
    pub off: Vec<Duration>,
    /// Wall times with export on.
    pub on: Vec<Duration>,
    /// Spans not exported during the rounds (queue full or refused), from the metrics.
    pub dropped: u64,
}

fn median(walls: &[Duration]) -> Duration {
    let mut sorted = walls.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

impl TraceExportReport {
    /// Engine overhead per task with export on minus with it off (median rounds), in µs.
    pub fn added_per_task_us(&self) -> f64 {
        (median(&self.on).as_secs_f64() - median(&self.off).as_secs_f64()) / self.tasks as f64 * 1e6
    }
}

impl std::fmt::Display for TraceExportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.tasks as f64;
        let off = median(&self.off).as_secs_f64();
        let on = median(&self.on).as_secs_f64();
        writeln!(
            f,
            "trace export: wide DAG of {} no-op tasks, {ROUNDS} rounds each, alternating, median",
            self.tasks
        )?;
        writeln!(
            f,
            "  export off: {:>8.3}s  {:>7.1} µs/task",
            off,
            off / n * 1e6
        )?;
        writeln!(
            f,
            "  export on:  {:>8.3}s  {:>7.1} µs/task",
            on,
            on / n * 1e6
        )?;
        writeln!(
            f,
            "  added by export: {:.1} µs/task ({:.2}x); spans per run: {} (run, task and attempt spans); dropped meanwhile: {}",
            self.added_per_task_us(),
            on / off.max(1e-9),
            2 * self.tasks + 1,
            self.dropped
        )
    }
}

fn dropped_spans() -> u64 {
    let text = tweetflow_engine::metrics::global().encode();
    text.lines()
        .filter(|l| l.starts_with("tweetflow_trace_spans_dropped_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Runs the wide DAG of `n` no-op tasks `ROUNDS` times with export paused and as many with it
/// on, alternating. Export must be set up (`OTEL_EXPORTER_OTLP_ENDPOINT`).
pub async fn bench_trace_export(
    registry: Arc<Registry>,
    n: usize,
    heap: &dyn HeapCounter,
) -> Result<TraceExportReport, BenchError> {
    if !telemetry::exporting() {
        return Err(BenchError::NoTraceExport);
    }
    let dir = tempfile::tempdir().map_err(BenchError::TempDir)?;
    let engine = Engine::new(registry, dir.path());
    // A first run warms the run store's folder and the allocator.
    telemetry::pause_export(true);
    timed_run(&engine, generate(n, Shape::Wide), heap).await?;
    let before = dropped_spans();
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for exporting in [false, true] {
            telemetry::pause_export(!exporting);
            let (wall, _) = timed_run(&engine, generate(n, Shape::Wide), heap).await?;
            if exporting { &mut on } else { &mut off }.push(wall);
        }
    }
    telemetry::pause_export(false);
    Ok(TraceExportReport {
        tasks: n,
        off,
        on,
        dropped: dropped_spans() - before,
    })
}
