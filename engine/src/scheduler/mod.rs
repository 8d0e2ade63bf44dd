//! The scheduler: fires pipeline runs on their cron schedules, exactly once per tick, and
//! when the tables of their `trigger:` get new versions, each version once (see [`trigger`]).
//!
//! ```text
//!  start ─▶ lock runs/.schedules/<pipeline>.lock (a second daemon is refused)
//!        ─▶ interrupted runs (engine died): resume or fail them (`on_interrupted`), and so
//!           again whenever one is found (see `recover`)
//!        ─▶ recover: a tick recorded as fired whose run never got created is fired again
//!        ─▶ catch up on ticks missed while down (catchup: none | last | all ≤ max_catchup)
//!        ─▶ loop: sleep until the next tick ─▶ deadline? ─▶ overlap policy ─▶ fire
//!  SIGTERM ─▶ stop firing ─▶ let runs finish within the grace period ─▶ cancel the rest
//! ```
//!
//! Every decision about a tick (fired, skipped, missed) is written with the tick itself to
//! `runs/.schedules/<pipeline>.json` in one atomic write, before the run starts; the run gets
//! an id chosen beforehand, so after a crash the scheduler can tell whether the run exists.
//! Time comes from a [`Clock`], so tests drive schedules with a [`TestClock`].
//!
//! After each run it starts, the scheduler applies the pipeline's retention policy (its
//! `retention:`, else the default given with [`Scheduler::with_default_retention`]) to the
//! pipeline's runs: see [`crate::store::prune`].
//!
//! Deadlines (`start_deadline`) apply to ticks that come due while the scheduler runs (for
//! example a tick queued behind a long run); ticks missed while it was down follow the
//! catch-up policy alone.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::cron::{CronExpr, parse_zone};
use crate::error::EngineError;
use crate::run::{Engine, RunOptions};
use crate::secrets::process_env;
use crate::spec::{Catchup, Overlap, Pipeline, RetentionPolicy, ScheduleSpec};
use crate::store::PruneOptions;
use crate::store::RunStore;
use crate::task::BoxFuture;
use crate::trigger::TableWatcher;

mod clock;
mod overlap;
mod recover;
mod trigger;
mod watched;

pub use crate::store::{HISTORY, ScheduleState, TickAction, TickRecord};
pub use clock::{Clock, SystemClock, TestClock};
pub use overlap::*;
pub use recover::RECOVER_EVERY;
pub use watched::Observed;

/// The tracing target prefix of the scheduler's own lines (what fired, caught up, was
/// skipped), for a log filter that shows them without the runs' lines.
pub const SCHEDULER_TARGET: &str = module_path!();

/// A pipeline given to the scheduler.
#[derive(Clone, Debug)]
pub struct Scheduled {
    /// The validated pipeline (with a `schedule`, a `trigger` or both).
    pub pipeline: Pipeline,
    /// Its file, as named by the user.
    pub file: String,
    /// The file's text.
    pub text: String,
}

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// Another daemon schedules this pipeline on the same run store.
    #[error("pipeline `{pipeline}` is already scheduled by another daemon ({holder}); lock {lock}")]
    AlreadyScheduled {
        /// The pipeline.
        pipeline: String,
        /// Who holds the lock, as it wrote itself down.
        holder: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// The pipeline has no usable schedule or trigger.
    #[error("pipeline `{pipeline}`: {message}")]
    BadSchedule {
        /// The pipeline.
        pipeline: String,
        /// What is wrong.
        message: String,
    },
    /// The run store failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Fires scheduled runs.
pub struct Scheduler {
    engine: Engine,
    clock: Arc<dyn Clock>,
    observer: Option<mpsc::UnboundedSender<(String, TickRecord)>>,
    default_retention: Option<RetentionPolicy>,
    watcher: Option<Arc<dyn TableWatcher>>,
    once: bool,
}

impl Scheduler {
    /// A scheduler running pipelines on `engine`, with time from `clock`.
    pub fn new(engine: Engine, clock: Arc<dyn Clock>) -> Self {
        Scheduler {
            engine,
            clock,
            observer: None,
            default_retention: None,
            watcher: None,
            once: false,
        }
    }

    /// Lists the tables of the pipelines' `trigger:` sections (required when one has it).
    pub fn with_table_watcher(mut self, watcher: Arc<dyn TableWatcher>) -> Self {
        self.watcher = Some(watcher);
        self
    }

    /// Starts the triggered runs due now, waits for them, and returns (no cron ticks): for
    /// `tweetflow schedule --once` and for a pipeline run from another scheduler.
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }

    /// The retention policy of pipelines without a `retention:` section.
    pub fn with_default_retention(mut self, policy: Option<RetentionPolicy>) -> Self {
        self.default_retention = policy;
        self
    }

    /// Sends every tick decision to `tx` as well (for tests and monitoring).
    pub fn with_observer(mut self, tx: mpsc::UnboundedSender<(String, TickRecord)>) -> Self {
        self.observer = Some(tx);
        self
    }

    /// Runs until `shutdown`, then waits up to `grace` for active runs before cancelling them.
    pub async fn run(
        &self,
        pipelines: Vec<Scheduled>,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<(), SchedulerError> {
        let mut wanted: BTreeMap<String, Duration> = BTreeMap::new();
        for p in &pipelines {
            let bad = |message: &str| SchedulerError::BadSchedule {
                pipeline: p.pipeline.name.clone(),
                message: message.into(),
            };
            match (&p.pipeline.schedule, &p.pipeline.trigger) {
                (None, None) => return Err(bad("it has no `schedule:` or `trigger:` section")),
                (_, Some(_)) if self.watcher.is_none() => {
                    return Err(bad("it has a `trigger:` but no table watcher was given"));
                }
                _ => {}
            }
            for location in p.pipeline.trigger.iter().flat_map(|t| t.tables.values()) {
                let poll = p
                    .pipeline
                    .trigger
                    .as_ref()
                    .map_or(Duration::MAX, |t| t.poll);
                let entry = wanted.entry(trigger::table_key(location)).or_insert(poll);
                *entry = (*entry).min(poll);
            }
        }
        let watches = match &self.watcher {
            Some(w) if !wanted.is_empty() => Some(watched::Watches::start(w.clone(), wanted)),
            _ => None,
        };
        let result = self.run_loops(pipelines, &watches, shutdown, grace).await;
        if let Some(w) = watches {
            w.stop().await;
        }
        result
    }

    async fn run_loops(
        &self,
        pipelines: Vec<Scheduled>,
        watches: &Option<watched::Watches>,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<(), SchedulerError> {
        let store = self.engine.store().clone();
        let mut loops = Vec::new();
        for p in pipelines {
            if self.once && p.pipeline.trigger.is_none() {
                continue;
            }
            let bad = |e: &dyn std::fmt::Display| SchedulerError::BadSchedule {
                pipeline: p.pipeline.name.clone(),
                message: e.to_string(),
            };
            let (spec, cron, tz) = match &p.pipeline.schedule {
                Some(spec) => {
                    let cron = CronExpr::parse(&spec.cron).map_err(|e| bad(&e))?;
                    let tz = parse_zone(&spec.timezone).map_err(|e| bad(&e))?;
                    (spec.clone(), (!self.once).then_some(cron), tz)
                }
                None => (trigger_only_policies(&p.pipeline), None, Tz::UTC),
            };
            let trigger = match (&p.pipeline.trigger, &self.watcher, watches) {
                (Some(t), Some(w), Some(ws)) => Some(trigger::TriggerLoop::new(
                    t.clone(),
                    w.clone(),
                    ws,
                    store.trigger_state(&p.pipeline.name)?,
                )),
                _ => None,
            };
            let lock = lock_pipeline(&store, &p.pipeline.name)?;
            let state = store.schedule_state(&p.pipeline.name)?;
            loops.push(PipelineLoop {
                trigger,
                once: self.once,
                engine: self.engine.clone(),
                clock: self.clock.clone(),
                observer: self.observer.clone(),
                retention: p
                    .pipeline
                    .retention
                    .clone()
                    .or_else(|| self.default_retention.clone()),
                scheduled: Arc::new(p),
                spec,
                cron,
                tz,
                state,
                local: Arc::new(Mutex::new(HashMap::new())),
                runs: JoinSet::new(),
                _lock: lock,
            });
        }
        let mut set = JoinSet::new();
        for l in loops {
            let span = match &l.trigger {
                Some(_) if l.cron.is_none() => {
                    info_span!("trigger", pipeline = %l.scheduled.pipeline.name)
                }
                _ => info_span!("schedule", pipeline = %l.scheduled.pipeline.name),
            };
            let shutdown = shutdown.clone();
            set.spawn(l.run(shutdown, grace).instrument(span));
        }
        let mut first_error = None;
        while let Some(result) = set.join_next().await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => warn!(error = %e, "a schedule loop panicked"),
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The policies of a pipeline with a `trigger:` and no `schedule:`: its trigger's overlap,
/// interrupted runs resumed (at most 3 times).
fn trigger_only_policies(pipeline: &Pipeline) -> ScheduleSpec {
    ScheduleSpec {
        cron: String::new(),
        timezone: "UTC".into(),
        overlap: pipeline
            .trigger
            .as_ref()
            .map_or(Overlap::Skip, |t| t.overlap),
        catchup: Catchup::None,
        max_catchup: 1,
        start_deadline: None,
        on_interrupted: Default::default(),
        max_resumes: 3,
    }
}

fn lock_pipeline(store: &RunStore, pipeline: &str) -> Result<std::fs::File, SchedulerError> {
    use std::io::Write;
    let dir = store.root().join(".schedules");
    std::fs::create_dir_all(&dir).map_err(EngineError::io("create", &dir))?;
    let path = dir.join(format!("{pipeline}.lock"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(EngineError::io("open", &path))?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.set_len(0);
            let _ = write!(
                file,
                "pid {} since {}",
                std::process::id(),
                Utc::now().to_rfc3339()
            );
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(SchedulerError::AlreadyScheduled {
            pipeline: pipeline.to_string(),
            holder: std::fs::read_to_string(&path).unwrap_or_default(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(EngineError::io("lock", &path)(e).into()),
    }
}

struct PipelineLoop {
    engine: Engine,
    clock: Arc<dyn Clock>,
    observer: Option<mpsc::UnboundedSender<(String, TickRecord)>>,
    retention: Option<RetentionPolicy>,
    scheduled: Arc<Scheduled>,
    spec: ScheduleSpec,
    /// `None`: no cron ticks (a trigger-only pipeline, or `--once`).
    cron: Option<CronExpr>,
    tz: Tz,
    state: ScheduleState,
    trigger: Option<trigger::TriggerLoop>,
    once: bool,
    local: Arc<LocalRuns>,
    runs: JoinSet<()>,
    _lock: std::fs::File,
}

impl PipelineLoop {
    fn name(&self) -> &str {
        &self.scheduled.pipeline.name
    }

    async fn run(
        mut self,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<(), SchedulerError> {
        self.recover_interrupted(true).await?;
        if self.cron.is_some() {
            self.recover().await?;
            self.catch_up(&shutdown).await?;
            info!(cron = %self.spec.cron, timezone = %self.spec.timezone, "scheduling");
        }
        if let Some(t) = &self.trigger {
            info!(tables = ?t.locations(), "watching tables");
        }
        if self.once {
            return self.run_once(shutdown, grace).await;
        }
        let mut last_scan = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            if last_scan.elapsed() >= RECOVER_EVERY {
                self.recover_interrupted(false).await?;
                last_scan = tokio::time::Instant::now();
            }
            let after = self.state.last_tick.unwrap_or_else(|| self.clock.now());
            let next = self
                .cron
                .as_ref()
                .and_then(|c| c.next_after(after, &self.tz));
            if self.cron.is_some() && next.is_none() && self.trigger.is_none() {
                break;
            }
            let clock = self.clock.clone();
            let tick = async move {
                match next {
                    Some(n) => clock.sleep_until(n).await,
                    None => std::future::pending().await,
                }
            };
            let trigger_wait = async {
                match self.trigger.as_mut() {
                    Some(t) => t.wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick => {
                    if let Some(next) = next {
                        self.handle_tick(next, false, &shutdown).await?;
                    }
                }
                _ = trigger_wait => self.poll_trigger(&shutdown).await?,
                _ = tokio::time::sleep_until(last_scan + RECOVER_EVERY) => continue,
                _ = shutdown.cancelled() => break,
            }
            // Reap finished runs as we go.
            while self.runs.try_join_next().is_some() {}
        }
        self.drain(grace).await;
        Ok(())
    }

    /// `--once`: waits for every watched table's first listing, starts the run due (or the
    /// pending one), waits for it and settles it.
    async fn run_once(
        mut self,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<(), SchedulerError> {
        while self.trigger.as_ref().is_some_and(|t| !t.all_answered()) && !shutdown.is_cancelled() {
            if let Some(t) = self.trigger.as_mut() {
                t.wait().await;
            }
        }
        self.poll_trigger(&shutdown).await?;
        while !shutdown.is_cancelled() {
            tokio::select! {
                done = self.runs.join_next() => {
                    if done.is_none() {
                        break;
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
        // Settle what just ended (and nothing more: `poll_trigger` would start the next run).
        if self.trigger.as_ref().is_some_and(|t| t.has_pending()) {
            self.settle_pending()?;
        }
        self.drain(grace).await;
        Ok(())
    }

    /// A tick recorded as fired whose run was never created (crash in between) fires now.
    async fn recover(&mut self) -> Result<(), SchedulerError> {
        let Some(fired) = self.state.last_fired.clone() else {
            return Ok(());
        };
        let Some(run_id) = fired.run_id.clone() else {
            return Ok(());
        };
        let store = self.engine.store();
        if !store.run_dir(&run_id).join("run.json").exists() {
            warn!(tick = %fired.tick, run_id = %run_id, "a fired tick has no run: starting it now");
            match self.scheduled.pipeline.with_secrets_from(&process_env) {
                Ok(pipeline) => self.start_run(fired.tick, run_id, pipeline),
                Err(e) => warn!(tick = %fired.tick, error = %e, "the fired tick cannot run"),
            }
        }
        Ok(())
    }

    async fn catch_up(&mut self, shutdown: &CancellationToken) -> Result<(), SchedulerError> {
        let now = self.clock.now();
        let Some(last) = self.state.last_tick else {
            // First start: nothing was missed.
            self.state.last_tick = Some(now);
            return self.save();
        };
        let keep = match self.spec.catchup {
            Catchup::None | Catchup::Last => 1,
            Catchup::All => self.spec.max_catchup as usize,
        };
        let Some(cron) = self.cron.clone() else {
            return Ok(());
        };
        let (ticks, dropped) = cron.ticks_between(last, now, &self.tz, keep);
        if ticks.is_empty() {
            return Ok(());
        }
        info!(missed = ticks.len() + dropped, policy = ?self.spec.catchup, "catching up on ticks missed while down");
        match self.spec.catchup {
            Catchup::None => {
                let latest = ticks[ticks.len() - 1];
                let reason = format!(
                    "the scheduler was down ({} ticks missed; catchup: none)",
                    ticks.len() + dropped
                );
                self.decide(latest, TickAction::Missed, None, Some(reason))?;
            }
            Catchup::Last | Catchup::All => {
                if dropped > 0 {
                    // Recorded, not silently lost: one entry for the range of ticks not run.
                    let first = cron.next_after(last, &self.tz).unwrap_or(ticks[0]);
                    let policy = match self.spec.catchup {
                        Catchup::Last => "catchup: last".to_string(),
                        _ => format!("catchup: all, max_catchup: {}", self.spec.max_catchup),
                    };
                    let reason = format!(
                        "{dropped} ticks missed while the scheduler was down, from {first} on, not run ({policy})"
                    );
                    self.decide(first, TickAction::Skipped, None, Some(reason))?;
                }
                for tick in ticks {
                    if shutdown.is_cancelled() {
                        break;
                    }
                    self.handle_tick(tick, true, shutdown).await?;
                }
            }
        }
        Ok(())
    }

    async fn handle_tick(
        &mut self,
        tick: DateTime<Utc>,
        catching_up: bool,
        shutdown: &CancellationToken,
    ) -> Result<(), SchedulerError> {
        let deadline = if catching_up {
            None
        } else {
            self.spec.start_deadline.map(|d| tick + chrono_duration(d))
        };
        if let Some(d) = deadline
            && self.clock.now() > d
        {
            return self.decide(
                tick,
                TickAction::Missed,
                None,
                Some("not started within start_deadline".into()),
            );
        }
        let store = self.engine.store().clone();
        let decision = resolve_overlap(
            &store,
            self.name(),
            self.spec.overlap,
            &self.local,
            &*self.clock,
            deadline,
            shutdown,
        )
        .await;
        match decision {
            OverlapDecision::Start => {
                // Secrets are read from the environment at each run, never kept.
                let pipeline = match self.scheduled.pipeline.with_secrets_from(&process_env) {
                    Ok(p) => p,
                    Err(e) => {
                        return self.decide(tick, TickAction::Skipped, None, Some(e.to_string()));
                    }
                };
                let run_id = RunStore::new_run_id();
                self.decide(tick, TickAction::Fired, Some(run_id.clone()), None)?;
                self.start_run(tick, run_id, pipeline);
                Ok(())
            }
            OverlapDecision::Skip(reason) => {
                self.decide(tick, TickAction::Skipped, None, Some(reason))
            }
            OverlapDecision::Missed(reason) => {
                self.decide(tick, TickAction::Missed, None, Some(reason))
            }
            // Not decided: after a restart the tick counts as missed and catch-up applies.
            OverlapDecision::Shutdown => Ok(()),
        }
    }

    /// Records the decision about `tick` together with `last_tick`, in one atomic write.
    fn decide(
        &mut self,
        tick: DateTime<Utc>,
        action: TickAction,
        run_id: Option<String>,
        reason: Option<String>,
    ) -> Result<(), SchedulerError> {
        let record = TickRecord {
            tick,
            decided_at: self.clock.now(),
            action,
            run_id,
            reason,
        };
        match action {
            TickAction::Fired => {
                let lag = (record.decided_at - tick).num_microseconds().unwrap_or(0) as f64 / 1e6;
                crate::metrics::global().schedule_lag(self.name(), lag);
                info!(tick = %tick, run_id = ?record.run_id, "tick fired")
            }
            _ => warn!(tick = %tick, action = ?action, reason = ?record.reason, "tick not run"),
        }
        if action == TickAction::Fired {
            self.state.last_fired = Some(record.clone());
        }
        self.state.last_tick = Some(self.state.last_tick.map_or(tick, |t| t.max(tick)));
        self.state.history.push(record.clone());
        let excess = self.state.history.len().saturating_sub(HISTORY);
        self.state.history.drain(..excess);
        self.save()?;
        if let Some(tx) = &self.observer {
            let _ = tx.send((self.name().to_string(), record));
        }
        Ok(())
    }

    fn save(&self) -> Result<(), SchedulerError> {
        self.engine
            .store()
            .save_schedule_state(self.name(), &self.state)?;
        Ok(())
    }

    fn start_run(&mut self, tick: DateTime<Utc>, run_id: String, pipeline: Pipeline) {
        let tags = BTreeMap::from([
            ("trigger".to_string(), "schedule".to_string()),
            ("scheduled_time".to_string(), tick.to_rfc3339()),
        ]);
        self.start_run_tagged(run_id, pipeline, tags);
    }

    fn start_run_tagged(
        &mut self,
        run_id: String,
        pipeline: Pipeline,
        tags: BTreeMap<String, String>,
    ) {
        let token = CancellationToken::new();
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id.clone(), token.clone());
        let options = RunOptions {
            cancel: token,
            run_id: Some(run_id.clone()),
            tags,
            ..RunOptions::default()
        };
        let engine = self.engine.clone();
        let scheduled = self.scheduled.clone();
        let local = self.local.clone();
        let retention = self.retention.clone();
        let wake = self.trigger.as_ref().map(|t| t.wake.clone());
        self.runs.spawn(
            async move {
                let result = engine.run(pipeline, &scheduled.file, &scheduled.text, options).await;
                match result {
                    Ok(record) => info!(run_id = %record.run_id, status = record.status.as_str(), "scheduled run finished"),
                    Err(e) => warn!(run_id = %run_id, error = %e, "scheduled run could not be recorded"),
                }
                local.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id);
                if let Some(wake) = wake {
                    wake.notify_one();
                }
                if let Some(policy) = retention {
                    apply_retention(&engine, scheduled.pipeline.name.clone(), policy).await;
                }
            }
            .in_current_span(),
        );
    }

    /// Lets active runs finish within `grace`, then cancels them and waits for their records.
    async fn drain(&mut self, grace: Duration) {
        if self.runs.is_empty() {
            return;
        }
        info!(runs = self.runs.len(), grace = ?grace, "stopping: waiting for active runs");
        let finished = tokio::time::timeout(grace, async {
            while self.runs.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            let tokens: Vec<CancellationToken> = self
                .local
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            warn!(
                runs = tokens.len(),
                "grace period over: cancelling active runs"
            );
            tokens.iter().for_each(CancellationToken::cancel);
            while self.runs.join_next().await.is_some() {}
        }
    }
}

/// Prunes the runs of `pipeline` by `policy`, then its cache entries whose output is gone,
/// logging what was removed.
async fn apply_retention(engine: &Engine, pipeline: String, policy: RetentionPolicy) {
    let options = PruneOptions {
        pipeline: Some(pipeline.clone()),
        policies: BTreeMap::from([(pipeline.clone(), policy)]),
        ..PruneOptions::default()
    };
    let store = engine.store().clone();
    let pruned = match tokio::task::spawn_blocking(move || store.prune(&options)).await {
        Ok(Ok(mut report)) => {
            match engine
                .store()
                .prune_gone_outputs(engine.registry(), Some(&pipeline), false)
                .await
            {
                Ok(gone) => report.removed_entries.extend(gone),
                Err(e) => warn!(error = %e, "removing cache entries whose output is gone failed"),
            }
            Ok(Ok(report))
        }
        other => other,
    };
    match pruned {
        Ok(Ok(report)) if !report.removed.is_empty() || !report.removed_entries.is_empty() => {
            info!(
                runs = report.removed.len(),
                cache_entries = report.removed_entries.len(),
                bytes = report.bytes_freed(),
                "retention applied"
            );
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!(error = %e, "applying the retention policy failed"),
        Err(e) => warn!(error = %e, "applying the retention policy panicked"),
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
