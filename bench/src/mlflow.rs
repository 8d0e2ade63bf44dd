//! `tweetflow bench mlflow`: log metric points in batches against a server.

use std::time::{Duration, Instant};

use tweetflow_mlflow::types::now_millis;
use tweetflow_mlflow::{Client, Metric, MlflowRunStatus, Result, RunTag};

/// Experiment the benchmark runs go to.
pub const BENCH_EXPERIMENT: &str = "tweetflow-bench";
/// Metric keys the points are spread over.
pub const BENCH_KEYS: usize = 10;
/// `log-batch` calls in flight during the benchmark.
pub const BENCH_CONCURRENCY: usize = 4;

/// Result of [`log_metrics`].
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Metric points logged.
    pub points: usize,
    /// `log-batch` requests made.
    pub requests: usize,
    /// Time spent logging the points (excludes setup and verification).
    pub elapsed: Duration,
    /// Points per second over `elapsed`.
    pub points_per_sec: f64,
    /// Time to create the experiment (if needed) and the run.
    pub setup: Duration,
    /// Points read back from the server's metric history (must equal `points`).
    pub verified_points: usize,
    /// Experiment of the run.
    pub experiment_id: String,
    /// The run holding the points.
    pub run_id: String,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "logged {} metric points in {} requests in {:.3} s ({:.0} points/s; setup {:.3} s; {} read back) to run {}",
            self.points,
            self.requests,
            self.elapsed.as_secs_f64(),
            self.points_per_sec,
            self.setup.as_secs_f64(),
            self.verified_points,
            self.run_id
        )
    }
}

/// Settings of [`log_metrics_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchOptions {
    /// Metric points to log.
    pub points: usize,
    /// Metric keys the points are spread over (at least 1).
    pub keys: usize,
    /// `log-batch` calls in flight (at least 1).
    pub concurrency: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            points: 10_000,
            keys: BENCH_KEYS,
            concurrency: BENCH_CONCURRENCY,
        }
    }
}

/// Logs `n_points` metric points (spread over [`BENCH_KEYS`] keys, one step per point and
/// key) to a new run of the experiment [`BENCH_EXPERIMENT`], with batched, concurrent
/// `log-batch` calls; then reads the histories back to check nothing was lost, and ends the
/// run. Used by `tweetflow bench mlflow`.
pub async fn log_metrics(client: &Client, n_points: usize) -> Result<BenchReport> {
    log_metrics_with(
        client,
        BenchOptions {
            points: n_points,
            ..Default::default()
        },
    )
    .await
}

/// [`log_metrics`] with explicit settings.
pub async fn log_metrics_with(client: &Client, opts: BenchOptions) -> Result<BenchReport> {
    let n_points = opts.points;
    let keys = opts.keys.max(1);
    let t0 = Instant::now();
    let exp = client.get_or_create_experiment(BENCH_EXPERIMENT).await?;
    let run = client
        .create_run(
            &exp.experiment_id,
            Some("bench-log-metrics"),
            &[RunTag::new("tweetflow.bench", "log_metrics")],
        )
        .await?;
    let run_id = run.info.run_id.clone();
    let setup = t0.elapsed();

    let ts = now_millis();
    let metrics: Vec<Metric> = (0..n_points)
        .map(|i| {
            let key = i % keys;
            let step = (i / keys) as i64;
            Metric::at(format!("bench_{key}"), (step as f64).sin(), step, ts + step)
        })
        .collect();
    let t1 = Instant::now();
    let report = client
        .log_batch_concurrent(&run_id, &metrics, &[], &[], opts.concurrency.max(1))
        .await;
    let elapsed = t1.elapsed();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = client.end_run(&run_id, MlflowRunStatus::Failed).await;
            return Err(e);
        }
    };

    let mut verified_points = 0;
    for k in 0..keys.min(n_points) {
        verified_points += client
            .get_metric_history(&run_id, &format!("bench_{k}"))
            .await?
            .len();
    }
    client.end_run(&run_id, MlflowRunStatus::Finished).await?;
    Ok(BenchReport {
        points: n_points,
        requests: report.requests,
        elapsed,
        points_per_sec: n_points as f64 / elapsed.as_secs_f64().max(1e-9),
        setup,
        verified_points,
        experiment_id: exp.experiment_id,
        run_id,
    })
}
