//! `kill -9` of the engine at a random moment of the main pipeline, then `--resume` (or a
//! fresh run when the kill came before the run was recorded): the tables must equal an
//! uninterrupted run's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::runner::{Sandbox, signal};
use crate::tables::diff;
use crate::{Ctx, Row, SuiteError};

/// Kills and resumes [`crate::Config::engine_kills`] runs, each in a fresh sandbox.
pub fn run(ctx: &Ctx) -> Result<Vec<Row>, SuiteError> {
    let mut row = Row::new("kill -9 of the engine during the main pipeline, then --resume");
    // Where the kills landed: the tasks running at that moment.
    let mut landed: BTreeMap<String, usize> = BTreeMap::new();
    // Kill moments spread over an uninterrupted run's duration; a run that is over before its
    // kill moment is not counted as a kill, and another one is started.
    let window = ctx.reference_time.mul_f64(0.9);
    let mut over_before_kill = 0;
    let mut i = 0;
    while row.injected < ctx.config.engine_kills && i < ctx.config.engine_kills * 3 {
        i += 1;
        let sb = Sandbox::new(&ctx.tf)?;
        let args = sb.main_run_args(None);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let tag = format!("run{i}");
        let mut child = sb.spawn(sb.cmd(&args), &tag)?;
        std::thread::sleep(ctx.random_between(Duration::ZERO, window));
        if child
            .try_wait()
            .map_err(SuiteError::io("poll tweetflow"))?
            .is_some()
        {
            over_before_kill += 1;
            continue;
        }
        signal(child.id(), libc::SIGKILL);
        let _ = child.wait();
        row.injected += 1;
        *landed.entry(where_killed(&sb)).or_default() += 1;

        // Killed after the run recorded its success, while exiting: nothing to resume.
        let recorded_success = sb
            .run_ids()
            .last()
            .and_then(|id| sb.record(id))
            .is_some_and(|r| r["status"] == "succeeded");
        let resumed = if recorded_success {
            None
        } else {
            Some(sb.resume_or_rerun(&format!("resume{i}"))?)
        };
        let d = diff(&ctx.reference, &ctx.snapshot(&sb.data()));
        row.lost += d.lost;
        row.duplicated += d.duplicated;
        if let Some(out) = resumed.filter(|o| !o.succeeded()) {
            row.fail(format!(
                "kill {i}: resume {}; {}",
                out.describe(),
                d.details.join("; ")
            ));
        } else if d.details.is_empty() {
            row.survived += 1;
        } else {
            row.fail(format!("kill {i}: {}", d.details.join("; ")));
        }
    }
    let mut where_ = landed
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    where_.insert_str(0, "killed during: ");
    if over_before_kill > 0 {
        where_.push_str(&format!(
            " ({over_before_kill} runs ended before their kill moment, not counted)"
        ));
    }
    row.note = where_;
    Ok(vec![row])
}

/// The tasks that were running when the engine was killed, from the run's events.
fn where_killed(sb: &Sandbox) -> String {
    let Some(id) = sb.run_ids().last().cloned() else {
        return "start-up".into();
    };
    let events =
        std::fs::read_to_string(sb.runs().join(&id).join("events.jsonl")).unwrap_or_default();
    let mut running = BTreeSet::new();
    let mut finished = 0;
    for line in events.lines() {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let task = e["task"].as_str().unwrap_or("?").to_string();
        match e["event"].as_str() {
            Some("task_started") => {
                running.insert(task);
            }
            Some("task_finished") => {
                running.remove(&task);
                finished += 1;
            }
            _ => {}
        }
    }
    let succeeded = sb.record(&id).is_some_and(|r| r["status"] == "succeeded");
    match (running.is_empty(), finished) {
        (true, _) if succeeded => "exit, after the run was recorded".into(),
        (true, 0) => "start-up".into(),
        (true, _) => "between tasks".into(),
        (false, _) => running.into_iter().collect::<Vec<_>>().join("+"),
    }
}
