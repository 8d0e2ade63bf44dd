//! `tweetflow bench infer` on a small silver table and the tiny fixture model.

use std::path::Path;

use deltalake::arrow::util::display::array_value_to_string;
use futures::StreamExt;
use tweetflow_bench::infer::{InferBenchOptions, bench_infer};
use tweetflow_delta::WriteControl;
use tweetflow_delta::table;
use tweetflow_tasks::medallion::clean::{CleanParams, clean};
use tweetflow_tasks::medallion::ingest::{IngestParams, ingest};
use tweetflow_tasks::medallion::replay::{ReplayParams, replay};
use tweetflow_test_support::{test_csv, tiny_model};

/// A path inside `dir` as a string.
fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Replays `limit` test tweets into `dir/landing`, then ingests and cleans them into
/// `dir/silver`.
async fn add_silver(dir: &Path, prefix: &str, limit: usize, seed: Option<u64>) {
    let mut rp = ReplayParams::new(test_csv().display().to_string(), p(dir, "landing"));
    rp.tweets_per_file = 50;
    rp.limit = Some(limit);
    rp.prefix = prefix.into();
    rp.seed = seed;
    let o = WriteControl::default();
    replay(&rp, &o).await.unwrap();
    ingest(&IngestParams::new(p(dir, "landing"), p(dir, "bronze")), &o)
        .await
        .unwrap();
    clean(&CleanParams::new(p(dir, "bronze"), p(dir, "silver")), &o)
        .await
        .unwrap();
}

/// Rows of the table at `location` projected on `columns`, as display strings.
async fn rows_of(location: &str, columns: &[&str]) -> Vec<Vec<String>> {
    let t = table::open_table(location).await.unwrap().unwrap();
    let mut out = Vec::new();
    for (path, _, _) in table::active_files(&t, location).unwrap() {
        let mut stream = table::read_file(&t, &path, columns).await.unwrap();
        while let Some(batch) = stream.next().await {
            let batch = batch.unwrap();
            for i in 0..batch.num_rows() {
                let row = columns
                    .iter()
                    .map(|c| array_value_to_string(batch.column_by_name(c).unwrap(), i).unwrap())
                    .collect();
                out.push(row);
            }
        }
    }
    out
}

#[tokio::test]
async fn bench_infer_times_both_sides_in_alternating_rounds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    add_silver(dir, "tweets", 120, None).await;
    let mut o = InferBenchOptions::new(p(dir, "silver"), tiny_model());
    o.rounds = 2;
    o.threads = 1;
    o.work_dir = Some(dir.join("bench"));
    let r = bench_infer(&o).await.unwrap();
    let silver_rows = rows_of(&p(dir, "silver"), &["tweet_id"]).await.len() as u64;
    assert_eq!(r.silver_rows, silver_rows);
    assert_eq!(r.gold_rows, silver_rows);
    assert!(r.distinct_texts > 0 && r.distinct_texts <= silver_rows);
    assert_eq!(r.rounds.len(), 2);
    assert!(!r.rounds[0].task_first && r.rounds[1].task_first);
    for round in &r.rounds {
        assert!(round.bare_tweets_per_sec > 0.0 && round.task_tweets_per_sec > 0.0);
        let ratio = round.task_tweets_per_sec / round.bare_tweets_per_sec;
        assert!((round.task_vs_bare - ratio).abs() < 1e-9);
    }
    // Each round's task wrote its own gold table, with every silver row.
    for i in 0..2 {
        let gold = dir.join(format!("bench/gold-{i}")).display().to_string();
        assert_eq!(
            rows_of(&gold, &["tweet_id"]).await.len() as u64,
            silver_rows
        );
    }
    let text = r.to_string();
    assert!(
        text.contains("round 2") && text.contains("(task first)"),
        "{text}"
    );
}
