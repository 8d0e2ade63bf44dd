//! Bronze and quarantine tables with a long history: a run with nothing new does not replay
//! their logs from version 0 (the batch number comes from the application-transaction state,
//! the files taken and the batches quarantined from a summary of the history plus the commits
//! after it).

use std::time::{Duration, Instant};

use deltalake::kernel::Transaction;
use serde_json::json;
use tweetflow_delta::WriteControl;
use tweetflow_delta::commit::append_op;
use tweetflow_delta::table::{self, CommitRequest};
use tweetflow_tasks::medallion::ingest::{
    APP_ID, IngestParams, SchemaEvolution, bronze_schema, ingest, quarantine_schema,
};

use crate::common::*;

const COMMITS: i64 = 2000;

fn name(batch: i64) -> String {
    format!("tweets-{batch:06}.jsonl")
}

/// Writes `COMMITS` small ingest commits to bronze, each recording its batch and the file it
/// took (the rows themselves do not matter here); with `quarantined`, each batch also
/// quarantined a line, and the quarantine table holds `COMMITS` commits recording them.
async fn long_history(params: &IngestParams, quarantined: bool) {
    let loc = params.table.clone();
    let mut t = table::open_or_create(
        &loc,
        &bronze_schema(SchemaEvolution::Rescue).unwrap(),
        &[table::KEEP_LOG],
    )
    .await
    .unwrap();
    let qloc = params.quarantine_location();
    let mut q = match quarantined {
        true => Some(
            table::open_or_create(&qloc, &quarantine_schema().unwrap(), &[table::KEEP_LOG])
                .await
                .unwrap(),
        ),
        false => None,
    };
    for b in 1..=COMMITS {
        table::commit(
            &mut t,
            &loc,
            CommitRequest {
                actions: Vec::new(),
                operation: append_op(),
                txn: Some(Transaction::new(APP_ID, b)),
                info: json!({"app": APP_ID, "kind": "ingest", "batch": b, "files": [name(b)],
                    "rows": 1, "quarantined": u64::from(quarantined)}),
            },
        )
        .await
        .unwrap();
        if let Some(q) = q.as_mut() {
            table::commit(
                q,
                &qloc,
                CommitRequest {
                    actions: Vec::new(),
                    operation: append_op(),
                    txn: None,
                    info: json!({"app": APP_ID, "kind": "quarantine", "batches": [b],
                        "files": [name(b)], "rows": 1}),
                },
            )
            .await
            .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_run_after_2000_commits_reads_only_the_recent_log() {
    // Every batch quarantined a line: both logs are long.
    no_op_runs_stay_fast(true).await;
}

async fn no_op_runs_stay_fast(quarantined: bool) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line = b"{\"date\": \"Mon Apr 06 22:19:45 PDT 2009\", \"user\": \"u\", \"text\": \"@a hi\", \"sentiment\": \"positive\"}\n";
    for b in 1..=COMMITS {
        land(&d.join("landing"), &name(b), line);
    }
    let params = IngestParams::new(p(d, "landing"), p(d, "bronze"));
    let loc = params.table.clone();
    long_history(&params, quarantined).await;
    let none = WriteControl::default();
    // The first run after the history was written reads it once and keeps a summary (of the
    // quarantine's too: every batch's quarantine rows are there, so nothing is rebuilt).
    let first = ingest(&params, &none).await.unwrap();
    assert_eq!((first.files, first.batches), (0, 0), "{first:?}");
    let summaries = |path: &str| std::fs::read_dir(d.join(path)).map_or(0, |r| r.count());
    assert_eq!(summaries("bronze/_tweetflow/ingest"), 1);
    assert_eq!(
        summaries("bronze_quarantine/_tweetflow/quarantine"),
        usize::from(quarantined)
    );
    if quarantined {
        assert_eq!(
            first.quarantine_version, COMMITS,
            "no quarantine commit added"
        );
    }
    // Later no-op runs read the summaries and the commits after them.
    let started = Instant::now();
    let again = ingest(&params, &none).await.unwrap();
    let took = started.elapsed();
    eprintln!("no-op ingest run after {COMMITS} commits (quarantine: {quarantined}): {took:?}");
    assert_eq!((again.files, again.batches), (0, 0), "{again:?}");
    assert!(
        took < Duration::from_secs(1),
        "a no-op run after {COMMITS} commits took {took:?}"
    );
    // A new file is still taken exactly once, as batch 2001.
    land(&d.join("landing"), &name(COMMITS + 1), line);
    let new = ingest(&params, &none).await.unwrap();
    assert_eq!((new.files, new.rows, new.batches), (1, 1, 1), "{new:?}");
    let t = table::open_table(&loc).await.unwrap().unwrap();
    assert_eq!(
        table::app_version(&t, &loc, APP_ID).await.unwrap(),
        Some(COMMITS + 1)
    );
    let started = Instant::now();
    let last = ingest(&params, &none).await.unwrap();
    assert_eq!(last.files, 0);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
