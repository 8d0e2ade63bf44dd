//! Runs the medallion bench without the CLI:
//! `cargo run --release -p tweetflow-delta --example bench_medallion -- [--full] [--keep] [--max-files-per-batch=N] [CSV]`.

use tweetflow_delta::bench::{BenchOptions, bench_medallion};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--full");
    let keep = args.iter().any(|a| a == "--keep");
    let csv = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "datasets/sentiment140/training.csv.gz".into());
    let mut options = BenchOptions::new(csv);
    options.full = full;
    options.keep = keep;
    if let Some(n) = args
        .iter()
        .find_map(|a| a.strip_prefix("--max-files-per-batch="))
    {
        options.max_files_per_batch = n.parse().unwrap_or(options.max_files_per_batch);
    }
    match bench_medallion(&options).await {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::exit(1);
        }
    }
}
