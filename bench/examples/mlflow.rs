//! Logs 10,000 metric points to the server named by `MLFLOW_TRACKING_URI` and prints the
//! timing. Optional arguments: points, keys, concurrency.
//!
//! `MLFLOW_TRACKING_URI=$(scripts/mlflow-server.sh start) cargo run --release -p tweetflow-bench --example mlflow`

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use tweetflow_bench::mlflow::{BenchOptions, log_metrics_with};
    let arg = |i: usize, default: usize| -> Result<usize, std::num::ParseIntError> {
        std::env::args().nth(i).map_or(Ok(default), |a| a.parse())
    };
    let d = BenchOptions::default();
    let opts = BenchOptions {
        points: arg(1, d.points)?,
        keys: arg(2, d.keys)?,
        concurrency: arg(3, d.concurrency)?,
    };
    let client = tweetflow_mlflow::Client::from_env()?;
    let report = log_metrics_with(&client, opts).await?;
    println!("{report}");
    Ok(())
}
