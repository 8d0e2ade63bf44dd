//! `cargo run --release -p tweetflow-delta --example bench_infer -- INPUT MODEL_DIR [BATCH] [THREADS] [LIMIT]`
//!
//! INPUT is a Sentiment140 CSV (`.csv` / `.csv.gz`) or a silver Delta table. Prints the bare
//! model loop against the whole infer task (see `tweetflow_delta::infer::bench_infer`).

use tweetflow_delta::infer::{InferBenchOptions, bench_infer};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: bench_infer INPUT MODEL_DIR [BATCH] [THREADS] [LIMIT]");
        std::process::exit(2);
    }
    let mut opts = InferBenchOptions::new(&args[0], &args[1]);
    let num = |i: usize| args.get(i).map(|s| s.parse::<usize>().expect("a number"));
    if let Some(b) = num(2) {
        opts.batch_size = b;
    }
    if let Some(t) = num(3) {
        opts.threads = t;
    }
    opts.limit = num(4);
    match bench_infer(&opts).await {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("bench infer: {e}");
            std::process::exit(1);
        }
    }
}
