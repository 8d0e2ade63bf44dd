//! Retention: prune keeps exactly what the policy and the always-kept rules say, and is safe
//! while another process writes runs.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tweetflow_engine::cache::{Cache, CacheEntry};
use tweetflow_engine::spec::{CachePolicy, RetentionPolicy, RetryPolicy};
use tweetflow_engine::store::{Event, RunHandle};
use tweetflow_engine::store::{KeepReason, PruneOptions};
use tweetflow_engine::{Pipeline, RunRecord, RunStatus, RunStore, TaskOutput, TaskSpec};

fn pipeline(name: &str, retention: Option<RetentionPolicy>) -> Pipeline {
    Pipeline {
        name: name.into(),
        description: None,
        params: BTreeMap::new(),
        tasks: vec![TaskSpec {
            id: "a".into(),
            task_type: "noop".into(),
            with: serde_json::json!({}),
            depends_on: vec![],
            retries: RetryPolicy::default(),
            timeout: None,
            cache: CachePolicy::default(),
            description: None,
            executor: Default::default(),
            shards: 1,
            expect: Default::default(),
        }],
        spec_hash: "h".into(),
        schedule: None,
        retention,
        secrets: Vec::new(),
        sections: BTreeMap::new(),
    }
}

/// How a run of a fixture ends.
#[derive(Clone, Copy, Debug)]
enum End {
    Done(RunStatus),
    /// The process died while running it (no `run_finished`, no lock).
    Crashed,
    /// A live process still executes it (its lock is held during the prune).
    Live,
}

const NOW: i64 = 1_800_000_000;

fn at(hours_ago: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(NOW - hours_ago * 3600, 0).unwrap()
}

/// Run ids sort by creation: run `i` was created `hours_ago` before `NOW`.
fn run_id(i: usize) -> String {
    format!("20260101T{:06}000Z-{i:06x}", i)
}

/// Writes run `i` of pipeline `p`; returns its handle when it must stay live.
fn write_run(
    store: &RunStore,
    p: &Pipeline,
    i: usize,
    hours_ago: i64,
    end: End,
) -> Option<RunHandle> {
    let mut record = RunRecord::new(run_id(i), p, "p.yaml");
    record.created_at = at(hours_ago);
    let mut handle = store.create(record, p, "name: p").unwrap();
    match end {
        End::Done(status) => {
            handle
                .append(Event::RunFinished {
                    status,
                    at: at(hours_ago),
                })
                .unwrap();
            handle.snapshot().unwrap();
            None
        }
        End::Crashed => None,
        End::Live => Some(handle),
    }
}

fn remaining(store: &RunStore) -> BTreeSet<usize> {
    store
        .run_ids()
        .unwrap()
        .iter()
        .map(|id| usize::from_str_radix(&id[id.len() - 6..], 16).unwrap())
        .collect()
}

fn options(policy: Option<RetentionPolicy>) -> PruneOptions {
    PruneOptions {
        default_policy: policy,
        now: at(0),
        ..PruneOptions::default()
    }
}

fn keep_last(n: u32) -> RetentionPolicy {
    RetentionPolicy {
        keep_last: Some(n),
        ..Default::default()
    }
}

fn max_age_hours(h: u64) -> RetentionPolicy {
    RetentionPolicy {
        max_age: Some(Duration::from_secs(h * 3600)),
        ..Default::default()
    }
}

const OK: End = End::Done(RunStatus::Succeeded);
const FAILED: End = End::Done(RunStatus::Failed);
const CANCELLED: End = End::Done(RunStatus::Cancelled);

#[test]
fn prune_keeps_exactly_what_the_policy_says() {
    // Runs 0..n, run i created (and ended) hours[i] hours ago: the list is oldest first.
    struct Case {
        name: &'static str,
        runs: &'static [(i64, End)],
        policy: Option<RetentionPolicy>,
        kept: &'static [usize],
    }
    let both = RetentionPolicy {
        keep_last: Some(2),
        max_age: Some(Duration::from_secs(5 * 3600)),
        keep_failed: false,
    };
    let keep_failed = RetentionPolicy {
        keep_failed: true,
        ..keep_last(1)
    };
    let cases = [
        Case {
            name: "keep_last keeps the newest N",
            runs: &[(8, OK), (7, OK), (6, FAILED), (5, OK), (4, OK), (3, OK)],
            policy: Some(keep_last(3)),
            kept: &[3, 4, 5],
        },
        Case {
            name: "a running run is never removed",
            runs: &[(8, OK), (7, End::Live), (6, OK), (5, OK)],
            policy: Some(keep_last(1)),
            kept: &[1, 3],
        },
        Case {
            name: "max_age keeps young runs, failed ones too (resumable)",
            runs: &[
                (30, FAILED),
                (10, OK),
                (6, OK),
                (3, FAILED),
                (2, CANCELLED),
                (1, OK),
            ],
            policy: Some(max_age_hours(5)),
            kept: &[3, 4, 5],
        },
        Case {
            name: "with both limits a run goes only when both let it go",
            runs: &[(9, OK), (8, OK), (7, OK), (4, OK), (3, OK), (2, OK)],
            policy: Some(both),
            kept: &[3, 4, 5],
        },
        Case {
            name: "keep_failed keeps failed, cancelled and crashed runs",
            runs: &[
                (9, FAILED),
                (8, OK),
                (7, CANCELLED),
                (6, End::Crashed),
                (5, OK),
                (4, OK),
            ],
            policy: Some(keep_failed),
            kept: &[0, 2, 3, 5],
        },
        Case {
            name: "without keep_failed a crashed run beyond the policy goes",
            runs: &[(9, End::Crashed), (8, OK), (1, OK)],
            policy: Some(keep_last(2)),
            kept: &[1, 2],
        },
        Case {
            name: "no policy keeps everything",
            runs: &[(900, OK), (800, FAILED), (1, OK)],
            policy: None,
            kept: &[0, 1, 2],
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let p = pipeline("p", None);
        let mut live = Vec::new();
        for (i, (hours, end)) in case.runs.iter().enumerate() {
            live.extend(write_run(&store, &p, i, *hours, *end));
        }
        let all = remaining(&store);
        let dry = store
            .prune(&PruneOptions {
                dry_run: true,
                ..options(case.policy.clone())
            })
            .unwrap();
        assert_eq!(
            remaining(&store),
            all,
            "{}: a dry run removes nothing",
            case.name
        );
        let report = store.prune(&options(case.policy.clone())).unwrap();
        let kept: BTreeSet<usize> = case.kept.iter().copied().collect();
        assert_eq!(remaining(&store), kept, "{}", case.name);
        let removed: BTreeSet<usize> = all.difference(&kept).copied().collect();
        let reported: BTreeSet<usize> = report
            .removed
            .iter()
            .map(|r| usize::from_str_radix(&r.run_id[r.run_id.len() - 6..], 16).unwrap())
            .collect();
        assert_eq!(reported, removed, "{}: the report", case.name);
        assert_eq!(
            dry.removed, report.removed,
            "{}: the dry run's report",
            case.name
        );
        assert!(report.removed.iter().all(|r| r.bytes > 0), "{}", case.name);
        assert_eq!(
            report.kept.values().sum::<usize>(),
            kept.len(),
            "{}: every kept run has a reason",
            case.name
        );
        drop(live);
    }
}

fn entry(run: usize, task: &str, hours_ago: i64, key: &str) -> CacheEntry {
    CacheEntry {
        key: key.into(),
        task_type: "noop".into(),
        created_at: at(hours_ago),
        run_id: run_id(run),
        task_id: task.into(),
        output: TaskOutput::new().with("run", run as i64),
        params: None,
    }
}

#[test]
fn cache_entries_keep_their_newest_run_and_go_with_their_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::new(dir.path());
    let p = pipeline("p", None);
    for (i, hours) in [9, 8, 7, 6].into_iter().enumerate() {
        write_run(&store, &p, i, hours, OK);
    }
    let cache = Cache::new(dir.path().join(".cache"));
    // Task a's newest entry points to run 1; an older one to run 0; task b's to run 2.
    cache.put(&entry(0, "a", 9, "k-a-old")).unwrap();
    cache.put(&entry(1, "a", 8, "k-a-new")).unwrap();
    cache.put(&entry(2, "b", 7, "k-b")).unwrap();
    cache.put(&entry(77, "a", 1, "k-gone")).unwrap();
    fs::write(dir.path().join(".cache/k-torn.json"), "{\"key\":").unwrap();

    let report = store.prune(&options(Some(keep_last(1)))).unwrap();
    assert_eq!(remaining(&store), BTreeSet::from([1, 2, 3]));
    assert_eq!(report.kept.get(&KeepReason::CachedOutput), Some(&2));
    let removed: BTreeSet<&str> = report
        .removed_entries
        .iter()
        .map(|e| e.key.as_str())
        .collect();
    assert_eq!(removed, BTreeSet::from(["k-a-old", "k-gone", "k-torn"]));
    // A removed entry is a miss; the others still hit.
    assert!(cache.get("k-a-old", None).is_none());
    assert!(cache.get("k-gone", None).is_none());
    assert_eq!(cache.get("k-a-new", None).unwrap().run_id, run_id(1));
    assert_eq!(cache.get("k-b", None).unwrap().run_id, run_id(2));
}

#[test]
fn the_policy_comes_from_the_caller_the_newest_plan_or_the_default() {
    let day = |n: u64| Some(Duration::from_secs(n * 86_400));
    let recorded = RetentionPolicy {
        keep_last: Some(2),
        ..Default::default()
    };
    for (given, default, kept) in [
        (None, None, vec![0, 1, 2, 3]),
        (None, Some(keep_last(3)), vec![1, 2, 3]),
        (Some(keep_last(1)), Some(keep_last(3)), vec![3]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let old = pipeline("p", None);
        for i in 0..3 {
            write_run(&store, &old, i, 10 - i as i64, OK);
        }
        // Only the newest run's plan counts: here it records none or keep_last 2.
        let newest = pipeline(
            "p",
            given.clone().map(|_: RetentionPolicy| recorded.clone()),
        );
        write_run(&store, &newest, 3, 1, OK);
        let mut o = options(default);
        if let Some(policy) = &given {
            o.policies.insert("p".into(), policy.clone());
        }
        store.prune(&o).unwrap();
        assert_eq!(
            remaining(&store),
            kept.into_iter().collect::<BTreeSet<_>>(),
            "given {given:?}"
        );
    }
    // The recorded policy alone.
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::new(dir.path());
    for i in 0..4 {
        write_run(
            &store,
            &pipeline("p", Some(recorded.clone())),
            i,
            10 - i as i64,
            OK,
        );
    }
    let other = pipeline("q", None);
    write_run(&store, &other, 9, 100, OK);
    store
        .prune(&options(Some(RetentionPolicy {
            max_age: day(1000),
            ..Default::default()
        })))
        .unwrap();
    assert_eq!(remaining(&store), BTreeSet::from([2, 3, 9]));
    // `--pipeline` leaves the other pipelines alone.
    let mut o = PruneOptions {
        pipeline: Some("q".into()),
        ..options(None)
    };
    o.policies.insert("p".into(), keep_last(1));
    store.prune(&o).unwrap();
    assert_eq!(remaining(&store), BTreeSet::from([2, 3, 9]));
}

#[test]
fn the_default_policy_is_read_from_the_environment() {
    use tweetflow_engine::store::default_policy;
    type Case = (
        &'static [(&'static str, &'static str)],
        Result<Option<RetentionPolicy>, &'static str>,
    );
    let cases: &[Case] = &[
        (&[], Ok(None)),
        (&[("KEEP_FAILED", "true")], Ok(None)),
        (&[("KEEP_LAST", "20")], Ok(Some(keep_last(20)))),
        (
            &[("MAX_AGE", "12h"), ("KEEP_FAILED", "true")],
            Ok(Some(RetentionPolicy {
                max_age: Some(Duration::from_secs(12 * 3600)),
                keep_failed: true,
                ..Default::default()
            })),
        ),
        (
            &[("KEEP_LAST", "0")],
            Err("TWEETFLOW_RETENTION_KEEP_LAST=`0`"),
        ),
        (
            &[("MAX_AGE", "soon")],
            Err("TWEETFLOW_RETENTION_MAX_AGE=`soon`"),
        ),
        (
            &[("KEEP_LAST", "1"), ("KEEP_FAILED", "yes")],
            Err("TWEETFLOW_RETENTION_KEEP_FAILED=`yes`"),
        ),
    ];
    for (vars, expected) in cases {
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| format!("TWEETFLOW_RETENTION_{k}") == name)
                .map(|(_, v)| v.to_string())
        };
        match (default_policy(&env), expected) {
            (Ok(got), Ok(want)) => assert_eq!(&got, want, "{vars:?}"),
            (Err(got), Err(prefix)) => {
                assert!(got.to_string().starts_with(prefix), "{vars:?}: {got}")
            }
            (got, want) => panic!("{vars:?}: got {got:?}, want {want:?}"),
        }
    }
}

/// The second process of `pruning_while_another_process_writes_runs_is_safe`: writes runs
/// into `TWEETFLOW_PRUNE_WRITER_DIR`, checking after each event that its run is whole.
#[test]
#[ignore]
fn writer_process() {
    let Some(root) = std::env::var_os("TWEETFLOW_PRUNE_WRITER_DIR") else {
        return;
    };
    let store = RunStore::new(&root);
    let p = pipeline("p", None);
    for i in 0..12 {
        // Old ids: the policy wants them gone as soon as nothing keeps them.
        let mut record = RunRecord::new(run_id(100 + i), &p, "p.yaml");
        record.created_at = at(1000);
        let mut handle = store.create(record, &p, "name: p").unwrap();
        for n in 0..150u32 {
            handle
                .append(Event::AttemptStarted {
                    task: "a".into(),
                    number: n + 1,
                    at: at(1000),
                    shard: None,
                })
                .unwrap();
            if n % 10 == 0 {
                handle.snapshot().unwrap();
            }
            let seen = store
                .load(&run_id(100 + i))
                .expect("a locked run stays whole");
            assert_eq!(seen.last_seq, handle.record().last_seq);
        }
        handle
            .append(Event::RunFinished {
                status: RunStatus::Succeeded,
                at: at(1000),
            })
            .unwrap();
        handle.snapshot().unwrap();
        assert!(Path::new(&root).join(run_id(100 + i)).join("lock").exists());
    }
}

#[test]
fn pruning_while_another_process_writes_runs_is_safe() {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::new(dir.path());
    let p = pipeline("p", None);
    // The newest run: with keep_last 1 every run of the writer may go once it is finished.
    write_run(&store, &p, 5000, 0, OK);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["writer_process", "--exact", "--ignored", "--nocapture"])
        .env("TWEETFLOW_PRUNE_WRITER_DIR", dir.path())
        .spawn()
        .unwrap();
    let mut removed = 0;
    let mut rounds = 0;
    let status = loop {
        let report = store.prune(&options(Some(keep_last(1)))).unwrap();
        removed += report.removed.len();
        rounds += 1;
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
    };
    assert!(status.success(), "the writer saw its run damaged: {status}");
    let report = store.prune(&options(Some(keep_last(1)))).unwrap();
    removed += report.removed.len();
    assert_eq!(
        removed, 12,
        "every finished run of the writer goes ({rounds} rounds)"
    );
    assert_eq!(remaining(&store), BTreeSet::from([5000]));
    assert!(!dir.path().join(".trash").read_dir().unwrap().any(|_| true));
}
