//! Runs whose engine was killed with `-9`, end to end on the real binary: they read
//! `interrupted` at once (list, show, `--json`), `runs recover` resumes them (or marks them
//! failed), leaves other runs alone, and kills what the dead engine left running first.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Sandbox, alive, status, wait_for};
use serde_json::Value;

const BLOCKING: &str = r#"
name: blocking
tasks:
  first:
    type: command
    with: { argv: [sh, -c, 'echo ran >> first.log'] }
  second:
    type: command
    depends_on: [first]
    # A grandchild the kernel does not kill with the engine (only `sh`, the direct child, gets
    # PR_SET_PDEATHSIG): it appends to a file until someone kills it.
    with: { argv: [sh, -c, 'if [ -f go ]; then echo done; else (while true; do echo x >> orphan.out; sleep 0.05; done) & echo $! > orphan.pid; touch second.started; wait; fi'] }
  third:
    type: noop
    depends_on: [second]
"#;

fn show(sb: &Sandbox, run_id: &str) -> Value {
    let out = sb.run(&["runs", "show", run_id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("runs show --json")
}

/// Starts the blocking pipeline and kills its engine with `-9` once `second` runs; the run id
/// and the orphan's pid.
fn killed_run(sb: &Sandbox) -> (String, i32) {
    sb.write("p.yaml", BLOCKING);
    let mut child = sb.spawn(&["run", "p.yaml"]);
    assert!(
        wait_for(Duration::from_secs(30), || sb
            .path()
            .join("second.started")
            .exists()),
        "second never started"
    );
    child.kill().expect("SIGKILL tweetflow");
    child.wait().expect("reap");
    let pid: i32 = std::fs::read_to_string(sb.path().join("orphan.pid"))
        .expect("orphan pid")
        .trim()
        .parse()
        .expect("a pid");
    (sb.run_ids().pop().expect("a run"), pid)
}

#[test]
fn a_killed_run_reads_interrupted_at_once_and_runs_recover_resumes_it() {
    let sb = Sandbox::new();
    let (run_id, orphan) = killed_run(&sb);
    let killed = Instant::now();
    let rec = show(&sb, &run_id);
    let seen_after = killed.elapsed();
    assert_eq!(rec["status"], "interrupted", "{rec}");
    assert!(seen_after < Duration::from_secs(1), "{seen_after:?}");
    assert!(rec["last_event_at"].is_string(), "{rec}");
    assert_eq!(status(&rec, "first"), "succeeded");
    assert_eq!(status(&rec, "second"), "running");
    let text = String::from_utf8(sb.run(&["runs", "show", &run_id]).stdout).unwrap();
    assert!(
        text.contains("interrupted") && text.contains("last event"),
        "{text}"
    );
    let list = String::from_utf8(sb.run(&["runs", "list"]).stdout).unwrap();
    assert!(list.contains("interrupted (last event"), "{list}");
    let listed: Value =
        serde_json::from_slice(&sb.run(&["runs", "list", "--json"]).stdout).unwrap();
    assert_eq!(listed[0]["status"], "interrupted");

    // The grandchild the dead engine left keeps writing until the recovery kills it.
    assert!(alive(orphan), "the orphan runs on after the engine died");

    let dry = sb.run(&["runs", "recover", "--dry-run"]);
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(
        said.contains(&format!("would resume run {run_id} of blocking")),
        "{said}"
    );
    assert_eq!(
        show(&sb, &run_id)["status"],
        "interrupted",
        "dry run: no change"
    );

    sb.write("go", "");
    let out = sb.run(&["runs", "recover"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains(&format!("resuming run {run_id}")), "{said}");
    assert!(said.contains(&format!("run {run_id}: succeeded")), "{said}");
    assert!(!alive(orphan), "the orphan was killed before the resume");
    let rec = show(&sb, &run_id);
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(rec["resumed_at"].as_array().unwrap().len(), 1);
    assert_eq!(
        std::fs::read_to_string(sb.path().join("first.log")).unwrap(),
        "ran\n",
        "what succeeded does not run again"
    );
    // Nothing writes any more.
    let len = std::fs::metadata(sb.path().join("orphan.out"))
        .unwrap()
        .len();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::metadata(sb.path().join("orphan.out"))
            .unwrap()
            .len(),
        len
    );

    // A run that is not interrupted is reported and left as it is.
    let before = std::fs::read(sb.runs().join(&run_id).join("events.jsonl")).unwrap();
    let out = sb.run(&["runs", "recover", &run_id]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "run {run_id} is not interrupted: it succeeded; nothing changed"
        )),
        "{said}"
    );
    assert_eq!(
        std::fs::read(sb.runs().join(&run_id).join("events.jsonl")).unwrap(),
        before
    );
    let out = sb.run(&["runs", "recover"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no interrupted runs"));
}

#[test]
fn runs_recover_fail_marks_the_run_failed_saying_the_engine_died() {
    let sb = Sandbox::new();
    let (run_id, orphan) = killed_run(&sb);
    let out = sb.run(&["runs", "recover", "--fail", "--pipeline", "blocking"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!("marking failed run {run_id}")),
        "{said}"
    );
    assert!(!alive(orphan), "the orphan was killed");
    let rec = show(&sb, &run_id);
    assert_eq!(rec["status"], "failed");
    let reason = rec["reason"].as_str().unwrap();
    assert!(reason.starts_with("engine died (last event 20"), "{reason}");
    assert!(rec["ended_at"].is_string());
    // Another pipeline's filter finds nothing.
    let out = sb.run(&["runs", "recover", "--pipeline", "other"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no interrupted runs of pipeline other"));
}

const LOGGED: &str = r#"
name: logged_blocking
mlflow:
  experiment: tweetflow-interrupted-${env.TEST_EXPERIMENT_SUFFIX:-x}
tasks:
  first: { type: command, with: { argv: [sh, -c, 'echo one'] } }
  second:
    type: command
    depends_on: [first]
    with: { argv: [sh, -c, 'if [ -f go ]; then echo done; else touch second.started; exec sleep 60; fi'] }
"#;

fn mlflow_status(server_url: &str, run_dir: &std::path::Path) -> String {
    let link: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("mlflow.json")).expect("mlflow.json"))
            .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = tweetflow_test_support::mlflow_server::client_at(server_url);
    let run = rt
        .block_on(c.get_run(link["run_id"].as_str().unwrap()))
        .unwrap();
    serde_json::to_value(run.info.status)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_mlflow_run_of_an_interrupted_run_is_killed_when_seen_and_finished_after_recover() {
    let server = tweetflow_test_support::mlflow_server::server();
    let sb = Sandbox::new();
    sb.write("p.yaml", LOGGED);
    let suffix = format!("{}", std::process::id());
    let mut child = sb
        .cmd(&["run", "p.yaml"])
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("TEST_EXPERIMENT_SUFFIX", &suffix)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(60), || sb
        .path()
        .join("second.started")
        .exists()));
    child.kill().unwrap();
    child.wait().unwrap();
    let run_id = sb.run_ids().pop().unwrap();
    let dir = sb.runs().join(&run_id);
    assert_eq!(
        mlflow_status(&server.url, &dir),
        "RUNNING",
        "nobody looked yet"
    );

    // The web UI sees the interruption and tells MLflow.
    let mut ui = sb
        .cmd(&["ui", "--listen", "127.0.0.1:0", "."])
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("TEST_EXPERIMENT_SUFFIX", &suffix)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let killed = wait_for(Duration::from_secs(20), || {
        mlflow_status(&server.url, &dir) == "KILLED"
    });
    let _ = ui.kill();
    let _ = ui.wait();
    assert!(killed, "the MLflow run was never set KILLED");
    assert!(
        std::fs::read_to_string(dir.join("events.jsonl"))
            .unwrap()
            .contains("\"event\":\"run_interrupted\"")
    );

    sb.write("go", "");
    let out = sb
        .cmd(&["runs", "recover"])
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("TEST_EXPERIMENT_SUFFIX", &suffix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(show(&sb, &run_id)["status"], "succeeded");
    assert_eq!(mlflow_status(&server.url, &dir), "FINISHED");
}
