//! `log-metrics` and `report` on small gold tables written here with deltalake: metrics equal
//! to scikit-learn's, hand-checked edge cases, PNG and HTML checks, and logging into a real
//! MLflow server read back over REST.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{Action, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::DeltaWriter;
use serde_json::{Value, json};
use tweetflow_delta::table::{self, CommitRequest};
use tweetflow_engine::{ErrorKind, PipelineInfo, Task, TaskContext, TaskOutput};
use tweetflow_tasks::metrics::{LogMetricsParams, LogMetricsTask, ReportParams, ReportTask};
use tweetflow_tasks::mlflow_link::{MlflowRunLink, MlflowSection};
use tweetflow_test_support::TaskContextBuilder;
use tweetflow_test_support::mlflow_server::{client_at, server};

/// One gold row: tweet id, mention, label, prediction, hour of day.
#[derive(Clone)]
struct Row {
    tweet: String,
    mention: String,
    label: Option<&'static str>,
    pred: Option<&'static str>,
    hour: i64,
}

fn row(tweet: &str, mention: &str, label: Option<&'static str>, pred: Option<&'static str>) -> Row {
    Row {
        tweet: tweet.into(),
        mention: mention.into(),
        label,
        pred,
        hour: 0,
    }
}

fn id_of(s: Option<&str>) -> Option<i32> {
    match s {
        Some("positive") => Some(1),
        Some("negative") => Some(0),
        _ => None,
    }
}

/// Writes `rows` as a gold table at `dir`, with the `tweetflow-infer` transaction `silver`.
async fn write_gold(dir: &Path, rows: &[Row], silver: i64) {
    let loc = dir.display().to_string();
    let schema = tweetflow_tasks::infer::gold_schema().unwrap();
    let mut t = table::open_or_create(&loc, &schema, &[]).await.unwrap();
    if rows.is_empty() {
        return;
    }
    let arrow = table::arrow_schema(&t, &loc).unwrap();
    let s = |f: &dyn Fn(&Row) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let base = 1_243_814_400_000_000i64; // 2009-06-01T00:00:00Z
    let columns: Vec<ArrayRef> = vec![
        s(&|r| Some(r.tweet.clone())),
        Arc::new(
            TimestampMicrosecondArray::from(
                rows.iter()
                    .map(|r| base + r.hour * 3_600_000_000 + 17_000_000)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        s(&|r| Some(r.mention.clone())),
        s(&|r| Some(format!("text of {}", r.tweet))),
        s(&|r| r.label.map(str::to_string)),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| id_of(r.label)).collect::<Vec<_>>(),
        )),
        s(&|r| r.pred.map(str::to_string)),
        Arc::new(Float64Array::from(
            rows.iter().map(|_| 87.5).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| id_of(r.pred)).collect::<Vec<_>>(),
        )),
        s(&|_| Some("models:/tweet-sentiment@champion".into())),
        s(&|_| Some("3".into())),
    ];
    let batch = RecordBatch::try_new(arrow.clone(), columns).unwrap();
    let mut writer = table::writer_for(&t, &loc, arrow).unwrap();
    writer.write(batch).await.unwrap();
    let adds = writer.flush().await.unwrap();
    table::commit(
        &mut t,
        &loc,
        CommitRequest {
            actions: adds.into_iter().map(Action::Add).collect(),
            operation: DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            },
            txn: Some(Transaction::new("tweetflow-infer", silver)),
            info: json!({}),
        },
    )
    .await
    .unwrap();
}

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    /// The MLflow run the pipeline run is linked to (as the MLflow observer links it).
    link: std::cell::RefCell<Option<MlflowRunLink>>,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        Env {
            _tmp: tmp,
            root,
            link: Default::default(),
        }
    }

    fn gold(&self) -> PathBuf {
        self.root.join("gold")
    }

    fn ctx(
        &self,
        run_id: &str,
        task: &str,
        upstream: BTreeMap<String, TaskOutput>,
        mlflow: Option<MlflowSection>,
    ) -> TaskContext {
        let mut builder = TaskContextBuilder::new(
            self.root
                .join("runs")
                .join(run_id)
                .join("artifacts")
                .join(task),
        );
        if let Some(link) = self.link.borrow().as_ref() {
            builder = builder.link(link);
        }
        builder
            .run_id(run_id)
            .run_store(self.root.join("runs"))
            .task_id(task)
            .pipeline(PipelineInfo {
                name: "eval".into(),
                sections: mlflow
                    .map(|m| ("mlflow".to_string(), serde_json::to_value(m).unwrap()))
                    .into_iter()
                    .collect(),
                ..PipelineInfo::default()
            })
            .upstream(upstream)
            .build()
    }
}

fn params(gold: &Path) -> LogMetricsParams {
    serde_json::from_value(json!({ "input": gold.display().to_string() })).unwrap()
}

fn f(out: &TaskOutput, k: &str) -> f64 {
    out.get(k)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("output `{k}` missing in {:?}", out.values))
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-9, "{what}: got {a}, expected {b}");
}

// ---------- hand-checked cases ----------

/// Six tweets, two of them with two mentions (counted once).
fn hand_rows() -> Vec<Row> {
    vec![
        row("t1", "a", Some("positive"), Some("positive")),
        row("t1", "b", Some("positive"), Some("positive")),
        row("t2", "a", Some("positive"), Some("negative")),
        row("t3", "a", Some("negative"), Some("positive")),
        row("t3", "c", Some("negative"), Some("positive")),
        row("t4", "b", Some("negative"), Some("negative")),
        row("t5", "c", Some("positive"), Some("neutral")),
        row("t6", "a", Some("neutral"), Some("positive")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_checked_table_dedupes_tweets() {
    let env = Env::new();
    write_gold(&env.gold(), &hand_rows(), 7).await;
    let out = LogMetricsTask
        .run(
            &env.ctx("r1", "metrics", BTreeMap::new(), None),
            params(&env.gold()),
        )
        .await
        .unwrap();
    // Binary set: t1 TP, t2 FN, t3 FP, t4 TN (t5 neutral prediction, t6 neutral label).
    close(f(&out, "precision"), 0.5, "precision");
    close(f(&out, "recall"), 0.5, "recall");
    close(f(&out, "f1"), 0.5, "f1");
    close(f(&out, "accuracy"), 0.5, "accuracy");
    assert_eq!(out.get("binary_support"), Some(&json!(4)));
    assert_eq!(out.get("neutral_predictions_excluded"), Some(&json!(1)));
    assert_eq!(out.get("rows"), Some(&json!(8)));
    assert_eq!(out.get("tweets"), Some(&json!(6)));
    assert_eq!(
        out.get("confusion_matrix"),
        Some(&json!([[1, 0, 1], [0, 0, 1], [1, 1, 1]]))
    );
    assert_eq!(
        out.get("support"),
        Some(&json!({"negative": 2, "neutral": 1, "positive": 3}))
    );
    // Per-class F1: negative 2/(2+1+1)=0.5, neutral 0, positive 2/(2+2+2)=1/3.
    close(
        f(&out, "macro_f1"),
        (0.5 + 0.0 + 1.0 / 3.0) / 3.0,
        "macro_f1",
    );
    assert_eq!(out.get("silver_table_version"), Some(&json!(7)));
    assert_eq!(out.get("gold_table_version"), Some(&json!(1)));
    assert_eq!(out.get("model_name"), Some(&json!("tweet-sentiment")));
    assert_eq!(out.get("model_version"), Some(&json!("3")));
    assert_eq!(out.get("mlflow_run_id"), Some(&Value::Null));
    let doc: Value = serde_json::from_slice(
        &std::fs::read(out.get("metrics_json").unwrap().as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(doc["precision"], json!(0.5));
    assert_eq!(
        doc["confusion_matrix"],
        out.get("confusion_matrix").cloned().unwrap()
    );
    check_png(Path::new(
        out.get("confusion_matrix_png").unwrap().as_str().unwrap(),
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_positive_prediction_gives_precision_zero() {
    let env = Env::new();
    let rows = vec![
        row("t1", "a", Some("positive"), Some("negative")),
        row("t2", "a", Some("negative"), Some("negative")),
        row("t3", "a", Some("negative"), Some("negative")),
    ];
    write_gold(&env.gold(), &rows, 1).await;
    let out = LogMetricsTask
        .run(
            &env.ctx("r1", "metrics", BTreeMap::new(), None),
            params(&env.gold()),
        )
        .await
        .unwrap();
    assert_eq!(
        (f(&out, "precision"), f(&out, "recall"), f(&out, "f1")),
        (0.0, 0.0, 0.0)
    );
    close(f(&out, "accuracy"), 2.0 / 3.0, "accuracy");
    // No neutral label: no three-class score.
    assert_eq!(out.get("macro_f1"), Some(&Value::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_neutral_predictions_give_zeros_and_count_the_excluded() {
    let env = Env::new();
    let rows = vec![
        row("t1", "a", Some("positive"), Some("neutral")),
        row("t2", "a", Some("negative"), Some("neutral")),
        row("t3", "a", Some("neutral"), Some("neutral")),
    ];
    write_gold(&env.gold(), &rows, 1).await;
    let out = LogMetricsTask
        .run(
            &env.ctx("r1", "metrics", BTreeMap::new(), None),
            params(&env.gold()),
        )
        .await
        .unwrap();
    for k in ["precision", "recall", "f1", "accuracy"] {
        assert_eq!(f(&out, k), 0.0, "{k}");
    }
    assert_eq!(out.get("binary_support"), Some(&json!(0)));
    assert_eq!(out.get("neutral_predictions_excluded"), Some(&json!(2)));
    // Neutral class: F1 = 2/(2+2+0) = 0.5; the others 0.
    close(f(&out, "macro_f1"), 0.5 / 3.0, "macro_f1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_missing_gold_is_a_clear_error() {
    let env = Env::new();
    write_gold(&env.gold(), &[], 0).await;
    let e = LogMetricsTask
        .run(
            &env.ctx("r1", "metrics", BTreeMap::new(), None),
            params(&env.gold()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal);
    assert!(e.message.contains("has no rows"), "{}", e.message);
    let e = LogMetricsTask
        .run(
            &env.ctx("r1", "metrics", BTreeMap::new(), None),
            params(&env.root.join("nope")),
        )
        .await
        .unwrap_err();
    assert!(e.message.contains("no Delta table"), "{}", e.message);
    // Rows without a label or a prediction only: nothing to score.
    write_gold(
        &env.root.join("g2"),
        &[
            row("t1", "a", None, Some("positive")),
            row("t2", "a", Some("positive"), None),
        ],
        0,
    )
    .await;
    let e = LogMetricsTask
        .run(
            &env.ctx("r1", "metrics", BTreeMap::new(), None),
            params(&env.root.join("g2")),
        )
        .await
        .unwrap_err();
    assert!(e.message.contains("none of its 2 tweets"), "{}", e.message);
}

// ---------- scikit-learn ----------

fn python() -> PathBuf {
    let venv = tweetflow_test_support::venv();
    let py = venv.join("bin").join("python");
    assert!(
        py.is_file(),
        "the scikit-learn comparison needs the project venv: {} is missing (set TWEETFLOW_VENV or create <repo>/.venv with scikit-learn)",
        py.display()
    );
    py
}

const SKLEARN: &str = r#"
import json, sys
from sklearn.metrics import precision_recall_fscore_support, accuracy_score, f1_score, confusion_matrix
d = json.load(open(sys.argv[1]))
yt, yp = d["true"], d["pred"]
pairs = [(t, p) for t, p in zip(yt, yp) if t != "neutral" and p != "neutral"]
bt = [1 if t == "positive" else 0 for t, _ in pairs]
bp = [1 if p == "positive" else 0 for _, p in pairs]
p, r, f, _ = precision_recall_fscore_support(bt, bp, average="binary", pos_label=1, zero_division=0)
labels = ["negative", "neutral", "positive"]
print(json.dumps({
    "precision": float(p), "recall": float(r), "f1": float(f),
    "accuracy": float(accuracy_score(bt, bp)),
    "macro_f1": float(f1_score(yt, yp, average="macro", labels=labels, zero_division=0)) if "neutral" in yt else None,
    "confusion": confusion_matrix(yt, yp, labels=labels).tolist(),
    "n": len(pairs),
}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_scikit_learn() {
    let py = python();
    let env = Env::new();
    let classes = ["negative", "neutral", "positive"];
    // A deterministic pseudo-random table: 400 tweets, 1-3 mentions each, some unlabelled.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let (mut rows, mut yt, mut yp) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..400 {
        let label = if next(20) == 0 {
            None
        } else {
            Some(classes[next(3) as usize])
        };
        // Predictions agree with the label 60% of the time.
        let pred = if next(10) < 6 {
            label.or(Some("neutral"))
        } else {
            Some(classes[next(3) as usize])
        };
        if let (Some(l), Some(p)) = (label, pred) {
            yt.push(l);
            yp.push(p);
        }
        for m in 0..=next(3) {
            let mut r = row(
                &format!("tw{i:04}"),
                &format!("m{}", (i + m) % 17),
                label,
                pred,
            );
            r.hour = (i % 24) as i64;
            rows.push(r);
        }
    }
    write_gold(&env.gold(), &rows, 3).await;
    let out = LogMetricsTask
        .run(
            &env.ctx("r1", "metrics", BTreeMap::new(), None),
            params(&env.gold()),
        )
        .await
        .unwrap();

    let input = env.root.join("labels.json");
    std::fs::write(&input, json!({ "true": yt, "pred": yp }).to_string()).unwrap();
    let res = std::process::Command::new(&py)
        .arg("-c")
        .arg(SKLEARN)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "scikit-learn failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let expected: Value = serde_json::from_slice(&res.stdout).unwrap();
    for k in ["precision", "recall", "f1", "accuracy", "macro_f1"] {
        close(f(&out, k), expected[k].as_f64().unwrap(), k);
    }
    assert_eq!(out.get("confusion_matrix"), Some(&expected["confusion"]));
    assert_eq!(out.get("binary_support"), Some(&expected["n"]));
    assert_eq!(out.get("tweets"), Some(&json!(400)));
    assert_eq!(
        out.get("unscored_tweets").and_then(Value::as_u64),
        Some(400 - yt.len() as u64)
    );
}

// ---------- charts and report ----------

/// A PNG with sane dimensions and more than a blank canvas.
fn check_png(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(
        (300..=2000).contains(&w) && (150..=3000).contains(&h),
        "{}: {w}x{h}",
        path.display()
    );
    // A blank canvas compresses to well under 10 KB; text and bars do not.
    assert!(
        bytes.len() > 10_000,
        "{}: only {} bytes",
        path.display(),
        bytes.len()
    );
    (w, h)
}

fn profile_output() -> TaskOutput {
    TaskOutput::new()
        .with("table", "data/silver")
        .with("kind", "silver")
        .with("table_version", 4)
        .with("tweets", 6)
        .with("distinct_users", 2)
        .with(
            "top_users",
            json!([{"user": "alice", "tweets": 4}, {"user": "bob", "tweets": 2}]),
        )
        .with("top_mentions", json!([{"mention": "a", "tweets": 4}]))
        .with("columns", json!({"user": {"nulls": 0, "empties": 1}}))
}

fn upstream_png(env: &Env) -> PathBuf {
    env.root
        .join("runs/r1/artifacts/metrics/confusion_matrix.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_draws_charts_and_a_self_contained_html() {
    let env = Env::new();
    let mut rows = hand_rows();
    for (i, r) in rows.iter_mut().enumerate() {
        r.hour = [9, 9, 13, 20, 20, 23, 0, 9][i];
    }
    write_gold(&env.gold(), &rows, 7).await;
    let metrics = LogMetricsTask
        .run(
            &env.ctx("r1", "metrics", BTreeMap::new(), None),
            params(&env.gold()),
        )
        .await
        .unwrap();
    let upstream = BTreeMap::from([
        ("metrics".to_string(), metrics),
        ("profile".to_string(), profile_output()),
    ]);
    let p: ReportParams =
        serde_json::from_value(json!({ "input": env.gold().display().to_string() })).unwrap();
    let out = ReportTask
        .run(&env.ctx("r1", "report", upstream, None), p)
        .await
        .unwrap();
    let charts: Vec<String> = serde_json::from_value(out.get("charts").unwrap().clone()).unwrap();
    let names: Vec<&str> = charts
        .iter()
        .map(|c| c.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "top_users.png",
            "top_mentions_positive.png",
            "top_mentions_negative.png",
            "tweets_per_hour.png"
        ]
    );
    for c in &charts {
        check_png(Path::new(c));
    }
    // `METRICS_TEST_KEEP=DIR` keeps the files to look at.
    if let Some(keep) = std::env::var_os("METRICS_TEST_KEEP") {
        std::fs::create_dir_all(&keep).unwrap();
        for c in charts.iter().map(String::as_str).chain([out
            .get("report")
            .unwrap()
            .as_str()
            .unwrap()])
        {
            std::fs::copy(c, Path::new(&keep).join(Path::new(c).file_name().unwrap())).unwrap();
        }
        let cm = upstream_png(&env);
        std::fs::copy(&cm, Path::new(&keep).join("confusion_matrix.png")).unwrap();
    }
    let html = std::fs::read_to_string(out.get("report").unwrap().as_str().unwrap()).unwrap();
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("url(http"),
        "external reference in the report"
    );
    assert!(
        !html.contains("<link") && !html.contains("<script"),
        "the report must not load anything"
    );
    // Four charts and the confusion matrix, inline.
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 5);
    for s in [
        "precision",
        "0.5000",
        "silver",
        "distinct_users",
        "tweet-sentiment",
    ] {
        assert!(html.contains(s), "`{s}` missing from the report");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_without_users_or_upstreams_says_so() {
    let env = Env::new();
    write_gold(&env.gold(), &hand_rows(), 7).await;
    let p: ReportParams =
        serde_json::from_value(json!({ "input": env.gold().display().to_string() })).unwrap();
    let out = ReportTask
        .run(&env.ctx("r1", "report", BTreeMap::new(), None), p)
        .await
        .unwrap();
    let notes = out.get("notes").unwrap().as_array().unwrap();
    assert_eq!(notes.len(), 1);
    assert!(notes[0].as_str().unwrap().contains("Top tweeters: skipped"));
    let html = std::fs::read_to_string(out.get("report").unwrap().as_str().unwrap()).unwrap();
    assert!(html.contains("No profile") && html.contains("No metrics"));
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 3);
}

// ---------- MLflow ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_into_the_pipeline_runs_mlflow_run() {
    let server = server();
    let c = client_at(&server.url);
    let env = Env::new();
    write_gold(&env.gold(), &hand_rows(), 7).await;
    let exp = c
        .get_or_create_experiment(&format!("eval-pipeline-{}", std::process::id()))
        .await
        .unwrap();
    let run = c
        .create_run(&exp.experiment_id, Some("pipeline-run"), &[])
        .await
        .unwrap();
    let link = MlflowRunLink {
        tracking_uri: server.url.clone(),
        experiment_id: exp.experiment_id.clone(),
        run_id: run.info.run_id.clone(),
        url: String::new(),
        complete: false,
    };
    *env.link.borrow_mut() = Some(link);

    let out = LogMetricsTask
        .run(
            &env.ctx("r1", "metrics", BTreeMap::new(), None),
            params(&env.gold()),
        )
        .await
        .unwrap();
    assert_eq!(out.get("mlflow_run_id"), Some(&json!(run.info.run_id)));
    // A retried attempt logs again without tripping over the immutable params.
    let out = LogMetricsTask
        .run(
            &env.ctx("r1", "metrics", BTreeMap::new(), None),
            params(&env.gold()),
        )
        .await
        .unwrap();

    let back = c.get_run(&run.info.run_id).await.unwrap();
    assert_eq!(back.data.metric("precision"), Some(0.5));
    assert_eq!(back.data.metric("binary_support"), Some(4.0));
    assert_eq!(back.data.metric("confusion_positive_neutral"), Some(1.0));
    close(
        back.data.metric("macro_f1").unwrap(),
        f(&out, "macro_f1"),
        "macro_f1 in MLflow",
    );
    assert_eq!(back.data.param("model_name"), Some("tweet-sentiment"));
    assert_eq!(
        back.data.param("model_uri"),
        Some("models:/tweet-sentiment@champion")
    );
    assert_eq!(back.data.param("model_version"), Some("3"));
    assert_eq!(back.data.param("gold_table_version"), Some("1"));
    assert_eq!(back.data.param("silver_table_version"), Some("7"));
    assert_eq!(
        back.data.param("tweetflow_version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let server_version = back
        .data
        .param("mlflow_server_version")
        .expect("server version param");
    assert!(
        server_version
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_digit()),
        "{server_version}"
    );
    let files: Vec<String> = c
        .list_artifacts(&run.info.run_id, Some("evaluation"))
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert!(
        files.contains(&"evaluation/confusion_matrix.png".to_string()),
        "{files:?}"
    );
    assert!(
        files.contains(&"evaluation/metrics.json".to_string()),
        "{files:?}"
    );

    // The report goes to the same run.
    let upstream = BTreeMap::from([
        ("metrics".to_string(), out),
        ("profile".to_string(), profile_output()),
    ]);
    let p: ReportParams =
        serde_json::from_value(json!({ "input": env.gold().display().to_string() })).unwrap();
    ReportTask
        .run(&env.ctx("r1", "report", upstream, None), p)
        .await
        .unwrap();
    let files: Vec<String> = c
        .list_artifacts(&run.info.run_id, Some("report"))
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    for name in [
        "report.html",
        "top_users.png",
        "top_mentions_positive.png",
        "top_mentions_negative.png",
        "tweets_per_hour.png",
    ] {
        assert!(
            files.contains(&format!("report/{name}")),
            "{name} not in {files:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_pipeline_run_logs_a_new_finished_run_in_the_experiment() {
    let server = server();
    let c = client_at(&server.url);
    let env = Env::new();
    write_gold(&env.gold(), &hand_rows(), 7).await;
    let name = format!("eval-standalone-{}", std::process::id());
    let spec = MlflowSection {
        experiment: None,
        tracking_uri: Some(server.url.clone()),
    };
    let mut p = params(&env.gold());
    // Without an experiment anywhere: a config error naming the param.
    if std::env::var_os("MLFLOW_EXPERIMENT_NAME").is_none() {
        let e = LogMetricsTask
            .run(
                &env.ctx("r2", "metrics", BTreeMap::new(), Some(spec.clone())),
                p.clone(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("experiment"), "{}", e.message);
    }
    p.experiment = Some(name.clone());
    let out = LogMetricsTask
        .run(&env.ctx("r2", "metrics", BTreeMap::new(), Some(spec)), p)
        .await
        .unwrap();
    let run_id = out
        .get("mlflow_run_id")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let back = c.get_run(&run_id).await.unwrap();
    assert_eq!(format!("{:?}", back.info.status), "Finished");
    assert_eq!(back.data.metric("accuracy"), Some(0.5));
    assert_eq!(back.data.tag("tweetflow.task"), Some("metrics"));
    let exp = c.get_experiment_by_name(&name).await.unwrap();
    assert_eq!(back.info.experiment_id, exp.experiment_id);
}

// ---------- a whole pipeline run ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_run_logs_metrics_and_report_with_task_timings() {
    use tweetflow_engine::{Engine, LoadOptions, RunOptions, RunStatus};
    let server = server();
    let env = Env::new();
    let mut rows = hand_rows();
    for (i, r) in rows.iter_mut().enumerate() {
        r.hour = [9, 9, 13, 20, 20, 23, 0, 9][i];
    }
    write_gold(&env.gold(), &rows, 7).await;
    let text = format!(
        r#"
name: evaluation
mlflow: {{ experiment: eval-e2e-{pid}, tracking_uri: "{url}" }}
tasks:
  profile: {{ type: profile, with: {{ input: "{gold}" }} }}
  metrics: {{ type: log-metrics, with: {{ input: "{gold}" }} }}
  report: {{ type: report, depends_on: [profile, metrics], with: {{ input: "{gold}", title: "Sentiment evaluation" }} }}
"#,
        pid = std::process::id(),
        url = server.url,
        gold = env.gold().display()
    );
    let registry = Arc::new(tweetflow_tasks::default_registry());
    let options = LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &tweetflow_engine::process_env,
    };
    let pipeline = tweetflow_engine::load_str("evaluation.yaml", &text, &options)
        .unwrap_or_else(|d| panic!("{d:?}"));
    let engine = Engine::new(registry.clone(), env.root.join("runs"))
        .with_observer(Arc::new(tweetflow_tasks::observers::MlflowRuns::default()));
    let record = engine
        .run(pipeline, "evaluation.yaml", &text, RunOptions::default())
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    let report = record.tasks["report"].output.as_ref().unwrap();
    let html = std::fs::read_to_string(report.get("report").unwrap().as_str().unwrap()).unwrap();
    if let Some(keep) = std::env::var_os("METRICS_TEST_KEEP") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::write(Path::new(&keep).join("pipeline_report.html"), &html).unwrap();
    }
    // The timings table lists every task; the profile section shows the profile's numbers.
    for s in [
        "<td>profile</td>",
        "<td>log-metrics</td>",
        "<td>report</td>",
        "succeeded",
        "running",
        "distinct_mentions",
        "Sentiment evaluation",
    ] {
        assert!(html.contains(s), "`{s}` missing from the report");
    }
    assert_eq!(
        html.matches("src=\"data:image/png;base64,").count(),
        4,
        "no user column anywhere: three charts and the confusion matrix"
    );
    // Both tasks logged into the pipeline run's MLflow run.
    let link =
        MlflowRunLink::read(&env.root.join("runs").join(&record.run_id)).expect("mlflow.json");
    let c = client_at(&server.url);
    let run = c.get_run(&link.run_id).await.unwrap();
    assert_eq!(run.data.metric("f1"), Some(0.5));
    assert!(run.data.metric("task.metrics.duration_s").is_some());
    assert_eq!(run.data.param("silver_table_version"), Some("7"));
    let files: Vec<String> = c
        .list_artifacts(&link.run_id, None)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert!(
        files.contains(&"evaluation".to_string()) && files.contains(&"report".to_string()),
        "{files:?}"
    );
    let files: Vec<String> = c
        .list_artifacts(&link.run_id, Some("report"))
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert!(
        files.contains(&"report/report.html".to_string()),
        "{files:?}"
    );
}
