//! Throughput of a model directory on a file of texts (one per line).
//!
//! ```sh
//! cargo run --release -p tweetflow-bench --example bench_model -- \
//!     data/model/tweet-sentiment tweets.txt [batch_size=32] [threads=2]
//! ```
//!
//! Prints the bare loop (pre-tokenized, length-sorted batches: the model alone) and
//! `Classifier::predict` (tokenization, de-duplication, sorting, label decision) in tweets/s.

use std::time::Instant;

use tweetflow_bench::bench_bare_loop;
use tweetflow_model::{Classifier, ClassifierOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bench_model MODEL_DIR TEXTS_FILE [BATCH_SIZE] [THREADS]");
        std::process::exit(2);
    }
    let batch: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let threads: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let text = std::fs::read_to_string(&args[2])?;
    let texts: Vec<&str> = text.lines().collect();
    let t = Instant::now();
    let mut c = Classifier::load(
        std::path::Path::new(&args[1]),
        ClassifierOptions {
            threads,
            labels: None,
        },
    )?;
    println!("load: {:.2} s", t.elapsed().as_secs_f64());
    // Warm-up.
    c.predict(&texts[..texts.len().min(64)], batch)?;
    let b = bench_bare_loop(&mut c, &texts, batch)?;
    println!(
        "bare loop: {} texts, {} batches of {batch}, {threads} threads: {:.3} s, {:.0} tweets/s",
        b.texts, b.batches, b.seconds, b.tweets_per_sec
    );
    c.reset_stats();
    let t = Instant::now();
    let p = c.predict(&texts, batch)?;
    let s = t.elapsed().as_secs_f64();
    let st = c.stats();
    println!(
        "predict: {} texts ({} distinct rows, {} batches): {s:.3} s, {:.0} tweets/s",
        p.len(),
        st.rows_inferred,
        st.batches,
        p.len() as f64 / s
    );
    let mut counts = std::collections::BTreeMap::new();
    for x in &p {
        *counts.entry(x.label.as_str()).or_insert(0usize) += 1;
    }
    println!("labels: {counts:?}");
    Ok(())
}
