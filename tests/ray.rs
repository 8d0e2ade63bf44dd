//! The `ray` executor against a real local Ray cluster (a head and a worker node on this
//! machine, started from the project's venv): shards as Ray jobs on both nodes, logs and job
//! ids in the run record, a job stopped by the cluster retried, an unreachable address,
//! Ctrl-C stopping the jobs, `--resume` after `kill -9` re-attaching to the jobs, and the
//! medallion (ingest, clean and infer in shards) on Ray with an infer job stopped while it is
//! scoring giving the tables of a local unsharded run.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{Sandbox, status, task, wait_for};
use serde_json::Value;
use tweetflow_test_support::ray_cluster::cluster;

/// The cluster has one CPU per node: the tests take turns.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The cluster's jobs of run `run_id`.
fn jobs_of(run_id: &str) -> Vec<Value> {
    let jobs: Vec<Value> = http()
        .get(format!("{}/api/jobs/", cluster().address))
        .send()
        .and_then(|r| r.json())
        .unwrap_or_default();
    jobs.into_iter()
        .filter(|j| j["metadata"]["tweetflow_run"] == run_id)
        .collect()
}

fn job_ids(record: &Value, id: &str) -> Vec<String> {
    task(record, id)["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|a| a["job"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn pipeline(address: &str, script: &str, extra: &str) -> String {
    format!(
        r#"
name: on_ray
tasks:
  split:
    type: command
    shards: 2
    executor: {{ ray: {{ address: "{address}", num_cpus: 1, memory: 100MB, poll_ms: 100 }} }}
{extra}
    with: {{ argv: [sh, -c, '{script}'] }}
  after:
    type: noop
    depends_on: [split]
"#
    )
}

fn only_run(sb: &Sandbox) -> String {
    let ids = sb.run_ids();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].clone()
}

#[test]
fn shards_run_as_ray_jobs_on_both_nodes_with_their_logs_and_job_ids() {
    let _turn = turn();
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &pipeline(
            &cluster().address,
            r#"echo "hello from shard $TWEETFLOW_SHARD"; sleep 3"#,
            "",
        ),
    );
    let (code, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(status(&rec, "after"), "succeeded");
    let run_id = rec["run_id"].as_str().unwrap();
    let ids = job_ids(&rec, "split");
    assert_eq!(ids.len(), 2, "{rec}");
    let jobs = jobs_of(run_id);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|j| j["status"] == "SUCCEEDED"), "{jobs:?}");
    let nodes: std::collections::HashSet<&str> = jobs
        .iter()
        .filter_map(|j| j["driver_node_id"].as_str())
        .collect();
    assert_eq!(nodes.len(), 2, "both nodes ran a shard: {jobs:?}");
    // The job ids are in `runs show`, and the shards' lines in the run's log.
    let show = sb.run(&["runs", "show", run_id]);
    let text = String::from_utf8_lossy(&show.stdout);
    for id in &ids {
        assert!(text.contains(id.as_str()), "{text}");
    }
    let log = std::fs::read_to_string(sb.runs().join(run_id).join("log.jsonl")).unwrap();
    for shard in 0..2 {
        assert!(
            log.contains(&format!("hello from shard {shard}")),
            "shard {shard}'s output is in the run log:\n{log}"
        );
    }
}

#[test]
fn an_unreachable_cluster_is_a_retryable_error_naming_its_address() {
    let sb = Sandbox::new();
    let port = tweetflow_test_support::mlflow_server::free_port();
    let address = format!("http://127.0.0.1:{port}");
    sb.write(
        "p.yaml",
        &pipeline(
            &address,
            "true",
            "    retries: { max_attempts: 2, initial_delay: 10ms }",
        ),
    );
    let (code, rec) = sb.run_json(&["p.yaml"]);
    assert_eq!(code, 1, "{rec}");
    let error = &task(&rec, "split")["error"];
    assert_eq!(error["kind"], "retryable", "{rec}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&address) && message.contains("unreachable"),
        "{message}"
    );
    // Each shard tried twice.
    assert_eq!(common::attempts(&rec, "split"), 4, "{rec}");
}

#[test]
fn a_job_the_cluster_stops_is_retried_and_the_task_succeeds() {
    let _turn = turn();
    let sb = Sandbox::new();
    // Shard 1's first job waits to be stopped; its second one finishes at once.
    sb.write(
        "p.yaml",
        &pipeline(
            &cluster().address,
            r#"if [ "$TWEETFLOW_SHARD" = 1 ] && [ ! -f first ]; then touch first; sleep 120; fi; echo done"#,
            "    retries: { max_attempts: 2, initial_delay: 10ms }",
        ),
    );
    let child = sb.spawn(&["run", "p.yaml", "--json"]);
    assert!(
        wait_for(Duration::from_secs(120), || sb
            .path()
            .join("first")
            .exists()),
        "shard 1 started"
    );
    let run_id = only_run(&sb);
    let job = format!("tweetflow-{run_id}-split-shard-1-of-2-attempt-1");
    let stopped = http()
        .post(format!("{}/api/jobs/{job}/stop", cluster().address))
        .send()
        .unwrap();
    assert!(stopped.status().is_success(), "{stopped:?}");
    let out = child.wait_with_output().unwrap();
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{rec}");
    let attempts: Vec<&Value> = task(&rec, "split")["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["shard"] == 1)
        .collect();
    assert_eq!(attempts.len(), 2, "{rec}");
    // Stopping the job ends its processes: either the worker goes before it can write a
    // result (the engine then calls the job lost), or it outlives the command it ran and
    // records that the command was terminated. Both are retried.
    let message = attempts[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("lost by the cluster") || message.contains("killed by signal 15"),
        "{message}"
    );
}

#[test]
fn ctrl_c_of_the_engine_stops_its_ray_jobs() {
    let _turn = turn();
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &pipeline(
            &cluster().address,
            r#"touch "started-$TWEETFLOW_SHARD"; sleep 120"#,
            "",
        ),
    );
    let child = sb.spawn(&["run", "p.yaml"]);
    assert!(
        wait_for(Duration::from_secs(120), || {
            sb.path().join("started-0").exists() && sb.path().join("started-1").exists()
        }),
        "both shards started"
    );
    let run_id = only_run(&sb);
    // SAFETY: SIGINT to the engine this test started.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs = jobs_of(&run_id);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|j| j["status"] == "STOPPED"), "{jobs:?}");
}

#[test]
fn resume_after_kill_9_reattaches_to_the_jobs_instead_of_submitting_again() {
    let _turn = turn();
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &pipeline(
            &cluster().address,
            r#"touch "ran-$TWEETFLOW_SHARD-$$"; sleep 8"#,
            "",
        ),
    );
    let mut child = sb.spawn(&["run", "p.yaml"]);
    let ran = || {
        std::fs::read_dir(sb.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("ran-"))
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(120), || ran() == 2),
        "both shards started"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let run_id = only_run(&sb);
    let (code, rec) = sb.run_json(&["--resume", &run_id]);
    assert_eq!(code, 0, "{rec}");
    assert_eq!(ran(), 2, "no shard ran twice");
    let jobs = jobs_of(&run_id);
    assert_eq!(jobs.len(), 2, "no second submission: {jobs:?}");
    assert!(jobs.iter().all(|j| j["status"] == "SUCCEEDED"), "{jobs:?}");
}

/// Sorted `tweet_id|mention|prediction|score|model version` rows of a gold table, read by the
/// Python `deltalake` package (another Delta reader).
fn gold_rows(table: &std::path::Path) -> Vec<String> {
    common::python_delta_rows(
        table.to_str().unwrap(),
        &[
            "tweet_id",
            "mention",
            "predicted_sentiment",
            "predicted_score",
            "model_version",
        ],
    )
}

#[test]
fn the_medallion_on_ray_in_shards_with_a_job_stopped_mid_scoring_gives_the_tables_of_a_local_unsharded_run()
 {
    let _turn = turn();
    let sb = Sandbox::new();
    let csv = tweetflow_test_support::test_csv();
    let model = tweetflow_test_support::tiny_model();
    // The first infer job to score a batch stops there (the failpoint creates `paused`) until
    // the test stops its Ray job; its retry goes on.
    let paused = sb.path().join("paused");
    // Both nodes of this cluster share the machine's disk: the sandbox and the model are
    // listed as shared, so their local paths may be used on Ray.
    let on_ray = format!(
        "    executor: {{ ray: {{ address: \"{address}\", num_cpus: 1, poll_ms: 100, shared_paths: [\"{sandbox}\", \"{model}\"], runtime_env: {{ env_vars: {{ TWEETFLOW_DELTA_FAILPOINT: \"infer.scoring:pause:{paused}\" }} }} }} }}\n",
        address = cluster().address,
        sandbox = sb.path().display(),
        model = model.display(),
        paused = paused.display(),
    );
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: tweet_sentiment_on_ray
params: {{ root: local, shards: 1 }}
defaults:
  retries: {{ max_attempts: 2, initial_delay: 10ms }}
tasks:
  replay: {{ type: replay, with: {{ csv: "{csv}", landing: landing, tweets_per_file: 50, limit: 800 }} }}
  ingest:
    type: ingest
    depends_on: [replay]
    shards: ${{params.shards}}
{on_ray}    with: {{ source: landing, table: "${{params.root}}/bronze", settle_time: 0s }}
  clean:
    type: clean
    depends_on: [ingest]
    shards: ${{params.shards}}
{on_ray}    with: {{ input: "${{params.root}}/bronze", table: "${{params.root}}/silver" }}
  infer:
    type: infer
    depends_on: [clean]
    shards: ${{params.shards}}
{on_ray}    with: {{ input: "${{params.root}}/silver", table: "${{params.root}}/gold", model: "{model}", batch_size: 8, threads: 1 }}
"#,
            csv = csv.display(),
            model = model.display(),
        ),
    );
    // The reference: the same pipeline unsharded in the engine's process.
    let local = sb.path().join("local.yaml");
    std::fs::write(
        &local,
        std::fs::read_to_string(sb.path().join("p.yaml"))
            .unwrap()
            .replace(
                "name: tweet_sentiment_on_ray",
                "name: tweet_sentiment_local",
            )
            .replace(&on_ray, ""),
    )
    .unwrap();
    let (code, rec) = sb.run_json(&["local.yaml"]);
    assert_eq!(code, 0, "{rec}");
    assert!(!paused.exists(), "the local run has no failpoint");
    let local_run = rec["run_id"].as_str().unwrap().to_string();

    let child = sb.spawn(&[
        "run", "p.yaml", "--json", "--param", "root=ray", "--param", "shards=2",
    ]);
    assert!(
        wait_for(Duration::from_secs(300), || paused.exists()),
        "an infer shard paused while scoring"
    );
    let run_id = sb
        .run_ids()
        .into_iter()
        .find(|id| *id != local_run)
        .expect("the run on Ray");
    let scoring: Vec<String> = jobs_of(&run_id)
        .iter()
        .filter(|j| j["status"] == "RUNNING")
        .filter_map(|j| j["submission_id"].as_str())
        .filter(|id| id.contains("-infer-"))
        .map(str::to_string)
        .collect();
    assert!(!scoring.is_empty(), "the paused infer job is running");
    // The other shard may finish meanwhile: only the jobs the cluster stopped count.
    let mut stopped = 0;
    for job in &scoring {
        let answer: Value = http()
            .post(format!("{}/api/jobs/{job}/stop", cluster().address))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default();
        stopped += usize::from(answer["stopped"] == true);
    }
    assert!(stopped >= 1, "the paused job was stopped");
    let out = child.wait_with_output().unwrap();
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{rec}");
    // The paused attempt failed and was retried; every other shard ran once. (The other
    // shard's job may have been finishing when its stop arrived: Ray then says `stopped`
    // while the attempt already succeeded.)
    let attempts = task(&rec, "infer")["attempts"].as_array().unwrap();
    let failed: Vec<&Value> = attempts.iter().filter(|a| !a["error"].is_null()).collect();
    assert!((1..=stopped).contains(&failed.len()), "{rec}");
    assert_eq!(attempts.len(), 2 + failed.len(), "{rec}");
    let retried = failed.len();
    for a in failed {
        assert_eq!(a["error"]["kind"], "retryable", "{rec}");
    }
    for id in ["ingest", "clean"] {
        assert_eq!(
            task(&rec, id)["output"]["values"]["shards"]
                .as_array()
                .map(Vec::len),
            Some(2),
            "{id}: {rec}"
        );
    }
    // Every task's shards ran as Ray jobs, on both nodes: one more job per retried attempt
    // (a stop that came as its job was finishing leaves a succeeded job, not a retry).
    let jobs = jobs_of(&run_id);
    assert_eq!(jobs.len(), 6 + retried, "{jobs:?}");
    let nodes: std::collections::HashSet<&str> = jobs
        .iter()
        .filter_map(|j| j["driver_node_id"].as_str())
        .collect();
    assert_eq!(nodes.len(), 2, "both nodes ran shards: {jobs:?}");
    let expected = gold_rows(&sb.path().join("local/gold"));
    assert!(expected.len() > 100, "{}", expected.len());
    assert_eq!(gold_rows(&sb.path().join("ray/gold")), expected);
    assert_eq!(
        common::medallion_rows(&sb, "ray"),
        common::medallion_rows(&sb, "local")
    );
}

/// With trace export on, each shard's attempt span names its Ray job, and the job's worker
/// (`tweetflow task exec` on a Ray node) continues the run's trace under that attempt.
#[test]
fn ray_jobs_continue_the_run_trace_and_their_attempt_spans_name_the_job() {
    let _turn = turn();
    let receiver = tweetflow_test_support::otlp_receiver::OtlpReceiver::start();
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &pipeline(&cluster().address, r#"echo "traceparent $TRACEPARENT""#, ""),
    );
    let out = sb
        .cmd(&["run", "p.yaml", "--json"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)
        .output()
        .unwrap();
    let rec: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{rec}");
    let run_id = rec["run_id"].as_str().unwrap();
    let jobs = job_ids(&rec, "split");
    assert_eq!(jobs.len(), 2, "{rec}");
    // The workers export from their own processes: wait for both of their spans.
    let spans = receiver.wait_for(Duration::from_secs(30), |spans| {
        spans
            .iter()
            .filter(|s| s["name"] == "attempt" && s["attributes"]["run_id"] == run_id)
            .count()
            >= 2
    });
    let root = spans
        .iter()
        .find(|s| s["name"] == "run" && s["attributes"]["run_id"] == run_id)
        .unwrap_or_else(|| panic!("no run span: {spans:#?}"));
    let in_trace: Vec<&Value> = spans
        .iter()
        .filter(|s| s["trace_id"] == root["trace_id"])
        .collect();
    let engine_attempts: Vec<&Value> = in_trace
        .iter()
        .copied()
        .filter(|s| s["name"] == "attempt" && s["attributes"]["job"].is_string())
        .collect();
    let mut named: Vec<String> = engine_attempts
        .iter()
        .map(|s| s["attributes"]["job"].as_str().unwrap().to_string())
        .collect();
    named.sort();
    let mut expected = jobs.clone();
    expected.sort();
    assert_eq!(
        named, expected,
        "each shard's attempt span names its Ray job"
    );
    for attempt in &engine_attempts {
        let workers: Vec<&&Value> = in_trace
            .iter()
            .filter(|s| s["parent_span_id"] == attempt["span_id"])
            .collect();
        assert_eq!(
            workers.len(),
            1,
            "the Ray job's worker continues the trace under {attempt:#}: {in_trace:#?}"
        );
        assert_eq!(workers[0]["attributes"]["run_id"], run_id);
    }
    // The command in the job got the worker's span as TRACEPARENT (in the run's log).
    let log = std::fs::read_to_string(sb.runs().join(run_id).join("log.jsonl")).unwrap();
    assert!(
        log.contains(&format!(
            "traceparent 00-{}-",
            root["trace_id"].as_str().unwrap()
        )),
        "{log}"
    );
}
