//! Triggered runs: a pipeline with `trigger:` runs when a watched table has versions it has
//! not consumed, each version covered by exactly one successful run.
//!
//! ```text
//!  wake (a watched table changed, a run ended, or `poll` passed)
//!   ─▶ pending run? finished: succeeded → cursors = its ranges' ends; failed → its range
//!      waits for a newer version; missing (crash before it started) → start it; else wait
//!   ─▶ new versions? ─▶ min_interval ─▶ overlap policy
//!   ─▶ ranges (cursor+1 ..= latest; lost history from one full listing)
//!   ─▶ write them as pending (atomic) ─▶ start the run with ${trigger.…} filled in
//! ```
//!
//! The pending run is on disk before it starts and the cursors move only after it succeeded,
//! so a daemon killed at any point and started again finds the same run (or starts it, with
//! the same id and range): no version is skipped and none covered twice. One daemon per
//! pipeline holds its lock, so two daemons never both decide.

use std::collections::{BTreeMap, HashSet};

use tokio::sync::{Notify, watch};

use super::watched::{Observed, Watches};
use super::*;
use crate::store::{RunStatus, TableCursor, TriggerFire, TriggerState};
use crate::trigger::{
    TableVersions, TableWatcher, TriggerSpec, TriggerStart, TriggerValues, VersionRange,
};

/// The trigger part of a pipeline's loop.
pub(super) struct TriggerLoop {
    spec: TriggerSpec,
    watcher: Arc<dyn TableWatcher>,
    /// Trigger name → (location, what its poller sees).
    tables: BTreeMap<String, (String, watch::Receiver<Observed>)>,
    state: TriggerState,
    /// Woken when one of the pipeline's runs ends.
    pub(super) wake: Arc<Notify>,
    last_fire: Option<tokio::time::Instant>,
    warned: HashSet<String>,
}

/// The location key of a table (trailing `/` ignored), shared by all who watch it.
pub(super) fn table_key(location: &str) -> String {
    location.trim_end_matches('/').to_string()
}

impl TriggerLoop {
    pub(super) fn new(
        spec: TriggerSpec,
        watcher: Arc<dyn TableWatcher>,
        watches: &Watches,
        state: TriggerState,
    ) -> Self {
        let tables = spec
            .tables
            .iter()
            .filter_map(|(name, location)| {
                let key = table_key(location);
                watches
                    .subscribe(&key)
                    .map(|rx| (name.clone(), (location.clone(), rx)))
            })
            .collect();
        TriggerLoop {
            spec,
            watcher,
            tables,
            state,
            wake: Arc::new(Notify::new()),
            last_fire: None,
            warned: HashSet::new(),
        }
    }

    /// Waits until a watched table changes, a run ends, or `poll` passes.
    pub(super) async fn wait(&mut self) {
        let poll = self.spec.poll;
        let wake = self.wake.clone();
        let changes = self
            .tables
            .values_mut()
            .map(|(_, rx)| Box::pin(rx.changed()))
            .collect::<Vec<_>>();
        tokio::select! {
            _ = futures::future::select_all(changes) => {}
            _ = wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }

    /// Whether every watched table's poller has answered once.
    pub(super) fn all_answered(&self) -> bool {
        self.tables.values().all(|(_, rx)| rx.borrow().answered())
    }

    /// The watched locations.
    pub(super) fn locations(&self) -> Vec<&str> {
        self.tables.values().map(|(l, _)| l.as_str()).collect()
    }

    /// Whether a triggered run is pending.
    pub(super) fn has_pending(&self) -> bool {
        self.state.pending.is_some()
    }

    fn warn_once(&mut self, key: String, message: impl FnOnce()) {
        if self.warned.insert(key) {
            message();
        }
    }
}

/// The tags of a triggered run: what started it and the ranges it covers.
pub(super) fn trigger_tags(ranges: &TriggerValues) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([("trigger".to_string(), "table".to_string())]);
    for (name, r) in ranges {
        let mut text = format!("versions {} of {}", r.label(), r.table);
        if let Some((a, b)) = r.lost {
            text.push_str(&format!(" (versions {a}..{b} were gone before any run)"));
        }
        tags.insert(format!("trigger.{name}"), text);
    }
    tags
}

impl PipelineLoop {
    /// Settles the pending run if it finished, then starts a run for new versions.
    pub(super) async fn poll_trigger(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<(), SchedulerError> {
        if self.trigger.is_none() {
            return Ok(());
        }
        if !self.settle_pending()? {
            return Ok(());
        }
        let Some(ranges) = self.due_ranges().await? else {
            return Ok(());
        };
        let overlap = self
            .trigger
            .as_ref()
            .map_or(Overlap::Skip, |t| t.spec.overlap);
        let store = self.engine.store().clone();
        let decision = resolve_overlap(
            &store,
            self.name(),
            overlap,
            &self.local,
            &*self.clock,
            None,
            shutdown,
        )
        .await;
        match decision {
            OverlapDecision::Start => {}
            OverlapDecision::Skip(reason) | OverlapDecision::Missed(reason) => {
                // The range stays: the next wake takes it (plus anything newer).
                if let Some(t) = self.trigger.as_mut() {
                    t.warn_once(format!("overlap {reason}"), || {
                        info!(reason = %reason, "new table versions wait: another run is active")
                    });
                }
                return Ok(());
            }
            OverlapDecision::Shutdown => return Ok(()),
        }
        let ranges = self.with_lost(ranges).await;
        let pipeline = match self
            .scheduled
            .pipeline
            .with_secrets_from(&process_env)
            .and_then(|p| p.with_trigger(&ranges))
        {
            Ok(p) => p,
            Err(e) => {
                if let Some(t) = self.trigger.as_mut() {
                    let message = e.to_string();
                    t.warn_once(
                        format!("start {message}"),
                        || warn!(error = %message, "the triggered run cannot start"),
                    );
                }
                return Ok(());
            }
        };
        let run_id = RunStore::new_run_id();
        let fire = TriggerFire {
            run_id: run_id.clone(),
            decided_at: self.clock.now(),
            ranges: ranges.clone(),
            outcome: None,
        };
        let Some(t) = self.trigger.as_mut() else {
            return Ok(());
        };
        t.state.pending = Some(fire);
        t.last_fire = Some(tokio::time::Instant::now());
        t.warned.clear();
        self.save_trigger()?;
        for (name, r) in &ranges {
            info!(run_id = %run_id, trigger = %name, table = %r.table, versions = %r.label(), "table versions trigger a run");
        }
        self.start_run_tagged(run_id, pipeline, trigger_tags(&ranges));
        Ok(())
    }

    fn save_trigger(&self) -> Result<(), SchedulerError> {
        if let Some(t) = &self.trigger {
            self.engine
                .store()
                .save_trigger_state(self.name(), &t.state)?;
        }
        Ok(())
    }

    /// Looks at the pending run: settles it when it finished (true: a new run may start),
    /// starts it when it never started (a crash between the decision and the start).
    pub(super) fn settle_pending(&mut self) -> Result<bool, SchedulerError> {
        let Some(fire) = self.trigger.as_ref().and_then(|t| t.state.pending.clone()) else {
            return Ok(true);
        };
        let store = self.engine.store().clone();
        let ours = self
            .local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&fire.run_id);
        if ours {
            return Ok(false);
        }
        if !store.run_dir(&fire.run_id).join("run.json").exists() {
            warn!(run_id = %fire.run_id, "a triggered run was decided but never started: starting it now");
            match self
                .scheduled
                .pipeline
                .with_secrets_from(&process_env)
                .and_then(|p| p.with_trigger(&fire.ranges))
            {
                Ok(pipeline) => {
                    self.start_run_tagged(fire.run_id.clone(), pipeline, trigger_tags(&fire.ranges))
                }
                Err(e) => {
                    warn!(run_id = %fire.run_id, error = %e, "the triggered run cannot start")
                }
            }
            return Ok(false);
        }
        let status = match store.load(&fire.run_id) {
            Ok(record) => record.status,
            Err(e) => {
                warn!(run_id = %fire.run_id, error = %e, "cannot read the triggered run");
                return Ok(false);
            }
        };
        let Some(t) = self.trigger.as_mut() else {
            return Ok(true);
        };
        match status {
            // Running here or elsewhere, or interrupted (resumed or failed by the recovery).
            RunStatus::Running | RunStatus::Interrupted => return Ok(false),
            RunStatus::Succeeded => {
                for (name, r) in &fire.ranges {
                    if r.is_empty() {
                        continue;
                    }
                    let cursor = t.state.tables.entry(name.clone()).or_default();
                    cursor.table = r.table.clone();
                    cursor.consumed = Some(r.to);
                    if t.state.failed_to.get(name).is_some_and(|f| *f <= r.to) {
                        t.state.failed_to.remove(name);
                    }
                }
                info!(run_id = %fire.run_id, "the triggered run succeeded: its versions are consumed");
            }
            RunStatus::Failed | RunStatus::Cancelled => {
                for (name, r) in &fire.ranges {
                    if !r.is_empty() {
                        t.state.failed_to.insert(name.clone(), r.to);
                    }
                }
                warn!(run_id = %fire.run_id, status = status.as_str(), "the triggered run did not succeed: its versions go to the next run, when a newer version comes");
            }
        }
        let mut done = fire;
        done.outcome = Some(status.as_str().to_string());
        t.state.pending = None;
        t.state.history.push(done);
        let excess = t.state.history.len().saturating_sub(HISTORY);
        t.state.history.drain(..excess);
        self.save_trigger()?;
        Ok(true)
    }

    /// The ranges of a run due now: `None` when no table has unconsumed versions (or a
    /// failed range waits for a newer one, or `min_interval` has not passed).
    async fn due_ranges(&mut self) -> Result<Option<TriggerValues>, SchedulerError> {
        let Some(t) = self.trigger.as_mut() else {
            return Ok(None);
        };
        let mut ranges = TriggerValues::new();
        let mut due = false;
        let mut changed_state = false;
        let names: Vec<String> = t.tables.keys().cloned().collect();
        for name in names {
            let Some((location, rx)) = t.tables.get(&name) else {
                continue;
            };
            let location = location.clone();
            let observed = rx.borrow().clone();
            let cursor = t.state.tables.entry(name.clone()).or_default();
            if cursor.table != location {
                if !cursor.table.is_empty() {
                    warn!(trigger = %name, was = %cursor.table, now = %location, "the trigger table's location changed: starting over");
                }
                *cursor = TableCursor {
                    table: location.clone(),
                    consumed: None,
                };
                t.state.failed_to.remove(&name);
                changed_state = true;
            }
            let latest = observed.latest();
            if let (Some(latest), Some(consumed)) = (latest, cursor.consumed)
                && latest < consumed
            {
                warn!(trigger = %name, table = %location, latest, consumed, "the table's versions went back (replaced?): starting over at version 0");
                cursor.consumed = None;
                t.state.failed_to.remove(&name);
                changed_state = true;
            }
            if t.spec.start == TriggerStart::Latest
                && cursor.consumed.is_none()
                && let Some(latest) = latest
            {
                info!(trigger = %name, table = %location, latest, "start: latest: versions after this one start runs");
                cursor.consumed = Some(latest);
                changed_state = true;
            }
            let from = cursor.consumed.map_or(0, |c| c + 1);
            let to = latest.unwrap_or(from - 1);
            let waits_for_newer = t.state.failed_to.get(&name).is_some_and(|f| to <= *f);
            if to >= from && !waits_for_newer {
                due = true;
            }
            ranges.insert(
                name,
                VersionRange {
                    table: location,
                    from,
                    to,
                    lost: None,
                },
            );
        }
        if changed_state {
            self.save_trigger()?;
        }
        let Some(t) = self.trigger.as_ref() else {
            return Ok(None);
        };
        if !due {
            return Ok(None);
        }
        if let Some(last) = t.last_fire
            && last.elapsed() < t.spec.min_interval
        {
            return Ok(None);
        }
        Ok(Some(ranges))
    }

    /// Fills in the versions of each range that are gone (vacuumed or log cleaned up): one full
    /// listing per table with new versions.
    async fn with_lost(&mut self, mut ranges: TriggerValues) -> TriggerValues {
        let Some(t) = self.trigger.as_mut() else {
            return ranges;
        };
        for (name, r) in ranges.iter_mut() {
            if r.is_empty() {
                continue;
            }
            match t.watcher.versions(&r.table, None).await {
                Ok(TableVersions::Versions {
                    earliest: Some(earliest),
                    ..
                }) if earliest > r.from => {
                    r.lost = Some((r.from, (earliest - 1).min(r.to)));
                    warn!(trigger = %name, table = %r.table, lost_from = r.from, lost_to = earliest - 1, "versions of the table were gone before any run covered them (vacuumed or log cleaned up): the run is told in ${{trigger.{}.lost}}", name);
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(trigger = %name, error = %e, "cannot check the table's earliest version")
                }
            }
        }
        ranges
    }
}
