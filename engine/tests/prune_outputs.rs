//! `runs prune` removes the cache entries whose output is gone, as their task type says, and
//! only those: a removed entry is a cache miss, the others still hit.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use tweetflow_engine::RunOptions;
use tweetflow_engine::cache::Cache;
use tweetflow_engine::store::EntryRemoval;
use tweetflow_engine::{
    Engine, LoadOptions, Registry, RunStatus, Task, TaskContext, TaskError, TaskOutput, TaskStatus,
    load_str, process_env,
};

/// Writes a file; its output is valid while the file exists.
struct WriteFile;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WriteFileParams {
    /// The file to write.
    path: PathBuf,
}

impl Task for WriteFile {
    type Params = WriteFileParams;
    const TYPE: &'static str = "write_file";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "Writes a file";

    async fn run(&self, _ctx: &TaskContext, p: WriteFileParams) -> Result<TaskOutput, TaskError> {
        std::fs::write(&p.path, "x").map_err(|e| TaskError::fatal(e.to_string()))?;
        Ok(TaskOutput::new().with("path", p.path.display().to_string()))
    }

    async fn output_still_valid(&self, p: &WriteFileParams, _output: &TaskOutput) -> bool {
        p.path.is_file()
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(WriteFile);
    r
}

async fn run(engine: &Engine, registry: &Registry, name: &str, dir: &std::path::Path) {
    let text = format!(
        "name: {name}\ntasks:\n  kept:\n    type: write_file\n    with: {{ path: {kept} }}\n    cache: {{ enabled: true }}\n  lost:\n    type: write_file\n    with: {{ path: {lost} }}\n    cache: {{ enabled: true }}\n",
        kept = dir.join(format!("{name}-kept.txt")).display(),
        lost = dir.join(format!("{name}-lost.txt")).display(),
    );
    let pipeline = load_str(
        "p.yaml",
        &text,
        &LoadOptions {
            registry,
            param_overrides: &[],
            env: &process_env,
        },
    )
    .unwrap_or_else(|d| panic!("{}", d.render()));
    let record = engine
        .run(pipeline, "p.yaml", &text, RunOptions::default())
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn entries_whose_output_is_gone_are_removed_and_only_those() {
    let runs = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let r = Arc::new(registry());
    let engine = Engine::new(r.clone(), runs.path());
    run(&engine, &r, "one", files.path()).await;
    run(&engine, &r, "two", files.path()).await;
    let store = engine.store();
    let cache = Cache::new(runs.path().join(".cache"));
    let entry_files = || {
        std::fs::read_dir(runs.path().join(".cache"))
            .unwrap()
            .count()
    };
    assert_eq!(entry_files(), 4);

    // Nothing is gone yet: nothing to remove.
    assert!(
        store
            .prune_gone_outputs(&r, None, false)
            .await
            .unwrap()
            .is_empty()
    );

    // Both pipelines lose one output; an entry of an unknown type and one without params
    // (written before params were recorded) cannot be checked and stay.
    std::fs::remove_file(files.path().join("one-lost.txt")).unwrap();
    std::fs::remove_file(files.path().join("two-lost.txt")).unwrap();
    let mut unknown = None;
    for e in std::fs::read_dir(runs.path().join(".cache")).unwrap() {
        let path = e.unwrap().path();
        let mut entry: tweetflow_engine::cache::CacheEntry =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if entry.task_id == "lost" && unknown.is_none() {
            // A copy under another key, of a type this registry does not know.
            entry.key = "unknown-type".into();
            entry.task_type = "gone_type".into();
            cache.put(&entry).unwrap();
            entry.key = "no-params".into();
            entry.task_type = "write_file".into();
            entry.params = None;
            cache.put(&entry).unwrap();
            unknown = Some(entry.run_id.clone());
        }
    }

    // A dry run and a pipeline filter remove nothing outside their scope.
    let dry = store.prune_gone_outputs(&r, None, true).await.unwrap();
    assert_eq!(dry.len(), 2);
    assert_eq!(entry_files(), 6, "a dry run removes nothing");
    let one = store
        .prune_gone_outputs(&r, Some("one"), false)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert!(one.iter().all(|e| e.reason == EntryRemoval::OutputGone));
    let rest = store.prune_gone_outputs(&r, None, false).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_ne!(one[0].key, rest[0].key);
    assert_eq!(
        entry_files(),
        4,
        "two kept, the unknown type and the entry without params"
    );
    assert!(cache.get("unknown-type", None).is_some());
    assert!(cache.get("no-params", None).is_some());

    // The next runs: `kept` hits the cache, `lost` runs again and writes its file back.
    let newest_run = |name: &str| {
        // Newest first.
        store.run_ids().unwrap().into_iter().find_map(|id| {
            let rec = store.load(&id).unwrap();
            (rec.pipeline == name).then(|| (rec.tasks["kept"].status, rec.tasks["lost"].status))
        })
    };
    run(&engine, &r, "one", files.path()).await;
    assert_eq!(
        newest_run("one"),
        Some((TaskStatus::Cached, TaskStatus::Succeeded))
    );
    assert!(files.path().join("one-lost.txt").is_file());
}
