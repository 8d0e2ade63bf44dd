//! Pipeline runs logged to a real MLflow server: tags, metrics, params and status; MLflow
//! down loses nothing and `--resume` logs what was missed.
#![allow(clippy::unwrap_used)]

mod common;

use common::Sandbox;
use tweetflow_test_support::mlflow_server::{client_at, free_port, server};
use tweetflow_test_support::{tiny_model, tiny_model_int8};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn link(sb: &Sandbox, run_id: &str) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(sb.runs().join(run_id).join("mlflow.json")).expect("mlflow.json"),
    )
    .unwrap()
}

const PIPELINE: &str = r#"
name: logged
params:
  size: 3
mlflow:
  experiment: tweetflow-e2e-${env.TEST_EXPERIMENT_SUFFIX:-x}
tasks:
  first: { type: command, with: { argv: [sh, -c, 'echo one'] } }
  second: { type: command, depends_on: [first], with: { argv: [sh, -c, 'exit ${env.SECOND_EXIT:-0}'] } }
"#;

#[test]
fn each_pipeline_run_is_an_mlflow_run_with_tags_metrics_and_status() {
    let server = server();
    let sb = Sandbox::new();
    sb.write("p.yaml", PIPELINE);
    let suffix = format!("{}", std::process::id());
    let out = sb
        .cmd(&["run", "p.yaml", "--json"])
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("TEST_EXPERIMENT_SUFFIX", &suffix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = rec["run_id"].as_str().unwrap();
    let l = link(&sb, run_id);
    assert_eq!(l["complete"], true);

    let rt = runtime();
    let c = client_at(&server.url);
    let run = rt
        .block_on(c.get_run(l["run_id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(format!("{:?}", run.info.status), "Finished");
    let tag = |k: &str| {
        run.data
            .tags
            .iter()
            .find(|t| t.key == k)
            .map(|t| t.value.clone())
    };
    assert_eq!(tag("tweetflow.run_id").as_deref(), Some(run_id));
    assert_eq!(tag("tweetflow.pipeline").as_deref(), Some("logged"));
    assert_eq!(
        tag("tweetflow.spec_hash").as_deref(),
        rec["spec_hash"].as_str()
    );
    assert_eq!(tag("mlflow.runName"), Some(format!("logged-{run_id}")));
    let metric = |k: &str| {
        run.data
            .metrics
            .iter()
            .find(|m| m.key == k)
            .map(|m| m.value)
    };
    assert_eq!(metric("task.first.attempts"), Some(1.0));
    assert_eq!(metric("task.second.attempts"), Some(1.0));
    assert!(metric("task.first.duration_s").is_some_and(|d| d >= 0.0));
    assert_eq!(metric("run.tasks_succeeded"), Some(2.0));
    assert!(
        run.data
            .params
            .iter()
            .any(|p| p.key == "size" && p.value == "3")
    );
    let exp = rt
        .block_on(c.get_experiment_by_name(&format!("tweetflow-e2e-{suffix}")))
        .unwrap();
    assert_eq!(exp.experiment_id, l["experiment_id"].as_str().unwrap());

    // A failing run ends FAILED.
    let out = sb
        .cmd(&["run", "p.yaml", "--json"])
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("TEST_EXPERIMENT_SUFFIX", &suffix)
        .env("SECOND_EXIT", "4")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = link(&sb, rec["run_id"].as_str().unwrap());
    let run = rt
        .block_on(c.get_run(l["run_id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(format!("{:?}", run.info.status), "Failed");
}

#[test]
fn mlflow_down_loses_nothing_and_resume_logs_what_was_missed() {
    let server = server();
    let sb = Sandbox::new();
    sb.write("p.yaml", PIPELINE);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = sb
        .cmd(&["run", "p.yaml", "--json"])
        .env("MLFLOW_TRACKING_URI", &dead)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("TEST_EXPERIMENT_SUFFIX", "down")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the pipeline itself succeeds: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["status"], "succeeded");
    assert!(
        rec["tags"]["mlflow.pending"].is_string(),
        "the failure is recorded: {rec}"
    );
    let run_id = rec["run_id"].as_str().unwrap();

    let out = sb
        .cmd(&["run", "--resume", run_id, "--json"])
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("TEST_EXPERIMENT_SUFFIX", "down")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rec["tags"].get("mlflow.pending").is_none(), "{rec}");
    assert_eq!(
        rec["tasks"]["first"]["attempts"].as_array().unwrap().len(),
        1,
        "tasks did not run again"
    );
    let l = link(&sb, run_id);
    let run = runtime()
        .block_on(client_at(&server.url).get_run(l["run_id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(format!("{:?}", run.info.status), "Finished");
    assert!(
        run.data
            .metrics
            .iter()
            .any(|m| m.key == "task.second.attempts")
    );
}

#[test]
fn model_register_and_resolve_from_the_command_line() {
    let server = server();
    let sb = Sandbox::new();
    let tiny = tiny_model();
    let name = format!("tiny-cli-{}", std::process::id());
    let tiny_int8 = tiny_model_int8();
    let register_dir = |dir: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "model",
            "register",
            dir.to_str().unwrap(),
            "--name",
            &name,
            "--alias",
            "production",
        ];
        args.extend_from_slice(extra);
        let out = sb
            .cmd(&args)
            .env("MLFLOW_TRACKING_URI", &server.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let register = |extra: &[&str]| register_dir(&tiny, extra);
    assert!(register(&["--if-missing"]).contains("version 1 (alias production)"));
    assert!(
        register(&["--if-missing"]).contains("already version 1"),
        "set-up is idempotent"
    );
    // --if-changed: the same directory again is a no-op, a retrained one becomes the new version.
    assert!(register(&["--if-changed"]).contains("already version 1 with this manifest"));
    assert!(register_dir(&tiny_int8, &["--if-changed"]).contains("version 2 (alias production)"));
    assert!(register_dir(&tiny_int8, &["--if-changed"]).contains("already version 2"));
    assert!(
        register(&["--if-missing"]).contains("already version 2"),
        "--if-missing keeps whatever the alias serves"
    );
    assert!(register(&["--if-changed"]).contains("version 3 (alias production)"));
    let out = sb
        .cmd(&[
            "model",
            "resolve",
            &format!("models:/{name}@production"),
            "--cache-dir",
            "cache",
        ])
        .env("MLFLOW_TRACKING_URI", &server.url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("(version 3)")
            && text.contains("Negative, Neutral, Positive"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        sb.path()
            .join(format!("cache/{name}/3/model.onnx"))
            .exists()
    );
}

#[test]
fn watch_sessions_log_per_batch_metrics_with_the_batch_as_step() {
    let server = server();
    let sb = Sandbox::new();
    std::fs::create_dir(sb.path().join("landing")).unwrap();
    sb.write("landing/first.json", "{}\n");
    sb.write(
        "p.yaml",
        "name: streamed\nmlflow: { experiment: tweetflow-watch }\ntasks:\n  collect: { type: command, with: { argv: [sh, -c, 'ls landing'] } }\n",
    );
    let out = sb
        .cmd(&[
            "run",
            "p.yaml",
            "--watch",
            "--interval",
            "300ms",
            "--until-idle",
            "1s",
            "--json",
        ])
        .env("MLFLOW_TRACKING_URI", &server.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let batches: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(batches.len() >= 2, "several batches ran");
    let session = batches[0]["tags"]["watch_session"]
        .as_str()
        .unwrap()
        .to_string();
    let rt = runtime();
    let c = client_at(&server.url);
    let exp = rt
        .block_on(c.get_experiment_by_name("tweetflow-watch"))
        .unwrap();
    let runs = rt
        .block_on(
            c.search_all_runs(
                &tweetflow_mlflow::SearchRuns::in_experiments([exp.experiment_id.clone()])
                    .filter(format!("tags.`tweetflow.watch_session` = '{session}'")),
            ),
        )
        .unwrap();
    assert_eq!(runs.len(), 1, "one MLflow run per streaming session");
    assert_eq!(format!("{:?}", runs[0].info.status), "Finished");
    let history = rt
        .block_on(c.get_metric_history(&runs[0].info.run_id, "batch.duration_s"))
        .unwrap();
    let mut steps: Vec<i64> = history.iter().map(|m| m.step).collect();
    steps.sort();
    assert_eq!(steps, (1..=batches.len() as i64).collect::<Vec<_>>());
}

#[test]
fn tweet_sentiment_pipeline_end_to_end_is_visible_in_mlflow() {
    let server = server();
    let sb = Sandbox::new();
    let model = tiny_model();
    let rec = sb.run_main_pipeline("data", &model.display().to_string(), 300, &server.url, &[]);
    let l = link(&sb, rec["run_id"].as_str().unwrap());
    let rt = runtime();
    let c = client_at(&server.url);
    let run_id = l["run_id"].as_str().unwrap();
    let run = rt.block_on(c.get_run(run_id)).unwrap();
    assert_eq!(format!("{:?}", run.info.status), "Finished");
    let metric = |k: &str| {
        run.data
            .metrics
            .iter()
            .find(|m| m.key == k)
            .map(|m| m.value)
    };
    for key in [
        "precision",
        "recall",
        "f1",
        "accuracy",
        "task.infer.duration_s",
        "task.report.attempts",
    ] {
        assert!(
            metric(key).is_some(),
            "metric {key} missing: {:?}",
            run.data.metrics.iter().map(|m| &m.key).collect::<Vec<_>>()
        );
    }
    assert!((0.0..=1.0).contains(&metric("accuracy").unwrap()));
    let param = |k: &str| {
        run.data
            .params
            .iter()
            .find(|p| p.key == k)
            .map(|p| p.value.clone())
    };
    assert_eq!(param("model_uri").as_deref(), Some(model.to_str().unwrap()));
    assert!(param("gold_table_version").is_some() && param("silver_table_version").is_some());
    assert!(
        run.data
            .tags
            .iter()
            .any(|t| t.key == "tweetflow.pipeline" && t.value == "tweet_sentiment")
    );
    let mut artifacts = Vec::new();
    for dir in [None, Some("evaluation"), Some("report")] {
        if let Ok(files) = rt.block_on(c.list_artifacts(run_id, dir)) {
            artifacts.extend(files.into_iter().map(|f| f.path));
        }
    }
    for name in ["confusion_matrix.png", "report.html", "tweets_per_hour.png"] {
        assert!(
            artifacts.iter().any(|a| a.ends_with(name)),
            "artifact {name} missing: {artifacts:?}"
        );
    }
}

#[test]
fn mlflow_log_puts_json_numbers_on_the_pipeline_run() {
    let server = server();
    let sb = Sandbox::new();
    sb.write(
        "m.json",
        r#"{"accuracy": 0.84, "band": {"low": 0.48, "high": 0.85}, "name": "head", "rows": 359}"#,
    );
    sb.write(
        "p.yaml",
        "name: logs_json\nmlflow: { experiment: tweetflow-json }\ntasks:\n  log: { type: mlflow-log, with: { metrics: [m.json], params: [m.json], prefix: \"test.\" } }\n",
    );
    let out = sb
        .cmd(&["run", "p.yaml", "--json"])
        .env("MLFLOW_TRACKING_URI", &server.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["tasks"]["log"]["output"]["values"]["logged"], true);
    let run = runtime()
        .block_on(
            client_at(&server.url).get_run(
                link(&sb, rec["run_id"].as_str().unwrap())["run_id"]
                    .as_str()
                    .unwrap(),
            ),
        )
        .unwrap();
    let metric = |k: &str| {
        run.data
            .metrics
            .iter()
            .find(|m| m.key == k)
            .map(|m| m.value)
    };
    assert_eq!(metric("test.accuracy"), Some(0.84));
    assert_eq!(metric("test.band.high"), Some(0.85));
    assert_eq!(metric("test.name"), None, "strings are not metrics");
    assert!(
        run.data
            .params
            .iter()
            .any(|p| p.key == "test.name" && p.value == "head")
    );

    // Without MLflow the task succeeds and says it logged nothing.
    let quiet = Sandbox::new();
    quiet.write("m.json", "{\"a\": 1}");
    quiet.write(
        "p.yaml",
        "name: unlogged\ntasks:\n  log: { type: mlflow-log, with: { metrics: [m.json] } }\n",
    );
    let out = quiet
        .cmd(&["run", "p.yaml", "--json"])
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["tasks"]["log"]["output"]["values"]["logged"], false);
}
