//! `tweetflow bench infer` on a small silver table and the tiny fixture model.
#![allow(clippy::unwrap_used)]

use tweetflow_bench::infer::{InferBenchOptions, bench_infer};
use tweetflow_test_support::medallion::add_silver;
use tweetflow_test_support::tables::{p, rows_of};
use tweetflow_test_support::tiny_model;

#[tokio::test]
async fn bench_infer_times_the_floors_and_both_task_settings_in_alternating_rounds() {
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(r.sessions, cores.min(8));
    assert_eq!(r.threads, 1);
    for round in &r.rounds {
        for rate in [
            round.bare_tweets_per_sec,
            round.sessions_bare_tweets_per_sec,
            round.task_tweets_per_sec,
            round.one_session_task_tweets_per_sec,
        ] {
            assert!(rate > 0.0, "{round:?}");
        }
        let ratio = round.task_tweets_per_sec / round.sessions_bare_tweets_per_sec;
        assert!((round.task_vs_bare - ratio).abs() < 1e-9);
    }
    assert!(r.task_peak_rss_mib > 0.0 && r.one_session_task_peak_rss_mib > 0.0);
    // Each round's tasks wrote their own gold tables, with every silver row, alike.
    for i in 0..2 {
        let gold = |name: &str| dir.join(format!("bench/{name}-{i}")).display().to_string();
        let cols = ["tweet_id", "mention", "predicted_score"];
        let default = rows_of(&gold("gold"), &cols).await;
        assert_eq!(default.len() as u64, silver_rows);
        let one = gold("gold-one-session");
        assert_eq!(rows_of(&one, &cols).await, default);
    }
    let text = r.to_string();
    assert!(
        text.contains("round 2") && text.contains("(tasks first)"),
        "{text}"
    );
}
