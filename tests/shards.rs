//! Shards on the `local` executor (one `tweetflow task exec` child process per shard), the
//! `task exec` mode itself, and the validation of `executor:` and `shards:`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Sandbox, status, task};
use serde_json::{Value, json};

fn shard_attempts(record: &Value, id: &str, shard: u64) -> Vec<Value> {
    task(record, id)["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter(|a| a["shard"] == shard)
        .cloned()
        .collect()
}

#[test]
fn each_shard_runs_in_its_own_process_and_is_retried_on_its_own() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: sharded
tasks:
  split:
    type: command
    shards: 3
    retries: { max_attempts: 2, initial_delay: 10ms }
    with:
      argv: [sh, -c, 'echo "$PPID" > "pid-$TWEETFLOW_SHARD-of-$TWEETFLOW_SHARDS"; if [ "$TWEETFLOW_SHARD" = 1 ] && [ ! -f failed-once ]; then touch failed-once; exit 3; fi']
  after:
    type: command
    depends_on: [split]
    with: { argv: [sh, -c, 'ls pid-* | wc -l > seen'] }
"#,
    );
    let (code, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(status(&rec, "split"), "succeeded");
    assert_eq!(shard_attempts(&rec, "split", 0).len(), 1);
    assert_eq!(shard_attempts(&rec, "split", 2).len(), 1);
    let one = shard_attempts(&rec, "split", 1);
    assert_eq!(one.len(), 2, "{rec}");
    assert_eq!(one[0]["error"]["kind"], "retryable");
    // Every shard ran before the downstream task, each in a process of its own (the
    // command's parent is the shard's `tweetflow task exec`).
    assert_eq!(
        std::fs::read_to_string(sb.path().join("seen"))
            .unwrap()
            .trim(),
        "3"
    );
    let pids: std::collections::HashSet<String> = (0..3)
        .map(|i| std::fs::read_to_string(sb.path().join(format!("pid-{i}-of-3"))).unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    assert!(!pids.contains(&format!("{}\n", std::process::id())));
    let output = &task(&rec, "split")["output"];
    assert_eq!(output["values"]["shards"].as_array().map(Vec::len), Some(3));
    assert_eq!(output["values"]["exit_code"], 0);
    // The shards' log lines are in the run's log, under the task and their shard.
    let run_id = rec["run_id"].as_str().unwrap();
    let log = std::fs::read_to_string(sb.runs().join(run_id).join("log.jsonl")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("\"target\":\"tweetflow::exec\"")
                && l.contains("\"name\":\"shard\"")
                && l.contains("\"task\":\"split\"")),
        "{log}"
    );
}

fn attempt_file(sb: &Sandbox, argv: Value) -> std::path::PathBuf {
    let attempt = json!({
        "run_id": "r1", "task_id": "t", "task_type": "command", "task_version": "1",
        "attempt": 1, "shard": {"index": 1, "count": 2},
        "params": {"argv": argv}, "upstream": {}, "pipeline": "p", "spec_hash": "h",
        "pipeline_params": {}, "sections": {},
        "artifacts_dir": sb.path().join("artifacts"), "cwd": sb.path(),
    });
    sb.write("attempt.json", &attempt.to_string())
}

#[test]
fn task_exec_writes_its_result_and_keeps_the_kind_of_error_in_its_exit_code() {
    let sb = Sandbox::new();
    let file = attempt_file(&sb, json!(["sh", "-c", "echo shard $TWEETFLOW_SHARD"]));
    let out = sb.run(&["task", "exec", file.to_str().unwrap(), "--result", "r.json"]);
    assert_eq!(out.status.code(), Some(0));
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(result["output"]["values"]["exit_code"], 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "log lines are JSON: {stdout}"
    );
    assert!(stdout.contains("shard 1"), "{stdout}");

    let file = attempt_file(&sb, json!(["sh", "-c", "exit 4"]));
    let out = sb.run(&["task", "exec", file.to_str().unwrap(), "--result", "r.json"]);
    assert_eq!(out.status.code(), Some(10), "retryable");
    let file = attempt_file(&sb, json!([]));
    let out = sb.run(&["task", "exec", file.to_str().unwrap(), "--result", "r.json"]);
    assert_eq!(out.status.code(), Some(12), "configuration error");
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(result["error"]["kind"], "config");
}

#[test]
fn executor_and_shards_are_validated_with_positions() {
    let sb = Sandbox::new();
    sb.write(
        "bad.yaml",
        "name: x\ndefaults:\n  executor: locl\ntasks:\n  a: { type: noop, shards: 2 }\n  b: { type: command, shards: 0, with: { argv: [\"true\"] } }\n  c: { type: noop, executor: { local: { x: 1 } } }\n",
    );
    let out = sb.run(&["validate", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "bad.yaml:3:13: error: defaults: unknown executor `locl`",
        "did you mean `local`?",
        "bad.yaml:5:28: error: task `a`: task type `noop` cannot be split into shards",
        "bad.yaml:6:31: error: task `b`: `shards` must be between 1 and 1024, found 0",
        "bad.yaml:7:30: error: task `c`: the `local` executor has no settings",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

fn medallion_pipeline(sb: &Sandbox) {
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: medallion_shards
params: {{ root: one, shards: 1 }}
defaults:
  retries: {{ max_attempts: 10, initial_delay: 10ms }}
tasks:
  replay: {{ type: replay, with: {{ csv: "{csv}", landing: "${{params.root}}/landing", tweets_per_file: 25, limit: 400 }} }}
  ingest:
    type: ingest
    depends_on: [replay]
    shards: ${{params.shards}}
    with: {{ source: "${{params.root}}/landing", table: "${{params.root}}/bronze", max_files_per_batch: 2, settle_time: 0s }}
  clean:
    type: clean
    depends_on: [ingest]
    shards: ${{params.shards}}
    with: {{ input: "${{params.root}}/bronze", table: "${{params.root}}/silver" }}
"#,
            csv = tweetflow_test_support::test_csv().display()
        ),
    );
}

#[test]
fn ingest_and_clean_in_1_2_and_4_shard_processes_give_the_same_tables() {
    let sb = Sandbox::new();
    medallion_pipeline(&sb);
    let mut tables = Vec::new();
    for shards in [1, 2, 4] {
        let root = format!("root{shards}");
        let (code, rec) = sb.run_json(&[
            "p.yaml",
            "--param",
            &format!("root={root}"),
            "--param",
            &format!("shards={shards}"),
        ]);
        assert_eq!(code, 0, "{rec}");
        for id in ["ingest", "clean"] {
            let output = &task(&rec, id)["output"]["values"];
            let per_shard = output["shards"].as_array().map_or(1, Vec::len);
            assert_eq!(per_shard, shards, "{id}: {rec}");
            let pids: std::collections::HashSet<&Value> = task(&rec, id)["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| &a["shard"])
                .collect();
            assert_eq!(pids.len(), shards, "{id}: one attempt sequence per shard");
        }
        assert_eq!(task(&rec, "ingest")["output"]["values"]["rows"], 400);
        tables.push(common::medallion_rows(&sb, &root));
    }
    assert!(tables[0][1].len() > 50, "{}", tables[0][1].len());
    assert_eq!(tables[1], tables[0], "2 shards");
    assert_eq!(tables[2], tables[0], "4 shards");

    // Shard processes killed (SIGKILL) after each of their bronze commits are retried and
    // take every landing file exactly once.
    let out = sb
        .cmd(&[
            "run",
            "p.yaml",
            "--json",
            "--param",
            "root=killed",
            "--param",
            "shards=2",
        ])
        .env("TWEETFLOW_DELTA_FAILPOINT", "ingest.after_commit:kill")
        .output()
        .unwrap();
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{rec}");
    for shard in 0..2 {
        let attempts = shard_attempts(&rec, "ingest", shard);
        assert!(
            attempts.len() >= 3,
            "shard {shard} was killed per batch: {rec}"
        );
        assert!(
            attempts[0]["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("without writing its result")),
            "{rec}"
        );
    }
    assert_eq!(common::medallion_rows(&sb, "killed"), tables[0]);
}
