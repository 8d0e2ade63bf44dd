//! The `ray` executor on a cluster set up as in production, with the pinned Ray: token
//! authentication on, a head node with no CPUs and a worker node in its own mount namespace
//! that sees none of the engine's files (an empty tmpfs over `/tmp`, where the tests' run
//! stores and sandboxes are), tables, landing folder and model on the S3 test server.
//!
//! - the medallion (ingest, clean, infer in 2 shards on the worker) with an infer job stopped
//!   while it scores gives the tables of a local unsharded run; the token (from
//!   `${secret.RAY_TOKEN}` in `defaults.executor`) is in no file of the run store;
//! - `--resume` after `kill -9` of the engine attaches to the running jobs (token from the
//!   file named by `RAY_AUTH_TOKEN_PATH`);
//! - no token, or a wrong one: a configuration error saying where tweetflow looked;
//! - local-path params on a Ray task are refused at validation unless listed as shared.
#![allow(clippy::unwrap_used)]

mod common;
mod ray_prod;

use std::sync::Mutex;
use std::time::Duration;

use common::{Sandbox, task, wait_for};
use ray_prod::{all_text, jobs_api};
use tweetflow_test_support::ray_token_cluster::{RayVersion, TokenCluster, token_cluster};

/// The worker node has 2 CPUs, which the 2 shards of one test take: the tests take turns.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn cluster() -> &'static TokenCluster {
    if let Err(e) = tweetflow_test_support::ray_token_cluster::can_unshare() {
        panic!("{e}");
    }
    token_cluster(
        RayVersion::Pinned,
        std::path::Path::new(env!("CARGO_BIN_EXE_tweetflow")),
    )
}

#[test]
fn the_medallion_on_a_token_protected_cluster_that_shares_no_file_with_the_engine_equals_a_local_run()
 {
    let _turn = turn();
    let c = cluster();
    let api = jobs_api(c);
    assert_eq!(api.status_without_token(), 401, "the cluster wants a token");
    let sb = Sandbox::new();
    let (bucket, model) = ray_prod::bucket_with_model("rayprod");
    let csv = tweetflow_test_support::test_csv();
    // The first infer job to score a batch pauses there (the marker is on the worker's own
    // tmpfs) until the test stops it; its retry goes on.
    let marker = format!("/tmp/tfnode/paused-{}", std::process::id());
    let pipeline = ray_prod::medallion(
        &csv,
        &model,
        &format!(
            "address: \"{}\", tweetflow: \"{}\", auth_token: \"${{secret.RAY_TOKEN}}\"",
            c.address, c.node_tweetflow
        ),
        &format!("TWEETFLOW_DELTA_FAILPOINT: \"infer.scoring:pause:{marker}\""),
    );
    sb.write("p.yaml", &pipeline);
    sb.write("local.yaml", &ray_prod::local_twin(&pipeline));
    let local_root = format!("s3://{bucket}/local");
    let ray_root = format!("s3://{bucket}/ray");
    let (code, local) = ray_prod::run(
        &sb,
        &["local.yaml", "--param", &format!("root={local_root}")],
        &[],
    );
    assert_eq!(code, 0, "{local}");
    let local_run = local["run_id"].as_str().unwrap().to_string();

    let child = sb
        .cmd(&[
            "run",
            "p.yaml",
            "--json",
            "--param",
            &format!("root={ray_root}"),
            "--param",
            "shards=2",
        ])
        .envs(tweetflow_test_support::s3_server::server().env())
        .env("RAY_TOKEN", &c.token)
        .env_remove("RAY_AUTH_TOKEN")
        .env("HOME", sb.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (run_id, paused) = ray_prod::paused_infer_job(&api, &sb, &local_run);
    assert!(api.stop(&paused), "the paused job was stopped");
    let out = child.wait_with_output().unwrap();
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "{record:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The stopped attempt failed (retryable) and ran again; every other shard ran once.
    let attempts = task(&record, "infer")["attempts"].as_array().unwrap();
    let failed: Vec<&serde_json::Value> =
        attempts.iter().filter(|a| !a["error"].is_null()).collect();
    assert_eq!(failed.len(), 1, "{record:#}");
    assert_eq!(failed[0]["error"]["kind"], "retryable", "{record:#}");
    assert_eq!(attempts.len(), 3, "{record:#}");
    ray_prod::assert_same_tables(&record, &local_root, &ray_root);

    // Every Ray task's shards ran on the worker node (the head has no CPUs).
    let jobs = api.jobs_of(&run_id);
    assert_eq!(jobs.len(), 7, "{jobs:#?}");
    let nodes: std::collections::HashSet<&str> = jobs
        .iter()
        .filter_map(|j| j["driver_node_id"].as_str())
        .collect();
    assert_eq!(nodes.len(), 1, "one worker node ran every job: {jobs:#?}");
    // The worker printed where it found ONNX Runtime: the wheel of the node's Python.
    let infer_job = jobs
        .iter()
        .filter_map(|j| j["submission_id"].as_str())
        .find(|id| id.contains("-infer-") && *id != paused)
        .unwrap()
        .to_string();
    let log = std::fs::read_to_string(sb.runs().join(&run_id).join("log.jsonl")).unwrap();
    assert!(
        log.contains("the onnxruntime wheel of"),
        "the runtime came from the node's Python: {}",
        api.logs(&infer_job)
    );

    // The token is in no file of the run store; the plan says `***` where it was.
    let stored = all_text(&sb.runs());
    assert!(
        !stored.contains(&c.token),
        "the token leaked into the run store"
    );
    let plan = std::fs::read_to_string(sb.runs().join(&run_id).join("plan.json")).unwrap();
    assert!(plan.contains(r#""auth_token": "***""#), "{plan}");
    let overheads = ray_prod::overheads(&sb, &run_id);
    assert!(!overheads.is_empty());
    let avg =
        |f: fn(&(f64, f64)) -> f64| overheads.iter().map(f).sum::<f64>() / overheads.len() as f64;
    eprintln!(
        "Ray {} with token auth: {} jobs, submit->start {:.0} ms, end->collected {:.0} ms on average",
        c.version,
        overheads.len(),
        avg(|o| o.0),
        avg(|o| o.1)
    );
}

#[test]
fn resume_after_kill_9_attaches_to_the_running_jobs_of_a_token_protected_cluster() {
    let _turn = turn();
    let c = cluster();
    let api = jobs_api(c);
    let sb = Sandbox::new();
    let token_file = sb.write("ray-token", &c.token);
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: resume_on_ray
tasks:
  split:
    type: command
    shards: 2
    executor: {{ ray: {{ address: "{address}", tweetflow: "{bin}", num_cpus: 1, poll_ms: 100 }} }}
    with: {{ argv: [sh, -c, 'echo "started shard $TWEETFLOW_SHARD in $(pwd)"; sleep 10; echo "done $TWEETFLOW_SHARD"'] }}
"#,
            address = c.address,
            bin = c.node_tweetflow
        ),
    );
    let env = |cmd: &mut std::process::Command| {
        cmd.env("RAY_AUTH_TOKEN_PATH", &token_file)
            .env_remove("RAY_AUTH_TOKEN")
            .env("HOME", sb.path());
    };
    let mut first = sb.cmd(&["run", "p.yaml"]);
    env(&mut first);
    let mut child = first
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = || {
        let Some(run_id) = sb.run_ids().into_iter().next() else {
            return false;
        };
        let jobs = api.jobs_of(&run_id);
        jobs.len() == 2
            && jobs.iter().all(|j| {
                j["status"] == "RUNNING"
                    && api
                        .logs(j["submission_id"].as_str().unwrap_or_default())
                        .contains("started shard")
            })
    };
    assert!(
        wait_for(Duration::from_secs(180), running),
        "both shards run"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let run_id = sb.run_ids()[0].clone();
    let mut resume = sb.cmd(&["run", "--resume", &run_id, "--json"]);
    env(&mut resume);
    let out = resume.output().unwrap();
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{record:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs = api.jobs_of(&run_id);
    assert_eq!(jobs.len(), 2, "no second submission: {jobs:#?}");
    assert!(jobs.iter().all(|j| j["status"] == "SUCCEEDED"), "{jobs:#?}");
    // Each shard ran once, in a folder of the worker node (the engine's working directory
    // does not exist there), and its lines are in the run's log.
    let log = std::fs::read_to_string(sb.runs().join(&run_id).join("log.jsonl")).unwrap();
    for shard in 0..2 {
        assert_eq!(
            log.matches(&format!("started shard {shard} in /tmp/tfnode"))
                .count(),
            1,
            "{log}"
        );
        assert!(log.contains(&format!("done {shard}")), "{log}");
    }
    assert!(!all_text(&sb.runs()).contains(&c.token));
}

#[test]
fn without_the_right_token_the_run_fails_with_a_configuration_error_saying_where_it_looked() {
    let _turn = turn();
    let c = cluster();
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: no_token
tasks:
  split:
    type: command
    retries: {{ max_attempts: 3, initial_delay: 10ms }}
    executor: {{ ray: {{ address: "{address}", tweetflow: "{bin}" }} }}
    with: {{ argv: [echo, hi] }}
"#,
            address = c.address,
            bin = c.node_tweetflow
        ),
    );
    // No token anywhere: an empty home, no variables.
    let out = sb
        .cmd(&["run", "p.yaml", "--json"])
        .env("HOME", sb.path())
        .env_remove("RAY_AUTH_TOKEN")
        .env_remove("RAY_AUTH_TOKEN_PATH")
        .output()
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{record:#}");
    let split = task(&record, "split");
    let attempts = split["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        1,
        "a configuration error is not retried: {split:#}"
    );
    assert_eq!(attempts[0]["error"]["kind"], "config", "{split:#}");
    let message = attempts[0]["error"]["message"].as_str().unwrap();
    for place in [
        "401",
        "`auth_token` in the executor settings: not set",
        "RAY_AUTH_TOKEN: not set",
        "RAY_AUTH_TOKEN_PATH: not set",
        "~/.ray/auth_token",
        "no such file",
    ] {
        assert!(message.contains(place), "`{place}` in: {message}");
    }

    // A wrong token in RAY_AUTH_TOKEN: refused too, named as the source, masked.
    let wrong = "tfray-wrong-token-0123456789";
    let out = sb
        .cmd(&["run", "p.yaml", "--json"])
        .env("HOME", sb.path())
        .env("RAY_AUTH_TOKEN", wrong)
        .output()
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{record:#}");
    let error = &task(&record, "split")["error"];
    assert_eq!(error["kind"], "config", "{error:#}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("the token sent came from RAY_AUTH_TOKEN"),
        "{message}"
    );
    assert!(!all_text(&sb.runs()).contains(wrong));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(wrong));
}

#[test]
fn local_paths_on_a_ray_task_are_refused_at_validation_unless_listed_as_shared() {
    let sb = Sandbox::new();
    let pipeline = |shared: &str| {
        format!(
            r#"name: local_on_ray
tasks:
  infer:
    type: infer
    executor: {{ ray: {{ address: "http://127.0.0.1:1"{shared} }} }}
    with: {{ input: "s3://lake/silver", table: data/gold, model: "models:/tweet-sentiment@production" }}
"#
        )
    };
    sb.write("p.yaml", &pipeline(""));
    let out = sb.run(&["validate", "p.yaml"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("p.yaml:6:"),
        "the position of `table`: {text}"
    );
    assert!(
        text.contains("`table: data/gold` is a local path") && text.contains("shared_paths"),
        "{text}"
    );
    // The object-store input and the registry model pass; only `table` is named.
    assert!(
        !text.contains("`input:") && !text.contains("`model:"),
        "{text}"
    );

    let shared = sb.path().join("data").display().to_string();
    sb.write(
        "p.yaml",
        &pipeline(&format!(", shared_paths: [\"{shared}\"]")),
    );
    let out = sb.run(&["validate", "p.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Seconds from the first start to the last end of the task's attempts.
fn span_secs(record: &serde_json::Value, id: &str) -> f64 {
    let attempts = task(record, id)["attempts"].as_array().unwrap();
    let parse = |v: &serde_json::Value| -> chrono::DateTime<chrono::Utc> {
        v.as_str().unwrap().parse().unwrap()
    };
    let start = attempts
        .iter()
        .map(|a| parse(&a["started_at"]))
        .min()
        .unwrap();
    let end = attempts
        .iter()
        .map(|a| parse(&a["ended_at"]))
        .max()
        .unwrap();
    (end - start).num_milliseconds() as f64 / 1000.0
}

/// A measurement, not a check (run with `--ignored --nocapture`): in one run, `infer` over
/// the same silver table on S3 (`TWEETFLOW_MEASURE_TWEETS` tweets of `training.csv.gz`,
/// default 4,000, tiny int8 model) in the engine's process unsharded (2 threads), and in 2
/// shards of 1 thread as Ray jobs on the namespaced worker node (2 CPUs); prints tweets/s
/// of each and the Ray overhead per attempt.
#[test]
#[ignore]
fn measure_infer_on_the_namespaced_worker_vs_a_local_run() {
    let _turn = turn();
    let c = cluster();
    let sb = Sandbox::new();
    let (bucket, model) = ray_prod::bucket_with_model("raymeasure");
    let tweets: usize = std::env::var("TWEETFLOW_MEASURE_TWEETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let csv = tweetflow_test_support::repo_root().join("datasets/sentiment140/training.csv.gz");
    let root = format!("s3://{bucket}/m");
    sb.write(
        "prepare.yaml",
        &format!(
            r#"name: prepare
tasks:
  replay: {{ type: replay, with: {{ csv: "{csv}", landing: "{root}/landing", tweets_per_file: 500, limit: {tweets} }} }}
  ingest: {{ type: ingest, depends_on: [replay], with: {{ source: "{root}/landing", table: "{root}/bronze", settle_time: 0s }} }}
  clean: {{ type: clean, depends_on: [ingest], with: {{ input: "{root}/bronze", table: "{root}/silver" }} }}
"#,
            csv = csv.display()
        ),
    );
    let (code, rec) = ray_prod::run(&sb, &["prepare.yaml"], &[]);
    assert_eq!(code, 0, "{rec}");
    let silver_rows = task(&rec, "clean")["output"]["values"]["rows"]
        .as_f64()
        .unwrap_or(0.0);
    let infer = |name: &str, gold: &str, shards: u32, threads: u32, executor: &str| {
        format!(
            r#"name: {name}
tasks:
  infer:
    type: infer
    shards: {shards}
    executor: {executor}
    with: {{ input: "{root}/silver", table: "{root}/{gold}", model: "{model}", batch_size: 32, threads: {threads} }}
"#
        )
    };
    sb.write(
        "local.yaml",
        &infer("infer_local", "gold-local", 1, 2, "local"),
    );
    sb.write(
        "ray.yaml",
        &infer(
            "infer_ray",
            "gold-ray",
            2,
            1,
            &format!(
                "{{ ray: {{ address: \"{}\", tweetflow: \"{}\", num_cpus: 1, poll_ms: 100 }} }}",
                c.address, c.node_tweetflow
            ),
        ),
    );
    let token = [("RAY_AUTH_TOKEN", c.token.as_str())];
    let (code, local) = ray_prod::run(&sb, &["local.yaml"], &token);
    assert_eq!(code, 0, "{local}");
    let (code, ray) = ray_prod::run(&sb, &["ray.yaml"], &token);
    assert_eq!(code, 0, "{ray}");
    let local_s = span_secs(&local, "infer");
    let ray_s = span_secs(&ray, "infer");
    let overheads = ray_prod::overheads(&sb, ray["run_id"].as_str().unwrap());
    let avg =
        |f: fn(&(f64, f64)) -> f64| overheads.iter().map(f).sum::<f64>() / overheads.len() as f64;
    eprintln!(
        "MEASURE Ray {}: {tweets} tweets, {silver_rows} silver rows; infer local unsharded (2 threads): {local_s:.2} s, {:.0} tweets/s; \
         infer shards: 2 on the namespaced worker (1 thread each): {ray_s:.2} s, {:.0} tweets/s ({:.0} % of local); \
         Ray overhead per attempt: submit->start {:.0} ms, end->collected {:.0} ms ({} jobs)",
        c.version,
        tweets as f64 / local_s,
        tweets as f64 / ray_s,
        100.0 * local_s / ray_s,
        avg(|o| o.0),
        avg(|o| o.1),
        overheads.len()
    );
}
