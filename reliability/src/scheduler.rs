//! The scheduler daemon with a per-second schedule, killed (`kill -9`) and restarted at
//! random while threads keep the CPUs busy. Checks: no tick fired twice; every tick from the
//! first to the last handled one ran or is recorded as skipped or missed (the policy,
//! `catchup: all`, runs the ticks missed while the daemon was down); `runs list --json`
//! parses after every kill; the last daemon's memory stays within 20% of what it was after
//! its first minute.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::load::{CpuBurner, rss_kib};
use crate::runner::{Sandbox, signal};
use crate::{Ctx, Row, SuiteError};

const PIPELINE: &str = r#"
name: every_second
schedule: { cron: "* * * * * *", overlap: allow, catchup: all, max_catchup: 10000 }
tasks:
  tick: { type: command, with: { argv: [sh, -c, 'echo tick'] } }
"#;

/// How long a restarted daemon may take to fire its first tick.
const RESTART_LIMIT: Duration = Duration::from_secs(10);

/// Most memory growth allowed between the first minute and the end.
const MAX_GROWTH: f64 = 0.20;

/// The tick decisions seen in the state file, merged over time (it keeps only the latest).
#[derive(Default)]
struct Decisions {
    /// Per tick: (decided_at, action, run_id), each decision once.
    by_tick: BTreeMap<DateTime<Utc>, BTreeSet<(String, String, String)>>,
    last_tick: Option<DateTime<Utc>>,
    /// Ticks covered by one "N ticks … from T on, not run" record.
    ranges: Vec<(DateTime<Utc>, i64)>,
}

impl Decisions {
    fn merge(&mut self, state_file: &Path) {
        let Ok(bytes) = std::fs::read(state_file) else {
            return;
        };
        let Ok(state) = serde_json::from_slice::<Value>(&bytes) else {
            return;
        };
        if let Some(t) = state["last_tick"].as_str().and_then(|t| t.parse().ok()) {
            self.last_tick = Some(t);
        }
        for r in state["history"].as_array().into_iter().flatten() {
            let Some(tick) = r["tick"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            else {
                continue;
            };
            let field = |k: &str| r[k].as_str().unwrap_or("").to_string();
            let action = field("action");
            if action == "skipped"
                && let Some(n) = field("reason")
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<i64>().ok())
            {
                self.ranges.push((tick, n));
            }
            self.by_tick.entry(tick).or_default().insert((
                field("decided_at"),
                action,
                field("run_id"),
            ));
        }
    }

    fn in_range(&self, t: DateTime<Utc>) -> bool {
        self.ranges
            .iter()
            .any(|(from, n)| t >= *from && t < *from + chrono::Duration::seconds(*n))
    }
}

/// Runs the daemon for [`crate::Config::scheduler_for`] with
/// [`crate::Config::scheduler_kills`] kills.
pub fn run(ctx: &Ctx) -> Result<Vec<Row>, SuiteError> {
    let cfg = &ctx.config;
    let mut row = Row::new(format!(
        "scheduler daemon kill -9 + restart, per-second cron, {} CPU burners, {} s",
        cfg.cpu_burners,
        cfg.scheduler_for.as_secs()
    ));
    let sb = Sandbox::new(&ctx.tf)?;
    std::fs::write(sb.path().join("p.yaml"), PIPELINE)
        .map_err(SuiteError::io("write the pipeline"))?;
    let state_file = sb.runs().join(".schedules/every_second.json");
    let spawn = |n: usize| {
        sb.spawn(
            sb.cmd(&["schedule", "p.yaml", "--grace", "5s"]),
            &format!("daemon{n}"),
        )
    };
    let total = cfg.scheduler_for;
    let tail = cfg.memory_after * 3;
    let mut kills: Vec<Duration> = (0..cfg.scheduler_kills)
        .map(|_| {
            ctx.random_between(
                Duration::from_secs(3).min(total / 4),
                total.saturating_sub(tail),
            )
        })
        .collect();
    kills.sort();

    let _burner = CpuBurner::start(cfg.cpu_burners);
    let mut seen = Decisions::default();
    let start = Instant::now();
    let mut daemon = spawn(0)?;
    let mut last_start = Instant::now();
    // After a restart: when it happened, to check the daemon fires again.
    let mut check_restart: Option<(usize, DateTime<Utc>)> = None;
    let mut rss_first: Option<u64> = None;
    let mut next_kill = 0;
    while start.elapsed() < total {
        seen.merge(&state_file);
        if let Some((k, at)) = check_restart {
            let due = last_start.elapsed() >= RESTART_LIMIT;
            if seen.last_tick.is_some_and(|t| t > at) {
                row.survived += 1;
                check_restart = None;
            } else if due {
                row.fail(format!(
                    "restart {k}: the daemon fired nothing within {:.1} s",
                    last_start.elapsed().as_secs_f64()
                ));
                check_restart = None;
            }
        }
        // The next kill waits until the restarted daemon has fired (or the check failed).
        if check_restart.is_none() && kills.get(next_kill).is_some_and(|t| start.elapsed() >= *t) {
            signal(daemon.id(), libc::SIGKILL);
            let _ = daemon.wait();
            row.injected += 1;
            next_kill += 1;
            std::thread::sleep(ctx.random_between(Duration::ZERO, Duration::from_secs(3)));
            if let Err(e) = sb.runs_list() {
                row.fail(format!("after kill {next_kill}: {e}"));
            }
            check_restart = Some((next_kill, Utc::now()));
            daemon = spawn(next_kill)?;
            last_start = Instant::now();
        }
        if next_kill == kills.len()
            && rss_first.is_none()
            && last_start.elapsed() >= cfg.memory_after
        {
            rss_first = rss_kib(daemon.id());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let rss_end = rss_kib(daemon.id());
    signal(daemon.id(), libc::SIGTERM);
    let stopped = crate::runner::wait_exit(&mut daemon, Duration::from_secs(30));
    if !stopped {
        signal(daemon.id(), libc::SIGKILL);
        let _ = daemon.wait();
        row.fail("the daemon did not stop within 30 s of SIGTERM");
    }
    if let Some((k, _)) = check_restart {
        row.fail(format!("restart {k}: not checked before the end"));
    }
    seen.merge(&state_file);

    let runs = match sb.runs_list() {
        Ok(r) => r,
        Err(e) => {
            row.fail(format!("at the end: {e}"));
            Vec::new()
        }
    };
    tally(&mut row, &seen, &runs);
    match (rss_first, rss_end) {
        (Some(a), Some(b)) => {
            let growth = (b as f64 - a as f64) / a as f64;
            row.note.push_str(&format!(
                "; RSS {:.1} MiB after {} s, {:.1} MiB at the end ({:+.0}%)",
                a as f64 / 1024.0,
                cfg.memory_after.as_secs(),
                b as f64 / 1024.0,
                growth * 100.0
            ));
            if growth > MAX_GROWTH {
                row.fail(format!(
                    "memory grew {:.0}% (limit {:.0}%)",
                    growth * 100.0,
                    MAX_GROWTH * 100.0
                ));
            }
        }
        _ => row.fail("the daemon's memory could not be read"),
    }
    Ok(vec![row])
}

/// Fills in ticks lost (neither run nor recorded) and duplicated (fired twice), and the note.
fn tally(row: &mut Row, seen: &Decisions, runs: &[Value]) {
    let mut run_ticks: BTreeMap<DateTime<Utc>, BTreeSet<String>> = BTreeMap::new();
    let mut unfinished = 0;
    for r in runs {
        if let Some(t) = r["tags"]["scheduled_time"]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
        {
            let id = r["run_id"].as_str().unwrap_or("?").to_string();
            run_ticks.entry(t).or_default().insert(id);
        }
        if r["status"] != "succeeded" {
            unfinished += 1;
        }
    }
    let run_ids: BTreeSet<&String> = run_ticks.values().flatten().collect();
    let (mut fired, mut not_run, mut fired_without_run) = (0, 0, 0);
    let mut fired_ids: BTreeMap<DateTime<Utc>, BTreeSet<String>> = BTreeMap::new();
    for (tick, decisions) in &seen.by_tick {
        for (_, action, run_id) in decisions {
            if action == "fired" {
                fired += 1;
                fired_ids.entry(*tick).or_default().insert(run_id.clone());
                if !run_ids.contains(run_id) {
                    fired_without_run += 1;
                    row.fail(format!(
                        "tick {tick} recorded as fired as run {run_id}, which does not exist"
                    ));
                }
            } else {
                not_run += 1;
            }
        }
    }
    // Fired twice: two runs for one tick, in the run store or in the decisions.
    for (tick, ids) in run_ticks.iter().chain(fired_ids.iter()) {
        if ids.len() > 1 {
            row.duplicated += ids.len() - 1;
            row.fail(format!("tick {tick} fired {} times: {ids:?}", ids.len()));
        }
    }
    let first = seen.by_tick.keys().next().copied();
    let mut ticks = 0;
    if let (Some(first), Some(last)) = (first, seen.last_tick) {
        let mut t = first;
        while t <= last {
            ticks += 1;
            if !run_ticks.contains_key(&t) && !seen.by_tick.contains_key(&t) && !seen.in_range(t) {
                row.lost += 1;
                if row.lost <= 5 {
                    row.fail(format!("tick {t} neither ran nor was recorded"));
                }
            }
            t += chrono::Duration::seconds(1);
        }
    } else {
        row.fail("no tick was handled");
    }
    row.lost += fired_without_run;
    row.note = format!(
        "{ticks} ticks: {} runs, {fired} fired, {not_run} skipped/missed by policy, {unfinished} runs cut short by the kills",
        runs.len()
    );
}
