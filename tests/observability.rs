//! Metrics and traces with real parts: a real Prometheus (Debian's `prometheus`) scrapes the
//! scheduler daemon's `--metrics-listen` endpoint and the UI's `/metrics`, and the test asks
//! its HTTP API for the series; runs export their traces to a local OTLP/HTTP receiver that
//! decodes the protobuf with `opentelemetry-proto`, and the test checks the span tree.
#![allow(unsafe_code, clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{Sandbox, wait_for};
use serde_json::Value;
use tweetflow_test_support::otlp_receiver::OtlpReceiver;
use tweetflow_test_support::prometheus::{Prometheus, ScrapeJob};
use tweetflow_test_support::test_csv;
use tweetflow_test_support::watched::{free_port, http};

/// Writes the test tweets as landing files under `landing/` (50 per file).
fn land_tweets(sb: &Sandbox) {
    let csv = test_csv();
    let out = sb.run(&[
        "replay",
        "--csv",
        csv.to_str().unwrap(),
        "--landing",
        "landing",
        "--tweets-per-file",
        "50",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[allow(unsafe_code)] // kill(2) has no safe wrapper in the standard library
fn sigterm_and_wait(child: Child) -> std::process::Output {
    // SAFETY: kill(2) on a child this test spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait_with_output().unwrap()
}

/// Starts `tweetflow schedule` on the sandbox's pipelines with metrics on 127.0.0.1:`port`,
/// in its own process group; `env` adds variables.
fn daemon(sb: &Sandbox, port: u16, env: &[(&str, String)]) -> Child {
    use std::os::unix::process::CommandExt;
    let listen = format!("127.0.0.1:{port}");
    sb.cmd(&[
        "schedule",
        "good.yaml",
        "bad.yaml",
        "--grace",
        "10s",
        "--metrics-listen",
        &listen,
    ])
    .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0)
    .spawn()
    .expect("spawn the daemon")
}

/// The value of the sample `series` (name and labels exactly as exposed) in a text
/// exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether an HTTP answer has `status` (hyper answers an HTTP/1.0 request in HTTP/1.0).
fn has_status(answer: &str, status: u16) -> bool {
    answer.lines().next().is_some_and(|l| {
        l.starts_with("HTTP/1.") && l.split(' ').nth(1) == Some(&status.to_string())
    })
}

fn scrape(port: u16, headers: &str) -> String {
    http(port, "GET", "/metrics", headers).unwrap_or_default()
}

/// The records of the finished runs of `pipeline` in the sandbox's run store.
fn records(sb: &Sandbox, pipeline: &str) -> Vec<Value> {
    sb.run_ids()
        .iter()
        .filter_map(|id| {
            let text = std::fs::read_to_string(sb.runs().join(id).join("run.json")).ok()?;
            serde_json::from_str::<Value>(&text).ok()
        })
        .filter(|r| r["pipeline"] == pipeline && r["status"] != "running")
        .collect()
}

#[test]
fn prometheus_scrapes_the_daemon_and_the_ui_and_counters_survive_a_restart() {
    let sb = Sandbox::new();
    land_tweets(&sb);
    sb.write(
        "good.yaml",
        r#"
name: good
schedule: { cron: "* * * * * *", overlap: skip, catchup: none }
tasks:
  ingest: { type: ingest, with: { source: landing, table: tables/bronze, settle_time: 0s } }
  flaky:
    type: command
    retries: { max_attempts: 2, initial_delay: 10ms }
    with: { argv: [sh, -c, 'if [ -e flaky.once ]; then exit 0; fi; touch flaky.once; exit 1'] }
"#,
    );
    sb.write(
        "bad.yaml",
        r#"
name: bad
schedule: { cron: "* * * * * *", overlap: skip, catchup: none }
tasks:
  broken: { type: command, with: { argv: [sh, -c, 'exit 3'] } }
"#,
    );
    let metrics_port = free_port();
    // Traces go to a port where nothing listens: runs must not care, the drops are counted.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let first = daemon(
        &sb,
        metrics_port,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", nowhere.clone())],
    );
    if !wait_for(Duration::from_secs(30), || {
        has_status(&scrape(metrics_port, ""), 200)
    }) {
        let out = sigterm_and_wait(first);
        panic!(
            "the daemon does not serve /metrics: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let ui_port = free_port();
    let token = "metrics-scrape-token-5c1d";
    let ui = {
        use std::os::unix::process::CommandExt;
        sb.cmd(&[
            "ui",
            ".",
            "--listen",
            &format!("127.0.0.1:{ui_port}"),
            "--token",
            token,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn the UI")
    };
    let prometheus = Prometheus::start(&[
        ScrapeJob {
            name: "daemon".into(),
            target: format!("127.0.0.1:{metrics_port}"),
            bearer: None,
        },
        ScrapeJob {
            name: "ui".into(),
            target: format!("127.0.0.1:{ui_port}"),
            bearer: Some(token.into()),
        },
    ]);
    let limit = Duration::from_secs(60);
    let q = |promql: &str, ok: &dyn Fn(f64) -> bool| {
        prometheus
            .wait_for_value(promql, limit, ok)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    q(r#"up{job="daemon"}"#, &|v| v == 1.0);
    q(r#"tweetflow_build_info{job="daemon"}"#, &|v| v == 1.0);
    q(
        r#"tweetflow_runs_total{job="daemon",pipeline="good",status="succeeded"}"#,
        &|v| v >= 2.0,
    );
    q(
        r#"tweetflow_runs_total{job="daemon",pipeline="bad",status="failed"}"#,
        &|v| v >= 2.0,
    );
    q(
        r#"tweetflow_task_attempts_total{job="daemon",pipeline="good",task="flaky",outcome="retryable_error"}"#,
        &|v| v == 1.0,
    );
    q(
        r#"tweetflow_task_attempts_total{job="daemon",pipeline="bad",task="broken",outcome="retryable_error"}"#,
        &|v| v >= 2.0,
    );
    q(
        r#"tweetflow_task_duration_seconds_count{job="daemon",pipeline="good",task="ingest",status="succeeded"}"#,
        &|v| v >= 2.0,
    );
    q(
        r#"time() - tweetflow_last_success_timestamp_seconds{job="daemon",pipeline="good"}"#,
        &|v| (0.0..30.0).contains(&v),
    );
    q(
        r#"tweetflow_schedule_lag_seconds{job="daemon",pipeline="good"}"#,
        &|v| (0.0..5.0).contains(&v),
    );
    q(
        r#"tweetflow_trace_spans_dropped_total{job="daemon",reason="export_failed"}"#,
        &|v| v > 0.0,
    );
    // Rows: what the ingest runs wrote, by their records.
    let written: u64 = records(&sb, "good")
        .iter()
        .filter_map(|r| r["tasks"]["ingest"]["output"]["values"]["rows"].as_u64())
        .sum();
    assert!(written > 0, "the first ingest wrote the landed tweets");
    q(
        r#"tweetflow_task_rows_total{job="daemon",pipeline="good",task="ingest"}"#,
        &|v| v == written as f64,
    );
    // The UI counts the same runs from the run store, behind the token.
    q(r#"up{job="ui"}"#, &|v| v == 1.0);
    q(
        r#"tweetflow_runs_total{job="ui",pipeline="bad",status="failed"}"#,
        &|v| v >= 2.0,
    );
    q(
        r#"tweetflow_task_rows_total{job="ui",pipeline="good",task="ingest"}"#,
        &|v| v == written as f64,
    );
    let anonymous = http(ui_port, "GET", "/metrics", "").unwrap_or_default();
    assert!(has_status(&anonymous, 401), "{anonymous}");
    let wrong =
        http(ui_port, "GET", "/metrics", "Authorization: Bearer nope\r\n").unwrap_or_default();
    assert!(has_status(&wrong, 401), "{wrong}");

    // Labels stay bounded: no run id in any series.
    let text = scrape(metrics_port, "");
    for id in sb.run_ids() {
        assert!(!text.contains(&id), "run id {id} in the metrics");
    }

    // A restarted daemon goes on from what the run store says.
    let out = sigterm_and_wait(first);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed_before = records(&sb, "bad").len() as f64;
    let succeeded_before = records(&sb, "good")
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .count() as f64;
    let second = daemon(&sb, metrics_port, &[]);
    let mut seeded = String::new();
    assert!(
        wait_for(Duration::from_secs(30), || {
            seeded = scrape(metrics_port, "");
            has_status(&seeded, 200)
        }),
        "the restarted daemon serves /metrics"
    );
    let failed = sample(
        &seeded,
        r#"tweetflow_runs_total{pipeline="bad",status="failed"}"#,
    )
    .unwrap_or(0.0);
    assert!(
        failed >= failed_before,
        "failed runs seeded: {failed} < {failed_before}\n{seeded}"
    );
    let succeeded = sample(
        &seeded,
        r#"tweetflow_runs_total{pipeline="good",status="succeeded"}"#,
    )
    .unwrap_or(0.0);
    assert!(
        succeeded >= succeeded_before,
        "succeeded runs seeded: {succeeded} < {succeeded_before}"
    );
    assert_eq!(
        sample(
            &seeded,
            r#"tweetflow_task_rows_total{pipeline="good",task="ingest"}"#
        ),
        Some(written as f64),
        "rows seeded"
    );
    // Prometheus sees no counter reset across the restart.
    q(
        r#"tweetflow_runs_total{job="daemon",pipeline="bad",status="failed"}"#,
        &|v| v > failed_before,
    );
    let resets = prometheus
        .value(r#"resets(tweetflow_runs_total{job="daemon",pipeline="bad",status="failed"}[5m])"#)
        .unwrap_or(-1.0);
    assert_eq!(
        resets, 0.0,
        "the failed-runs counter reset across the restart"
    );
    let out = sigterm_and_wait(second);
    assert_eq!(out.status.code(), Some(0));
    let _ = sigterm_and_wait(ui);
}

/// The spans of the trace of the run span whose `run_id` attribute is `run_id`.
fn trace_of<'a>(spans: &'a [Value], run_id: &str) -> (&'a Value, Vec<&'a Value>) {
    let root = spans
        .iter()
        .find(|s| s["name"] == "run" && s["attributes"]["run_id"] == run_id)
        .unwrap_or_else(|| panic!("no run span for {run_id} in {spans:#?}"));
    let trace = spans
        .iter()
        .filter(|s| s["trace_id"] == root["trace_id"])
        .collect();
    (root, trace)
}

fn children<'a>(trace: &[&'a Value], parent: &Value, name: &str) -> Vec<&'a Value> {
    trace
        .iter()
        .copied()
        .filter(|s| s["parent_span_id"] == parent["span_id"] && s["name"] == name)
        .collect()
}

#[test]
fn a_run_is_one_otlp_trace_with_its_tasks_attempts_and_shards() {
    let receiver = OtlpReceiver::start();
    let sb = Sandbox::new();
    land_tweets(&sb);
    let secret = "tf-otlp-secret-93ab71";
    sb.write(
        "p.yaml",
        r#"
name: traced
tasks:
  ingest: { type: ingest, with: { source: landing, table: tables/bronze, settle_time: 0s } }
  context:
    type: command
    depends_on: [ingest]
    with: { argv: [sh, -c, 'echo "$TRACEPARENT" > traceparent.txt'] }
  flaky:
    type: command
    retries: { max_attempts: 2, initial_delay: 10ms }
    with: { argv: [sh, -c, 'if [ -e flaky.once ]; then exit 0; fi; touch flaky.once; exit 1'] }
  split:
    type: command
    shards: 2
    with: { argv: [sh, -c, 'echo "shard $TWEETFLOW_SHARD $TRACEPARENT" > "shard-$TWEETFLOW_SHARD.txt"'] }
  leaky:
    type: command
    with:
      argv: [sh, -c, 'echo "the token is $API_TOKEN" >&2; exit 1']
      env: { API_TOKEN: "${secret.API_TOKEN}" }
"#,
    );
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
        ("OTEL_SERVICE_NAME", "tweetflow-test".to_string()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-test-header=hdr-value-4411".to_string(),
        ),
        ("API_TOKEN", secret.to_string()),
    ];
    let out = sb
        .cmd(&["run", "p.yaml", "--json"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let record: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        out.status.code(),
        Some(1),
        "leaky fails the run: {record:#}"
    );
    let run_id = record["run_id"].as_str().unwrap().to_string();

    // The process exports its last spans before it exits.
    let spans = receiver.spans();
    let (root, trace) = trace_of(&spans, &run_id);
    assert_eq!(root["parent_span_id"], "", "the run span is the root");
    assert_eq!(root["attributes"]["pipeline"], "traced");
    assert_eq!(root["attributes"]["status"], "failed");
    assert_eq!(root["status"]["code"], 2, "a failed run is an error span");
    assert_eq!(root["resource"]["service.name"], "tweetflow-test");
    assert_eq!(root["headers"]["x-test-header"], "hdr-value-4411");

    let tasks: HashMap<String, &Value> = children(&trace, root, "task")
        .into_iter()
        .map(|s| (s["attributes"]["task"].as_str().unwrap().to_string(), s))
        .collect();
    assert_eq!(tasks.len(), 5, "{tasks:#?}");
    let ingest = tasks["ingest"];
    assert_eq!(ingest["attributes"]["type"], "ingest");
    assert_eq!(ingest["attributes"]["status"], "succeeded");
    let rows = record["tasks"]["ingest"]["output"]["values"]["rows"]
        .as_i64()
        .unwrap();
    assert!(rows > 0);
    assert_eq!(ingest["attributes"]["rows"], rows);

    // Retries: two attempts under the task, the first an error.
    let mut attempts = children(&trace, tasks["flaky"], "attempt");
    attempts.sort_by_key(|a| a["attributes"]["number"].as_i64());
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0]["attributes"]["status"], "failed");
    assert_eq!(attempts[0]["status"]["code"], 2);
    assert_eq!(attempts[1]["attributes"]["status"], "succeeded");

    // TRACEPARENT reached the command: its attempt span, in this trace.
    let context_attempt = children(&trace, tasks["context"], "attempt")[0];
    let traceparent = std::fs::read_to_string(sb.path().join("traceparent.txt")).unwrap();
    assert_eq!(
        traceparent.trim(),
        format!(
            "00-{}-{}-01",
            root["trace_id"].as_str().unwrap(),
            context_attempt["span_id"].as_str().unwrap()
        )
    );

    // Shards: one span each, an attempt under it, and the worker process (`task exec`)
    // continues the trace under that attempt.
    let shards = children(&trace, tasks["split"], "shard");
    assert_eq!(shards.len(), 2, "{shards:#?}");
    for shard in &shards {
        assert_eq!(shard["attributes"]["count"], 2);
        let attempt = children(&trace, shard, "attempt");
        assert_eq!(attempt.len(), 1, "{shard:#?}");
        let worker = children(&trace, attempt[0], "attempt");
        assert_eq!(worker.len(), 1, "the worker's span continues the trace");
        assert_eq!(worker[0]["attributes"]["run_id"], run_id.as_str());
        assert_eq!(worker[0]["attributes"]["pipeline"], "traced");
        let index = shard["attributes"]["index"].as_i64().unwrap();
        let text = std::fs::read_to_string(sb.path().join(format!("shard-{index}.txt"))).unwrap();
        assert!(
            text.contains(worker[0]["span_id"].as_str().unwrap()),
            "the shard's command got its worker span's context: {text}"
        );
    }

    // The failure is on the span, the secret is not anywhere.
    let leaky = tasks["leaky"];
    assert_eq!(leaky["attributes"]["status"], "failed");
    assert_eq!(leaky["status"]["code"], 2);
    assert!(leaky["attributes"]["error"].is_string(), "{leaky:#}");
    for span in &spans {
        let text = span.to_string();
        assert!(!text.contains(secret), "a secret in a span: {text}");
        let attributes = span["attributes"].to_string();
        assert!(!attributes.contains("hdr-value-4411"), "{attributes}");
    }

    // A resumed run is a new trace whose root links to the first execution's.
    let out = sb
        .cmd(&["run", "--resume", &run_id, "--json"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "leaky still fails");
    let spans = receiver.spans();
    let resumed: Vec<&Value> = spans
        .iter()
        .filter(|s| {
            s["name"] == "run"
                && s["attributes"]["run_id"] == run_id.as_str()
                && s["span_id"] != root["span_id"]
        })
        .collect();
    assert_eq!(resumed.len(), 1, "{resumed:#?}");
    assert_eq!(resumed[0]["attributes"]["resumed"], true);
    assert_eq!(
        resumed[0]["links"],
        serde_json::json!([{ "trace_id": root["trace_id"], "span_id": root["span_id"] }])
    );
}
