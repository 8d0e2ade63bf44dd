//! The reliability suite's short form (the long form is `make reliability`): `kill -9` of the
//! engine then `--resume`, the scheduler daemon killed and restarted on a busy CPU, runs at
//! once on the same tables, disk full, MLflow down/slow/500/429, the daemon killed during a
//! run (the restarted daemon resumes it) and a manual run's engine killed (`runs recover`);
//! every row survived with no row lost or duplicated.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use tweetflow_reliability::{Config, Tweetflow, render, run_suite};

#[test]
fn short_reliability_suite_survives_every_fault_without_losing_or_duplicating_rows() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let tf = Tweetflow {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_tweetflow")),
    };
    let rows = run_suite(&tf, Config::short(seed)).expect("the suite runs");
    let table = render(&rows);
    println!("{table}");
    assert_eq!(rows.len(), 11, "one row per fault or load:\n{table}");
    for r in &rows {
        // The run-store disk-full case needs root for its small filesystem.
        if !r.note.starts_with("not run") {
            assert!(r.injected > 0, "{} was never injected:\n{table}", r.fault);
        }
        assert!(r.passed(), "{} failed (seed {seed}):\n{table}", r.fault);
    }
}
