//! Streaming mode end to end on real Delta tables and the ONNX model: files land while
//! `run --watch` is running; bronze, silver and gold must end with every tweet exactly once
//! and equal a single batch run over the same files.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Sandbox, wait_for};
use tweetflow_test_support::{test_csv, tiny_model};

fn pipeline() -> String {
    let model = tiny_model();
    format!(
        r#"
name: streaming_medallion
tasks:
  ingest: {{ type: ingest, with: {{ source: landing, table: tables/bronze, max_files_per_batch: 3, settle_time: 0s }} }}
  clean: {{ type: clean, depends_on: [ingest], with: {{ input: tables/bronze, table: tables/silver }} }}
  infer: {{ type: infer, depends_on: [clean], with: {{ input: tables/silver, table: tables/gold, model: "{}", batch_size: 8, threads: 1 }} }}
"#,
        model.display()
    )
}

/// Sorted `tweet_id|mention|extra` rows of a Delta table, read by the Python `deltalake`
/// package (another Delta reader).
fn rows(sb: &Sandbox, table: &str, extra: &str) -> Vec<String> {
    let mut columns = vec!["tweet_id", "mention"];
    if !extra.is_empty() {
        columns.push(extra);
    }
    common::python_delta_rows(sb.path().join(table).to_str().unwrap(), &columns)
}

fn bronze_count(sb: &Sandbox) -> usize {
    let out = sb.run(&["table", "show", "tables/bronze"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("rows")
                .map(|r| r.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

fn staged(sb: &Sandbox) -> Vec<PathBuf> {
    let csv = test_csv();
    let out = sb.run(&[
        "replay",
        "--csv",
        csv.to_str().unwrap(),
        "--landing",
        "staging",
        "--tweets-per-file",
        "50",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(sb.path().join("staging"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn watch_mode_processes_landing_files_exactly_once() {
    // Streaming: files land in three waves while --watch runs.
    let live = Sandbox::new();
    live.write("p.yaml", &pipeline());
    std::fs::create_dir(live.path().join("landing")).unwrap();
    let files = staged(&live);
    assert_eq!(files.len(), 10, "498 test tweets in files of 50");
    let child = live.spawn(&[
        "run",
        "p.yaml",
        "--watch",
        "--interval",
        "1s",
        "--until-idle",
        "4s",
        "--json",
    ]);
    let mut landed = 0;
    for wave in files.chunks(4) {
        for f in wave {
            std::fs::rename(f, live.path().join("landing").join(f.file_name().unwrap())).unwrap();
            landed += 1;
        }
        let expected = landed * 50;
        assert!(
            wait_for(Duration::from_secs(60), || bronze_count(&live)
                >= expected.min(498)),
            "wave ending with file {landed} never reached bronze"
        );
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let batches: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        batches.len() >= 3,
        "one batch per wave at least, got {}",
        batches.len()
    );
    assert_eq!(
        bronze_count(&live),
        498,
        "every landed tweet once in bronze"
    );

    // The same files in one batch run.
    let batch = Sandbox::new();
    batch.write("p.yaml", &pipeline());
    std::fs::create_dir(batch.path().join("landing")).unwrap();
    for f in staged(&batch) {
        std::fs::rename(
            &f,
            batch.path().join("landing").join(f.file_name().unwrap()),
        )
        .unwrap();
    }
    let out = batch.run(&["run", "p.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let silver = rows(&live, "tables/silver", "");
    let gold = rows(&live, "tables/gold", "predicted_sentiment");
    let mut unique = silver.clone();
    unique.dedup();
    assert_eq!(
        unique.len(),
        silver.len(),
        "no (tweet, mention) twice in silver"
    );
    assert!(!silver.is_empty());
    assert_eq!(
        silver,
        rows(&batch, "tables/silver", ""),
        "streamed silver equals the batch run's"
    );
    assert_eq!(
        gold,
        rows(&batch, "tables/gold", "predicted_sentiment"),
        "streamed gold equals the batch run's"
    );
    assert_eq!(gold.len(), silver.len(), "one gold row per silver row");
}

/// The `tweetflow` process dies without cleanup (abort, as `kill -9`) inside `infer`, after
/// writing gold files and after committing them; `--resume` then finishes the run, and the
/// tables equal an uninterrupted run's.
#[test]
fn infer_killed_mid_run_then_resumed_equals_an_uninterrupted_run() {
    let reference = Sandbox::new();
    reference.write("p.yaml", &pipeline());
    std::fs::create_dir(reference.path().join("landing")).unwrap();
    for f in staged(&reference) {
        std::fs::rename(
            &f,
            reference
                .path()
                .join("landing")
                .join(f.file_name().unwrap()),
        )
        .unwrap();
    }
    let out = reference.run(&["run", "p.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want_gold = rows(&reference, "tables/gold", "predicted_sentiment");
    assert!(!want_gold.is_empty());

    for failpoint in ["infer.after_write", "infer.after_commit"] {
        let sb = Sandbox::new();
        sb.write("p.yaml", &pipeline());
        std::fs::create_dir(sb.path().join("landing")).unwrap();
        for f in staged(&sb) {
            std::fs::rename(&f, sb.path().join("landing").join(f.file_name().unwrap())).unwrap();
        }
        let crashed = sb
            .cmd(&["run", "p.yaml"])
            .env("TWEETFLOW_DELTA_FAILPOINT", format!("{failpoint}:abort"))
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            crashed.status.signal(),
            Some(6),
            "{failpoint}: the process should die by SIGABRT"
        );
        let run_id = sb.run_ids().pop().expect("the crashed run is recorded");
        let resumed = sb.run(&["run", "--resume", &run_id, "--json"]);
        assert!(
            resumed.status.success(),
            "{failpoint}: {}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        let rec: serde_json::Value = serde_json::from_slice(&resumed.stdout).unwrap();
        assert_eq!(
            rec["tasks"]["ingest"]["attempts"].as_array().unwrap().len(),
            1,
            "finished tasks are not rerun"
        );
        assert_eq!(
            rows(&sb, "tables/gold", "predicted_sentiment"),
            want_gold,
            "{failpoint}: gold after the crash and resume"
        );
        assert_eq!(
            rows(&sb, "tables/silver", ""),
            rows(&reference, "tables/silver", "")
        );
    }
}

/// A clean first run creates every table without an error line in its log (creating a table
/// must not go through a failed load of a log that does not exist yet).
#[test]
fn a_first_run_creating_every_table_logs_no_error() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &pipeline());
    let csv = test_csv();
    let out = sb.run(&[
        "replay",
        "--csv",
        csv.to_str().unwrap(),
        "--landing",
        "landing",
        "--limit",
        "120",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sb.run(&["run", "p.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let ids = sb.run_ids();
    assert_eq!(ids.len(), 1);
    let log = std::fs::read_to_string(sb.runs().join(&ids[0]).join("log.jsonl")).unwrap();
    assert!(log.lines().count() > 5, "the run log is empty:\n{log}");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(r#""level":"ERROR""#))
        .collect();
    assert!(
        errors.is_empty(),
        "error lines in a clean run:\n{}",
        errors.join("\n")
    );
    assert!(!stderr.contains("ERROR"), "{stderr}");
    for table in ["tables/bronze", "tables/silver", "tables/gold"] {
        assert!(
            sb.path().join(table).join("_delta_log").is_dir(),
            "{table} was not created"
        );
    }
}

/// `runs prune` asks each task type whether a cache entry's output is still there: once new
/// tweets move silver on, the entry of the old `clean` output (silver at its old version) is
/// removed as "output gone"; the current entries stay and still hit.
#[test]
fn runs_prune_removes_cache_entries_whose_table_moved_on() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: cached_medallion\ndefaults: { cache: { enabled: true } }\ntasks:\n  ingest: { type: ingest, with: { source: landing, table: tables/bronze, settle_time: 0s } }\n  clean: { type: clean, depends_on: [ingest], with: { input: tables/bronze, table: tables/silver } }\n",
    );
    std::fs::create_dir(sb.path().join("landing")).unwrap();
    let files = staged(&sb);
    let land = |f: &PathBuf| {
        std::fs::rename(f, sb.path().join("landing").join(f.file_name().unwrap())).unwrap()
    };
    land(&files[0]);
    assert_eq!(sb.run_json(&["p.yaml"]).0, 0);
    let entries = || std::fs::read_dir(sb.runs().join(".cache")).unwrap().count();
    assert_eq!(entries(), 2, "one entry per task");
    let nothing = sb.run(&["runs", "prune", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&nothing.stdout).unwrap();
    assert_eq!(report["removed_entries"], serde_json::json!([]), "{report}");

    // New tweets: ingest reruns (same key, entry replaced), clean gets a new key (bronze's
    // version changed) and its old entry names silver at a version that is no longer current.
    land(&files[1]);
    assert_eq!(sb.run_json(&["p.yaml"]).0, 0);
    assert_eq!(entries(), 3);
    let out = sb.run(&["runs", "prune"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("(output gone)") && text.contains("removed 0 runs and 1 cache entries"),
        "{text}"
    );
    assert_eq!(entries(), 2);

    // What is left still hits.
    let (code, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(code, 0);
    assert_eq!(common::status(&rec, "ingest"), "cached", "{rec}");
    assert_eq!(common::status(&rec, "clean"), "cached", "{rec}");
}

/// A task that panics (a bug) fails its attempt with the panic's message, and the panic is
/// reported as one masked log line rather than the default multi-line message on stderr.
#[test]
fn a_panicking_task_fails_with_one_masked_log_line() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: panicky\ntasks:\n  ingest: { type: ingest, with: { source: landing, table: tables/bronze, settle_time: 0s } }\n",
    );
    std::fs::create_dir(sb.path().join("landing")).unwrap();
    let files = staged(&sb);
    std::fs::rename(&files[0], sb.path().join("landing/a.jsonl")).unwrap();
    let out = sb
        .cmd(&["run", "p.yaml", "--json"])
        .env("TWEETFLOW_DELTA_FAILPOINT", "ingest.after_write:panic")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = common::task(&record, "ingest")["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("panicked") && error.contains("failpoint ingest.after_write"),
        "{record:#}"
    );
    assert!(
        stderr.contains("internal error (panic): failpoint ingest.after_write"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked at"),
        "the default panic message: {stderr}"
    );
}
