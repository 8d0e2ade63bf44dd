//! Real crashes: a child process (this test binary, running `crash_helper`) aborts at a
//! failpoint (`…:abort` calls `std::process::abort`), so nothing is cleaned up or flushed;
//! the parent then reruns the steps and compares with an uninterrupted run.

use std::path::Path;
use std::process::Command;

use tweetflow_delta::WriteControl;
use tweetflow_tasks::medallion::aggregate::aggregate;
use tweetflow_tasks::medallion::clean::clean;
use tweetflow_tasks::medallion::ingest::ingest;

use crate::exactly_once::{assert_same, params, prepare_landing, reference_run, snapshot};

const DIR_ENV: &str = "TWEETFLOW_CRASH_TEST_DIR";
const STEP_ENV: &str = "TWEETFLOW_CRASH_TEST_STEP";

/// Helper process for `aborted_processes_then_rerun_equal_an_uninterrupted_run`: runs one step
/// with the failpoint from `TWEETFLOW_DELTA_FAILPOINT`. Not a test by itself (ignored).
#[tokio::test]
#[ignore = "helper process of real_crash::aborted_processes_then_rerun_equal_an_uninterrupted_run"]
async fn crash_helper() {
    let dir = std::env::var(DIR_ENV).expect("TWEETFLOW_CRASH_TEST_DIR");
    let step = std::env::var(STEP_ENV).expect("TWEETFLOW_CRASH_TEST_STEP");
    let opts = WriteControl {
        failpoint: std::env::var(tweetflow_delta::FAILPOINT_ENV).ok(),
        cancel: None,
    };
    let (ip, cp, ap) = params(Path::new(&dir));
    let result = match step.as_str() {
        "ingest" => ingest(&ip, &opts).await.map(|_| ()),
        "clean" => clean(&cp, &opts).await.map(|_| ()),
        "aggregate" => aggregate(&ap, &opts).await.map(|_| ()),
        other => panic!("unknown step {other}"),
    };
    result.expect("the step should abort before returning");
}

fn run_child_until_abort(dir: &Path, step: &str, failpoint: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "real_crash::crash_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .env(STEP_ENV, step)
        .env(tweetflow_delta::FAILPOINT_ENV, format!("{failpoint}:abort"))
        .output()
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(6),
            "{step} with {failpoint} should die by SIGABRT; status {:?}, stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    #[cfg(not(unix))]
    assert!(!out.status.success());
}

#[tokio::test]
async fn aborted_processes_then_rerun_equal_an_uninterrupted_run() {
    let reference = reference_run().await;
    let none = WriteControl::default();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    prepare_landing(d).await;
    // Batch 1 committed to bronze, process killed before the quarantine commit.
    run_child_until_abort(d, "ingest", "ingest.after_commit");
    // Batch 2 written as Parquet, killed before its commit.
    run_child_until_abort(d, "ingest", "ingest.after_write");
    // Batch 2 committed with its quarantine, killed before returning.
    run_child_until_abort(d, "ingest", "ingest.after_quarantine_commit");
    run_child_until_abort(d, "clean", "clean.after_quarantine_commit");
    run_child_until_abort(d, "clean", "clean.after_write");
    let (ip, cp, ap) = params(d);
    ingest(&ip, &none).await.unwrap();
    run_child_until_abort(d, "clean", "clean.after_commit");
    clean(&cp, &none).await.unwrap();
    run_child_until_abort(d, "aggregate", "aggregate.after_write");
    aggregate(&ap, &none).await.unwrap();
    assert_same(&reference, &snapshot(d).await, "aborted processes");
}
