//! Listing the newest runs of a large store reads only those runs.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::time::Instant;

use tweetflow_engine::RunStore;

fn write_runs(root: &Path, count: usize) {
    for i in 0..count {
        let secs = i as i64;
        let t = chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        let run_id = format!("{}000Z-{:06x}", t.format("%Y%m%dT%H%M%S"), i);
        let dir = root.join(&run_id);
        fs::create_dir_all(&dir).unwrap();
        let record = serde_json::json!({
            "run_id": run_id, "pipeline": "p", "pipeline_file": "p.yaml", "spec_hash": "h",
            "params": {}, "status": "succeeded", "created_at": t, "ended_at": t,
            "task_order": [], "tasks": {}, "last_seq": 0,
        });
        fs::write(dir.join("run.json"), record.to_string()).unwrap();
    }
    fs::create_dir_all(root.join(".cache")).unwrap();
}

#[test]
fn list_newest_returns_the_newest_runs_first() {
    let dir = tempfile::tempdir().unwrap();
    write_runs(dir.path(), 120);
    for name in ["29990101T000000000Z-000001", "29990101T000000000Z-000002"] {
        fs::create_dir_all(dir.path().join(name)).unwrap();
    }
    let store = RunStore::new(dir.path());
    let newest: Vec<String> = store
        .list_newest(50)
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().run_id)
        .collect();
    assert_eq!(newest.len(), 50);
    let all = store.list().unwrap();
    let expected: Vec<String> = all
        .into_iter()
        .take(50)
        .map(|r| r.unwrap().run_id)
        .collect();
    assert_eq!(newest, expected);
    assert_eq!(store.list_newest(0).unwrap().len(), 120);
}

/// `TWEETFLOW_LIST_BENCH_RUNS=100000 cargo test --release -p tweetflow-engine --test
/// store_list -- --ignored --nocapture`; with `TWEETFLOW_LIST_BENCH_DIR` the store is written
/// there once and reused (removing 100,000 directories takes long).
#[test]
#[ignore]
fn list_newest_on_a_large_store() {
    let count: usize = std::env::var("TWEETFLOW_LIST_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let temp = tempfile::tempdir().unwrap();
    let root = std::env::var_os("TWEETFLOW_LIST_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    if !root.join(".cache").is_dir() {
        let started = Instant::now();
        write_runs(&root, count);
        eprintln!("wrote {count} runs in {:.2?}", started.elapsed());
    }
    let store = RunStore::new(&root);
    for _ in 0..3 {
        let started = Instant::now();
        let runs = store.list_newest(50).unwrap();
        eprintln!("newest 50 of {count}: {:.3?}", started.elapsed());
        assert_eq!(runs.len(), 50);
    }
}

/// `TWEETFLOW_LIST_BENCH_RUNS=100000 cargo test --release -p tweetflow-engine --test
/// store_list prune -- --ignored --nocapture`: a dry-run prune (every record read) and a prune
/// keeping the newest 50 of a store of `succeeded` runs (each a `run.json` alone).
#[test]
#[ignore]
fn prune_on_a_large_store() {
    use tweetflow_engine::spec::RetentionPolicy;
    use tweetflow_engine::store::PruneOptions;
    let count: usize = std::env::var("TWEETFLOW_LIST_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let temp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    write_runs(temp.path(), count);
    eprintln!("wrote {count} runs in {:.2?}", started.elapsed());
    let store = RunStore::new(temp.path());
    let options = PruneOptions {
        default_policy: Some(RetentionPolicy {
            keep_last: Some(50),
            ..Default::default()
        }),
        ..PruneOptions::default()
    };
    for dry_run in [true, false] {
        let started = Instant::now();
        let report = store
            .prune(&PruneOptions {
                dry_run,
                ..options.clone()
            })
            .unwrap();
        eprintln!(
            "prune of {count} runs (dry run: {dry_run}): {} removed, {} bytes, {:.2?}",
            report.removed.len(),
            report.bytes_freed(),
            started.elapsed()
        );
        assert_eq!(report.removed.len(), count.saturating_sub(50));
    }
    let started = Instant::now();
    let report = store.prune(&options).unwrap();
    eprintln!("prune of the 50 left: {:.2?}", started.elapsed());
    assert!(report.removed.is_empty());
    assert_eq!(store.list_newest(0).unwrap().len(), count.min(50));
}
