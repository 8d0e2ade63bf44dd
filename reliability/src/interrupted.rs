//! Runs whose engine died (`interrupted`), two rows:
//!
//! - **daemon**: `tweetflow schedule` of the main pipeline on a per-second cron (`overlap:
//!   skip`, so a run of several seconds is in progress most of the time), killed with `-9`
//!   while a run executes and restarted 0-1 s later. The restarted daemon must resume the run
//!   it left (`on_interrupted: resume`) to success. At the end (daemon stopped with SIGTERM):
//!   no run stranded (`running`/`interrupted`), no tick with two runs, and the tables equal an
//!   uninterrupted run's.
//! - **manual**: `tweetflow run` of the main pipeline killed with `-9` at a random moment;
//!   `runs show --json` must say `interrupted` within [`DETECT_LIMIT`] of the kill, then
//!   `tweetflow runs recover` must bring the run to success with the tables exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runner::{Sandbox, signal, wait_exit};
use crate::tables::diff;
use crate::{Ctx, Row, SuiteError};

/// The longest a killed run may still read `running`.
pub const DETECT_LIMIT: Duration = Duration::from_secs(1);

/// How long a restarted daemon may take to resume the run it left to success.
const RESUME_LIMIT: Duration = Duration::from_secs(120);

/// The sandbox's pipeline with its params pointing at the test data, and a per-second
/// schedule, so the daemon runs it as `run` would with [`Sandbox::main_run_args`].
fn scheduled_pipeline(sb: &Sandbox) -> Result<String, SuiteError> {
    let text = std::fs::read_to_string(sb.path().join("tweet_sentiment.yaml"))
        .map_err(SuiteError::io("read the pipeline"))?;
    let args = sb.main_run_args(None);
    let params: BTreeMap<String, String> = args
        .iter()
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut out = String::new();
    let mut in_params = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_params = line.starts_with("params:");
        }
        let key = line.trim_start().split(':').next().unwrap_or("");
        match params.get(key) {
            Some(v) if in_params && line.starts_with("  ") && !line.starts_with("   ") => {
                // Numbers stay numbers (params are typed by their default).
                if v.parse::<i64>().is_ok() {
                    out.push_str(&format!("  {key}: {v}\n"));
                } else {
                    out.push_str(&format!("  {key}: \"{v}\"\n"));
                }
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
        if line.starts_with("name:") {
            out.push_str("schedule: { cron: \"* * * * * *\", overlap: skip, catchup: none }\n");
        }
    }
    Ok(out)
}

/// The run currently executing (`running` in the run store), if any.
fn running_run(sb: &Sandbox) -> Option<String> {
    sb.runs_list()
        .ok()?
        .into_iter()
        .find(|r| r["status"] == "running")
        .and_then(|r| r["run_id"].as_str().map(str::to_string))
}

fn status_of(sb: &Sandbox, run_id: &str) -> Option<Value> {
    let out = sb.cmd(&["runs", "show", run_id, "--json"]).output().ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// Both rows.
pub fn run(ctx: &Ctx) -> Result<Vec<Row>, SuiteError> {
    Ok(vec![daemon(ctx)?, manual(ctx)?])
}

/// The daemon killed while a run executes, [`crate::Config::daemon_resume_kills`] times.
fn daemon(ctx: &Ctx) -> Result<Row, SuiteError> {
    let kills = ctx.config.daemon_resume_kills;
    let mut row = Row::new(format!(
        "scheduler daemon kill -9 during a run, per-second cron, {kills} kills, restarted: interrupted runs resumed"
    ));
    let sb = Sandbox::new(&ctx.tf)?;
    std::fs::write(sb.path().join("sched.yaml"), scheduled_pipeline(&sb)?)
        .map_err(SuiteError::io("write the pipeline"))?;
    let spawn = |n: usize| {
        sb.spawn(
            sb.cmd(&["schedule", "sched.yaml", "--grace", "60s"]),
            &format!("sched{n}"),
        )
    };
    let mut daemon = spawn(0)?;
    let mut resume_times = Vec::new();
    let mut attempts = 0;
    while row.injected < kills && attempts < kills * 4 {
        attempts += 1;
        // Wait for a run in progress, then kill at a random moment of it.
        let start = Instant::now();
        let mut victim = None;
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(id) = running_run(&sb) {
                victim = Some(id);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let Some(victim) = victim else {
            row.fail("no run started within 30 s");
            break;
        };
        std::thread::sleep(ctx.random_between(Duration::ZERO, Duration::from_millis(1500)));
        signal(daemon.id(), libc::SIGKILL);
        let _ = daemon.wait();
        let status = status_of(&sb, &victim);
        let st = status
            .as_ref()
            .and_then(|r| r["status"].as_str())
            .unwrap_or("?");
        if st != "interrupted" {
            // The run ended just before the kill: not a kill during a run.
            daemon = spawn(attempts)?;
            continue;
        }
        row.injected += 1;
        std::thread::sleep(ctx.random_between(Duration::ZERO, Duration::from_secs(1)));
        let restarted = Instant::now();
        daemon = spawn(attempts)?;
        let mut outcome = None;
        while restarted.elapsed() < RESUME_LIMIT {
            if let Some(r) = status_of(&sb, &victim) {
                let s = r["status"].as_str().unwrap_or("?").to_string();
                if s != "running" && s != "interrupted" {
                    outcome = Some(r);
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        match outcome {
            Some(r)
                if r["status"] == "succeeded"
                    && !r["resumed_at"].as_array().is_none_or(Vec::is_empty) =>
            {
                row.survived += 1;
                resume_times.push(restarted.elapsed());
            }
            Some(r) => row.fail(format!(
                "kill {}: run {victim} ended {} ({})",
                row.injected,
                r["status"],
                r["reason"].as_str().unwrap_or("")
            )),
            None => row.fail(format!(
                "kill {}: run {victim} not resumed to an end within {} s",
                row.injected,
                RESUME_LIMIT.as_secs()
            )),
        }
    }
    signal(daemon.id(), libc::SIGTERM);
    if !wait_exit(&mut daemon, Duration::from_secs(90)) {
        signal(daemon.id(), libc::SIGKILL);
        let _ = daemon.wait();
        row.fail("the daemon did not stop within 90 s of SIGTERM");
    }
    let runs = sb.runs_list().unwrap_or_else(|e| {
        row.fail(format!("at the end: {e}"));
        Vec::new()
    });
    let stranded: Vec<&str> = runs
        .iter()
        .filter(|r| r["status"] == "running" || r["status"] == "interrupted")
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    if !stranded.is_empty() {
        row.fail(format!("{} runs stranded: {stranded:?}", stranded.len()));
    }
    let mut by_tick: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &runs {
        if let Some(t) = r["tags"]["scheduled_time"].as_str() {
            by_tick
                .entry(t.to_string())
                .or_default()
                .push(r["run_id"].as_str().unwrap_or("?").to_string());
        }
    }
    let twice: Vec<_> = by_tick.iter().filter(|(_, ids)| ids.len() > 1).collect();
    if !twice.is_empty() {
        row.fail(format!("ticks fired twice: {twice:?}"));
    }
    let d = diff(&ctx.reference, &ctx.snapshot(&sb.data()));
    row.lost += d.lost;
    row.duplicated += d.duplicated;
    if !d.details.is_empty() {
        row.fail(d.details.join("; "));
    }
    let resumed: usize = runs
        .iter()
        .filter(|r| !r["resumed_at"].as_array().is_none_or(Vec::is_empty))
        .count();
    let slowest = resume_times.iter().max().copied().unwrap_or_default();
    row.note = format!(
        "{} runs, {resumed} resumed, {} stranded, {} ticks fired twice; restart to resumed success ≤ {:.1} s",
        runs.len(),
        stranded.len(),
        twice.len(),
        slowest.as_secs_f64()
    );
    Ok(row)
}

/// A manual run's engine killed, [`crate::Config::manual_kills`] times, then `runs recover`.
fn manual(ctx: &Ctx) -> Result<Row, SuiteError> {
    let kills = ctx.config.manual_kills;
    let mut row = Row::new(format!(
        "kill -9 of a manual run's engine ({kills} kills): reads interrupted, then runs recover"
    ));
    let window = ctx.reference_time.mul_f64(0.8);
    let mut detect = Vec::new();
    let mut i = 0;
    while row.injected < kills && i < kills * 3 {
        i += 1;
        let sb = Sandbox::new(&ctx.tf)?;
        let args = sb.main_run_args(None);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = sb.spawn(sb.cmd(&args), &format!("run{i}"))?;
        std::thread::sleep(ctx.random_between(ctx.reference_time / 10, window));
        if child
            .try_wait()
            .map_err(SuiteError::io("poll tweetflow"))?
            .is_some()
        {
            continue;
        }
        signal(child.id(), libc::SIGKILL);
        let _ = child.wait();
        let killed = Instant::now();
        let Some(run_id) = sb
            .run_ids()
            .last()
            .cloned()
            .filter(|id| sb.record(id).is_some())
        else {
            continue; // killed before its first record: nothing to recover
        };
        if sb
            .record(&run_id)
            .is_some_and(|r| r["status"] == "succeeded")
        {
            continue; // killed while exiting, after its success was recorded
        }
        row.injected += 1;
        let mut seen = None;
        while killed.elapsed() < Duration::from_secs(10) {
            if status_of(&sb, &run_id).is_some_and(|r| r["status"] == "interrupted") {
                seen = Some(killed.elapsed());
                break;
            }
        }
        let out = sb.run(sb.cmd(&["runs", "recover"]), &format!("recover{i}"))?;
        let said =
            std::fs::read_to_string(sb.path().join(format!("recover{i}.out"))).unwrap_or_default();
        let record = status_of(&sb, &run_id);
        let st = record
            .as_ref()
            .and_then(|r| r["status"].as_str())
            .unwrap_or("?")
            .to_string();
        let d = diff(&ctx.reference, &ctx.snapshot(&sb.data()));
        row.lost += d.lost;
        row.duplicated += d.duplicated;
        match seen {
            Some(t) if t <= DETECT_LIMIT => detect.push(t),
            Some(t) => row.fail(format!(
                "kill {i}: read interrupted only after {:.2} s",
                t.as_secs_f64()
            )),
            None => row.fail(format!("kill {i}: never read interrupted")),
        }
        if out.code != Some(0) || st != "succeeded" || !said.contains(&run_id) {
            row.fail(format!(
                "kill {i}: runs recover exited {:?}, run {st}: {}",
                out.code,
                crate::runner::shorten(said.trim(), 300)
            ));
        } else if d.details.is_empty() && seen.is_some_and(|t| t <= DETECT_LIMIT) {
            row.survived += 1;
        } else if !d.details.is_empty() {
            row.fail(format!("kill {i}: {}", d.details.join("; ")));
        }
    }
    let max = detect.iter().max().copied().unwrap_or_default();
    let mean = if detect.is_empty() {
        Duration::ZERO
    } else {
        detect.iter().sum::<Duration>() / detect.len() as u32
    };
    row.note = format!(
        "read interrupted after the kill: mean {:.0} ms, max {:.0} ms (one `runs show` process per poll)",
        mean.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0
    );
    Ok(row)
}
