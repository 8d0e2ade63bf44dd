//! `infer` split into shards: gold does not depend on the shard count, a shard re-run adds
//! nothing, and changing the count between runs stays exactly-once (an uneven set of shards
//! must be finished before the count changes).

use std::path::Path;

use tweetflow_delta::WriteControl;
use tweetflow_engine::task::Shard;
use tweetflow_tasks::infer::{InferParams, LoadedModel, infer_shard};

use crate::common::*;

const GOLD_COLS: &[&str] = &[
    "tweet_id",
    "timestamp",
    "mention",
    "cleaned_text",
    "sentiment",
    "predicted_sentiment",
    "predicted_score",
    "predicted_sentiment_id",
    "model_version",
];

fn params(dir: &Path, gold: &str) -> InferParams {
    let mut ip = InferParams::new(
        p(dir, "silver"),
        p(dir, gold),
        tiny_model().display().to_string(),
    );
    ip.batch_size = 16;
    ip.threads = Some(1);
    ip
}

async fn run_shard(ip: &InferParams, shard: Option<Shard>) -> Result<u64, String> {
    infer_shard(
        ip,
        &WriteControl::default(),
        &mut LoadedModel::default(),
        shard,
    )
    .await
    .map(|s| s.rows)
    .map_err(|e| e.to_string())
}

/// Runs shards `indexes` of `count` one after the other (all of them: `0..count`).
async fn run(ip: &InferParams, count: u32, indexes: std::ops::Range<u32>) {
    for index in indexes {
        let shard = (count > 1).then_some(Shard { index, count });
        run_shard(ip, shard).await.expect("infer shard");
    }
}

async fn gold(ip: &InferParams) -> Vec<Vec<String>> {
    let mut rows = rows_of(&ip.table, GOLD_COLS).await;
    rows.sort();
    assert_unique_rows(&rows, &[0, 2], "gold");
    rows
}

#[tokio::test]
async fn gold_is_identical_row_for_row_for_1_2_and_4_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (round, prefix) in ["a", "b"].iter().enumerate() {
        add_silver(dir, prefix, 400, Some(round as u64)).await;
        for n in [1, 2, 4] {
            run(&params(dir, &format!("gold{n}")), n, 0..n).await;
        }
        let one = gold(&params(dir, "gold1")).await;
        assert!(one.len() > 50, "{}", one.len());
        assert_eq!(
            gold(&params(dir, "gold2")).await,
            one,
            "round {round}: 2 shards"
        );
        assert_eq!(
            gold(&params(dir, "gold4")).await,
            one,
            "round {round}: 4 shards"
        );
    }
    // A shard run again without new silver data adds nothing.
    let ip = params(dir, "gold4");
    let before = version(&ip.table).await;
    assert_eq!(
        run_shard(&ip, Some(Shard { index: 3, count: 4 })).await,
        Ok(0)
    );
    assert_eq!(version(&ip.table).await, before);
}

#[tokio::test]
async fn changing_the_shard_count_between_runs_stays_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ip = params(dir, "gold");
    add_silver(dir, "a", 100, Some(1)).await;
    run(&ip, 2, 0..2).await;
    add_silver(dir, "b", 100, Some(2)).await;
    run(&ip, 3, 0..3).await;
    add_silver(dir, "c", 100, Some(3)).await;
    run(&ip, 1, 0..1).await;
    add_silver(dir, "d", 100, Some(4)).await;
    // Only half of a set of 4 shards runs: the count cannot change until the rest has.
    run(&ip, 4, 0..2).await;
    let refused = run_shard(&ip, Some(Shard { index: 0, count: 2 })).await;
    let message = refused.expect_err("an uneven set of shards blocks a new count");
    assert!(message.contains("shards: 4"), "{message}");
    assert_eq!(
        run_shard(&ip, None)
            .await
            .map_err(|e| e.contains("shards: 4")),
        Err(true)
    );
    run(&ip, 4, 2..4).await;
    add_silver(dir, "e", 100, Some(5)).await;
    run(&ip, 2, 0..2).await;

    // Every silver row exactly once, as one unsharded run over everything gives it.
    let reference = params(dir, "reference");
    run(&reference, 1, 0..1).await;
    assert_eq!(gold(&ip).await, gold(&reference).await);
}
