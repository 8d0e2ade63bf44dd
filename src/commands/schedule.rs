//! `tweetflow schedule`: the scheduler daemon (cron schedules and table triggers), `--next`
//! and `--once`; and the overlap policy that runs started by hand obey too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tweetflow_engine::process_env;
use tweetflow_engine::scheduler::{
    LocalRuns, OverlapDecision, Scheduled, Scheduler, SchedulerError, SystemClock, resolve_overlap,
};
use tweetflow_engine::spec::Overlap;
use tweetflow_engine::store::default_policy;
use tweetflow_engine::{CronExpr, parse_zone};
use tweetflow_engine::{Pipeline, Registry, RunStore, TableVersions, TableWatcher};
use tweetflow_tasks::DeltaWatcher;

use super::{load_or_report, spawn_signal_handler};
use crate::exit;

/// Pipeline files named by `paths` (directories give their `*.yaml` / `*.yml`, sorted).
fn pipeline_files(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, bool)>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found.into_iter().map(|f| (f, false)));
        } else {
            files.push((path.clone(), true));
        }
    }
    Ok(files)
}

/// Runs the daemon (or prints `--next` fire times).
pub async fn schedule(
    registry: &Arc<Registry>,
    runs_dir: &Path,
    paths: &[PathBuf],
    next: Option<usize>,
    once: bool,
    grace: Duration,
    metrics_listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<u8> {
    let mut scheduled = Vec::new();
    let mut invalid = false;
    for (file, explicit) in pipeline_files(paths)? {
        let Some(pipeline) = load_or_report(registry, &file, &[]) else {
            invalid = true;
            continue;
        };
        if pipeline.schedule.is_none() && pipeline.trigger.is_none() {
            if explicit {
                eprintln!(
                    "error: {}: the pipeline has no `schedule:` or `trigger:` section",
                    file.display()
                );
                invalid = true;
            }
            continue;
        }
        let text = std::fs::read_to_string(&file)?;
        scheduled.push(Scheduled {
            pipeline,
            file: file.display().to_string(),
            text,
        });
    }
    if invalid {
        return Ok(exit::INVALID);
    }
    if scheduled.is_empty() {
        eprintln!("error: no scheduled or triggered pipeline found");
        return Ok(exit::INVALID);
    }
    if let Some(n) = next {
        let store = RunStore::new(runs_dir);
        let lister = DeltaWatcher::default();
        for s in &scheduled {
            print!("{}", next_fire_times(&s.pipeline, n)?);
            print!("{}", watched_tables(&store, &lister, &s.pipeline).await?);
        }
        return Ok(exit::OK);
    }
    let default_retention = match default_policy(&process_env) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::INVALID);
        }
    };
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let mut engine = super::new_engine(registry, runs_dir);
    if let Some(console) = crate::console::get() {
        engine = engine.with_listener(console);
    }
    let _metrics = match metrics_listen {
        Some(addr) => match super::metrics_server::start(addr, engine.store().clone()).await {
            Ok(server) => Some(server),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(exit::INVALID);
            }
        },
        None => None,
    };
    let names: Vec<&str> = scheduled.iter().map(|s| s.pipeline.name.as_str()).collect();
    if !once {
        eprintln!(
            "scheduling {}; stop with Ctrl-C or SIGTERM (grace {:?})",
            names.join(", "),
            grace
        );
    }
    let mut scheduler = Scheduler::new(engine, Arc::new(SystemClock))
        .with_default_retention(default_retention)
        .with_table_watcher(Arc::new(DeltaWatcher::default()));
    if once {
        scheduler = scheduler.once();
    }
    match scheduler.run(scheduled, shutdown, grace).await {
        Ok(()) => Ok(exit::OK),
        Err(e @ (SchedulerError::AlreadyScheduled { .. } | SchedulerError::BadSchedule { .. })) => {
            eprintln!("error: {e}");
            Ok(exit::FAILED)
        }
        Err(e) => Err(e.into()),
    }
}

/// The tables a triggered pipeline watches: latest version and the version consumed.
async fn watched_tables(
    store: &RunStore,
    watcher: &DeltaWatcher,
    pipeline: &Pipeline,
) -> anyhow::Result<String> {
    let Some(trigger) = &pipeline.trigger else {
        return Ok(String::new());
    };
    let state = store.trigger_state(&pipeline.name)?;
    let mut out = format!(
        "{} (trigger, poll {})\n",
        pipeline.name,
        tweetflow_engine::human_duration(trigger.poll)
    );
    for (name, location) in &trigger.tables {
        let latest = match watcher.versions(location, None).await {
            Ok(TableVersions::Versions { latest, .. }) => format!("latest {latest}"),
            Ok(TableVersions::Missing) => "does not exist yet".into(),
            Ok(TableVersions::NotATable { reason }) => format!("not a Delta table: {reason}"),
            Err(e) => format!("cannot list: {e}"),
        };
        let consumed = state
            .tables
            .get(name)
            .filter(|c| c.table == *location)
            .and_then(|c| c.consumed)
            .map_or("none".to_string(), |v| v.to_string());
        out.push_str(&format!(
            "  {name}: {location}   {latest}, consumed {consumed}\n"
        ));
    }
    if let Some(p) = &state.pending {
        let ranges: Vec<String> = p
            .ranges
            .iter()
            .map(|(n, r)| format!("{n} {}", r.label()))
            .collect();
        out.push_str(&format!(
            "  pending run {} ({})\n",
            p.run_id,
            ranges.join(", ")
        ));
    }
    Ok(out)
}

/// The next `n` fire times of a scheduled pipeline, in its zone and in UTC.
fn next_fire_times(pipeline: &Pipeline, n: usize) -> anyhow::Result<String> {
    let Some(spec) = &pipeline.schedule else {
        return Ok(String::new());
    };
    let cron = CronExpr::parse(&spec.cron)?;
    let tz = parse_zone(&spec.timezone)?;
    let mut out = format!(
        "{} (cron \"{}\", {})\n",
        pipeline.name, spec.cron, spec.timezone
    );
    let mut t = chrono::Utc::now();
    for _ in 0..n {
        let Some(next) = cron.next_after(t, &tz) else {
            break;
        };
        out.push_str(&format!(
            "  {}   {}\n",
            next.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z"),
            next.format("%Y-%m-%d %H:%M:%S UTC")
        ));
        t = next;
    }
    Ok(out)
}

/// Applies a scheduled pipeline's overlap policy to a run started by hand. Returns the exit
/// code when the run must not start.
pub async fn obey_overlap(
    store: &RunStore,
    pipeline: &Pipeline,
    cancel: &CancellationToken,
) -> Option<u8> {
    let overlap = pipeline
        .schedule
        .as_ref()
        .map_or(Overlap::Allow, |s| s.overlap);
    let local = LocalRuns::default();
    match resolve_overlap(
        store,
        &pipeline.name,
        overlap,
        &local,
        &SystemClock,
        None,
        cancel,
    )
    .await
    {
        OverlapDecision::Start => None,
        OverlapDecision::Skip(reason) | OverlapDecision::Missed(reason) => {
            eprintln!("not started: {reason}");
            Some(exit::OK)
        }
        OverlapDecision::Shutdown => Some(exit::CANCELLED),
    }
}
