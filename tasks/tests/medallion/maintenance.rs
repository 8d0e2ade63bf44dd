//! Replay determinism, optimize/vacuum/reset/show, profile, and the tasks through the registry.

use std::collections::BTreeMap;

use serde_json::json;
use tweetflow_delta::WriteControl;
use tweetflow_engine::{ErrorKind, Registry, TaskContext};
use tweetflow_tasks::TableTaskError;
use tweetflow_tasks::medallion::clean::{CleanParams, clean};
use tweetflow_tasks::medallion::ingest::{IngestParams, ingest};
use tweetflow_tasks::medallion::maintenance::{
    OptimizeParams, VacuumParams, optimize, reset, table_info, vacuum,
};
use tweetflow_tasks::medallion::profile::profile;
use tweetflow_tasks::medallion::replay::{ReplayParams, replay};

use crate::common::*;

#[tokio::test]
async fn replay_is_deterministic_and_parses_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rp = ReplayParams::new(test_csv().display().to_string(), p(d, "a"));
    rp.tweets_per_file = 64;
    rp.seed = Some(7);
    rp.limit = Some(300);
    let a = replay(&rp, &WriteControl::default()).await.unwrap();
    rp.landing = p(d, "b");
    let b = replay(&rp, &WriteControl::default()).await.unwrap();
    assert_eq!((a.tweets, a.files), (300, 5));
    assert_eq!(a.file_names, b.file_names);
    for name in &a.file_names {
        assert_eq!(
            std::fs::read(d.join("a").join(name)).unwrap(),
            std::fs::read(d.join("b").join(name)).unwrap()
        );
    }
    // No temporary files are left behind.
    assert!(
        std::fs::read_dir(d.join("a")).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.'))
    );

    // The whole test set: every line is an object with the four keys; `""` quotes decoded.
    let all = ReplayParams {
        landing: p(d, "all"),
        tweets_per_file: 1000,
        ..ReplayParams::new(test_csv().display().to_string(), "")
    };
    let s = replay(&all, &WriteControl::default()).await.unwrap();
    assert_eq!((s.tweets, s.skipped), (498, 0));
    let text = std::fs::read_to_string(d.join("all").join("tweets-000001.jsonl")).unwrap();
    let mut labels = BTreeMap::new();
    let mut quoted = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["date", "user", "text", "sentiment"]);
        *labels
            .entry(v["sentiment"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
        if v["text"].as_str().unwrap().contains('"') {
            quoted += 1;
        }
    }
    assert_eq!(
        labels,
        BTreeMap::from([
            ("negative".into(), 177),
            ("neutral".into(), 139),
            ("positive".into(), 182)
        ])
    );
    assert!(quoted > 0, "the test set has doubled quotes");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["date"], "Mon May 11 03:17:40 UTC 2009");
}

#[tokio::test]
async fn optimize_vacuum_show_reset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rp = ReplayParams::new(test_csv().display().to_string(), p(d, "landing"));
    rp.tweets_per_file = 50;
    replay(&rp, &WriteControl::default()).await.unwrap();
    let mut ip = IngestParams::new(p(d, "landing"), p(d, "bronze")).with_settle_time("0s");
    ip.max_files_per_batch = 2;
    ingest(&ip, &WriteControl::default()).await.unwrap();
    let cp = CleanParams::new(p(d, "bronze"), p(d, "silver"));
    clean(&cp, &WriteControl::default()).await.unwrap();
    let before = rows(&ip.table).await;
    let info = table_info(&ip.table, 100).await.unwrap();
    assert_eq!(info.files, 5);
    assert_eq!(info.rows, Some(498));
    assert!(
        info.app_transactions
            .contains(&("tweetflow-ingest".to_string(), 5)),
        "{:?}",
        info.app_transactions
    );
    assert!(
        info.schema
            .iter()
            .any(|(name, ty, _)| name == "processing_time" && ty == "timestamp"),
        "{:?}",
        info.schema
    );

    let mut op = OptimizeParams::new(&ip.table);
    op.zorder_by = Some("user".into());
    let o = optimize(&op, &WriteControl::default()).await.unwrap();
    assert_eq!((o.files_removed, o.files_added, o.rows), (5, 1, 498));
    assert_eq!(rows(&ip.table).await, before, "optimize keeps the rows");
    let users = rows_of(&ip.table, &["user"]).await;
    assert_eq!(users.len(), 498);
    // Optimizing again has nothing to do: no new version.
    let v = version(&ip.table).await;
    assert_eq!(
        optimize(&op, &WriteControl::default())
            .await
            .unwrap()
            .table_version,
        v
    );
    // Clean does not take the rewritten files as new data.
    let c = clean(&cp, &WriteControl::default()).await.unwrap();
    assert_eq!((c.rows, c.tweets), (0, 0));

    // Vacuum keeps files younger than the retention; a retention below 7 days is refused.
    let vs = vacuum(&VacuumParams::new(&ip.table)).await.unwrap();
    assert!(vs.files.is_empty(), "{:?}", vs.files);
    let mut short = VacuumParams::new(&ip.table);
    short.retention = "1h".into();
    let err = vacuum(&short).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(rows(&ip.table).await, before);

    // Reset refuses without confirm, and refuses a folder that is not a Delta table.
    let tables = vec![ip.table.clone(), cp.table.clone()];
    assert!(matches!(
        reset(&tables, false).await,
        Err(TableTaskError::Refused(_))
    ));
    assert!(matches!(
        reset(&[p(d, "landing")], true).await,
        Err(TableTaskError::Refused(_))
    ));
    assert!(d.join("landing").is_dir());
    let done = reset(&[ip.table.clone(), cp.table.clone(), p(d, "never")], true)
        .await
        .unwrap();
    assert_eq!(
        done.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        ["deleted", "deleted", "absent"]
    );
    assert_eq!(version(&ip.table).await, -1);
    // After a reset, ingest takes every landing file again.
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!(s.rows, 498);
}

#[tokio::test]
async fn profile_bronze_and_silver() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rp = ReplayParams::new(test_csv().display().to_string(), p(d, "landing"));
    replay(&rp, &WriteControl::default()).await.unwrap();
    ingest(
        &IngestParams::new(p(d, "landing"), p(d, "bronze")).with_settle_time("0s"),
        &WriteControl::default(),
    )
    .await
    .unwrap();
    clean(
        &CleanParams::new(p(d, "bronze"), p(d, "silver")),
        &WriteControl::default(),
    )
    .await
    .unwrap();
    let b = profile(&p(d, "bronze"), &WriteControl::default())
        .await
        .unwrap();
    assert_eq!(b["kind"], "bronze");
    assert_eq!(b["tweets"], 498);
    assert_eq!(b["tweets_with_mentions"], 110);
    assert_eq!(b["tweets_without_mentions"], 388);
    assert_eq!(b["columns"]["_rescued_data"]["nulls"], 498);
    assert_eq!(b["top_users"].as_array().unwrap().len(), 20);
    let s = profile(&p(d, "silver"), &WriteControl::default())
        .await
        .unwrap();
    assert_eq!(s["kind"], "silver");
    assert_eq!(s["tweets"], 110);
    assert_eq!(s["distinct_mentions"], b["distinct_mentions"]);
    assert_eq!(s["top_mentions"], b["top_mentions"]);
}

fn context(dir: &std::path::Path) -> TaskContext {
    TaskContextBuilder::new(dir.join("artifacts")).build()
}

#[tokio::test]
async fn tasks_through_the_registry() {
    let mut registry = Registry::new();
    register_medallion(&mut registry);
    registry.register(tweetflow_tasks::infer::InferTask);
    let names: Vec<&str> = registry.names().collect();
    assert_eq!(
        names,
        [
            "aggregate",
            "clean",
            "infer",
            "ingest",
            "optimize",
            "profile",
            "replay",
            "reset",
            "vacuum"
        ]
    );
    for t in registry.iter() {
        let schema = t.params_schema();
        assert_eq!(
            schema["additionalProperties"],
            false,
            "{} params must deny unknown fields",
            t.type_name()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ctx = context(d);
    let run = |name: &'static str, params: serde_json::Value| {
        let registry = registry.clone();
        let ctx = ctx.clone();
        async move { registry.get(name).unwrap().run(&ctx, &params).await }
    };
    let bad = run("ingest", json!({"source": "x", "table": "y", "bogus": 1}))
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::Config);
    let out = run(
        "replay",
        json!({"csv": test_csv(), "landing": p(d, "landing"), "tweets_per_file": 250}),
    )
    .await
    .unwrap();
    assert_eq!(out.get("files"), Some(&json!(2)));
    let ingest_params =
        json!({"source": p(d, "landing"), "table": p(d, "bronze"), "settle_time": "0s"});
    let out = run("ingest", ingest_params.clone()).await.unwrap();
    assert_eq!(out.get("rows"), Some(&json!(498)));
    let ingest_task = registry.get("ingest").unwrap();
    assert_eq!(
        ingest_task.watch_paths(&ingest_params),
        vec![d.join("landing")]
    );
    assert!(
        ingest_task.output_still_valid(&ingest_params, &out).await,
        "nothing new: a cached output stays valid"
    );
    land(&d.join("landing"), "late-000001.jsonl", b"{}\n");
    assert!(
        !ingest_task.output_still_valid(&ingest_params, &out).await,
        "a new landing file invalidates the cached output"
    );
    std::fs::remove_file(d.join("landing/late-000001.jsonl")).unwrap();
    assert!(out.fingerprint.ends_with("@1"), "{}", out.fingerprint);
    let out = run(
        "clean",
        json!({"input": p(d, "bronze"), "table": p(d, "silver")}),
    )
    .await
    .unwrap();
    assert_eq!(out.get("tweets_without_mentions"), Some(&json!(388)));
    let out = run(
        "aggregate",
        json!({"input": p(d, "silver"), "table": p(d, "mentions")}),
    )
    .await
    .unwrap();
    assert_eq!(out.get("recomputed"), Some(&json!(true)));
    let out = run("profile", json!({"input": p(d, "silver")}))
        .await
        .unwrap();
    assert!(d.join("artifacts/profile.json").is_file());
    assert_eq!(out.get("tweets"), Some(&json!(110)));
    let err = run("reset", json!({"tables": [p(d, "bronze")]}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config);
    let missing = run(
        "clean",
        json!({"input": p(d, "nope"), "table": p(d, "silver2")}),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::Fatal);
}

#[tokio::test]
async fn example_pipeline_validates_and_runs() {
    let mut registry = Registry::new();
    register_medallion(&mut registry);
    let path = repo_root().join("tasks/tests/medallion/medallion.yaml");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let overrides = vec![
        ("csv".to_string(), test_csv().display().to_string()),
        ("root".to_string(), d.display().to_string()),
    ];
    let options = tweetflow_engine::LoadOptions {
        registry: &registry,
        param_overrides: &overrides,
        env: &tweetflow_engine::process_env,
    };
    let pipeline = tweetflow_engine::load_file(&path, &options)
        .unwrap_or_else(|d| panic!("{} does not validate: {d:?}", path.display()));
    // Run the tasks in order with their resolved params.
    let ctx = context(d);
    for id in ["replay", "ingest", "clean", "aggregate", "profile"] {
        let spec = pipeline.tasks.iter().find(|t| t.id == id).unwrap();
        let task = registry.get(&spec.task_type).unwrap();
        let out = task
            .run(&ctx, &spec.with)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        if id == "clean" {
            assert_eq!(out.get("tweets_with_mentions"), Some(&json!(110)));
        }
    }
}
