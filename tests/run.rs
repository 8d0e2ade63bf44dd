//! End-to-end runs of the real `tweetflow` binary: ordering, parallelism, retries,
//! timeouts, caching, cancellation, `kill -9` and `--resume`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Sandbox, alive, attempts, status, task, wait_for, window};

#[test]
fn dependencies_order_tasks_and_independent_ones_overlap() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: order
tasks:
  a: { type: command, with: { argv: [sleep, "0.4"] } }
  b: { type: command, with: { argv: [sleep, "0.4"] } }
  c: { type: command, depends_on: [a, b], with: { argv: [sleep, "0.05"] } }
"#,
    );
    let (code, rec) = sb.run_json(&["p.yaml", "--max-parallel", "2"]);
    assert_eq!(code, 0, "{rec}");
    let (a0, a1) = window(&rec, "a");
    let (b0, b1) = window(&rec, "b");
    let (c0, _) = window(&rec, "c");
    assert!(
        a0 < b1 && b0 < a1,
        "a and b should overlap with two slots: a={a0}..{a1} b={b0}..{b1}"
    );
    assert!(c0 >= a1 && c0 >= b1, "c must start after a and b end");

    let (code, rec) = sb.run_json(&["p.yaml", "--max-parallel", "1"]);
    assert_eq!(code, 0);
    let (a0, a1) = window(&rec, "a");
    let (b0, b1) = window(&rec, "b");
    assert!(
        a1 <= b0 || b1 <= a0,
        "with one slot a and b must not overlap: a={a0}..{a1} b={b0}..{b1}"
    );
}

#[test]
fn flaky_command_succeeds_on_third_attempt() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: flaky
tasks:
  flaky:
    type: command
    retries: { max_attempts: 3, initial_delay: 10ms, max_delay: 50ms }
    with:
      argv: [sh, -c, 'n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo "try $n" >&2; [ $n -ge 3 ]']
"#,
    );
    let (code, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(status(&rec, "flaky"), "succeeded");
    let tries = task(&rec, "flaky")["attempts"].as_array().unwrap().clone();
    assert_eq!(tries.len(), 3);
    assert_eq!(tries[0]["error"]["kind"], "retryable");
    assert!(
        tries[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exited with code 1"),
        "{}",
        tries[1]
    );
    assert!(tries[2]["error"].is_null());
    for t in &tries {
        assert!(
            t["started_at"].is_string() && t["ended_at"].is_string(),
            "every attempt has start and end: {t}"
        );
    }
}

#[test]
fn non_retryable_error_is_not_retried_and_blocks_only_its_branch() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: fatal
defaults:
  retries: { max_attempts: 3, initial_delay: 10ms }
tasks:
  broken: { type: command, with: { argv: [tweetflow-no-such-program-xyz] } }
  after: { type: noop, depends_on: [broken] }
  after_after: { type: noop, depends_on: [after] }
  independent: { type: command, with: { argv: [sh, -c, "sleep 0.2; echo fine"] } }
"#,
    );
    let (code, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(code, 1);
    assert_eq!(rec["status"], "failed");
    assert_eq!(status(&rec, "broken"), "failed");
    assert_eq!(
        attempts(&rec, "broken"),
        1,
        "a configuration error is not retried"
    );
    assert_eq!(task(&rec, "broken")["error"]["kind"], "config");
    assert_eq!(status(&rec, "after"), "upstream_failed");
    assert_eq!(status(&rec, "after_after"), "upstream_failed");
    assert_eq!(status(&rec, "independent"), "succeeded");
}

#[test]
fn fail_fast_cancels_the_other_branches() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: fail_fast
tasks:
  fails: { type: command, with: { argv: [sh, -c, "sleep 0.2; exit 3"] } }
  slow: { type: command, with: { argv: [sleep, "30"] } }
"#,
    );
    let started = std::time::Instant::now();
    let (code, rec) = sb.run_json(&["p.yaml", "--fail-fast"]);
    assert_eq!(code, 1, "{rec}");
    assert_eq!(status(&rec, "fails"), "failed");
    assert_eq!(status(&rec, "slow"), "cancelled");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the slow branch was not stopped"
    );
}

#[test]
fn timeout_kills_the_child_process() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: timeout
tasks:
  hang:
    type: command
    timeout: 500ms
    with: { argv: [sh, -c, 'sleep 600 & echo $! > sleep.pid; wait'] }
"#,
    );
    let (code, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(code, 1);
    assert_eq!(status(&rec, "hang"), "failed");
    let err = &task(&rec, "hang")["error"];
    assert_eq!(err["kind"], "timeout");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("timed out after 500ms")
    );
    let pid: i32 = std::fs::read_to_string(sb.path().join("sleep.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || !alive(pid)),
        "sleep 600 (pid {pid}) survived the timeout"
    );
}

#[test]
fn timeout_counts_as_a_retryable_failure() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: timeout_retry
tasks:
  slow_then_fast:
    type: command
    timeout: 300ms
    retries: { max_attempts: 2, initial_delay: 10ms }
    with: { argv: [sh, -c, 'if [ -f once ]; then echo quick; else touch once; sleep 600; fi'] }
"#,
    );
    let (code, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(attempts(&rec, "slow_then_fast"), 2);
    assert_eq!(
        task(&rec, "slow_then_fast")["attempts"][0]["error"]["kind"],
        "timeout"
    );
}

const CACHED: &str = r#"
name: cached
params:
  word: hello
defaults:
  cache: true
tasks:
  source:
    type: command
    with: { argv: [cat, input.txt] }
  make:
    type: command
    depends_on: [source]
    with:
      argv: [sh, -c, 'echo "${params.word}" > made.txt; echo run >> make.log']
      outputs: [made.txt]
"#;

fn make_runs(sb: &Sandbox) -> usize {
    std::fs::read_to_string(sb.path().join("make.log")).map_or(0, |s| s.lines().count())
}

#[test]
fn cache_hits_and_each_kind_of_miss() {
    let sb = Sandbox::new();
    sb.write("p.yaml", CACHED);
    sb.write("input.txt", "v1\n");

    let (code, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(status(&rec, "make"), "succeeded");
    assert_eq!(make_runs(&sb), 1);

    // Same params, same upstream output: hit.
    let (_, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(status(&rec, "make"), "cached");
    assert_eq!(status(&rec, "source"), "cached");
    assert_eq!(make_runs(&sb), 1);

    // A param change: miss.
    let (_, rec) = sb.run_json(&["p.yaml", "--param", "word=bye"]);
    assert_eq!(status(&rec, "make"), "succeeded");
    assert_eq!(make_runs(&sb), 2);
    assert_eq!(
        std::fs::read_to_string(sb.path().join("made.txt")).unwrap(),
        "bye\n"
    );

    // An upstream change: `source` is forced to run and prints something new, so `make` misses.
    sb.write("input.txt", "v2\n");
    let (_, rec) = sb.run_json(&["p.yaml", "--param", "word=bye", "--refresh", "source"]);
    assert_eq!(status(&rec, "source"), "succeeded");
    assert_eq!(status(&rec, "make"), "succeeded");
    assert_eq!(make_runs(&sb), 3);

    // The declared output is gone: miss.
    std::fs::remove_file(sb.path().join("made.txt")).unwrap();
    let (_, rec) = sb.run_json(&["p.yaml", "--param", "word=bye"]);
    assert_eq!(status(&rec, "make"), "succeeded");
    assert_eq!(make_runs(&sb), 4);

    // --no-cache: everything runs.
    let (_, rec) = sb.run_json(&["p.yaml", "--param", "word=bye", "--no-cache"]);
    assert_eq!(status(&rec, "source"), "succeeded");
    assert_eq!(status(&rec, "make"), "succeeded");
    assert_eq!(make_runs(&sb), 5);
}

#[test]
fn editing_a_declared_input_is_a_cache_miss() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: inputs
defaults:
  cache: true
tasks:
  t:
    type: command
    with:
      argv: [sh, scripts/step.sh]
      inputs: [scripts]
"#,
    );
    sb.write("scripts/step.sh", "echo one >> t.log\n");
    let runs = || std::fs::read_to_string(sb.path().join("t.log")).unwrap_or_default();
    sb.run_json(&["p.yaml"]);
    let (_, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(status(&rec, "t"), "cached", "{rec}");
    assert_eq!(runs(), "one\n");

    // Same params, edited script: the stale result is not reused.
    sb.write("scripts/step.sh", "echo two >> t.log\n");
    let (_, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(status(&rec, "t"), "succeeded", "{rec}");
    assert_eq!(runs(), "one\ntwo\n");
    // A new file in the input directory is an edit too; then the cache holds again.
    sb.write("scripts/helper.sh", "true\n");
    let (_, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(status(&rec, "t"), "succeeded");
    let (_, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(status(&rec, "t"), "cached");
    assert_eq!(runs(), "one\ntwo\ntwo\n");

    // A misspelt input is reported, not silently hashed as missing.
    sb.write(
        "p.yaml",
        &std::fs::read_to_string(sb.path().join("p.yaml"))
            .unwrap()
            .replace("inputs: [scripts]", "inputs: [scirpts]"),
    );
    let out = sb.run(&["run", "p.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("declared cache input does not exist") && stderr.contains("scirpts"),
        "{stderr}"
    );
}

/// A dependent's cache entry survives an upstream rerun that rewrites the same bytes
/// (early cutoff), and not one that changes them.
#[test]
fn an_upstream_rerun_with_identical_outputs_keeps_dependents_cached() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: cutoff
defaults:
  cache: true
tasks:
  build:
    type: command
    with:
      argv: [sh, -c, 'cp source.txt built.txt; date +%s%N']
      outputs: [built.txt]
  use:
    type: command
    depends_on: [build]
    with:
      argv: [sh, -c, 'cat built.txt >> used.log']
"#,
    );
    sb.write("source.txt", "v1\n");
    let used = || std::fs::read_to_string(sb.path().join("used.log")).unwrap_or_default();
    sb.run_json(&["p.yaml"]);
    assert_eq!(used(), "v1\n");
    // `build` reruns (new stdout, new mtime), same bytes: `use` stays cached.
    let (_, rec) = sb.run_json(&["p.yaml", "--refresh", "build"]);
    assert_eq!(status(&rec, "build"), "succeeded");
    assert_eq!(status(&rec, "use"), "cached", "{rec}");
    assert_eq!(used(), "v1\n");
    // Different bytes: `use` runs.
    sb.write("source.txt", "v2\n");
    let (_, rec) = sb.run_json(&["p.yaml", "--refresh", "build"]);
    assert_eq!(status(&rec, "use"), "succeeded");
    assert_eq!(used(), "v1\nv2\n");
}

#[test]
fn cache_ttl_expires() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: ttl
tasks:
  t:
    type: command
    cache: { ttl: 300ms }
    with: { argv: [sh, -c, 'echo run >> t.log'] }
"#,
    );
    sb.run_json(&["p.yaml"]);
    let (_, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(status(&rec, "t"), "cached");
    std::thread::sleep(Duration::from_millis(400));
    let (_, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(
        status(&rec, "t"),
        "succeeded",
        "an entry older than its ttl is a miss"
    );
}

const RESUMABLE: &str = r#"
name: resumable
tasks:
  first:
    type: command
    with: { argv: [sh, -c, 'echo ran >> first.log'] }
  second:
    type: command
    depends_on: [first]
    with: { argv: [sh, -c, 'if [ -f go ]; then echo done; else touch second.started; exec sleep 60; fi'] }
  third:
    type: noop
    depends_on: [second]
"#;

fn run_id_from_store(sb: &Sandbox) -> String {
    sb.run_ids().pop().expect("a run directory")
}

#[test]
fn kill_dash_nine_then_resume_reruns_only_unfinished_tasks() {
    let sb = Sandbox::new();
    sb.write("p.yaml", RESUMABLE);
    let mut child = sb.spawn(&["run", "p.yaml"]);
    assert!(
        wait_for(Duration::from_secs(20), || sb
            .path()
            .join("second.started")
            .exists()),
        "second never started"
    );
    child.kill().expect("SIGKILL tweetflow");
    child.wait().unwrap();
    let run_id = run_id_from_store(&sb);

    // The record is readable after the crash and shows what happened before it.
    let out = sb.run(&["runs", "show", &run_id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Its engine is gone (the lock is free): interrupted, with the time of its last event.
    assert_eq!(rec["status"], "interrupted");
    assert!(rec["last_event_at"].is_string(), "{rec}");
    assert_eq!(status(&rec, "first"), "succeeded");
    assert_eq!(status(&rec, "second"), "running");

    sb.write("go", "");
    let (code, rec) = sb.run_json(&["--resume", &run_id]);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(status(&rec, "second"), "succeeded");
    assert_eq!(status(&rec, "third"), "succeeded");
    assert_eq!(
        std::fs::read_to_string(sb.path().join("first.log")).unwrap(),
        "ran\n",
        "first must not run again"
    );
    assert_eq!(rec["resumed_at"].as_array().unwrap().len(), 1);

    // A succeeded run cannot be resumed.
    let out = sb.run(&["run", "--resume", &run_id]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sigterm_cancels_and_saves_the_run() {
    let sb = Sandbox::new();
    sb.write("p.yaml", RESUMABLE);
    let child = sb.spawn(&["run", "p.yaml", "--json"]);
    assert!(wait_for(Duration::from_secs(20), || sb
        .path()
        .join("second.started")
        .exists()));
    // SAFETY: kill(2) on the child we spawned.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["status"], "cancelled");
    assert_eq!(status(&rec, "second"), "cancelled");
    assert_eq!(status(&rec, "third"), "cancelled");

    sb.write("go", "");
    let run_id = rec["run_id"].as_str().unwrap();
    let (code, rec) = sb.run_json(&["--resume", run_id]);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(
        std::fs::read_to_string(sb.path().join("first.log")).unwrap(),
        "ran\n"
    );
}

#[test]
fn command_output_lands_in_the_run_log() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: logs
tasks:
  talk: { type: command, with: { argv: [sh, -c, 'echo to-stdout; echo to-stderr >&2'], env: { X: "1" } } }
"#,
    );
    let (code, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(code, 0);
    let log = std::fs::read_to_string(
        sb.runs()
            .join(rec["run_id"].as_str().unwrap())
            .join("log.jsonl"),
    )
    .unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let find = |msg: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == msg)
            .unwrap_or_else(|| panic!("{msg} not in {log}"))
    };
    assert_eq!(find("to-stdout")["fields"]["stream"], "stdout");
    assert_eq!(find("to-stderr")["fields"]["stream"], "stderr");
    assert_eq!(find("to-stdout")["spans"][1]["fields"]["task"], "talk");
}

#[test]
fn invalid_pipeline_exits_2_with_positions() {
    let sb = Sandbox::new();
    sb.write("bad.yaml", "name: x\ntasks:\n  a: { type: nope }\n");
    let out = sb.run(&["validate", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:3:14: error: task `a`: unknown task type `nope`"),
        "{err}"
    );
    let out = sb.run(&["run", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn shipped_pipelines_validate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(root.join("pipelines"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let sb = Sandbox::new();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = sb.run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn graph_draws_text_dot_and_mermaid() {
    let sb = Sandbox::new();
    sb.write("p.yaml", RESUMABLE);
    let text = String::from_utf8(sb.run(&["graph", "p.yaml"]).stdout).unwrap();
    assert!(
        text.contains("level 1\n  second [command] <- first"),
        "{text}"
    );
    let dot = String::from_utf8(sb.run(&["graph", "p.yaml", "--format", "dot"]).stdout).unwrap();
    assert!(dot.contains("\"first\" -> \"second\";"), "{dot}");
    let mermaid =
        String::from_utf8(sb.run(&["graph", "p.yaml", "--format", "mermaid"]).stdout).unwrap();
    assert!(mermaid.contains("second --> third"), "{mermaid}");
}

#[test]
fn tasks_and_schema_describe_every_type() {
    let sb = Sandbox::new();
    let out = sb.run(&["tasks", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let command = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "command")
        .expect("command listed");
    let argv = command["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "argv")
        .unwrap();
    assert_eq!(argv["required"], true);
    assert_eq!(argv["kind"], "list of string");
    let schema: serde_json::Value = serde_json::from_slice(&sb.run(&["schema"]).stdout).unwrap();
    assert_eq!(schema["$defs"]["params.command"]["required"][0], "argv");
    let types = schema["$defs"]["task"]["properties"]["type"]["enum"]
        .as_array()
        .unwrap();
    assert!(types.contains(&"command".into()) && types.contains(&"noop".into()));
}

#[test]
fn runs_list_shows_recorded_runs() {
    let sb = Sandbox::new();
    sb.write("p.yaml", "name: listed\ntasks:\n  a: { type: noop }\n");
    let (_, rec) = sb.run_json(&["p.yaml"]);
    let out = String::from_utf8(sb.run(&["runs", "list"]).stdout).unwrap();
    assert!(
        out.contains(rec["run_id"].as_str().unwrap())
            && out.contains("listed")
            && out.contains("succeeded"),
        "{out}"
    );
}

#[test]
fn runs_prune_applies_the_policy_and_reports_what_it_removed() {
    let sb = Sandbox::new();
    sb.write(
        "kept.yaml",
        "name: kept\nretention: { keep_last: 2 }\ntasks:\n  a: { type: noop }\n",
    );
    sb.write("other.yaml", "name: other\ntasks:\n  a: { type: noop }\n");
    let mut kept_ids = Vec::new();
    for _ in 0..4 {
        let (code, rec) = sb.run_json(&["kept.yaml"]);
        assert_eq!(code, 0);
        kept_ids.push(rec["run_id"].as_str().unwrap().to_string());
    }
    for _ in 0..3 {
        assert_eq!(sb.run_json(&["other.yaml"]).0, 0);
    }
    let before = sb.run_ids();
    let dry = sb.run(&["runs", "prune", "--dry-run"]);
    let text = String::from_utf8(dry.stdout).unwrap();
    assert!(dry.status.success(), "{text}");
    for old in &kept_ids[..2] {
        assert!(text.contains(&format!("would remove run {old}")), "{text}");
    }
    assert!(text.contains("would remove 2 runs"), "{text}");
    assert_eq!(sb.run_ids(), before, "a dry run removes nothing");

    let out = sb.run(&["runs", "prune"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("removed 2 runs") && text.contains("freed"),
        "{text}"
    );
    let after = sb.run_ids();
    assert_eq!(after.len(), 5, "{after:?}");
    assert!(kept_ids[2..].iter().all(|id| after.contains(id)));

    // A default from the environment applies to pipelines without `retention:`.
    let out = sb
        .cmd(&["runs", "prune", "--pipeline", "other", "--json"])
        .env("TWEETFLOW_RETENTION_KEEP_LAST", "1")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["removed"].as_array().unwrap().len(), 2, "{report}");
    assert!(
        report["removed"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["pipeline"] == "other")
    );
    assert_eq!(sb.run_ids().len(), 3);

    let bad = sb
        .cmd(&["runs", "prune"])
        .env("TWEETFLOW_RETENTION_MAX_AGE", "forever")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("TWEETFLOW_RETENTION_MAX_AGE"));
}

#[test]
fn a_chatty_command_log_is_capped_per_attempt_keeping_head_and_tail() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: chatty
tasks:
  talk:
    type: command
    retries: { max_attempts: 2, initial_delay: 10ms }
    with: { argv: [sh, -c, 'i=0; while [ $i -lt 5000 ]; do echo "line $i"; i=$((i+1)); done; [ -f second ] || { touch second; exit 1; }'] }
"#,
    );
    let out = sb
        .cmd(&["run", "p.yaml", "--json"])
        .env("TWEETFLOW_LOG_CAP", "64KB")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = sb
        .runs()
        .join(rec["run_id"].as_str().unwrap())
        .join("log.jsonl");
    let log = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let notes: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["dropped_lines"].is_u64())
        .collect();
    assert_eq!(notes.len(), 2, "one note per attempt");
    for attempt in [1, 2] {
        let of_attempt = |l: &&serde_json::Value| {
            l["spans"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["name"] == "attempt" && s["fields"]["number"] == attempt)
            })
        };
        let output: Vec<&str> = lines
            .iter()
            .filter(of_attempt)
            .filter(|l| l["fields"]["stream"] == "stdout")
            .filter_map(|l| l["fields"]["message"].as_str())
            .collect();
        let bytes: usize = log
            .lines()
            .zip(&lines)
            .filter(|(_, l)| of_attempt(l))
            .map(|(text, _)| text.len() + 1)
            .sum();
        assert!(
            bytes <= 64 * 1024 + 1024,
            "attempt {attempt}: {bytes} bytes"
        );
        assert_eq!(
            output.first(),
            Some(&"line 0"),
            "attempt {attempt}: the head"
        );
        assert_eq!(
            output.last(),
            Some(&"line 4999"),
            "attempt {attempt}: the tail"
        );
        let note = notes
            .iter()
            .find(|n| of_attempt(n))
            .expect("a note in the attempt");
        let dropped = note["fields"]["dropped_lines"].as_u64().unwrap() as usize;
        assert_eq!(dropped + output.len(), 5000, "attempt {attempt}");
    }
}

#[test]
fn run_prints_one_line_per_task_and_the_full_stream_only_when_asked() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"name: lines
tasks:
  flaky:
    type: command
    with: { argv: [sh, -c, "echo boom >&2; exit 1"] }
    retries: { max_attempts: 2, initial_delay: 10ms, jitter: false }
  ok: { type: noop }
  after: { type: noop, depends_on: [flaky] }
"#,
    );
    let out = sb
        .cmd(&["run", "p.yaml"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "▸ flaky started",
        "↻ flaky attempt 2 (previous: `sh` exited with code 1; stderr ends with: boom)",
        "✗ flaky failed in ",
        "✓ ok succeeded in ",
        "- after upstream_failed",
    ] {
        assert!(stderr.contains(line), "missing `{line}` in:\n{stderr}");
    }
    assert!(
        !stderr.contains("INFO") && !stderr.contains("WARN"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("TASK") && stdout.contains("upstream_failed"),
        "{stdout}"
    );
    // The run log has the whole stream all the same.
    let ids = sb.run_ids();
    let log = std::fs::read_to_string(sb.runs().join(&ids[0]).join("log.jsonl")).unwrap();
    assert!(log.contains("attempt failed; retrying"), "{log}");

    for verbose in [&["-v", "run", "p.yaml"][..], &["run", "-v", "p.yaml"][..]] {
        let out = sb.cmd(verbose).env_remove("RUST_LOG").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("INFO") && stderr.contains("attempt failed; retrying"),
            "{stderr}"
        );
        assert!(!stderr.contains("▸ flaky started"), "{stderr}");
    }
}
