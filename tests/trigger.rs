//! Table triggers with the real daemon and real Delta tables: a table that does not exist yet
//! is waited for; commits made while the daemon is killed with `-9` and restarted (several
//! times, some mid-run) are each covered by exactly one successful run; a second daemon is
//! refused; `--next` shows the watched table and its consumed version; `--once`; a location
//! that is not a Delta table is named; the same on the S3 test server.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{Sandbox, wait_for};
use tweetflow_bench::trigger::append_row;
use tweetflow_test_support::s3_server;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn pipeline(table: &str) -> String {
    format!(
        r#"
name: on_gold
trigger:
  tables: {{ gold: "{table}" }}
  poll: 200ms
tasks:
  report:
    type: command
    with:
      argv: [sh, -c, "sleep 0.3; echo ${{trigger.gold.from_version}}..${{trigger.gold.to_version}} >> ranges.log"]
"#
    )
}

fn daemon(sb: &Sandbox, env: &[(String, String)], log: &str) -> Child {
    let err = std::fs::File::create(sb.path().join(log)).unwrap();
    sb.cmd(&["schedule", "p.yaml", "--grace", "10s"])
        .envs(env.iter().cloned())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap()
}

fn trigger_state(sb: &Sandbox) -> serde_json::Value {
    std::fs::read(sb.runs().join(".schedules/on_gold.trigger.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn consumed(sb: &Sandbox) -> Option<i64> {
    trigger_state(sb)["tables"]["gold"]["consumed"].as_i64()
}

fn sigterm(child: &Child) {
    // SAFETY: kill(2) on a child we spawned.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

/// The (from, to) ranges of the pipeline's succeeded triggered runs, from `runs list`.
fn succeeded_ranges(sb: &Sandbox, env: &[(String, String)]) -> Vec<(i64, i64)> {
    let out = sb
        .cmd(&["runs", "list", "--json", "--limit", "1000"])
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut ranges: Vec<(i64, i64)> = runs
        .iter()
        .filter(|r| r["status"] == "succeeded" && r["tags"]["trigger"] == "table")
        .map(|r| {
            let text = r["tags"]["trigger.gold"].as_str().unwrap();
            let versions = text
                .strip_prefix("versions ")
                .and_then(|t| t.split_once(' '))
                .unwrap()
                .0;
            let (a, b) = versions.split_once("..").unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    ranges.sort();
    ranges
}

/// Every version from 0 to `latest` is in exactly one range.
fn assert_partition(ranges: &[(i64, i64)], latest: i64) {
    let mut seen = BTreeSet::new();
    for (a, b) in ranges {
        for v in *a..=*b {
            assert!(seen.insert(v), "version {v} covered twice: {ranges:?}");
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        (0..=latest).collect::<Vec<_>>(),
        "every version covered once: {ranges:?}"
    );
}

fn exactly_once_through_kills(sb: &Sandbox, table: &str, env: &[(String, String)]) {
    let rt = runtime();
    let append = |v: i64| {
        let options = s3_server_options(env);
        rt.block_on(tweetflow_delta::storage::scoped(
            options,
            append_row(table, v),
        ))
        .unwrap()
    };
    sb.write("p.yaml", &pipeline(table));
    let mut d = daemon(sb, env, "daemon-0.log");
    // The table does not exist yet: waited for, then its versions run.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(d.try_wait().unwrap(), None, "a missing table is no error");
    let mut latest = 0;
    for i in 0..12i64 {
        latest = append(i);
        std::thread::sleep(Duration::from_millis(150 + (i as u64 * 97) % 400));
        if i % 4 == 3 {
            d.kill().unwrap();
            d.wait().unwrap();
            d = daemon(sb, env, &format!("daemon-{i}.log"));
        }
    }
    // A second daemon on the same pipeline is refused (once the current one holds the lock).
    let holder = format!("pid {} ", d.id());
    assert!(
        wait_for(Duration::from_secs(30), || std::fs::read_to_string(
            sb.runs().join(".schedules/on_gold.lock")
        )
        .is_ok_and(|l| l.starts_with(&holder))),
        "the restarted daemon holds the lock"
    );
    let second = sb
        .cmd(&["schedule", "p.yaml"])
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        wait_for(Duration::from_secs(60), || consumed(sb) == Some(latest)
            && trigger_state(sb)["pending"].is_null()),
        "all versions consumed: {}",
        trigger_state(sb)
    );
    sigterm(&d);
    assert_eq!(d.wait().unwrap().code(), Some(0));
    assert_partition(&succeeded_ranges(sb, env), latest);
    let first_log = std::fs::read_to_string(sb.path().join("daemon-0.log")).unwrap();
    assert_eq!(
        first_log.matches("does not exist yet").count(),
        1,
        "the wait is logged once:\n{first_log}"
    );

    // `--next` shows the table and how far the pipeline consumed it.
    let next = sb
        .cmd(&["schedule", "--next", "1", "p.yaml"])
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&next.stdout);
    assert!(
        text.contains(&format!(
            "gold: {table}   latest {latest}, consumed {latest}"
        )),
        "{text}"
    );

    // `--once` with nothing new starts nothing; with a new version, one run.
    let runs_before = sb.run_ids().len();
    let once = sb
        .cmd(&["schedule", "--once", "p.yaml"])
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert_eq!(once.status.code(), Some(0));
    assert_eq!(sb.run_ids().len(), runs_before);
    latest = append(99);
    // Without RUST_LOG, the console: the scheduler's line saying what fired, then the task
    // lines of `run`, not the runs' log stream.
    let once = sb
        .cmd(&["schedule", "--once", "p.yaml"])
        .envs(env.iter().cloned())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&once.stderr);
    assert_eq!(once.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("table versions trigger a run"),
        "what fired: {stderr}"
    );
    assert!(stderr.contains("▸ report started"), "{stderr}");
    assert!(stderr.contains("✓ report succeeded in "), "{stderr}");
    assert!(
        !stderr.contains("run started") && !stderr.contains("trigger:run"),
        "no run log lines: {stderr}"
    );
    assert_eq!(sb.run_ids().len(), runs_before + 1);
    assert_eq!(consumed(sb), Some(latest));
    assert_partition(&succeeded_ranges(sb, env), latest);
}

fn s3_server_options(env: &[(String, String)]) -> tweetflow_delta::storage::StorageOptions {
    if env.is_empty() {
        return Default::default();
    }
    s3_server::server().options().into_iter().collect()
}

#[test]
fn every_local_version_runs_once_through_kill_9_and_restarts() {
    let sb = Sandbox::new();
    let table = sb.path().join("gold").display().to_string();
    exactly_once_through_kills(&sb, &table, &[]);
}

#[test]
fn every_s3_version_runs_once_through_kill_9_and_restarts() {
    let server = s3_server::server();
    let sb = Sandbox::new();
    let table = format!("s3://{}/gold", s3_server::bucket("trigger"));
    exactly_once_through_kills(&sb, &table, &server.env());
}

#[test]
fn a_location_that_is_not_a_delta_table_is_named() {
    let sb = Sandbox::new();
    sb.write("notdelta/part-0.parquet", "x");
    let table = sb.path().join("notdelta").display().to_string();
    sb.write("p.yaml", &pipeline(&table));
    let mut d = daemon(&sb, &[], "daemon.log");
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::read_to_string(
            sb.path().join("daemon.log")
        )
        .unwrap_or_default()
        .contains("not a Delta table")),
        "the error is logged"
    );
    let log = std::fs::read_to_string(sb.path().join("daemon.log")).unwrap();
    assert!(log.contains(&table), "the location is named:\n{log}");
    assert!(sb.run_ids().is_empty());
    d.kill().unwrap();
    d.wait().unwrap();
    let next = sb.run(&["schedule", "--next", "1", "p.yaml"]);
    let text = String::from_utf8_lossy(&next.stdout);
    assert!(text.contains("not a Delta table"), "{text}");
}
