//! Table triggers with a table watcher the test controls: every version covered by exactly
//! one successful run (through failures and restarts), a decided run that never started is
//! started with its range, shared polling, `start: latest`, lost history, and the
//! validation of the `trigger:` section.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tweetflow_engine::scheduler::{Scheduled, Scheduler, SchedulerError, SystemClock};
use tweetflow_engine::store::{TriggerFire, TriggerState};
use tweetflow_engine::{
    BoxFuture, Engine, LoadOptions, Registry, RunStatus, RunStore, TableVersions, TableWatcher,
    Task, TaskContext, TaskError, TaskOutput, VersionRange, WatchError, load_str,
};

/// What the `record` task saw, by log name: (from, to, label, lost, succeeded).
type Seen = (i64, i64, String, String, bool);

static SEEN: LazyLock<Mutex<HashMap<String, Vec<Seen>>>> = LazyLock::new(Default::default);
static FAIL: LazyLock<Mutex<HashMap<String, bool>>> = LazyLock::new(Default::default);

fn seen(log: &str) -> Vec<Seen> {
    SEEN.lock().unwrap().get(log).cloned().unwrap_or_default()
}

/// Records the trigger values it gets; fails while the test says so.
struct Record;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RecordParams {
    /// Where to record.
    log: String,
    /// `${trigger.gold.from_version}`.
    from: i64,
    /// `${trigger.gold.to_version}`.
    to: i64,
    /// Text made of trigger values.
    label: String,
    /// `${trigger.gold.lost}`.
    #[serde(default)]
    lost: String,
}

impl Task for Record {
    type Params = RecordParams;
    const TYPE: &'static str = "record";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "Records its trigger values";

    async fn run(&self, _ctx: &TaskContext, p: RecordParams) -> Result<TaskOutput, TaskError> {
        let fail = FAIL.lock().unwrap().get(&p.log).copied().unwrap_or(false);
        SEEN.lock()
            .unwrap()
            .entry(p.log.clone())
            .or_default()
            .push((p.from, p.to, p.label, p.lost, !fail));
        if fail {
            return Err(TaskError::fatal("told to fail"));
        }
        Ok(TaskOutput::new())
    }
}

/// Tables the test commits to by hand; counts the listings.
#[derive(Default)]
struct Tables {
    /// Location → (latest, earliest).
    versions: Mutex<HashMap<String, (i64, i64)>>,
    listings: Mutex<HashMap<String, usize>>,
}

impl Tables {
    fn commit(&self, location: &str, latest: i64) {
        let mut v = self.versions.lock().unwrap();
        let earliest = v.get(location).map_or(0, |(_, e)| *e);
        v.insert(location.to_string(), (latest, earliest));
    }

    fn clean_log_before(&self, location: &str, earliest: i64) {
        let mut v = self.versions.lock().unwrap();
        if let Some(entry) = v.get_mut(location) {
            entry.1 = earliest;
        }
    }

    fn listings(&self, location: &str) -> usize {
        self.listings
            .lock()
            .unwrap()
            .get(location)
            .copied()
            .unwrap_or(0)
    }
}

impl TableWatcher for Tables {
    fn versions<'a>(
        &'a self,
        location: &'a str,
        after: Option<i64>,
    ) -> BoxFuture<'a, Result<TableVersions, WatchError>> {
        Box::pin(async move {
            *self
                .listings
                .lock()
                .unwrap()
                .entry(location.to_string())
                .or_default() += 1;
            Ok(match self.versions.lock().unwrap().get(location) {
                None => TableVersions::Missing,
                Some((latest, earliest)) => TableVersions::Versions {
                    latest: *latest,
                    earliest: after.is_none().then_some(*earliest),
                },
            })
        })
    }
}

fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register(Record);
    Arc::new(r)
}

fn load(yaml: &str) -> Result<tweetflow_engine::Pipeline, String> {
    let registry = registry();
    let options = LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &|_| None,
    };
    load_str("p.yaml", yaml, &options).map_err(|d| d.to_string())
}

fn pipeline(name: &str, log: &str, table: &str, extra: &str) -> Scheduled {
    let yaml = format!(
        r#"name: {name}
trigger:
  tables: {{ gold: "{table}" }}
  poll: 100ms
{extra}
tasks:
  record:
    type: record
    with:
      log: {log}
      from: ${{trigger.gold.from_version}}
      to: ${{trigger.gold.to_version}}
      label: "v${{trigger.gold.from_version}}..${{trigger.gold.to_version}} of ${{trigger.gold.table}}"
      lost: ${{trigger.gold.lost}}
"#
    );
    Scheduled {
        pipeline: load(&yaml).unwrap_or_else(|e| panic!("{e}")),
        file: format!("{name}.yaml"),
        text: yaml,
    }
}

struct Daemon {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), SchedulerError>>,
}

impl Daemon {
    fn start(dir: &std::path::Path, tables: &Arc<Tables>, pipelines: Vec<Scheduled>) -> Daemon {
        let engine = Engine::new(registry(), dir);
        let scheduler =
            Scheduler::new(engine, Arc::new(SystemClock)).with_table_watcher(tables.clone());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let handle =
            tokio::spawn(
                async move { scheduler.run(pipelines, stop, Duration::from_secs(5)).await },
            );
        Daemon { shutdown, handle }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

fn state(dir: &std::path::Path, pipeline: &str) -> TriggerState {
    RunStore::new(dir).trigger_state(pipeline).unwrap()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

fn consumed(dir: &std::path::Path, pipeline: &str) -> Option<i64> {
    state(dir, pipeline)
        .tables
        .get("gold")
        .and_then(|c| c.consumed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_is_covered_by_exactly_one_successful_run_through_a_failure_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Arc::new(Tables::default());
    tables.commit("/lake/gold", 2);
    let p = || pipeline("report", "once", "/lake/gold", "");
    let daemon = Daemon::start(dir.path(), &tables, vec![p()]);
    until("0..2 is consumed", || {
        consumed(dir.path(), "report") == Some(2)
    })
    .await;

    // A failed run leaves its range for the next run, which waits for a newer version.
    FAIL.lock().unwrap().insert("once".into(), true);
    tables.commit("/lake/gold", 3);
    until("the failed run is settled", || {
        let s = state(dir.path(), "report");
        s.pending.is_none() && s.failed_to.get("gold") == Some(&3)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        seen("once").len(),
        2,
        "no run again without a newer version"
    );
    FAIL.lock().unwrap().insert("once".into(), false);
    tables.commit("/lake/gold", 5);
    until("3..5 is consumed", || {
        consumed(dir.path(), "report") == Some(5)
    })
    .await;
    daemon.stop().await;

    // Versions committed while no daemon runs are taken by the next one.
    tables.commit("/lake/gold", 7);
    let daemon = Daemon::start(dir.path(), &tables, vec![p()]);
    until("6..7 is consumed", || {
        consumed(dir.path(), "report") == Some(7)
    })
    .await;
    daemon.stop().await;

    let runs = seen("once");
    let ranges: Vec<(i64, i64, bool)> = runs.iter().map(|r| (r.0, r.1, r.4)).collect();
    assert_eq!(
        ranges,
        [(0, 2, true), (3, 3, false), (3, 5, true), (6, 7, true)]
    );
    // Each version in exactly one successful run.
    let mut covered: Vec<i64> = runs
        .iter()
        .filter(|r| r.4)
        .flat_map(|r| r.0..=r.1)
        .collect();
    covered.sort();
    assert_eq!(covered, (0..=7).collect::<Vec<_>>());
    assert_eq!(runs[3].2, "v6..7 of /lake/gold");

    // The run record says what started it.
    let store = RunStore::new(dir.path());
    let history = state(dir.path(), "report").history;
    assert_eq!(history.len(), 4);
    let last = store.load(&history[3].run_id).unwrap();
    assert_eq!(last.status, RunStatus::Succeeded);
    assert_eq!(last.tags["trigger"], "table");
    assert_eq!(last.tags["trigger.gold"], "versions 6..7 of /lake/gold");
    assert_eq!(
        history
            .iter()
            .map(|f| f.outcome.clone().unwrap())
            .collect::<Vec<_>>(),
        ["succeeded", "failed", "succeeded", "succeeded"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_decided_but_never_started_is_started_with_its_id_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Arc::new(Tables::default());
    tables.commit("/lake/gold", 9);
    // A daemon died between writing the decision and starting the run.
    let run_id = RunStore::new_run_id();
    let store = RunStore::new(dir.path());
    let mut s = TriggerState::default();
    s.tables.insert(
        "gold".into(),
        tweetflow_engine::store::TableCursor {
            table: "/lake/gold".into(),
            consumed: None,
        },
    );
    s.pending = Some(TriggerFire {
        run_id: run_id.clone(),
        decided_at: chrono::Utc::now(),
        ranges: BTreeMap::from([(
            "gold".to_string(),
            VersionRange {
                table: "/lake/gold".into(),
                from: 0,
                to: 4,
                lost: None,
            },
        )]),
        outcome: None,
    });
    store.save_trigger_state("crashed", &s).unwrap();
    let daemon = Daemon::start(
        dir.path(),
        &tables,
        vec![pipeline("crashed", "crashed", "/lake/gold", "")],
    );
    until("0..9 is consumed", || {
        consumed(dir.path(), "crashed") == Some(9)
    })
    .await;
    daemon.stop().await;
    let ranges: Vec<(i64, i64)> = seen("crashed").iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(ranges, [(0, 4), (5, 9)]);
    assert_eq!(store.load(&run_id).unwrap().status, RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_watching_one_table_share_its_listing() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Arc::new(Tables::default());
    tables.commit("/lake/shared", 0);
    tables.commit("/lake/alone", 0);
    let daemon = Daemon::start(
        dir.path(),
        &tables,
        vec![
            pipeline("a", "share-a", "/lake/shared", ""),
            pipeline("b", "share-b", "/lake/shared/", ""),
            pipeline("c", "share-c", "/lake/alone", ""),
        ],
    );
    until("all ran", || {
        ["a", "b", "c"]
            .iter()
            .all(|p| consumed(dir.path(), p) == Some(0))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    daemon.stop().await;
    let shared = tables.listings("/lake/shared");
    let alone = tables.listings("/lake/alone");
    // Polls of one poller each, plus one full listing per run started (lost history).
    assert!(
        shared <= alone + 3,
        "two pipelines on one table list it once per poll: {shared} vs {alone}"
    );
    assert!(alone >= 5, "polled every 100ms: {alone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_latest_skips_history_and_lost_versions_are_told() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Arc::new(Tables::default());
    tables.commit("/lake/late", 5);
    tables.commit("/lake/vacuumed", 6);
    tables.clean_log_before("/lake/vacuumed", 4);
    let daemon = Daemon::start(
        dir.path(),
        &tables,
        vec![
            pipeline("late", "late", "/lake/late", "  start: latest"),
            pipeline("vac", "vac", "/lake/vacuumed", ""),
        ],
    );
    until("the late start is recorded", || {
        consumed(dir.path(), "late") == Some(5)
    })
    .await;
    until("vac consumed", || consumed(dir.path(), "vac") == Some(6)).await;
    assert!(
        seen("late").is_empty(),
        "start: latest runs nothing at once"
    );
    tables.commit("/lake/late", 6);
    until("6 is consumed", || consumed(dir.path(), "late") == Some(6)).await;
    daemon.stop().await;
    let late: Vec<(i64, i64)> = seen("late").iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(late, [(6, 6)]);
    let vac = seen("vac");
    assert_eq!((vac[0].0, vac[0].1, vac[0].3.as_str()), (0, 6, "0..3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_interval_debounces_runs() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Arc::new(Tables::default());
    tables.commit("/lake/busy", 0);
    let daemon = Daemon::start(
        dir.path(),
        &tables,
        vec![pipeline("busy", "busy", "/lake/busy", "  min_interval: 2s")],
    );
    until("0 consumed", || consumed(dir.path(), "busy") == Some(0)).await;
    for v in 1..=5 {
        tables.commit("/lake/busy", v);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    until("5 consumed", || consumed(dir.path(), "busy") == Some(5)).await;
    daemon.stop().await;
    let ranges: Vec<(i64, i64)> = seen("busy").iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(ranges.len(), 2, "one run per 2s at most: {ranges:?}");
    assert_eq!(ranges[1].1, 5);
}

#[test]
fn a_run_not_started_by_the_trigger_gets_an_empty_range() {
    let p = pipeline("manual", "manual", "/lake/gold", "");
    let with = &p.pipeline.tasks[0].with;
    assert_eq!(with["from"], 0);
    assert_eq!(with["to"], -1);
    assert_eq!(with["label"], "v0..-1 of /lake/gold");
    let filled = p
        .pipeline
        .with_trigger(&BTreeMap::from([(
            "gold".to_string(),
            VersionRange {
                table: "/lake/gold".into(),
                from: 3,
                to: 7,
                lost: Some((3, 4)),
            },
        )]))
        .unwrap();
    let with = &filled.tasks[0].with;
    assert_eq!(
        (
            with["from"].clone(),
            with["to"].clone(),
            with["lost"].clone()
        ),
        (3.into(), 7.into(), "3..4".into())
    );
    assert_eq!(with["label"], "v3..7 of /lake/gold");
}

#[test]
fn trigger_mistakes_are_reported_with_position_and_hint() {
    let base = |trigger: &str, with: &str| {
        format!(
            "name: p\n{trigger}tasks:\n  r:\n    type: record\n    with:\n      log: x\n      from: 1\n      to: 2\n      label: \"{with}\"\n"
        )
    };
    let cases = [
        (
            base("trigger:\n  tables: { gold: /g }\n  poll: 50ms\n", "x"),
            "p.yaml:4:9: error: `poll` must be at least 100ms, found 50ms",
        ),
        (
            base("trigger:\n  tabels: { gold: /g }\n", "x"),
            "p.yaml:3:3: error: unknown key `tabels` in trigger",
        ),
        (
            base("trigger:\n  tables: { gold: /g }\n", "${trigger.glod.to_version}"),
            "`glod` is not a trigger table",
        ),
        (
            base("", "${trigger.gold.to_version}"),
            "the pipeline has no `trigger:` section",
        ),
        (
            base("trigger:\n  tables: { gold: /g }\n", "${trigger.gold.version}"),
            "unknown field `version`",
        ),
        (
            "name: p\nparams:\n  v: ${trigger.gold.to_version}\ntrigger:\n  tables: { gold: /g }\ntasks:\n  r:\n    type: record\n    with: { log: x, from: 1, to: 2, label: x }\n".to_string(),
            "cannot be used here",
        ),
        (
            base("trigger:\n  tables: { gold: 3 }\n", "x"),
            "trigger table `gold` must be a location string",
        ),
    ];
    for (yaml, want) in cases {
        let err = load(&yaml)
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{yaml}"));
        assert!(
            err.contains(want),
            "wanted `{want}` in:\n{err}\nfor:\n{yaml}"
        );
        assert!(
            err.contains("hint") || err.contains("help"),
            "a hint in:\n{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_with_a_schedule_and_a_trigger_runs_on_both() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Arc::new(Tables::default());
    tables.commit("/lake/both", 1);
    let daemon = Daemon::start(
        dir.path(),
        &tables,
        vec![pipeline(
            "both",
            "both",
            "/lake/both",
            "schedule: { cron: \"* * * * * *\", overlap: allow, catchup: none }",
        )],
    );
    until("0..1 consumed", || consumed(dir.path(), "both") == Some(1)).await;
    tables.commit("/lake/both", 3);
    until("2..3 consumed", || consumed(dir.path(), "both") == Some(3)).await;
    until("a cron tick ran", || seen("both").iter().any(|r| r.1 == -1)).await;
    daemon.stop().await;
    let runs = seen("both");
    // Cron ticks get the empty range and consume nothing; the trigger's runs cover 0..3.
    let triggered: Vec<(i64, i64)> = runs
        .iter()
        .filter(|r| r.1 >= 0)
        .map(|r| (r.0, r.1))
        .collect();
    assert_eq!(triggered, [(0, 1), (2, 3)]);
    assert!(runs.iter().filter(|r| r.1 == -1).all(|r| r.0 == 0));
}
