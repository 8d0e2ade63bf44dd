//! `tweetflow bench infer` on a small silver table and the tiny fixture model.
#![allow(clippy::unwrap_used)]

use tweetflow_bench::infer::{InferBenchOptions, bench_infer};
use tweetflow_test_support::medallion::add_silver;
use tweetflow_test_support::tables::{p, rows_of};
use tweetflow_test_support::tiny_model;

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
