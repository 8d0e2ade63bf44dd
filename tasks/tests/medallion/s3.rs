//! The medallion tables, landing folders and quarantines on a real S3 API server (moto,
//! started by the tests): the same tables as a local run, read back by the Python `deltalake`
//! package too; two ingest processes at once on the same prefix and table; processes killed
//! (`SIGKILL`) at the failpoints, then rerun.

use std::collections::BTreeSet;
use std::process::{Child, Command};

use tweetflow_delta::WriteControl;
use tweetflow_delta::storage::{self, StorageOptions};
use tweetflow_tasks::medallion::aggregate::aggregate;
use tweetflow_tasks::medallion::clean::clean;
use tweetflow_tasks::medallion::ingest::{IngestSummary, ingest};
use tweetflow_test_support::s3_server;

use crate::common::*;
use crate::exactly_once::{assert_same, params_at, prepare_landing_at, reference_run, snapshot_at};

const ROOT_ENV: &str = "TWEETFLOW_S3_TEST_ROOT";
const STEP_ENV: &str = "TWEETFLOW_S3_TEST_STEP";

fn options() -> StorageOptions {
    s3_server::server().options().into_iter().collect()
}

/// A fresh `s3://bucket/run` root.
fn s3_root(name: &str) -> String {
    format!("s3://{}/run", s3_server::bucket(name))
}

/// Helper process of the tests below: runs one step on the tables under `ROOT_ENV`, with the
/// server from the standard `AWS_*` variables and the failpoint from
/// `TWEETFLOW_DELTA_FAILPOINT`. Prints the ingest summary as JSON. Not a test by itself.
#[tokio::test]
#[ignore = "helper process of the s3 tests"]
async fn s3_step_helper() {
    let root = std::env::var(ROOT_ENV).expect("TWEETFLOW_S3_TEST_ROOT");
    let step = std::env::var(STEP_ENV).expect("TWEETFLOW_S3_TEST_STEP");
    let ctl = WriteControl {
        failpoint: std::env::var(tweetflow_delta::FAILPOINT_ENV).ok(),
        cancel: None,
    };
    let (mut ip, cp, ap) = params_at(&root);
    match step.as_str() {
        "ingest" => {
            let s = ingest(&ip, &ctl).await.unwrap();
            println!("SUMMARY {}", serde_json::to_string(&s).unwrap());
        }
        "ingest-one-per-batch" => {
            ip.max_files_per_batch = 1;
            let s = ingest(&ip, &ctl).await.unwrap();
            println!("SUMMARY {}", serde_json::to_string(&s).unwrap());
        }
        "clean" => drop(clean(&cp, &ctl).await.unwrap()),
        "aggregate" => drop(aggregate(&ap, &ctl).await.unwrap()),
        other => panic!("unknown step {other}"),
    }
}

fn spawn_step(root: &str, step: &str, failpoint: Option<&str>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "s3::s3_step_helper",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROOT_ENV, root)
    .env(STEP_ENV, step)
    .env_remove(tweetflow_delta::FAILPOINT_ENV)
    .envs(s3_server::server().env())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    if let Some(f) = failpoint {
        cmd.env(tweetflow_delta::FAILPOINT_ENV, format!("{f}:kill"));
    }
    cmd.spawn().unwrap()
}

fn kill_at(root: &str, step: &str, failpoint: &str) {
    let out = spawn_step(root, step, Some(failpoint))
        .wait_with_output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{step} with {failpoint} should die by SIGKILL; status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_on_s3_equals_the_local_run_and_python_reads_it() {
    let reference = reference_run().await;
    let root = s3_root("pipeline");
    let snap = storage::scoped(options(), async {
        prepare_landing_at(&root).await;
        let (ip, cp, ap) = params_at(&root);
        let none = WriteControl::default();
        let s = ingest(&ip, &none).await.unwrap();
        assert_eq!((s.files, s.rows), (11, 500), "{s:?}");
        clean(&cp, &none).await.unwrap();
        aggregate(&ap, &none).await.unwrap();
        // A rerun without new input takes nothing and commits nothing.
        let again = ingest(&ip, &none).await.unwrap();
        assert_eq!((again.files, again.batches), (0, 0), "{again:?}");
        snapshot_at(&root).await
    })
    .await;
    assert_same(&reference, &snap, "tables on S3");

    // The Python `deltalake` package reads the same row sets from S3.
    let (ip, cp, ap) = params_at(&root);
    let script = r#"
import json, os, sys
import deltalake
out = {}
for path in sys.argv[1:]:
    data = deltalake.DeltaTable(path).to_pyarrow_dataset().to_table()
    keys = None
    if "source_file" in data.column_names and "line" in data.column_names:
        keys = sorted(f"{f}:{l}" for f, l in zip(data.column("source_file").to_pylist(), data.column("line").to_pylist()))
    out[path] = {"rows": data.num_rows, "keys": keys}
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"#;
    let tables = [
        ip.table.clone(),
        ip.quarantine_location(),
        cp.table.clone(),
        ap.table.clone(),
    ];
    let out = Command::new(venv().join("bin/python"))
        .arg("-c")
        .arg(script)
        .args(&tables)
        .envs(s3_server::server().env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rust_keys = storage::scoped(options(), rows_of(&ip.table, &["source_file", "line"])).await;
    let rust_keys: Vec<String> = rust_keys
        .iter()
        .map(|r| format!("{}:{}", r[0], r[1]))
        .collect();
    let mut py_keys: Vec<String> = v[&ip.table]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    py_keys.sort();
    let mut sorted = rust_keys.clone();
    sorted.sort();
    assert_eq!(py_keys, sorted, "bronze keys read by Python");
    assert_eq!(v[&ip.table]["rows"], 500);
    let silver_rows = storage::scoped(options(), rows(&cp.table)).await.1.len() as u64;
    assert_eq!(v[&cp.table]["rows"].as_u64(), Some(silver_rows));
    assert!(v[&ap.table]["rows"].as_u64().unwrap() > 0);
    assert_eq!(v[&ip.quarantine_location()]["rows"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_processes_on_one_s3_prefix_take_each_object_once() {
    let root = s3_root("race");
    storage::scoped(options(), prepare_landing_at(&root)).await;
    // Two processes started at the same moment, one object per commit: many commit races.
    let a = spawn_step(&root, "ingest-one-per-batch", None);
    let b = spawn_step(&root, "ingest-one-per-batch", None);
    let summaries: Vec<IngestSummary> = [a, b]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = stdout
                .lines()
                .find_map(|l| l.split_once("SUMMARY ").map(|(_, s)| s))
                .expect("a summary");
            serde_json::from_str::<serde_json::Value>(line)
                .map(|v| IngestSummary {
                    files: v["files"].as_u64().unwrap(),
                    rows: v["rows"].as_u64().unwrap(),
                    batches: v["batches"].as_u64().unwrap(),
                    ..Default::default()
                })
                .unwrap()
        })
        .collect();
    let files: u64 = summaries.iter().map(|s| s.files).sum();
    let rows_in: u64 = summaries.iter().map(|s| s.rows).sum();
    let batches: u64 = summaries.iter().map(|s| s.batches).sum();
    assert_eq!(files, 11, "every object taken once: {summaries:?}");
    assert_eq!(rows_in, 500);
    let (ip, _, _) = params_at(&root);
    let (bronze, quarantine, v) = storage::scoped(options(), async {
        (
            rows_of(&ip.table, &["source_file", "line"]).await,
            rows_of(&ip.quarantine_location(), &["source_file", "line"]).await,
            version(&ip.table).await,
        )
    })
    .await;
    assert_eq!(bronze.len(), 500);
    assert_unique_rows(&bronze, &[0, 1], "bronze on S3");
    assert_eq!(quarantine.len(), 2);
    assert_unique_rows(&quarantine, &[0, 1], "bronze quarantine on S3");
    // No lost commit: the commits after the creation are batches 1, 2, ... in order, and
    // every object is listed by exactly one of them.
    let infos = storage::scoped(options(), async {
        let t = tweetflow_delta::table::open_table(&ip.table)
            .await
            .unwrap()
            .unwrap();
        tweetflow_delta::table::history_infos(&t, &ip.table)
            .await
            .unwrap()
    })
    .await;
    let numbers: Vec<i64> = infos
        .iter()
        .map(|(_, i)| i["batch"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=v).collect::<Vec<_>>(),
        "batches of versions 1..={v}"
    );
    assert!(
        batches as i64 <= v,
        "{batches} batches reported, {v} committed"
    );
    let mut listed: Vec<String> = infos
        .iter()
        .flat_map(|(_, i)| i["files"].as_array().unwrap().clone())
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let distinct: BTreeSet<&String> = listed.iter().collect();
    assert_eq!((listed.len(), distinct.len()), (11, 11), "{listed:?}");
    let files_in_bronze: BTreeSet<&String> = bronze.iter().map(|r| &r[0]).collect();
    assert_eq!(files_in_bronze.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_processes_on_s3_then_rerun_equal_an_uninterrupted_run() {
    let reference = reference_run().await;
    let root = s3_root("killed");
    storage::scoped(options(), prepare_landing_at(&root)).await;
    kill_at(&root, "ingest", "ingest.after_commit");
    kill_at(&root, "ingest", "ingest.after_write");
    kill_at(&root, "ingest", "ingest.after_quarantine_commit");
    kill_at(&root, "clean", "clean.after_quarantine_commit");
    kill_at(&root, "clean", "clean.after_write");
    let (ip, cp, ap) = params_at(&root);
    let none = WriteControl::default();
    storage::scoped(options(), ingest(&ip, &none))
        .await
        .unwrap();
    kill_at(&root, "clean", "clean.after_commit");
    storage::scoped(options(), clean(&cp, &none)).await.unwrap();
    kill_at(&root, "aggregate", "aggregate.after_write");
    kill_at(&root, "aggregate", "aggregate.after_commit");
    storage::scoped(options(), aggregate(&ap, &none))
        .await
        .unwrap();
    let snap = storage::scoped(options(), snapshot_at(&root)).await;
    assert_same(&reference, &snap, "killed processes on S3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_landing_objects_settle_and_changes_are_reported() {
    let root = s3_root("settle");
    storage::scoped(options(), async {
        let landing = tweetflow_delta::folder::Folder::open(&format!("{root}/landing")).unwrap();
        let line = "{\"date\": \"Mon Apr 06 22:19:45 PDT 2009\", \"user\": \"u\", \"text\": \"@a hi\", \"sentiment\": \"positive\"}\n";
        landing.write("a.jsonl", line.as_bytes().to_vec()).await.unwrap();
        landing.write("a.jsonl.tmp", line.as_bytes().to_vec()).await.unwrap();
        let (mut ip, _, _) = params_at(&root);
        ip.settle_time = "5s".into();
        let none = WriteControl::default();
        // The object's last-modified time is now: it is left for a later run.
        let s = ingest(&ip, &none).await.unwrap();
        assert_eq!((s.files, s.rows, s.settling), (0, 0, 1), "{s:?}");
        ip.settle_time = "0s".into();
        let s = ingest(&ip, &none).await.unwrap();
        assert_eq!((s.files, s.rows, s.settling), (1, 1, 0), "{s:?}");
        // The object is replaced by another content: reported once, not ingested again.
        landing
            .write("a.jsonl", format!("{line}{line}").into_bytes())
            .await
            .unwrap();
        let s = ingest(&ip, &none).await.unwrap();
        assert_eq!((s.files, s.rows, s.changed), (0, 0, 1), "{s:?}");
        let s = ingest(&ip, &none).await.unwrap();
        assert_eq!((s.files, s.rows, s.changed), (0, 0, 0), "{s:?}");
        let q = rows_of(&ip.quarantine_location(), &["source_file", "reason"]).await;
        assert_eq!(q.len(), 1, "{q:?}");
        assert!(q[0][1].starts_with("changed_after_ingest"), "{q:?}");
        // An object larger than what is read in memory, with an oversized record.
        let mut big = line.as_bytes().to_vec();
        big.extend(std::iter::repeat_n(b'x', 20 * 1024 * 1024));
        big.push(b'\n');
        big.extend_from_slice(line.as_bytes());
        landing.write("big.jsonl", big).await.unwrap();
        let s = ingest(&ip, &none).await.unwrap();
        assert_eq!((s.files, s.rows, s.quarantined), (1, 2, 1), "{s:?}");
        let q = rows_of(&ip.quarantine_location(), &["source_file", "line", "reason"]).await;
        let big_row = q.iter().find(|r| r[0] == "big.jsonl").expect("the oversized record");
        assert_eq!(big_row[1], "2");
        assert!(big_row[2].starts_with("max_record_bytes"), "{q:?}");
    })
    .await;
}

/// A store that throttles (503 Slow Down), fails (500) and resets connections now and then is
/// retried by the store client: the run succeeds and the tables equal an uninterrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_and_resetting_store_is_retried_and_tables_stay_exact() {
    let reference = reference_run().await;
    let root = s3_root("faults");
    let proxy = tweetflow_test_support::fault_proxy::FaultProxy::start(s3_server::server().port, 4);
    let options: StorageOptions = s3_server::server()
        .options()
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "aws_endpoint_url" => (k, proxy.endpoint.clone()),
            _ => (k, v),
        })
        .collect();
    let snap = storage::scoped(options, async {
        prepare_landing_at(&root).await;
        let (ip, cp, ap) = params_at(&root);
        let none = WriteControl::default();
        let s = ingest(&ip, &none).await.unwrap();
        assert_eq!((s.files, s.rows), (11, 500), "{s:?}");
        clean(&cp, &none).await.unwrap();
        aggregate(&ap, &none).await.unwrap();
        snapshot_at(&root).await
    })
    .await;
    assert!(
        proxy.injected() >= 6,
        "only {} faults were injected",
        proxy.injected()
    );
    eprintln!("{} faults injected and survived", proxy.injected());
    assert_same(&reference, &snap, "tables on a faulty S3");
}
