//! Runs whose engine died: they read `interrupted` (with the time of their last event) as
//! soon as their lock is free; a resume under the lock re-runs only what did not succeed and
//! happens once however many processes try; `fail_interrupted` marks them failed; the
//! scheduler resumes (or fails) those of its pipelines at start-up; bad `on_interrupted` /
//! `max_resumes` values are validation errors with a position and a hint.
//!
//! The engine "dies" here by dropping its run future mid-task: its lock is released and its
//! record still says running, as after a `kill -9` (the process-level kill is in
//! `tests/reliability.rs` and `tests/run.rs`).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chrono::Utc;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tweetflow_engine::scheduler::{Scheduled, Scheduler, TestClock};
use tweetflow_engine::{
    Engine, EngineError, LoadOptions, Pipeline, Registry, RunOptions, RunRecord, RunStatus,
    RunStore, Task, TaskContext, TaskError, TaskOutput, TaskStatus, load_str,
};

/// A task that blocks until its gate is opened, counting its runs.
struct Gate;

static GATES: LazyLock<Mutex<HashMap<String, watch::Sender<bool>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static RUNS: LazyLock<Mutex<HashMap<String, Arc<AtomicUsize>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn gate(name: &str) -> watch::Sender<bool> {
    GATES
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_insert_with(|| watch::Sender::new(false))
        .clone()
}

fn runs_of(name: &str) -> Arc<AtomicUsize> {
    RUNS.lock()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .clone()
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GateParams {
    /// Which gate to wait for.
    name: String,
}

impl Task for Gate {
    type Params = GateParams;
    const TYPE: &'static str = "gate";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "Waits until the test opens its gate";

    async fn run(&self, _ctx: &TaskContext, params: GateParams) -> Result<TaskOutput, TaskError> {
        runs_of(&params.name).fetch_add(1, Ordering::SeqCst);
        let mut rx = gate(&params.name).subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                break;
            }
        }
        Ok(TaskOutput::new())
    }
}

fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register(Gate);
    r.register(noop::Noop);
    Arc::new(r)
}

mod noop {
    use super::*;

    /// Succeeds at once.
    pub struct Noop;

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct NoParams {}

    impl Task for Noop {
        type Params = NoParams;
        const TYPE: &'static str = "noop";
        const VERSION: &'static str = "1";
        const DESCRIPTION: &'static str = "Does nothing";

        async fn run(&self, _ctx: &TaskContext, _p: NoParams) -> Result<TaskOutput, TaskError> {
            Ok(TaskOutput::new())
        }
    }
}

fn load(yaml: &str) -> Result<Pipeline, tweetflow_engine::Diagnostics> {
    let registry = registry();
    let options = LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &|_| None,
    };
    load_str("p.yaml", yaml, &options)
}

/// `first` (noop) then `wait` (gate `gate_name`), scheduled hourly with `schedule_extra`.
fn yaml(gate_name: &str, schedule_extra: &str) -> String {
    format!(
        "name: hourly\nschedule: {{ cron: \"0 * * * *\", catchup: none{schedule_extra} }}\ntasks:\n  first: {{ type: noop }}\n  wait: {{ type: gate, with: {{ name: {gate_name} }}, depends_on: [first] }}\n"
    )
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

/// Starts a run of `text` and "kills" its engine once the gated task runs; the run's id.
async fn interrupted_run(engine: &Engine, text: &str, gate_name: &str) -> String {
    let pipeline = load(text).unwrap_or_else(|d| panic!("{d}"));
    let run_id = RunStore::new_run_id();
    let options = RunOptions {
        run_id: Some(run_id.clone()),
        ..RunOptions::default()
    };
    let e = engine.clone();
    let text = text.to_string();
    let running =
        tokio::spawn(async move { e.run(pipeline, "p.yaml", &text, options).await.map(|_| ()) });
    let started = runs_of(gate_name);
    wait_until("the gated task starts", || {
        started.load(Ordering::SeqCst) > 0
    })
    .await;
    let store = engine.store();
    assert_eq!(
        store.load(&run_id).unwrap().status,
        RunStatus::Running,
        "a run whose engine holds its lock is running"
    );
    running.abort();
    let _ = running.await;
    run_id
}

fn events(store: &RunStore, run_id: &str) -> String {
    std::fs::read_to_string(store.run_dir(run_id).join("events.jsonl")).unwrap()
}

#[tokio::test]
async fn a_dead_engines_run_reads_interrupted_at_once_and_one_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(registry(), dir.path());
    let g = "resume_once";
    let run_id = interrupted_run(&engine, &yaml(g, ""), g).await;
    let store = engine.store();

    let seen: RunRecord = store.load(&run_id).unwrap();
    assert_eq!(seen.status, RunStatus::Interrupted, "no wait, no timeout");
    let last = seen.last_event_at.expect("the time of the last event");
    assert!(last >= seen.created_at && last <= Utc::now());
    assert_eq!(seen.duration(), (last - seen.created_at).to_std().unwrap());
    let listed = store.list_newest(0).unwrap();
    assert_eq!(listed[0].as_ref().unwrap().status, RunStatus::Interrupted);
    assert_eq!(
        store.interrupted_runs(Some("hourly")).unwrap()[0].run_id,
        run_id
    );
    assert!(store.interrupted_runs(Some("other")).unwrap().is_empty());

    gate(g).send_replace(true);
    let only = RunOptions {
        only_interrupted: true,
        ..RunOptions::default()
    };
    let done = engine.resume(&run_id, only.clone()).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.resumed_at.len(), 1);
    assert_eq!(done.tasks["first"].status, TaskStatus::Succeeded);
    assert_eq!(
        done.tasks["first"].attempts.len(),
        1,
        "what succeeded is not run again"
    );
    assert_eq!(runs_of(g).load(Ordering::SeqCst), 2);
    assert!(events(store, &run_id).contains("\"event\":\"run_interrupted\""));

    // Nothing left to recover: a second resume is refused and changes nothing.
    let before = events(store, &run_id);
    match engine.resume(&run_id, only).await {
        Err(EngineError::NotInterrupted { status, .. }) => assert_eq!(status, "succeeded"),
        other => panic!("expected NotInterrupted, got {other:?}"),
    }
    assert_eq!(events(store, &run_id), before);
    match engine.fail_interrupted(&run_id, "engine died").await {
        Err(EngineError::NotInterrupted { .. }) => {}
        other => panic!("expected NotInterrupted, got {other:?}"),
    }
    assert_eq!(store.load(&run_id).unwrap().status, RunStatus::Succeeded);
}

#[tokio::test]
async fn two_processes_resuming_the_same_run_resume_it_once() {
    let dir = tempfile::tempdir().unwrap();
    // Two engines on the same run store, as two daemons would be.
    let a = Engine::new(registry(), dir.path());
    let b = Engine::new(registry(), dir.path());
    let g = "resume_race";
    let run_id = interrupted_run(&a, &yaml(g, ""), g).await;
    gate(g).send_replace(true);
    let only = RunOptions {
        only_interrupted: true,
        ..RunOptions::default()
    };
    let (ra, rb) = tokio::join!(a.resume(&run_id, only.clone()), b.resume(&run_id, only));
    let ok = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "exactly one resume: {ra:?} / {rb:?}");
    for r in [&ra, &rb] {
        if let Err(e) = r {
            assert!(
                matches!(
                    e,
                    EngineError::NotInterrupted { .. } | EngineError::Locked { .. }
                ),
                "{e}"
            );
        }
    }
    let record = a.store().load(&run_id).unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.resumed_at.len(), 1);
}

#[tokio::test]
async fn an_interrupted_run_marked_failed_says_the_engine_died_and_when() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(registry(), dir.path());
    let g = "mark_failed";
    let run_id = interrupted_run(&engine, &yaml(g, ""), g).await;
    let seen = engine.note_interrupted(&run_id).await.unwrap().unwrap();
    assert_eq!(seen.status, RunStatus::Interrupted);
    // Noted once: a second look records nothing more.
    let before = events(engine.store(), &run_id);
    engine.note_interrupted(&run_id).await.unwrap().unwrap();
    assert_eq!(events(engine.store(), &run_id), before);

    let reason = tweetflow_engine::engine_died_reason(&seen);
    let failed = engine.fail_interrupted(&run_id, &reason).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(failed.ended_at.is_some());
    let said = failed.reason.clone().unwrap();
    assert!(said.starts_with("engine died (last event "), "{said}");
    assert_eq!(engine.store().load(&run_id).unwrap(), failed);
}

fn scheduled(text: &str) -> Scheduled {
    Scheduled {
        pipeline: load(text).unwrap_or_else(|d| panic!("{d}")),
        file: "p.yaml".into(),
        text: text.into(),
    }
}

/// Runs a scheduler over `dir` with pipeline `text` until `done` holds for the run.
async fn schedule_until(
    dir: &std::path::Path,
    text: &str,
    run_id: &str,
    done: impl Fn(&RunRecord) -> bool,
) -> RunRecord {
    let engine = Engine::new(registry(), dir);
    let clock = TestClock::new("2026-01-01T00:30:00Z".parse().unwrap());
    let scheduler = Scheduler::new(engine, clock);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let p = scheduled(text);
    let handle =
        tokio::spawn(async move { scheduler.run(vec![p], stop, Duration::from_secs(5)).await });
    let store = RunStore::new(dir);
    let mut record = None;
    for _ in 0..1000 {
        if let Ok(r) = store.load(run_id)
            && done(&r)
        {
            record = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    record.unwrap_or_else(|| panic!("never: {:?}", store.load(run_id).map(|r| r.status)))
}

#[tokio::test]
async fn the_scheduler_resumes_an_interrupted_run_of_its_pipeline_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let g = "daemon_resume";
    let text = yaml(g, "");
    let engine = Engine::new(registry(), dir.path());
    let run_id = interrupted_run(&engine, &text, g).await;
    gate(g).send_replace(true);
    let r = schedule_until(dir.path(), &text, &run_id, |r| {
        r.status == RunStatus::Succeeded
    })
    .await;
    assert_eq!(r.resumed_at.len(), 1);
    assert_eq!(r.tasks["first"].attempts.len(), 1);
}

#[tokio::test]
async fn the_scheduler_fails_interrupted_runs_with_on_interrupted_fail_or_no_resume_left() {
    let dir = tempfile::tempdir().unwrap();
    let g = "daemon_fail";
    let text = yaml(g, ", on_interrupted: fail");
    let engine = Engine::new(registry(), dir.path());
    let run_id = interrupted_run(&engine, &text, g).await;
    let r = schedule_until(dir.path(), &text, &run_id, |r| {
        r.status == RunStatus::Failed
    })
    .await;
    assert!(r.reason.unwrap().starts_with("engine died"));
    assert!(r.resumed_at.is_empty());

    // max_resumes: 1 and one resume already: failed, saying so.
    let g = "daemon_exhausted";
    let text = yaml(g, ", max_resumes: 1");
    let run_id = interrupted_run(&engine, &text, g).await;
    let only = RunOptions {
        only_interrupted: true,
        ..RunOptions::default()
    };
    // Resumed once, and its engine dies again.
    let e = engine.clone();
    let id = run_id.clone();
    let again = tokio::spawn(async move { e.resume(&id, only).await.map(|_| ()) });
    let runs = runs_of(g);
    wait_until("the resumed task starts", || {
        runs.load(Ordering::SeqCst) >= 2
    })
    .await;
    again.abort();
    let _ = again.await;
    wait_until("the run reads interrupted", || {
        engine.store().load(&run_id).unwrap().status == RunStatus::Interrupted
    })
    .await;
    let r = schedule_until(dir.path(), &text, &run_id, |r| {
        r.status == RunStatus::Failed
    })
    .await;
    assert_eq!(r.resumed_at.len(), 1);
    let reason = r.reason.unwrap();
    assert!(reason.contains("max_resumes: 1"), "{reason}");
}

#[test]
fn bad_on_interrupted_and_max_resumes_are_validation_errors_with_position_and_hint() {
    let text = "name: p\nschedule: { cron: \"0 * * * *\", on_interrupted: resmue }\ntasks:\n  a: { type: noop }\n";
    let d = load(text).expect_err("invalid");
    let item = &d.items[0];
    assert!(item.message.contains("on_interrupted"), "{}", item.message);
    assert_eq!(item.span.line, 2);
    assert_eq!(item.hint.as_deref(), Some("did you mean `resume`?"), "{d}");

    let text =
        "name: p\nschedule: { cron: \"0 * * * *\", max_resumes: 0 }\ntasks:\n  a: { type: noop }\n";
    let d = load(text).expect_err("invalid");
    let item = &d.items[0];
    assert!(item.message.contains("max_resumes: 0"), "{}", item.message);
    assert_eq!((item.span.line, item.span.column), (2, 45));
    assert!(
        item.hint
            .as_deref()
            .unwrap()
            .contains("on_interrupted: fail")
    );

    // With `fail`, no resume is ever needed: 0 is fine.
    let text = "name: p\nschedule: { cron: \"0 * * * *\", on_interrupted: fail, max_resumes: 0 }\ntasks:\n  a: { type: noop }\n";
    let p = load(text).unwrap_or_else(|d| panic!("{d}"));
    let s = p.schedule.unwrap();
    assert_eq!(s.max_resumes, 0);
    assert_eq!(
        s.on_interrupted,
        tweetflow_engine::spec::OnInterrupted::Fail
    );
    let p = load(&yaml("x", "")).unwrap();
    let s = p.schedule.unwrap();
    assert_eq!(
        (s.on_interrupted, s.max_resumes),
        (tweetflow_engine::spec::OnInterrupted::Resume, 3),
        "defaults"
    );
}
