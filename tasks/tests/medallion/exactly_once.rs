//! Exactly-once: crashes at every failpoint, then reruns, give the same tables as an
//! uninterrupted run, without duplicates; reruns without new input create no version.

use std::path::Path;

use tweetflow_delta::folder::Folder;
use tweetflow_delta::{StorageError, WriteControl};
use tweetflow_tasks::TableTaskError;
use tweetflow_tasks::medallion::aggregate::{AggregateParams, aggregate};
use tweetflow_tasks::medallion::clean::{CleanParams, clean};
use tweetflow_tasks::medallion::ingest::{IngestParams, ingest};
use tweetflow_tasks::medallion::replay::{ReplayParams, replay};

use crate::common::*;

pub(crate) const BRONZE_COLS: &[&str] = &[
    "source_file",
    "line",
    "date",
    "user",
    "text",
    "sentiment",
    "_rescued_data",
];
pub(crate) const BRONZE_Q_COLS: &[&str] = &["source_file", "line", "reason", "raw_line"];
pub(crate) const SILVER_COLS: &[&str] = &[
    "tweet_id",
    "timestamp",
    "user",
    "mention",
    "cleaned_text",
    "sentiment",
];
pub(crate) const SILVER_Q_COLS: &[&str] = &["tweet_id", "source_file", "line", "date", "reason"];

/// `root/name` (a local folder or an object-store prefix).
pub(crate) fn at(root: &str, name: &str) -> String {
    format!("{}/{name}", root.trim_end_matches('/'))
}

/// Landing: the test set in 10 files of 50 tweets, plus a file with bad lines and bad dates.
pub(crate) async fn prepare_landing(dir: &Path) {
    prepare_landing_at(&dir.display().to_string()).await
}

/// [`prepare_landing`] under `root`, a local folder or an object-store prefix.
pub(crate) async fn prepare_landing_at(root: &str) {
    let mut rp = ReplayParams::new(test_csv().display().to_string(), at(root, "landing"));
    rp.tweets_per_file = 50;
    replay(&rp, &WriteControl::default()).await.unwrap();
    let landing = Folder::open(&at(root, "landing")).unwrap();
    landing
        .write(BAD_FILE, BAD_LINES.as_bytes().to_vec())
        .await
        .unwrap();
}

/// The landing file of [`prepare_landing`] with bad lines.
pub(crate) const BAD_FILE: &str = "tweets-000005b.jsonl";

/// Lines for bronze's quarantine (not JSON, a missing field: lines 2 and 4) and silver's (a
/// bad date: line 3), beside a good one with an unknown field.
pub(crate) const BAD_LINES: &str = concat!(
    "{\"date\": \"Mon Apr 06 22:19:45 PDT 2009\", \"user\": \"u\", \"text\": \"@ok fine\", \"sentiment\": \"positive\", \"extra\": 1}\n",
    "not json\n",
    "{\"date\": \"Mon Apr 06 99:19:45 PDT 2009\", \"user\": \"u\", \"text\": \"@bad date\", \"sentiment\": \"negative\"}\n",
    "{\"date\": \"Mon Apr 06 22:19:45 PDT 2009\", \"user\": \"u\", \"sentiment\": \"negative\"}\n",
);

pub(crate) fn params(dir: &Path) -> (IngestParams, CleanParams, AggregateParams) {
    params_at(&dir.display().to_string())
}

/// [`params`] for tables and landing under `root`.
pub(crate) fn params_at(root: &str) -> (IngestParams, CleanParams, AggregateParams) {
    // Replay renames each file into place: no file is still being written.
    let mut ip = IngestParams::new(at(root, "landing"), at(root, "bronze")).with_settle_time("0s");
    ip.max_files_per_batch = 3;
    (
        ip,
        CleanParams::new(at(root, "bronze"), at(root, "silver")),
        AggregateParams::new(at(root, "silver"), at(root, "mentions")),
    )
}

pub(crate) struct Snapshot {
    bronze: Vec<Vec<String>>,
    bronze_q: Vec<Vec<String>>,
    silver: Vec<Vec<String>>,
    silver_q: Vec<Vec<String>>,
    mentions: Vec<Vec<String>>,
}

pub(crate) async fn snapshot(dir: &Path) -> Snapshot {
    snapshot_at(&dir.display().to_string()).await
}

/// [`snapshot`] of the tables under `root`.
pub(crate) async fn snapshot_at(root: &str) -> Snapshot {
    let (ip, cp, ap) = params_at(root);
    Snapshot {
        bronze: rows_of(&ip.table, BRONZE_COLS).await,
        bronze_q: rows_of(&ip.quarantine_location(), BRONZE_Q_COLS).await,
        silver: rows_of(&cp.table, SILVER_COLS).await,
        silver_q: rows_of(&cp.quarantine_location(), SILVER_Q_COLS).await,
        mentions: rows(&ap.table).await.1,
    }
}

pub(crate) fn assert_same(a: &Snapshot, b: &Snapshot, label: &str) {
    assert_eq!(a.bronze, b.bronze, "{label}: bronze differs");
    assert_eq!(a.bronze_q, b.bronze_q, "{label}: bronze quarantine differs");
    assert_eq!(a.silver, b.silver, "{label}: silver differs");
    assert_eq!(a.silver_q, b.silver_q, "{label}: silver quarantine differs");
    assert_eq!(a.mentions, b.mentions, "{label}: mention aggregates differ");
    assert_unique_rows(&b.bronze, &[0, 1], "bronze");
    assert_unique_rows(&b.bronze_q, &[0, 1], "bronze quarantine");
    assert_unique_rows(&b.silver, &[0, 3], "silver");
    assert_unique_rows(&b.silver_q, &[0], "silver quarantine");
}

/// An uninterrupted ingest → clean → aggregate over [`prepare_landing`]'s files: the tables
/// every crashed or concurrent variant must end up equal to.
pub(crate) async fn reference_run() -> Snapshot {
    let reference_dir = tempfile::tempdir().unwrap();
    let r = reference_dir.path();
    prepare_landing(r).await;
    let (ip, cp, ap) = params(r);
    let none = WriteControl::default();
    ingest(&ip, &none).await.unwrap();
    clean(&cp, &none).await.unwrap();
    aggregate(&ap, &none).await.unwrap();
    snapshot(r).await
}

/// Runs a step until it succeeds, crashing at `failpoint` each time it is reached.
pub(crate) async fn crash_until_done<F, Fut, T>(label: &str, mut step: F) -> usize
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, TableTaskError>>,
{
    for attempt in 0..50 {
        match step().await {
            Ok(_) => return attempt,
            Err(TableTaskError::Storage(StorageError::Failpoint(_))) => continue,
            Err(e) => panic!("{label}: unexpected error {e}"),
        }
    }
    panic!("{label}: never finished")
}

#[tokio::test]
async fn crashes_at_every_point_then_rerun_equal_an_uninterrupted_run() {
    let reference_dir = tempfile::tempdir().unwrap();
    let r = reference_dir.path();
    prepare_landing(r).await;
    let (ip, cp, ap) = params(r);
    let none = WriteControl::default();
    let s = ingest(&ip, &none).await.unwrap();
    assert_eq!(s.batches, 4, "11 files in batches of 3");
    assert_eq!(s.rows, 498 + 2);
    assert_eq!(s.quarantined, 2);
    let c = clean(&cp, &none).await.unwrap();
    assert_eq!(c.quarantined, 1);
    aggregate(&ap, &none).await.unwrap();
    let reference = snapshot(r).await;
    assert_eq!(reference.bronze.len(), 500);

    // Crash after writing Parquet, before any commit: the rerun redoes the batch.
    // Crash after the bronze commit (quarantine not committed) and after both: every batch.
    for (ingest_fp, clean_fp, agg_fp) in [
        (
            "ingest.after_write",
            "clean.after_write",
            "aggregate.after_write",
        ),
        (
            "ingest.after_commit",
            "clean.after_quarantine_commit",
            "aggregate.after_commit",
        ),
        (
            "ingest.after_quarantine_commit",
            "clean.after_commit",
            "aggregate.after_write",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        prepare_landing(d).await;
        let (ip, cp, ap) = params(d);
        let crash = WriteControl::with_failpoint(ingest_fp);
        if ingest_fp == "ingest.after_write" {
            // Never gets past the first batch: crash three times in a row, leaving orphan files.
            for _ in 0..3 {
                assert!(matches!(
                    ingest(&ip, &crash).await,
                    Err(TableTaskError::Storage(StorageError::Failpoint(_)))
                ));
            }
            assert_eq!(
                version(&ip.table).await,
                0,
                "only the table creation is committed"
            );
        } else {
            let crashes = crash_until_done(ingest_fp, || ingest(&ip, &crash)).await;
            assert!(
                crashes >= 4,
                "{ingest_fp} fired {crashes} times, expected once per batch"
            );
        }
        // Whatever is left after the crashes is finished by a clean run.
        ingest(&ip, &none).await.unwrap();
        let crash = WriteControl::with_failpoint(clean_fp);
        assert!(
            matches!(
                clean(&cp, &crash).await,
                Err(TableTaskError::Storage(StorageError::Failpoint(_)))
            ),
            "{clean_fp} never fired"
        );
        clean(&cp, &none).await.unwrap();
        let crash = WriteControl::with_failpoint(agg_fp);
        assert!(
            matches!(
                aggregate(&ap, &crash).await,
                Err(TableTaskError::Storage(StorageError::Failpoint(_)))
            ),
            "{agg_fp} never fired"
        );
        aggregate(&ap, &none).await.unwrap();
        let got = snapshot(d).await;
        assert_same(&reference, &got, ingest_fp);
    }
}

#[tokio::test]
async fn crash_between_batches_and_incremental_clean() {
    // Interleave: ingest a batch, clean it, crash the next ingest after its commit, clean again.
    let reference = reference_run().await;
    let none = WriteControl::default();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    prepare_landing(d).await;
    let (ip, cp, ap) = params(d);
    let crash_after_commit = WriteControl::with_failpoint("ingest.after_commit");
    let crash_after_write = WriteControl::with_failpoint("clean.after_write");
    let mut rounds = 0;
    loop {
        rounds += 1;
        let done = ingest(&ip, &crash_after_commit).await.is_ok();
        let _ = clean(&cp, &crash_after_write).await;
        clean(&cp, &none).await.unwrap();
        aggregate(&ap, &none).await.unwrap();
        if done {
            break;
        }
        assert!(rounds < 20);
    }
    assert!(rounds >= 4, "one crash per batch");
    let got = snapshot(d).await;
    assert_same(&reference, &got, "interleaved");
}

#[tokio::test]
async fn reruns_without_new_input_create_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    prepare_landing(d).await;
    let (ip, cp, ap) = params(d);
    let none = WriteControl::default();
    ingest(&ip, &none).await.unwrap();
    clean(&cp, &none).await.unwrap();
    aggregate(&ap, &none).await.unwrap();
    let tables = [
        ip.table.clone(),
        ip.quarantine_location(),
        cp.table.clone(),
        cp.quarantine_location(),
        ap.table.clone(),
    ];
    let mut before = Vec::new();
    for t in &tables {
        before.push(version(t).await);
    }
    let s = ingest(&ip, &none).await.unwrap();
    assert_eq!((s.rows, s.files, s.batches), (0, 0, 0));
    let c = clean(&cp, &none).await.unwrap();
    assert_eq!(c.rows, 0);
    let a = aggregate(&ap, &none).await.unwrap();
    assert!(!a.recomputed);
    let mut after = Vec::new();
    for t in &tables {
        after.push(version(t).await);
    }
    assert_eq!(
        before, after,
        "a rerun without new input made a new version"
    );

    // New landing files: ingest and clean take only them; aggregate recomputes without double counting.
    let before_bronze = rows_of(&ip.table, BRONZE_COLS).await.len();
    let mut rp = ReplayParams::new(test_csv().display().to_string(), p(d, "landing"));
    rp.tweets_per_file = 100;
    rp.prefix = "more".into();
    rp.limit = Some(150);
    replay(&rp, &none).await.unwrap();
    let s = ingest(&ip, &none).await.unwrap();
    assert_eq!((s.rows, s.files), (150, 2));
    assert_eq!(
        rows_of(&ip.table, BRONZE_COLS).await.len(),
        before_bronze + 150
    );
    clean(&cp, &none).await.unwrap();
    let a = aggregate(&ap, &none).await.unwrap();
    assert!(a.recomputed);
    let silver_rows = rows_of(&cp.table, &["mention"]).await.len() as i64;
    let totals: i64 = rows_of(&ap.table, &["total"])
        .await
        .iter()
        .map(|r| r[0].parse::<i64>().unwrap())
        .sum();
    assert_eq!(
        totals, silver_rows,
        "aggregate totals must equal the silver rows (no double counting)"
    );
}

#[tokio::test]
async fn empty_and_missing_landing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("landing")).unwrap();
    let (ip, cp, _) = params(d);
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.files, s.table_version), (0, 0, -1));
    assert_eq!(
        version(&ip.table).await,
        -1,
        "an empty landing folder creates no Delta version"
    );
    // A temporary file (replay writes `.name.tmp`) is never taken.
    land(
        &d.join("landing"),
        ".tweets-000001.jsonl.tmp",
        b"{\"half\": ",
    );
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!(s.files, 0);
    let err = clean(&cp, &WriteControl::default()).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("does not exist"), "{err}");

    let missing = IngestParams::new(p(d, "nope"), p(d, "bronze"));
    let err = ingest(&missing, &WriteControl::default())
        .await
        .unwrap_err();
    assert!(matches!(err, TableTaskError::MissingInput { .. }), "{err}");
    assert!(!err.is_retryable());
    let task_err: tweetflow_engine::TaskError = err.into();
    assert!(!task_err.is_retryable());
    assert!(
        task_err.message.contains("landing folder"),
        "{}",
        task_err.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_neither_duplicate_nor_lose_rows() {
    let reference = reference_run().await;
    let none = WriteControl::default();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    prepare_landing(d).await;
    let (ip, cp, ap) = params(d);
    // Two ingests race batch by batch (one file per batch for many commits), then two cleans.
    let mut ip1 = ip.clone();
    ip1.max_files_per_batch = 1;
    let ip2 = ip1.clone();
    let (a, b) = tokio::join!(
        tokio::spawn(async move { ingest(&ip1, &WriteControl::default()).await }),
        tokio::spawn(async move { ingest(&ip2, &WriteControl::default()).await }),
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a.files + b.files, 11, "every file taken once: {a:?} {b:?}");
    assert_eq!(a.rows + b.rows, 500);
    let (cp1, cp2) = (cp.clone(), cp.clone());
    let (a, b) = tokio::join!(
        tokio::spawn(async move { clean(&cp1, &WriteControl::default()).await }),
        tokio::spawn(async move { clean(&cp2, &WriteControl::default()).await }),
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a.tweets + b.tweets, 500, "{a:?} {b:?}");
    aggregate(&ap, &none).await.unwrap();
    assert_same(&reference, &snapshot(d).await, "concurrent runs");
}
