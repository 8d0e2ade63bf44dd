//! `infer` (silver to gold) with the tiny fixture model: row counts, one inference per
//! distinct text, label/id consistency, batching invariance, exactly-once under crashes,
//! incremental runs, and a `models:/` URI resolved on a real MLflow server.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use tweetflow_delta::{StorageError, WriteControl};
use tweetflow_engine::{ErrorKind, TaskError};
use tweetflow_model::ModelError;
use tweetflow_model::{ClassifierOptions, Predictor};
use tweetflow_tasks::TableTaskError;
use tweetflow_tasks::infer::{
    InferError, InferParams, LoadedModel, MAX_DEFAULT_SESSIONS, infer, infer_with, resolve_model,
};

use crate::common::*;

const GOLD_COLS: &[&str] = &[
    "tweet_id",
    "timestamp",
    "mention",
    "cleaned_text",
    "sentiment",
    "sentiment_id",
    "predicted_sentiment",
    "predicted_score",
    "predicted_sentiment_id",
    "model_uri",
    "model_version",
];

fn params(dir: &Path, gold: &str, batch_size: usize) -> InferParams {
    let mut ip = InferParams::new(
        p(dir, "silver"),
        p(dir, gold),
        tiny_model().display().to_string(),
    );
    ip.batch_size = batch_size;
    ip.threads = Some(1);
    ip
}

fn key(t: &str) -> &str {
    if t.trim().is_empty() { "" } else { t }
}

/// No two gold rows for one tweet and mention.
fn assert_unique_gold(gold: &[Vec<String>]) {
    assert_unique_rows(gold, &[0, 2], "gold");
}

#[tokio::test]
async fn infer_gold_matches_silver_and_runs_each_text_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    add_silver(dir, "tweets", 200, None).await;
    let silver = rows_of(
        &p(dir, "silver"),
        &["tweet_id", "mention", "cleaned_text", "sentiment"],
    )
    .await;
    assert!(silver.len() > 20, "too few silver rows: {}", silver.len());
    let ip = params(dir, "gold", 32);
    let s = infer(&ip, &WriteControl::default()).await.unwrap();

    let distinct: HashSet<&str> = silver.iter().map(|r| key(&r[2])).collect();
    assert_eq!(s.rows as usize, silver.len());
    assert_eq!(s.distinct_texts as usize, distinct.len());
    assert_eq!(
        s.inferred as usize,
        distinct.len(),
        "one inference per distinct text"
    );
    assert!(
        distinct.len() < silver.len(),
        "the slice has tweets with several mentions"
    );

    let gold = rows_of(&ip.table, GOLD_COLS).await;
    assert_eq!(gold.len(), silver.len());
    assert_unique_gold(&gold);
    let gold_keys: Vec<Vec<String>> = {
        let mut v: Vec<Vec<String>> = gold
            .iter()
            .map(|r| vec![r[0].clone(), r[2].clone(), r[3].clone(), r[4].clone()])
            .collect();
        v.sort();
        v
    };
    assert_eq!(gold_keys, silver);
    let uri = std::path::absolute(tiny_model())
        .unwrap()
        .display()
        .to_string();
    assert_eq!(s.model_uri, uri);
    assert_eq!(s.model_version.len(), 12);
    assert!(s.model_version.chars().all(|c| c.is_ascii_hexdigit()));
    for r in &gold {
        let expect_sid = match r[4].as_str() {
            "positive" => "1",
            "negative" => "0",
            _ => "",
        };
        assert_eq!(r[5], expect_sid, "sentiment_id of {r:?}");
        let expect_pid = match r[6].as_str() {
            "positive" => "1",
            "negative" => "0",
            "neutral" => "",
            other => panic!("predicted_sentiment {other:?}"),
        };
        assert_eq!(r[8], expect_pid, "predicted_sentiment_id of {r:?}");
        let score: f64 = r[7].parse().unwrap();
        assert!((0.0..=100.0).contains(&score), "score {score}");
        assert_eq!(r[9], uri);
        assert_eq!(r[10], s.model_version);
    }
    // Rows sharing a text share the prediction.
    let mut by_text: HashMap<&str, (&str, &str)> = HashMap::new();
    for r in &gold {
        let prev = by_text.insert(key(&r[3]), (&r[6], &r[7]));
        if let Some(prev) = prev {
            assert_eq!(prev, (r[6].as_str(), r[7].as_str()));
        }
    }

    // No new silver data: no new gold version.
    let v = version(&ip.table).await;
    let again = infer(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!(again.rows, 0);
    assert_eq!(again.inferred, 0);
    assert_eq!(again.table_version, v);
    assert_eq!(version(&ip.table).await, v);

    // New silver data is processed alone.
    let before = rows_of(&ip.table, GOLD_COLS).await;
    add_silver(dir, "more", 150, Some(7)).await;
    let silver_all = rows_of(&p(dir, "silver"), &["tweet_id", "mention"]).await;
    let more = infer(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!(more.rows as usize, silver_all.len() - silver.len());
    assert_eq!(more.table_version, v + 1);
    let after = rows_of(&ip.table, GOLD_COLS).await;
    assert_eq!(after.len(), silver_all.len());
    assert_unique_gold(&after);
    let after_set: HashSet<&Vec<String>> = after.iter().collect();
    assert!(
        before.iter().all(|r| after_set.contains(r)),
        "earlier gold rows kept as they were"
    );
}

#[tokio::test]
async fn infer_batch_size_does_not_change_the_gold_labels() {
    batch_size_does_not_change_the_gold_labels(tiny_model()).await;
}

/// The same with the int8 fixture (quantized like the real encoder, activations per row).
#[tokio::test]
async fn infer_batch_size_does_not_change_the_gold_labels_of_an_int8_model() {
    batch_size_does_not_change_the_gold_labels(tiny_model_int8()).await;
}

async fn batch_size_does_not_change_the_gold_labels(model: PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    add_silver(dir, "tweets", 200, None).await;
    let with_model = |gold: &str, batch: usize| {
        let mut ip = params(dir, gold, batch);
        ip.model = model.display().to_string();
        ip
    };
    let one = infer(&with_model("gold1", 1), &WriteControl::default())
        .await
        .unwrap();
    let many = infer(&with_model("gold32", 32), &WriteControl::default())
        .await
        .unwrap();
    assert_eq!(one.rows, many.rows);
    assert_eq!(one.inferred, many.inferred);
    let cols = &[
        "tweet_id",
        "mention",
        "predicted_sentiment",
        "predicted_score",
    ];
    let a = rows_of(&p(dir, "gold1"), cols).await;
    let b = rows_of(&p(dir, "gold32"), cols).await;
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x[..3], y[..3], "labels differ between batch 1 and 32");
        let (sx, sy): (f64, f64) = (x[3].parse().unwrap(), y[3].parse().unwrap());
        assert!((sx - sy).abs() <= 0.1, "score {sx} vs {sy} for {x:?}");
    }
}

/// Without `threads:`, infer runs one session per core, the batches handed out in order: its
/// gold is that of one session of one thread, row for row. Three sessions (whatever the
/// cores of the machine) write it too.
#[tokio::test]
async fn default_sessions_write_the_gold_of_one_single_thread_session_row_for_row() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for model in [tiny_model(), tiny_model_int8()] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        add_silver(dir, "tweets", 300, None).await;
        let mut single = params(dir, "gold-single", 8);
        single.model = model.display().to_string();
        let one = infer(&single, &WriteControl::default()).await.unwrap();
        assert_eq!(one.sessions, 1);

        let mut default = single.clone();
        default.table = p(dir, "gold-default");
        default.threads = None;
        let many = infer(&default, &WriteControl::default()).await.unwrap();
        assert_eq!(many.sessions as usize, cores.min(MAX_DEFAULT_SESSIONS));

        let mut three = default.clone();
        three.table = p(dir, "gold-three");
        let resolved = resolve_model(&three).await.unwrap();
        let predictor = Predictor::verified(
            resolved.dir.clone(),
            resolved.manifest.clone(),
            ClassifierOptions {
                threads: 1,
                labels: None,
            },
            three.batch_size,
        )
        .with_sessions(3);
        let mut loaded = LoadedModel::new(resolved, predictor);
        let third = infer_with(&three, &WriteControl::default(), &mut loaded)
            .await
            .unwrap();
        assert_eq!(third.sessions, 3);

        let gold = rows_of(&single.table, GOLD_COLS).await;
        assert!(gold.len() > 50, "{}", gold.len());
        assert_unique_gold(&gold);
        for (name, s, table) in [
            ("default", &many, &default.table),
            ("three sessions", &third, &three.table),
        ] {
            assert_eq!(
                (s.rows, s.distinct_texts, s.inferred),
                (one.rows, one.distinct_texts, one.inferred),
                "{name}"
            );
            assert_eq!(s.model_batches, one.model_batches, "{name}");
            assert!(
                rows_of(table, GOLD_COLS).await == gold,
                "{name}: gold differs"
            );
        }
    }
}

#[tokio::test]
async fn infer_crash_at_each_failpoint_then_rerun_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    add_silver(dir, "tweets", 200, None).await;
    let reference = params(dir, "gold_ref", 32);
    infer(&reference, &WriteControl::default()).await.unwrap();
    add_silver(dir, "more", 150, Some(7)).await;
    infer(&reference, &WriteControl::default()).await.unwrap();
    let expected = rows_of(&reference.table, GOLD_COLS).await;
    assert_unique_gold(&expected);

    for fp in ["infer.after_write", "infer.after_commit"] {
        let gold = format!("gold_{}", fp.replace('.', "_"));
        let ip = params(dir, &gold, 32);
        // A first, uninterrupted run over part of silver is not possible here (silver has
        // both increments), so crash on the first run, then rerun.
        let err = infer(&ip, &WriteControl::with_failpoint(fp))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, InferError::Delta(TableTaskError::Storage(StorageError::Failpoint(p))) if p == fp),
            "{fp}: {err}"
        );
        assert!(err.is_retryable());
        let v = version(&ip.table).await;
        let rerun = infer(&ip, &WriteControl::default()).await.unwrap();
        if fp == "infer.after_commit" {
            assert_eq!(rerun.rows, 0, "{fp}: committed work is not redone");
            assert_eq!(version(&ip.table).await, v, "{fp}: no new version");
        } else {
            assert_eq!(rerun.rows as usize, expected.len());
        }
        let got = rows_of(&ip.table, GOLD_COLS).await;
        assert_eq!(got.len(), expected.len(), "{fp}: row count");
        assert_unique_gold(&got);
        let strip = |rows: &[Vec<String>]| -> Vec<Vec<String>> {
            rows.iter().map(|r| r[..9].to_vec()).collect()
        };
        assert_eq!(
            strip(&got),
            strip(&expected),
            "{fp}: gold differs from the uninterrupted run"
        );
    }
}

#[tokio::test]
async fn infer_crash_on_an_increment_keeps_earlier_gold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    add_silver(dir, "tweets", 120, None).await;
    let ip = params(dir, "gold", 8);
    infer(&ip, &WriteControl::default()).await.unwrap();
    let first = rows_of(&ip.table, GOLD_COLS).await;
    add_silver(dir, "more", 120, Some(3)).await;
    let err = infer(&ip, &WriteControl::with_failpoint("infer.after_write"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        InferError::Delta(TableTaskError::Storage(StorageError::Failpoint(_)))
    ));
    assert_eq!(
        rows_of(&ip.table, GOLD_COLS).await,
        first,
        "nothing visible after the crash"
    );
    let rerun = infer(&ip, &WriteControl::default()).await.unwrap();
    let silver_all = rows_of(&p(dir, "silver"), &["tweet_id", "mention"]).await;
    assert_eq!(rerun.rows as usize, silver_all.len() - first.len());
    let gold = rows_of(&ip.table, GOLD_COLS).await;
    assert_eq!(gold.len(), silver_all.len());
    assert_unique_gold(&gold);
}

#[tokio::test]
async fn infer_errors_map_to_task_error_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A missing model directory: not retryable.
    let mut ip = params(dir, "gold", 32);
    ip.model = p(dir, "no-such-model");
    let err = infer(&ip, &WriteControl::default()).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_ne!(TaskError::from(err).kind, ErrorKind::Retryable);
    // The ONNX Runtime library missing: the model crate's message, a config error.
    let te = TaskError::from(InferError::Model(ModelError::Runtime(
        "ONNX Runtime not found; looked in ...".into(),
    )));
    assert_eq!(te.kind, ErrorKind::Config);
    assert!(te.message.contains("ONNX Runtime not found"));
    // A bad models:/ URI: config.
    ip.model = "models:/".into();
    let err = infer(&ip, &WriteControl::default()).await.unwrap_err();
    assert_eq!(TaskError::from(err).kind, ErrorKind::Config);
    // batch_size 0: config.
    let mut ip = params(dir, "gold", 0);
    ip.batch_size = 0;
    let err = infer(&ip, &WriteControl::default()).await.unwrap_err();
    assert_eq!(TaskError::from(err).kind, ErrorKind::Config);
}

#[tokio::test]
async fn infer_resolves_a_registry_alias_on_a_real_mlflow_server() {
    let server = tweetflow_test_support::mlflow_server::server();
    let client =
        tweetflow_mlflow::Client::new(tweetflow_mlflow::ClientConfig::new(server.url.clone()))
            .unwrap();
    let name = format!(
        "tiny-infer-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let registered = tweetflow_model::register(&client, &tiny_model(), &name, Some("production"))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    add_silver(dir, "tweets", 100, None).await;
    let mut ip = params(dir, "gold", 32);
    ip.model = format!("models:/{name}@production");
    ip.tracking_uri = Some(server.url.clone());
    ip.cache_dir = Some(p(dir, "model-cache"));
    let s = infer(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!(s.model_uri, ip.model);
    assert_eq!(s.model_version, registered.version);
    assert!(s.rows > 0);
    let gold = rows_of(&ip.table, &["model_uri", "model_version"]).await;
    assert!(
        gold.iter()
            .all(|r| r[0] == ip.model && r[1] == registered.version)
    );
    // Same predictions as the directory itself.
    let local = infer(&params(dir, "gold_dir", 32), &WriteControl::default())
        .await
        .unwrap();
    assert_eq!(local.rows, s.rows);
    let cols = &[
        "tweet_id",
        "mention",
        "predicted_sentiment",
        "predicted_score",
    ];
    assert_eq!(
        rows_of(&ip.table, cols).await,
        rows_of(&p(dir, "gold_dir"), cols).await
    );
}

#[test]
fn infer_params_defaults_and_unknown_fields() {
    let ip: InferParams = serde_json::from_value(serde_json::json!({
        "input": "silver", "table": "gold", "model": "models:/m@production"
    }))
    .unwrap();
    assert_eq!(ip.batch_size, 32);
    assert_eq!(ip.threads, None);
    assert!(ip.threads() >= 1);
    assert_eq!(ip.cache_dir(), PathBuf::from("data/model-cache"));
    let ip: InferParams = serde_json::from_value(serde_json::json!({
        "input": "s", "table": "g", "model": "m", "labels": {"joy": "positive", "0": "negative"}
    }))
    .unwrap();
    assert_eq!(ip.labels.unwrap().len(), 2);
    assert!(
        serde_json::from_value::<InferParams>(serde_json::json!({
            "input": "s", "table": "g", "model": "m", "batchsize": 8
        }))
        .is_err()
    );
    let mut registry = tweetflow_engine::Registry::new();
    tweetflow_tasks::register_all(&mut registry);
    assert!(registry.get("infer").is_some());
}

#[tokio::test]
async fn infer_through_the_registry_with_cache_validity() {
    use tweetflow_engine::Registry;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    add_silver(dir, "tweets", 120, None).await;
    let mut registry = Registry::new();
    tweetflow_tasks::register_all(&mut registry);
    let task = registry.get("infer").unwrap();
    let ctx = TaskContextBuilder::new(dir.join("artifacts"))
        .task_id("infer")
        .build();
    let params = serde_json::json!({
        "input": p(dir, "silver"), "table": p(dir, "gold"),
        "model": tiny_model(), "batch_size": 16, "threads": 1,
    });
    let out = task.run(&ctx, &params).await.unwrap();
    let silver_rows = rows_of(&p(dir, "silver"), &["tweet_id"]).await.len();
    assert_eq!(out.get("rows"), Some(&serde_json::json!(silver_rows)));
    assert_eq!(out.get("table_version"), Some(&serde_json::json!(1)));
    assert!(out.fingerprint.ends_with("@1"), "{}", out.fingerprint);
    for k in [
        "distinct_texts",
        "inferred",
        "model_uri",
        "model_version",
        "silver_version",
    ] {
        assert!(out.get(k).is_some(), "output lacks {k}");
    }
    assert!(task.output_still_valid(&params, &out).await);
    add_silver(dir, "more", 60, Some(5)).await;
    assert!(
        !task.output_still_valid(&params, &out).await,
        "new silver data invalidates the cached output"
    );
    let bad = task
        .run(
            &ctx,
            &serde_json::json!({"input": "s", "table": "g", "model": "m", "bogus": 1}),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::Config);
}

/// Set in the child process of [`infer_without_onnx_runtime_is_a_config_error`].
const NO_ORT_CHILD: &str = "TWEETFLOW_INFER_NO_ORT_CHILD";

#[tokio::test]
async fn infer_without_onnx_runtime_is_a_config_error() {
    if std::env::var_os(NO_ORT_CHILD).is_some() {
        return;
    }
    // The runtime is loaded once per process: check the missing library in a child process.
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("libonnxruntime.so.missing");
    run_child(
        "infer::infer_without_onnx_runtime_child",
        NO_ORT_CHILD,
        tmp.path(),
        &[("ORT_DYLIB_PATH", missing.to_str().unwrap())],
    );
}

#[tokio::test]
#[ignore = "run by infer_without_onnx_runtime_is_a_config_error in a child process"]
async fn infer_without_onnx_runtime_child() {
    let Some(dir) = std::env::var_os(NO_ORT_CHILD) else {
        return;
    };
    let dir = PathBuf::from(dir);
    add_silver(&dir, "tweets", 60, None).await;
    let err = infer(&params(&dir, "gold", 32), &WriteControl::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, InferError::Model(ModelError::Runtime(_))),
        "{err}"
    );
    assert!(!err.is_retryable());
    let te = TaskError::from(err);
    assert_eq!(te.kind, ErrorKind::Config);
    assert!(te.message.contains("ORT_DYLIB_PATH"), "{}", te.message);
    println!("{}", te.message);
}

/// Set in the child process of [`infer_with_the_registry_unreachable_is_retryable`].
const NO_REGISTRY_CHILD: &str = "TWEETFLOW_INFER_NO_REGISTRY_CHILD";

#[tokio::test]
async fn infer_with_the_registry_unreachable_is_retryable() {
    if std::env::var_os(NO_REGISTRY_CHILD).is_some() {
        return;
    }
    // A child process, so that the client's retry settings come from its own environment.
    let tmp = tempfile::tempdir().unwrap();
    run_child(
        "infer::infer_with_the_registry_unreachable_child",
        NO_REGISTRY_CHILD,
        tmp.path(),
        &[
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"),
            ("MLFLOW_HTTP_REQUEST_TIMEOUT", "5"),
        ],
    );
}

/// Runs the ignored test `name` of this binary in a child process with `marker` set to `dir`
/// and `envs`, and checks that it ran and passed.
fn run_child(name: &str, marker: &str, dir: &Path, envs: &[(&str, &str)]) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture"])
        .env(marker, dir)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "child did not run:\n{text}");
}

#[tokio::test]
#[ignore = "run by infer_with_the_registry_unreachable_is_retryable in a child process"]
async fn infer_with_the_registry_unreachable_child() {
    let Some(dir) = std::env::var_os(NO_REGISTRY_CHILD) else {
        return;
    };
    let dir = PathBuf::from(dir);
    add_silver(&dir, "tweets", 60, None).await;
    let port = tweetflow_test_support::mlflow_server::free_port();
    let mut ip = params(&dir, "gold", 32);
    ip.model = "models:/tiny@production".into();
    ip.tracking_uri = Some(format!("http://127.0.0.1:{port}"));
    ip.cache_dir = Some(p(&dir, "model-cache"));
    let err = infer(&ip, &WriteControl::default()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let te = TaskError::from(err);
    assert_eq!(te.kind, ErrorKind::Retryable, "{}", te.message);
    assert_eq!(version(&ip.table).await, -1, "nothing written");
    println!("{}", te.message);

    // Once gold is up to date, a run with nothing new needs no registry: it succeeds and
    // names the model gold last used.
    let local = infer(&params(&dir, "gold", 32), &WriteControl::default())
        .await
        .unwrap();
    assert!(local.rows > 0);
    let noop = infer(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!(noop.rows, 0);
    assert_eq!(noop.table_version, local.table_version);
    assert_eq!(noop.silver_version, local.silver_version);
    assert_eq!(
        (noop.model_uri, noop.model_version),
        (local.model_uri, local.model_version)
    );
    // New silver data: the registry is needed again, and still unreachable.
    add_silver(&dir, "more", 30, Some(3)).await;
    let err = infer(&ip, &WriteControl::default()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(version(&ip.table).await, local.table_version);
}

#[test]
fn infer_batch_size_zero_is_reported_at_its_line_and_column() {
    let registry = tweetflow_tasks::default_registry();
    let options = tweetflow_engine::LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &|_| None,
    };
    let text = "name: p\ntasks:\n  score:\n    type: infer\n    with:\n      input: silver\n      table: gold\n      model: model\n      batch_size: 0\n";
    let diagnostics = tweetflow_engine::load_str("p.yaml", text, &options).unwrap_err();
    let d = diagnostics
        .items
        .iter()
        .find(|d| d.message.contains("batch_size"))
        .unwrap_or_else(|| panic!("{diagnostics:?}"));
    assert_eq!((d.span.line, d.span.column), (9, 19), "{}", d.message);
    assert!(d.message.contains("must be at least 1"), "{}", d.message);
}
