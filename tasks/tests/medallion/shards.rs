//! `ingest` and `clean` split into shards: the tables do not depend on the shard count, a
//! crashed shard's re-run neither duplicates nor drops a row, and changing the count between
//! runs stays exactly-once.

use std::ops::Range;
use std::path::Path;

use tweetflow_delta::{StorageError, WriteControl};
use tweetflow_engine::task::Shard;
use tweetflow_tasks::TableTaskError;
use tweetflow_tasks::medallion::aggregate::aggregate;
use tweetflow_tasks::medallion::clean::{CleanParams, CleanSummary, clean_shard};
use tweetflow_tasks::medallion::ingest::{IngestParams, IngestSummary, ingest_shard};
use tweetflow_tasks::medallion::replay::{ReplayParams, replay};
use tweetflow_tasks::medallion::tweet_id;
use tweetflow_tasks::shard_of;

use crate::common::*;
use crate::exactly_once::{
    BAD_FILE, BAD_LINES, assert_same, crash_until_done, params, prepare_landing, reference_run,
    snapshot,
};

fn shard(index: u32, count: u32) -> Option<Shard> {
    Some(Shard { index, count })
}

/// Runs shards `indexes` of `count` of ingest side by side.
async fn ingest_set(
    ip: &IngestParams,
    count: u32,
    indexes: Range<u32>,
) -> Result<Vec<IngestSummary>, String> {
    let runs = indexes.map(|index| {
        let ip = ip.clone();
        tokio::spawn(async move {
            ingest_shard(&ip, &WriteControl::default(), shard(index, count)).await
        })
    });
    let mut out = Vec::new();
    for run in futures::future::join_all(runs).await {
        out.push(run.expect("ingest shard task").map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Runs shards `indexes` of `count` of clean side by side.
async fn clean_set(
    cp: &CleanParams,
    count: u32,
    indexes: Range<u32>,
) -> Result<Vec<CleanSummary>, String> {
    let runs = indexes.map(|index| {
        let cp = cp.clone();
        tokio::spawn(async move {
            clean_shard(&cp, &WriteControl::default(), shard(index, count)).await
        })
    });
    let mut out = Vec::new();
    for run in futures::future::join_all(runs).await {
        out.push(run.expect("clean shard task").map_err(|e| e.to_string())?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_clean_give_the_same_tables_for_1_2_and_4_shards() {
    let reference = reference_run().await;
    for count in [1, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        prepare_landing(d).await;
        let (ip, cp, ap) = params(d);
        let ingested = ingest_set(&ip, count, 0..count).await.unwrap();
        assert_eq!(ingested.iter().map(|s| s.files).sum::<u64>(), 11);
        assert_eq!(ingested.iter().map(|s| s.rows).sum::<u64>(), 500);
        if count > 1 {
            // Each shard took only the files whose names hash to it.
            assert!(
                ingested.iter().filter(|s| s.files > 0).count() > 1,
                "{ingested:?}"
            );
        }
        let cleaned = clean_set(&cp, count, 0..count).await.unwrap();
        assert_eq!(cleaned.iter().map(|s| s.tweets).sum::<u64>(), 500);
        assert_eq!(cleaned.iter().map(|s| s.quarantined).sum::<u64>(), 1);
        aggregate(&ap, &WriteControl::default()).await.unwrap();
        assert_same(&reference, &snapshot(d).await, &format!("{count} shards"));
        // A shard run again without new input commits nothing.
        let (bronze, silver) = (version(&ip.table).await, version(&cp.table).await);
        ingest_set(&ip, count, 0..count).await.unwrap();
        clean_set(&cp, count, 0..count).await.unwrap();
        assert_eq!(version(&ip.table).await, bronze);
        assert_eq!(version(&cp.table).await, silver);
    }
}

#[tokio::test]
async fn a_crashed_shard_run_again_neither_duplicates_nor_drops_a_row() {
    let reference = reference_run().await;
    let none = WriteControl::default();
    // The shard that crashes holds the quarantined lines, so that the quarantine commits are
    // among what it leaves undone.
    let bronze_owner = shard_of(BAD_FILE, 2);
    let silver_owner = shard_of(&tweet_id(BAD_FILE, 3), 2);
    for (ingest_fp, clean_fp) in [
        ("ingest.after_write", "clean.after_write"),
        ("ingest.after_commit", "clean.after_quarantine_commit"),
        ("ingest.after_quarantine_commit", "clean.after_commit"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        prepare_landing(d).await;
        let (mut ip, cp, ap) = params(d);
        ip.max_files_per_batch = 2;
        let crash = WriteControl::with_failpoint(ingest_fp);
        let crashed = ingest_shard(&ip, &crash, shard(bronze_owner, 2)).await;
        assert!(
            matches!(
                crashed,
                Err(TableTaskError::Storage(StorageError::Failpoint(_)))
            ),
            "{ingest_fp}: {crashed:?}"
        );
        ingest_shard(&ip, &none, shard(1 - bronze_owner, 2))
            .await
            .unwrap();
        if ingest_fp != "ingest.after_write" {
            crash_until_done(ingest_fp, || {
                ingest_shard(&ip, &crash, shard(bronze_owner, 2))
            })
            .await;
        }
        ingest_shard(&ip, &none, shard(bronze_owner, 2))
            .await
            .unwrap();

        let crash = WriteControl::with_failpoint(clean_fp);
        let crashed = clean_shard(&cp, &crash, shard(silver_owner, 2)).await;
        assert!(
            matches!(
                crashed,
                Err(TableTaskError::Storage(StorageError::Failpoint(_)))
            ),
            "{clean_fp}: {crashed:?}"
        );
        clean_shard(&cp, &none, shard(1 - silver_owner, 2))
            .await
            .unwrap();
        clean_shard(&cp, &none, shard(silver_owner, 2))
            .await
            .unwrap();
        aggregate(&ap, &none).await.unwrap();
        assert_same(&reference, &snapshot(d).await, ingest_fp);
    }
}

/// Lands 100 more test tweets (4 files named `<prefix>-...`) and a file of bad lines.
async fn land_round(dir: &Path, prefix: &str, seed: u64) {
    let mut rp = ReplayParams::new(test_csv().display().to_string(), p(dir, "landing"));
    rp.tweets_per_file = 25;
    rp.limit = Some(100);
    rp.prefix = prefix.into();
    rp.seed = Some(seed);
    replay(&rp, &WriteControl::default()).await.unwrap();
    land(
        &dir.join("landing"),
        &format!("{prefix}-bad.jsonl"),
        BAD_LINES.as_bytes(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_shard_count_between_runs_stays_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut ip, cp, ap) = params(d);
    ip.max_files_per_batch = 2;
    let both = |count: u32| {
        let (ip, cp) = (ip.clone(), cp.clone());
        async move {
            ingest_set(&ip, count, 0..count).await.unwrap();
            clean_set(&cp, count, 0..count).await.unwrap();
        }
    };
    land_round(d, "a", 1).await;
    both(2).await;
    land_round(d, "b", 2).await;
    both(3).await;
    land_round(d, "c", 3).await;
    both(1).await;

    // Half of a set of 4: ingest takes the rest with another count at once (every commit
    // lists its files); clean refuses another count until the set is even.
    land_round(d, "d", 4).await;
    ingest_set(&ip, 4, 0..2).await.unwrap();
    ingest_set(&ip, 2, 0..2).await.unwrap();
    clean_set(&cp, 4, 0..2).await.unwrap();
    let refused = clean_set(&cp, 2, 0..2).await.expect_err("an uneven set");
    assert!(refused.contains("shards: 4"), "{refused}");
    clean_set(&cp, 4, 2..4).await.unwrap();

    // Every shard of a set stops between its quarantine and its silver commit: silver is even
    // but the quarantine table went further, so another count is refused until the set ran.
    land_round(d, "e", 5).await;
    ingest_set(&ip, 1, 0..1).await.unwrap();
    for index in 0..2 {
        let crash = WriteControl::with_failpoint("clean.after_quarantine_commit");
        assert!(clean_shard(&cp, &crash, shard(index, 2)).await.is_err());
    }
    let refused = clean_set(&cp, 3, 0..3).await.expect_err("quarantine ahead");
    assert!(
        refused.contains("quarantine") && refused.contains("shards: 2"),
        "{refused}"
    );
    clean_set(&cp, 2, 0..2).await.unwrap();
    land_round(d, "f", 6).await;
    both(4).await;
    aggregate(&ap, &WriteControl::default()).await.unwrap();

    // The same landing files through one unsharded run.
    let reference = tempfile::tempdir().unwrap();
    let r = reference.path();
    std::fs::create_dir(r.join("landing")).unwrap();
    for entry in std::fs::read_dir(d.join("landing")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, r.join("landing").join(path.file_name().unwrap())).unwrap();
    }
    let (rip, rcp, rap) = params(r);
    let none = WriteControl::default();
    ingest_shard(&rip, &none, None).await.unwrap();
    clean_shard(&rcp, &none, None).await.unwrap();
    aggregate(&rap, &none).await.unwrap();
    let want = snapshot(r).await;
    assert_same(
        &want,
        &snapshot(d).await,
        "shard counts 2, 3, 1, 4, 2, 1/2, 4",
    );
}
