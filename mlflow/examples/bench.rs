//! Logs 10,000 metric points (or the count given as first argument) to the server named by
//! `MLFLOW_TRACKING_URI` and prints the timing.
//!
//! `MLFLOW_TRACKING_URI=$(scripts/mlflow-server.sh start) cargo run --release -p tweetflow-mlflow --example bench`

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 10_000,
    };
    let client = tweetflow_mlflow::Client::from_env()?;
    let report = tweetflow_mlflow::bench::log_metrics(&client, n).await?;
    println!("{report}");
    Ok(())
}
