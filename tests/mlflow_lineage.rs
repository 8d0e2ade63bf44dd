//! Lineage in MLflow, read back from a real server: a pipeline run's Delta tables as datasets
//! (`runs/log-inputs`), its system tags (source, user, git commit, description), the model
//! version its inference resolved, and a model version registered by the run that built it.
//! The run page is then opened in headless Chromium (when installed) and its screenshot
//! saved under `test-artifacts/mlflow/` (or `$TWEETFLOW_TEST_ARTIFACTS/mlflow`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Sandbox;
use serde_json::Value;
use tweetflow_mlflow::{DatasetInput, Run};
use tweetflow_test_support::mlflow_server::{client_at, server};
use tweetflow_test_support::{repo_root, tiny_model};

const CHROMIUM: &str = "/usr/bin/chromium";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn mlflow_run_id(sb: &Sandbox, run_id: &str) -> (String, String) {
    let link: Value = serde_json::from_slice(
        &std::fs::read(sb.runs().join(run_id).join("mlflow.json")).expect("mlflow.json"),
    )
    .unwrap();
    (
        link["run_id"].as_str().unwrap().to_string(),
        link["url"].as_str().unwrap().to_string(),
    )
}

/// Registers the tiny model from a pipeline's `command` task, as the training pipeline does.
fn register_from_pipeline(sb: &Sandbox, url: &str, name: &str) -> String {
    let pipeline = format!(
        r#"
name: train_tiny
mlflow: {{ experiment: lineage-training }}
tasks:
  register:
    type: command
    with:
      argv: ["{bin}", model, register, "{dir}", --name, "{name}", --alias, production]
"#,
        bin = env!("CARGO_BIN_EXE_tweetflow"),
        dir = tiny_model().display(),
    );
    let file = sb.write("train_tiny.yaml", &pipeline);
    let out = sb
        .cmd(&["run", file.to_str().unwrap(), "--json"])
        .env("MLFLOW_TRACKING_URI", url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
    mlflow_run_id(sb, rec["run_id"].as_str().unwrap()).0
}

fn run_sentiment(sb: &Sandbox, url: &str, model: &str, limit: usize) -> (String, String) {
    let rec = sb.run_main_pipeline("data", model, limit, url, &[]);
    mlflow_run_id(sb, rec["run_id"].as_str().unwrap())
}

fn dataset<'a>(run: &'a Run, name: &str) -> &'a DatasetInput {
    run.inputs
        .dataset_inputs
        .iter()
        .find(|d| d.dataset.name == name)
        .unwrap_or_else(|| panic!("no dataset {name}: {:?}", run.inputs))
}

fn json(doc: &Option<String>) -> Value {
    serde_json::from_str(doc.as_deref().unwrap_or("null")).unwrap()
}

fn tag<'a>(run: &'a Run, key: &str) -> &'a str {
    run.data
        .tag(key)
        .unwrap_or_else(|| panic!("tag {key} missing"))
}

fn git_head(dir: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn artifacts() -> PathBuf {
    std::env::var_os("TWEETFLOW_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts"))
        .join("mlflow")
}

#[test]
fn pipeline_runs_show_their_tables_source_description_and_model_in_mlflow() {
    let server = server();
    let sb = Sandbox::new();
    let rt = runtime();
    let c = client_at(&server.url);
    let name = format!("lineage-{}", std::process::id());

    // The model version is registered by the run that built it.
    let training_run = register_from_pipeline(&sb, &server.url, &name);
    let mv = rt.block_on(c.get_model_version(&name, "1")).unwrap();
    assert_eq!(mv.run_id.as_deref(), Some(training_run.as_str()));
    assert_eq!(mv.source, format!("runs:/{training_run}/model"));
    let files = rt
        .block_on(c.list_artifacts(&training_run, Some("model")))
        .unwrap();
    assert!(
        files.iter().any(|f| f.path.ends_with("model.onnx")),
        "{files:?}"
    );

    let model_uri = format!("models:/{name}@production");
    let (run_id, run_url) = run_sentiment(&sb, &server.url, &model_uri, 300);
    let run = rt.block_on(c.get_run(&run_id)).unwrap();

    // Tables as datasets: Delta source with URL and version, schema, row count, context.
    for table in ["bronze", "silver", "gold", "mentions"] {
        let d = dataset(&run, table);
        assert_eq!(d.context(), Some("output"), "{table}");
        assert_eq!(d.dataset.source_type, "delta_table");
        let source: Value = serde_json::from_str(&d.dataset.source).unwrap();
        assert!(
            source["path"]
                .as_str()
                .unwrap()
                .ends_with(&format!("data/{table}"))
                || source["path"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("data/{table}/")),
            "{source}"
        );
        assert!(source["delta_table_version"].as_i64().unwrap() >= 0);
        let schema = json(&d.dataset.schema);
        assert!(!schema["mlflow_colspec"].as_array().unwrap().is_empty());
        assert!(
            json(&d.dataset.profile)["num_rows"].as_u64().unwrap() > 0,
            "{table}"
        );
    }
    let silver_schema = json(&dataset(&run, "silver").dataset.schema);
    assert!(
        silver_schema["mlflow_colspec"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "mention" && c["type"] == "string"),
        "{silver_schema}"
    );

    // System tags.
    let pipeline_file = repo_root().join("pipelines/tweet_sentiment.yaml");
    assert!(tag(&run, "mlflow.source.name").ends_with("pipelines/tweet_sentiment.yaml"));
    assert_eq!(tag(&run, "mlflow.source.type"), "LOCAL");
    assert!(!tag(&run, "mlflow.user").is_empty());
    assert_ne!(tag(&run, "mlflow.user"), "unknown");
    if let Some(head) = git_head(pipeline_file.parent().unwrap()) {
        assert_eq!(tag(&run, "mlflow.source.git.commit"), head);
    }
    let note = tag(&run, "mlflow.note.content");
    assert!(note.starts_with("Tweets landing as JSON files"), "{note}");
    assert!(
        note.contains(&format!("({run_url}/artifacts/report/report.html)")),
        "{note}"
    );

    // The model version the inference resolved, as tags and params.
    assert_eq!(tag(&run, "tweetflow.model_name"), name);
    assert_eq!(tag(&run, "tweetflow.model_version"), "1");
    assert_eq!(tag(&run, "tweetflow.model_alias"), "production");
    let param = |k: &str| {
        run.data
            .params
            .iter()
            .find(|p| p.key == k)
            .map(|p| p.value.as_str())
    };
    assert_eq!(param("model_alias"), Some("production"));
    assert_eq!(param("model_version"), Some("1"));

    // More tweets: a new silver version, hence a new dataset digest.
    let (second, _) = run_sentiment(&sb, &server.url, &model_uri, 600);
    let second = rt.block_on(c.get_run(&second)).unwrap();
    let (a, b) = (dataset(&run, "silver"), dataset(&second, "silver"));
    let version = |d: &DatasetInput| {
        serde_json::from_str::<Value>(&d.dataset.source).unwrap()["delta_table_version"]
            .as_i64()
            .unwrap()
    };
    assert!(version(b) > version(a));
    assert_ne!(a.dataset.digest, b.dataset.digest);

    browser_shows_the_run(&run_url, &run);
}

/// The run page in headless Chromium: Datasets, Source and Description are filled.
fn browser_shows_the_run(run_url: &str, run: &Run) {
    if !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var("TWEETFLOW_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "{CHROMIUM} is missing (scripts/setup-browser.sh installs it)"
        );
        eprintln!("{CHROMIUM} is missing: the MLflow run page is not checked in a browser");
        return;
    }
    let dir = artifacts();
    std::fs::create_dir_all(&dir).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let chromium = |extra: &[String]| {
        let out = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1400,1400",
                "--virtual-time-budget=20000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(run_url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let dom = String::from_utf8_lossy(&chromium(&["--dump-dom".to_string()])).to_string();
    std::fs::write(dir.join("run-page.html"), &dom).unwrap();
    // The Datasets field names one dataset with its digest and counts the others.
    let datasets = &run.inputs.dataset_inputs;
    assert!(
        datasets
            .iter()
            .any(|d| dom.contains(&format!("{} ({})", d.dataset.name, d.dataset.digest))),
        "Datasets names none of {datasets:?}"
    );
    let more = format!("+{}", datasets.len() - 1);
    let commit = run.data.tag("mlflow.source.git.commit").map(|c| &c[..7]);
    for (field, text) in [
        ("Datasets", more.as_str()),
        ("Source", "tweet_sentiment.yaml"),
        ("Source", commit.unwrap_or("tweet_sentiment.yaml")),
        ("Created by", run.data.tag("mlflow.user").unwrap_or("?")),
        ("Description", "Tweets landing as JSON files"),
        ("Description", "report.html"),
    ] {
        assert!(dom.contains(field), "the run page has no {field} field");
        assert!(
            dom.contains(text),
            "{field} does not show {text:?} (DOM in {})",
            dir.join("run-page.html").display()
        );
    }
    let png = dir.join("run-page.png");
    chromium(&[format!("--screenshot={}", png.display())]);
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000);
}
