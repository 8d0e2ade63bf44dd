//! The real scheduler daemon: a per-second schedule for a few ticks, SIGTERM, the run store
//! afterwards; the daemon lock; `--next`; overlap for runs started by hand.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Sandbox, wait_for};

fn run_dirs(sb: &Sandbox) -> Vec<String> {
    sb.run_ids()
}

fn sigterm(child: &std::process::Child) {
    // SAFETY: kill(2) on a child we spawned.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

#[test]
fn daemon_fires_each_second_and_stops_cleanly_on_sigterm() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: every_second
schedule: { cron: "* * * * * *", overlap: allow, catchup: none }
tasks:
  tick: { type: command, with: { argv: [sh, -c, 'echo tick >> ticks.log'] } }
"#,
    );
    let daemon = sb.spawn(&["schedule", "p.yaml", "--grace", "5s"]);
    assert!(
        wait_for(Duration::from_secs(20), || run_dirs(&sb).len() >= 3),
        "three ticks fired"
    );

    // A second daemon on the same run store is refused with a clear message.
    let second = sb.run(&["schedule", "p.yaml"]);
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already scheduled by another daemon"), "{err}");

    sigterm(&daemon);
    let out = daemon.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let list = sb.run(&["runs", "list", "--json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert!(runs.len() >= 3);
    let mut ticks = BTreeSet::new();
    for r in &runs {
        assert_eq!(r["status"], "succeeded", "every fired run finished: {r}");
        assert_eq!(r["tags"]["trigger"], "schedule");
        let tick = r["tags"]["scheduled_time"].as_str().unwrap().to_string();
        assert!(ticks.insert(tick.clone()), "tick {tick} fired twice");
    }
    let lines = std::fs::read_to_string(sb.path().join("ticks.log"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, runs.len(), "one task execution per run");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.runs().join(".schedules/every_second.json")).unwrap(),
    )
    .unwrap();
    let last: chrono::DateTime<chrono::Utc> = state["last_tick"].as_str().unwrap().parse().unwrap();
    let newest: chrono::DateTime<chrono::Utc> = ticks.iter().next_back().unwrap().parse().unwrap();
    assert!(last >= newest, "the state records the latest handled tick");
}

#[test]
fn next_prints_fire_times_in_zone_and_utc() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: daily\nschedule: { cron: \"30 6 * * *\", timezone: America/Los_Angeles }\ntasks:\n  a: { type: noop }\n",
    );
    let out = sb.run(&["schedule", "--next", "3", "p.yaml"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for line in &lines[1..] {
        assert!(line.contains("06:30:00 P"), "{line}");
        assert!(
            line.contains(":30:00 UTC")
                && (line.contains(" 13:30:00 UTC") || line.contains(" 14:30:00 UTC")),
            "{line}"
        );
    }
    let no_schedule = sb.write("q.yaml", "name: q\ntasks:\n  a: { type: noop }\n");
    let out = sb.run(&["schedule", "--next", "1", no_schedule.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn runs_started_by_hand_obey_overlap_skip() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: exclusive
schedule: { cron: "@daily", overlap: skip }
tasks:
  hold: { type: command, with: { argv: [sh, -c, 'touch held; while [ ! -f release ]; do sleep 0.05; done'] } }
"#,
    );
    let first = sb.spawn(&["run", "p.yaml"]);
    assert!(wait_for(Duration::from_secs(20), || sb
        .path()
        .join("held")
        .exists()));
    let second = sb.run(&["run", "p.yaml"]);
    assert_eq!(second.status.code(), Some(0));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("not started") && err.contains("overlap: skip"),
        "{err}"
    );
    sb.write("release", "");
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(run_dirs(&sb).len(), 1, "the skipped run was never created");
}

#[test]
fn runs_cancel_stops_a_run_in_another_process() {
    let sb = Sandbox::new();
    sb.write("p.yaml", "name: long\ntasks:\n  wait: { type: command, with: { argv: [sh, -c, 'touch started; exec sleep 60'] } }\n");
    let child = sb.spawn(&["run", "p.yaml", "--json"]);
    assert!(wait_for(Duration::from_secs(20), || sb
        .path()
        .join("started")
        .exists()));
    let run_id = run_dirs(&sb).pop().unwrap();
    let out = sb.run(&["runs", "cancel", &run_id]);
    assert!(out.status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["status"], "cancelled");
}

#[test]
fn watch_mode_runs_a_batch_when_files_land_and_stops_when_idle() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.path().join("landing")).unwrap();
    sb.write(
        "p.yaml",
        r#"
name: stream
tasks:
  collect: { type: command, with: { argv: [sh, -c, 'ls landing | sort > seen.txt; echo batch >> batches.log; cat seen.txt'] } }
"#,
    );
    let child = sb.spawn(&[
        "run",
        "p.yaml",
        "--watch",
        "--watch-path",
        "landing",
        "--interval",
        "30s",
        "--until-idle",
        "3s",
        "--json",
    ]);
    let batches =
        || std::fs::read_to_string(sb.path().join("batches.log")).map_or(0, |s| s.lines().count());
    let seen = || std::fs::read_to_string(sb.path().join("seen.txt")).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(20), || batches() >= 1),
        "first batch"
    );
    for name in ["a.json", "b.json"] {
        sb.write(&format!("landing/{name}"), "{}\n");
        // Well before the 30 s interval: the new file itself starts the batch.
        assert!(
            wait_for(Duration::from_secs(15), || seen().contains(name)),
            "{name} was not picked up by a batch"
        );
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stops by itself when idle: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), batches(), "one recorded run per batch");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"
        && r["tags"]["watch_session"] == runs[0]["tags"]["watch_session"]));
    assert_eq!(seen(), "a.json\nb.json\n");
}

#[test]
fn daemon_applies_retention_after_each_run() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: pruned
schedule: { cron: "* * * * * *", overlap: allow, catchup: none }
retention: { keep_last: 2 }
tasks:
  tick: { type: command, with: { argv: [sh, -c, 'echo tick >> ticks.log'] } }
"#,
    );
    let fired = || -> Vec<String> {
        std::fs::read(sb.runs().join(".schedules/pruned.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|state| {
                state["history"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|t| t["action"] == "fired")
                    .filter_map(|t| t["run_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let daemon = sb.spawn(&["schedule", "p.yaml", "--grace", "5s"]);
    assert!(
        wait_for(Duration::from_secs(30), || fired().len() >= 5),
        "five ticks fired"
    );
    sigterm(&daemon);
    let out = daemon.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fired = fired();
    let ticks = std::fs::read_to_string(sb.path().join("ticks.log")).unwrap();
    assert_eq!(ticks.lines().count(), fired.len(), "every fired run ran");
    // Each run's end applied the policy: only the two newest fired runs remain.
    let mut newest = fired.clone();
    newest.sort();
    let newest = newest.split_off(newest.len() - 2);
    assert_eq!(run_dirs(&sb), newest);
}
