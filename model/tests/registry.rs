//! Registry round trip against a real MLflow server: register the tiny model, resolve every
//! `models:/` form, download once into the cache, use a pinned cached version offline.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use tweetflow_mlflow::{Client, ClientConfig, ModelUri};
use tweetflow_model::{
    Classifier, ClassifierOptions, ErrorClass, ModelError, ModelSource, register, resolve,
};
use tweetflow_test_support::mlflow_server::{client, free_port};
use tweetflow_test_support::tiny_model;

fn predictions(dir: &std::path::Path) -> Vec<tweetflow_model::Prediction> {
    let texts = common::sample_texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut c = Classifier::load(
        dir,
        ClassifierOptions {
            threads: 1,
            labels: None,
        },
    )
    .unwrap();
    c.predict(&refs, 32).unwrap()
}

fn source(s: &str) -> ModelSource {
    ModelSource::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_resolve_cache_and_offline() {
    let c = client();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("model-cache");
    let name = format!("tiny-sentiment-{}", std::process::id());
    let tiny = tiny_model();

    // Version 1 with the alias, version 2 without; version 1 goes to the Production stage.
    let v1 = register(&c, &tiny, &name, Some("production"))
        .await
        .unwrap();
    assert_eq!(v1.version, "1");
    assert_eq!(v1.alias.as_deref(), Some("production"));
    assert!(
        v1.source.starts_with("mlflow-artifacts:/") && v1.source.ends_with("/artifacts/model"),
        "{}",
        v1.source
    );
    assert_eq!(v1.uri, format!("models:/{name}/1"));
    let v2 = register(&c, &tiny, &name, None).await.unwrap();
    assert_eq!(v2.version, "2");
    let run = c.get_run(&v1.run_id).await.unwrap();
    assert_eq!(run.info.status, tweetflow_mlflow::MlflowRunStatus::Finished);
    c.transition_stage(&name, "1", "Production", false)
        .await
        .unwrap();

    // @alias: downloaded into <cache>/<name>/1.
    let a = resolve(&c, &source(&format!("models:/{name}@production")), &cache)
        .await
        .unwrap();
    assert_eq!(a.version.as_deref(), Some("1"));
    assert_eq!(a.name.as_deref(), Some(name.as_str()));
    assert_eq!(a.dir, cache.join(&name).join("1"));
    assert!(!a.from_cache && !a.offline);
    for f in [
        "model.onnx",
        "tokenizer.json",
        "config.json",
        "manifest.json",
    ] {
        assert!(a.dir.join(f).is_file(), "{f}");
    }
    // No temporary directory left behind.
    let entries: Vec<_> = std::fs::read_dir(cache.join(&name))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");

    // /1 and the stage: same version, served from the cache.
    let p = resolve(&c, &source(&format!("models:/{name}/1")), &cache)
        .await
        .unwrap();
    assert_eq!((p.version.as_deref(), p.from_cache), (Some("1"), true));
    assert_eq!(p.dir, a.dir);
    let s = resolve(&c, &source(&format!("models:/{name}/Production")), &cache)
        .await
        .unwrap();
    assert_eq!((s.version.as_deref(), s.from_cache), (Some("1"), true));
    // latest: version 2, downloaded once.
    let l = resolve(&c, &source(&format!("models:/{name}/latest")), &cache)
        .await
        .unwrap();
    assert_eq!((l.version.as_deref(), l.from_cache), (Some("2"), false));
    let l2 = resolve(&c, &source(&format!("models:/{name}/latest")), &cache)
        .await
        .unwrap();
    assert!(l2.from_cache);

    // The downloaded model predicts exactly like the local directory.
    let want = predictions(&tiny);
    assert_eq!(predictions(&a.dir), want);
    assert_eq!(predictions(&l.dir), want);

    // A damaged cache entry is downloaded again.
    std::fs::write(l.dir.join("config.json"), "{}").unwrap();
    let again = resolve(&c, &source(&format!("models:/{name}/2")), &cache)
        .await
        .unwrap();
    assert!(!again.from_cache);
    assert_eq!(predictions(&again.dir), want);

    // A directory source is verified and used as is.
    let d = resolve(&c, &source(tiny.to_str().unwrap()), &cache)
        .await
        .unwrap();
    assert_eq!((d.dir.clone(), d.version.clone()), (tiny.clone(), None));

    // Not found: not retryable.
    let err = resolve(&c, &source(&format!("models:/{name}/9")), &cache)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    let err = resolve(&c, &source(&format!("models:/{name}@nope")), &cache)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");

    // Registry unreachable: a pinned cached version is used offline; nothing else is.
    let dead = Client::new(
        ClientConfig::new(format!("http://127.0.0.1:{}", free_port()))
            .with_retries(0, Duration::from_millis(10))
            .with_request_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let off = resolve(&dead, &source(&format!("models:/{name}/1")), &cache)
        .await
        .unwrap();
    assert!(off.offline && off.from_cache);
    assert_eq!(off.dir, a.dir);
    for uri in [
        format!("models:/{name}@production"),
        format!("models:/{name}/latest"),
        format!("models:/{name}/7"),
    ] {
        let err = resolve(&dead, &source(&uri), &cache).await.unwrap_err();
        assert!(err.is_retryable(), "{uri}: {err}");
        assert!(matches!(err, ModelError::Registry { .. }));
    }
    let err = register(&dead, &tiny, &name, None).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_refuses_a_broken_directory() {
    // Checked before any request: no server needed.
    let c = Client::new(ClientConfig::new("http://127.0.0.1:9")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    common::copy_dir(&tiny_model(), &dir);
    std::fs::write(dir.join("model.onnx"), b"not a model").unwrap();
    let err = register(&c, &dir, "x", None).await.unwrap_err();
    assert!(err.to_string().contains("model.onnx"), "{err}");
    let err = register(&c, &tiny_model(), "a/b", None).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Config);
}

#[test]
fn model_sources() {
    assert_eq!(
        ModelSource::parse("models:/sent@production").unwrap(),
        ModelSource::Registry(ModelUri::Alias {
            name: "sent".into(),
            alias: "production".into()
        })
    );
    assert_eq!(
        ModelSource::parse(" data/model/tweet-sentiment ").unwrap(),
        ModelSource::Dir("data/model/tweet-sentiment".into())
    );
    for bad in [
        "models:/sent",
        "models:/",
        "",
        "runs:/abc/model",
        "s3://bucket/model",
    ] {
        let e = ModelSource::parse(bad).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config, "{bad}: {e}");
    }
    assert_eq!(source("models:/sent/3").to_string(), "models:/sent/3");
}
