//! The scheduler driven by a test clock: catch-up after downtime, overlap policies with a
//! long task, deadlines, restarts and the daemon lock. No test waits for real cron time.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tweetflow_engine::scheduler::{
    Scheduled, Scheduler, SchedulerError, TestClock, TickAction, TickRecord,
};
use tweetflow_engine::{
    Engine, LoadOptions, Registry, RunStatus, RunStore, Task, TaskContext, TaskError, TaskOutput,
    load_str,
};

/// A task that blocks until its gate is opened.
struct Gate;

static GATES: LazyLock<Mutex<HashMap<String, watch::Sender<bool>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn gate(name: &str) -> watch::Sender<bool> {
    GATES
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_insert_with(|| watch::Sender::new(false))
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
        let mut rx = gate(&params.name).subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                break;
            }
        }
        Ok(TaskOutput::new())
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct Harness {
    dir: tempfile::TempDir,
    clock: Arc<TestClock>,
    events: mpsc::UnboundedReceiver<(String, TickRecord)>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), SchedulerError>>,
}

fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register(Gate);
    Arc::new(r)
}

fn pipeline(yaml: &str) -> Scheduled {
    let registry = registry();
    let options = LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &|_| None,
    };
    let pipeline = load_str("p.yaml", yaml, &options).unwrap_or_else(|d| panic!("{d}"));
    Scheduled {
        pipeline,
        file: "p.yaml".into(),
        text: yaml.into(),
    }
}

fn start(dir: tempfile::TempDir, clock: Arc<TestClock>, yaml: &str) -> Harness {
    let engine = Engine::new(registry(), dir.path());
    let (tx, events) = mpsc::unbounded_channel();
    let scheduler = Scheduler::new(engine, clock.clone()).with_observer(tx);
    let shutdown = CancellationToken::new();
    let p = pipeline(yaml);
    let stop = shutdown.clone();
    let handle =
        tokio::spawn(async move { scheduler.run(vec![p], stop, Duration::from_secs(5)).await });
    Harness {
        dir,
        clock,
        events,
        shutdown,
        handle,
    }
}

/// Waits until a first start has written its state (it then reads the clock no more).
async fn ready(dir: &std::path::Path) {
    for _ in 0..500 {
        if dir.join(".schedules/hourly.json").exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the scheduler never started");
}

impl Harness {
    async fn next_event(&mut self) -> TickRecord {
        tokio::time::timeout(Duration::from_secs(10), self.events.recv())
            .await
            .expect("a tick decision in time")
            .expect("channel open")
            .1
    }

    async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
        self.dir
    }

    fn store(&self) -> RunStore {
        RunStore::new(self.dir.path())
    }
}

async fn wait_status(
    store: &RunStore,
    run_id: &str,
    want: RunStatus,
) -> tweetflow_engine::RunRecord {
    for _ in 0..500 {
        if let Ok(r) = store.load(run_id)
            && r.status == want
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "run {run_id} never reached {want:?}: {:?}",
        store.load(run_id).map(|r| r.status)
    );
}

fn write_state(dir: &std::path::Path, last_tick: &str) {
    std::fs::create_dir_all(dir.join(".schedules")).unwrap();
    std::fs::write(
        dir.join(".schedules/hourly.json"),
        format!(r#"{{"last_tick": "{last_tick}", "last_fired": null, "history": []}}"#),
    )
    .unwrap();
}

fn hourly(catchup: &str, overlap: &str, extra: &str) -> String {
    format!(
        "name: hourly\nschedule: {{ cron: \"0 * * * *\", catchup: {catchup}, overlap: {overlap}, max_catchup: 3{extra} }}\ntasks:\n  a: {{ type: gate, with: {{ name: open }} }}\n"
    )
}

#[tokio::test]
async fn catchup_none_records_missed_and_runs_nothing() {
    gate("open").send_replace(true);
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path(), "2026-01-01T00:00:00Z");
    let mut h = start(
        dir,
        TestClock::new(utc("2026-01-01T05:05:00Z")),
        &hourly("none", "allow", ""),
    );
    let e = h.next_event().await;
    assert_eq!(e.action, TickAction::Missed);
    assert_eq!(e.tick, utc("2026-01-01T05:00:00Z"));
    assert!(e.reason.unwrap().contains("5 ticks missed"));
    let store = h.store();
    let dir = h.stop().await;
    assert!(
        store.list().unwrap().is_empty(),
        "nothing runs with catchup: none"
    );
    let state = RunStore::new(dir.path()).schedule_state("hourly").unwrap();
    assert_eq!(state.last_tick, Some(utc("2026-01-01T05:00:00Z")));
}

#[tokio::test]
async fn catchup_last_runs_only_the_latest_missed_tick() {
    gate("open").send_replace(true);
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path(), "2026-01-01T00:00:00Z");
    let mut h = start(
        dir,
        TestClock::new(utc("2026-01-01T05:05:00Z")),
        &hourly("last", "allow", ""),
    );
    let skipped = h.next_event().await;
    assert_eq!(
        (skipped.action, skipped.tick),
        (TickAction::Skipped, utc("2026-01-01T01:00:00Z"))
    );
    assert!(
        skipped.reason.unwrap().starts_with("4 ticks missed"),
        "the older ticks are recorded, not lost"
    );
    let e = h.next_event().await;
    assert_eq!(
        (e.action, e.tick),
        (TickAction::Fired, utc("2026-01-01T05:00:00Z"))
    );
    let run = wait_status(
        &h.store(),
        e.run_id.as_deref().unwrap(),
        RunStatus::Succeeded,
    )
    .await;
    assert_eq!(run.tags["scheduled_time"], "2026-01-01T05:00:00+00:00");
    assert_eq!(run.tags["trigger"], "schedule");
    let store = h.store();
    let _dir = h.stop().await;
    assert_eq!(store.list().unwrap().len(), 1);
}

#[tokio::test]
async fn catchup_all_runs_the_latest_max_catchup_ticks_in_order() {
    gate("open").send_replace(true);
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path(), "2026-01-01T00:00:00Z");
    let mut h = start(
        dir,
        TestClock::new(utc("2026-01-01T05:05:00Z")),
        &hourly("all", "allow", ""),
    );
    let skipped = h.next_event().await;
    assert_eq!(
        (skipped.action, skipped.tick),
        (TickAction::Skipped, utc("2026-01-01T01:00:00Z"))
    );
    assert!(skipped.reason.unwrap().starts_with("2 ticks missed"));
    let mut ticks = Vec::new();
    for _ in 0..3 {
        let e = h.next_event().await;
        assert_eq!(e.action, TickAction::Fired);
        wait_status(
            &h.store(),
            e.run_id.as_deref().unwrap(),
            RunStatus::Succeeded,
        )
        .await;
        ticks.push(e.tick);
    }
    assert_eq!(
        ticks,
        vec![
            utc("2026-01-01T03:00:00Z"),
            utc("2026-01-01T04:00:00Z"),
            utc("2026-01-01T05:00:00Z")
        ]
    );
    // Then the live schedule continues from there, once per tick.
    h.clock.set(utc("2026-01-01T06:00:00Z"));
    let e = h.next_event().await;
    assert_eq!(
        (e.action, e.tick),
        (TickAction::Fired, utc("2026-01-01T06:00:00Z"))
    );
    let store = h.store();
    wait_status(&store, e.run_id.as_deref().unwrap(), RunStatus::Succeeded).await;
    let _dir = h.stop().await;
    assert_eq!(store.list().unwrap().len(), 4);
}

#[tokio::test]
async fn restart_does_not_fire_a_tick_twice_and_recovers_a_lost_start() {
    gate("open").send_replace(true);
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new(utc("2026-01-01T00:30:00Z"));
    let mut h = start(dir, clock.clone(), &hourly("all", "allow", ""));
    ready(h.dir.path()).await;
    clock.set(utc("2026-01-01T01:00:00Z"));
    let e = h.next_event().await;
    assert_eq!(e.tick, utc("2026-01-01T01:00:00Z"));
    wait_status(
        &h.store(),
        e.run_id.as_deref().unwrap(),
        RunStatus::Succeeded,
    )
    .await;
    let dir = h.stop().await;

    // Restart at the same instant: the tick was handled, nothing fires.
    let mut h = start(dir, clock.clone(), &hourly("all", "allow", ""));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), h.events.recv())
            .await
            .is_err(),
        "no tick is due"
    );
    let dir = h.stop().await;
    assert_eq!(RunStore::new(dir.path()).list().unwrap().len(), 1);

    // A crash between recording a fired tick and creating its run: the restart starts it.
    let path = dir.path().join(".schedules/hourly.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["last_fired"]["run_id"] = "20260101T010000000Z-lost01".into();
    std::fs::write(&path, state.to_string()).unwrap();
    let h = start(dir, clock, &hourly("all", "allow", ""));
    let run = wait_status(
        &h.store(),
        "20260101T010000000Z-lost01",
        RunStatus::Succeeded,
    )
    .await;
    assert_eq!(run.tags["scheduled_time"], "2026-01-01T01:00:00+00:00");
    h.stop().await;
}

async fn long_run_then_second_tick(
    overlap: &str,
    extra: &str,
    gate_name: &str,
) -> (Harness, TickRecord) {
    gate(gate_name).send_replace(false);
    let yaml = hourly("none", overlap, extra).replace("name: open", &format!("name: {gate_name}"));
    let clock = TestClock::new(utc("2026-01-01T00:30:00Z"));
    let mut h = start(tempfile::tempdir().unwrap(), clock.clone(), &yaml);
    ready(h.dir.path()).await;
    clock.set(utc("2026-01-01T01:00:00Z"));
    let first = h.next_event().await;
    assert_eq!(first.action, TickAction::Fired);
    wait_status(
        &h.store(),
        first.run_id.as_deref().unwrap(),
        RunStatus::Running,
    )
    .await;
    clock.set(utc("2026-01-01T02:00:00Z"));
    (h, first)
}

#[tokio::test]
async fn overlap_skip_skips_while_a_run_is_active() {
    let (mut h, first) = long_run_then_second_tick("skip", "", "skip").await;
    let second = h.next_event().await;
    assert_eq!(second.action, TickAction::Skipped);
    assert!(
        second
            .reason
            .unwrap()
            .contains(first.run_id.as_deref().unwrap())
    );
    gate("skip").send_replace(true);
    wait_status(
        &h.store(),
        first.run_id.as_deref().unwrap(),
        RunStatus::Succeeded,
    )
    .await;
    h.stop().await;
}

#[tokio::test]
async fn overlap_queue_starts_after_the_active_run_ends() {
    let (mut h, first) = long_run_then_second_tick("queue", "", "queue").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), h.events.recv())
            .await
            .is_err(),
        "queued, not decided yet"
    );
    gate("queue").send_replace(true);
    let second = h.next_event().await;
    assert_eq!(second.action, TickAction::Fired);
    let store = h.store();
    let a = wait_status(
        &store,
        first.run_id.as_deref().unwrap(),
        RunStatus::Succeeded,
    )
    .await;
    let b = wait_status(
        &store,
        second.run_id.as_deref().unwrap(),
        RunStatus::Succeeded,
    )
    .await;
    assert!(
        b.created_at >= a.ended_at.unwrap(),
        "the queued run started after the first ended"
    );
    h.stop().await;
}

#[tokio::test]
async fn overlap_cancel_running_cancels_then_starts() {
    let (mut h, first) = long_run_then_second_tick("cancel_running", "", "cancel").await;
    let second = h.next_event().await;
    assert_eq!(second.action, TickAction::Fired);
    let store = h.store();
    let a = wait_status(
        &store,
        first.run_id.as_deref().unwrap(),
        RunStatus::Cancelled,
    )
    .await;
    assert_eq!(a.tasks["a"].status, tweetflow_engine::TaskStatus::Cancelled);
    gate("cancel").send_replace(true);
    wait_status(
        &store,
        second.run_id.as_deref().unwrap(),
        RunStatus::Succeeded,
    )
    .await;
    h.stop().await;
}

#[tokio::test]
async fn a_queued_tick_past_its_deadline_is_missed() {
    let (mut h, first) =
        long_run_then_second_tick("queue", ", start_deadline: 10m", "deadline").await;
    // Still queued when the deadline passes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.clock.set(utc("2026-01-01T02:11:00Z"));
    let second = h.next_event().await;
    assert_eq!(second.action, TickAction::Missed);
    assert!(second.reason.unwrap().contains("start_deadline"));
    gate("deadline").send_replace(true);
    wait_status(
        &h.store(),
        first.run_id.as_deref().unwrap(),
        RunStatus::Succeeded,
    )
    .await;
    // A tick that comes due after its deadline (the daemon was busy) is missed too.
    h.clock.set(utc("2026-01-01T03:30:00Z"));
    let third = h.next_event().await;
    assert_eq!(
        (third.tick, third.action),
        (utc("2026-01-01T03:00:00Z"), TickAction::Missed)
    );
    h.stop().await;
}

#[tokio::test]
async fn shutdown_cancels_runs_that_outlive_the_grace_period() {
    gate("grace").send_replace(false);
    let yaml = hourly("none", "allow", "").replace("name: open", "name: grace");
    let clock = TestClock::new(utc("2026-01-01T00:30:00Z"));
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(registry(), dir.path());
    let store = engine.store().clone();
    let (tx, mut events) = mpsc::unbounded_channel();
    let scheduler = Scheduler::new(engine, clock.clone()).with_observer(tx);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let p = pipeline(&yaml);
    let handle = tokio::spawn(async move {
        scheduler
            .run(vec![p], stop, Duration::from_millis(200))
            .await
    });
    ready(dir.path()).await;
    clock.set(utc("2026-01-01T01:00:00Z"));
    let fired = events.recv().await.unwrap().1;
    wait_status(&store, fired.run_id.as_deref().unwrap(), RunStatus::Running).await;
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(
        store.load(fired.run_id.as_deref().unwrap()).unwrap().status,
        RunStatus::Cancelled
    );
}

#[tokio::test]
async fn a_second_daemon_on_the_same_store_is_refused() {
    gate("open").send_replace(true);
    let clock = TestClock::new(utc("2026-01-01T00:30:00Z"));
    let h = start(
        tempfile::tempdir().unwrap(),
        clock.clone(),
        &hourly("none", "skip", ""),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let engine = Engine::new(registry(), h.dir.path());
    let second = Scheduler::new(engine, clock)
        .run(
            vec![pipeline(&hourly("none", "skip", ""))],
            CancellationToken::new(),
            Duration::ZERO,
        )
        .await;
    match second {
        Err(SchedulerError::AlreadyScheduled {
            pipeline, holder, ..
        }) => {
            assert_eq!(pipeline, "hourly");
            assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            );
        }
        other => panic!("expected AlreadyScheduled, got {other:?}"),
    }
    h.stop().await;
}

#[tokio::test]
async fn daylight_saving_in_the_daemon_never_doubles_or_loses_a_daily_run() {
    gate("open").send_replace(true);
    // 02:30 every day in Los Angeles, across spring forward (2026-03-08) and fall back
    // (2026-11-01, for a 01:30 job).
    for (cron, start, steps, want) in [
        (
            "30 2 * * *",
            "2026-03-07T12:00:00Z",
            ["2026-03-08T12:00:00Z", "2026-03-09T12:00:00Z"],
            ["2026-03-08T10:00:00Z", "2026-03-09T09:30:00Z"],
        ),
        (
            "30 1 * * *",
            "2026-10-31T12:00:00Z",
            ["2026-11-01T12:00:00Z", "2026-11-02T12:00:00Z"],
            ["2026-11-01T08:30:00Z", "2026-11-02T09:30:00Z"],
        ),
    ] {
        let yaml = format!(
            "name: hourly\nschedule: {{ cron: \"{cron}\", timezone: America/Los_Angeles, catchup: all, overlap: allow }}\ntasks:\n  a: {{ type: gate, with: {{ name: open }} }}\n"
        );
        let clock = TestClock::new(utc(start));
        let mut h = start_harness(clock.clone(), &yaml);
        ready(h.dir.path()).await;
        let mut fired = Vec::new();
        for step in steps {
            clock.set(utc(step));
            let e = h.next_event().await;
            assert_eq!(e.action, TickAction::Fired);
            fired.push(e.tick);
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(200), h.events.recv())
                .await
                .is_err(),
            "no extra tick"
        );
        assert_eq!(
            fired,
            want.iter().map(|w| utc(w)).collect::<Vec<_>>(),
            "{cron}"
        );
        h.stop().await;
    }
}

fn start_harness(clock: Arc<TestClock>, yaml: &str) -> Harness {
    start(tempfile::tempdir().unwrap(), clock, yaml)
}
