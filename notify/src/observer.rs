//! The run observer that sends alerts: `retry` while the run goes on, `sla_missed` from a
//! timer started with the run, `failed` / `succeeded` / `recovered` when it ends,
//! `interrupted` when its engine is found dead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};
use tweetflow_engine::task::BoxFuture;
use tweetflow_engine::{ObserverError, RetryNotice, RunObserver};
use tweetflow_engine::{Pipeline, RunLinks, RunRecord, RunStatus, RunStore};

use crate::alert::{Alert, FailedTask, first_line};
use crate::delivery::{Delivery, DeliveryLog, DeliveryStatus, Job, deliver};
use crate::section::{AlertEvent, Channel, NotifySection, SlaSection};

/// Sends the alerts of the pipelines that have a `notify:` section.
#[derive(Default)]
pub struct Notify {
    ui_url: Option<String>,
    runs: Mutex<HashMap<String, RunState>>,
}

/// What a run has going in the background.
#[derive(Default)]
struct RunState {
    deliveries: Vec<JoinHandle<Option<Delivery>>>,
    sla: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Notify {
    /// An observer linking alerts to the run pages under `ui_url` (the web UI's address),
    /// when given.
    pub fn new(ui_url: Option<String>) -> Self {
        Notify {
            ui_url: ui_url.filter(|u| !u.trim().is_empty()),
            runs: Mutex::new(HashMap::new()),
        }
    }

    /// The UI's address from `TWEETFLOW_UI_URL`.
    pub fn ui_url_from_env() -> Option<String> {
        std::env::var("TWEETFLOW_UI_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunState>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the deliveries of `alert` (event key `event_key`) to every channel of
    /// `pipeline` that wants `event`, in the background.
    fn spawn(
        &self,
        pipeline: &Pipeline,
        run_dir: &Path,
        event: AlertEvent,
        event_key: &str,
        alert: &Alert,
    ) {
        let jobs = jobs(pipeline, run_dir, event, event_key, alert);
        if jobs.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!("no runtime to send alerts on");
            return;
        };
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| runtime.spawn(deliver(job).in_current_span()))
            .collect();
        self.state()
            .entry(alert.run_id.clone())
            .or_default()
            .deliveries
            .extend(handles);
    }

    /// Waits for every delivery of run `run_id` started so far.
    async fn drain(&self, run_id: &str) -> Vec<Delivery> {
        let mut out = Vec::new();
        loop {
            let handles = match self.state().get_mut(run_id) {
                Some(s) => std::mem::take(&mut s.deliveries),
                None => Vec::new(),
            };
            if handles.is_empty() {
                return out;
            }
            for h in handles {
                if let Ok(Some(d)) = h.await {
                    out.push(d);
                }
            }
        }
    }
}

/// The channels of `pipeline` (none without `notify:`).
pub fn channels(pipeline: &Pipeline) -> Vec<Channel> {
    pipeline
        .section::<NotifySection>()
        .map(|s| s.channels())
        .unwrap_or_default()
}

fn jobs(
    pipeline: &Pipeline,
    run_dir: &Path,
    event: AlertEvent,
    event_key: &str,
    alert: &Alert,
) -> Vec<Job> {
    channels(pipeline)
        .into_iter()
        .filter(|c| c.on.contains(&event))
        .map(|channel| Job {
            run_dir: Some(run_dir.to_path_buf()),
            channel,
            event_key: event_key.to_string(),
            alert: alert.clone(),
        })
        .collect()
}

/// Registers every channel credential with the masker, so no log or record shows it
/// (those read through `${secret.X}` already are; literal ones and `${env.X}` are now).
fn register_credentials(pipeline: &Pipeline) {
    for c in channels(pipeline) {
        for value in c.kind.credentials() {
            tweetflow_engine::secrets::register(value);
        }
    }
}

/// When `record`'s run is late by `sla`, if it has a limit that applies.
fn sla_due(pipeline: &Pipeline, sla: &SlaSection, record: &RunRecord) -> Option<DateTime<Utc>> {
    let started = record
        .resumed_at
        .last()
        .copied()
        .unwrap_or(record.created_at);
    let by_duration = sla
        .max_duration()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| started + d);
    let by_deadline = sla.deadline().and_then(|time| {
        let scheduled: DateTime<Utc> = record
            .tags
            .get("scheduled_time")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
            .with_timezone(&Utc);
        let tz: chrono_tz::Tz = pipeline
            .schedule
            .as_ref()
            .and_then(|s| s.timezone.parse().ok())
            .unwrap_or(chrono_tz::UTC);
        deadline_after(scheduled, time, tz)
    });
    match (by_duration, by_deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The first `time` of day in `tz` at or after `scheduled` (the deadline of a run scheduled
/// then).
pub fn deadline_after(
    scheduled: DateTime<Utc>,
    time: chrono::NaiveTime,
    tz: chrono_tz::Tz,
) -> Option<DateTime<Utc>> {
    let local = scheduled.with_timezone(&tz);
    for days in 0..2 {
        let date = local.date_naive() + chrono::Duration::days(days);
        let candidate = tz
            .from_local_datetime(&date.and_time(time))
            .earliest()
            .map(|d| d.with_timezone(&Utc));
        if let Some(c) = candidate
            && c >= scheduled
        {
            return Some(c);
        }
    }
    None
}

/// Whether the pipeline's run before `record` ended failed (or `record`'s own run failed
/// before it was resumed): a success now is a recovery.
fn follows_failure(run_dir: &Path, record: &RunRecord) -> bool {
    let failed = |s: &str| s == "failed";
    let log = DeliveryLog::read(run_dir);
    // The statuses recorded before this end (this end is recorded after the check).
    if log.ended.last().is_some_and(|s| failed(s)) {
        return true;
    }
    let Some(root) = run_dir.parent() else {
        return false;
    };
    let store = RunStore::new(root);
    let Ok(mut ids) = store.run_ids() else {
        return false;
    };
    ids.retain(|id| id.as_str() < record.run_id.as_str());
    ids.sort_unstable_by(|a, b| b.cmp(a));
    // The newest earlier run of the pipeline that ended; a bounded look back.
    for id in ids.iter().take(500) {
        let Ok(other) = store.load(id) else { continue };
        if other.pipeline != record.pipeline {
            continue;
        }
        match other.status {
            RunStatus::Failed => return true,
            RunStatus::Succeeded => return false,
            _ => continue,
        }
    }
    false
}

impl RunObserver for Notify {
    fn name(&self) -> &'static str {
        "notify"
    }

    fn wants(&self, pipeline: &Pipeline) -> bool {
        !channels(pipeline).is_empty()
    }

    fn run_started<'a>(
        &'a self,
        run_dir: &'a Path,
        pipeline: &'a Pipeline,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<RunLinks, ObserverError>> {
        Box::pin(async move {
            register_credentials(pipeline);
            let Some(sla) = pipeline.section::<SlaSection>() else {
                return Ok(RunLinks::new());
            };
            let Some(due) = sla_due(pipeline, &sla, record) else {
                return Ok(RunLinks::new());
            };
            let wanted = channels(pipeline)
                .iter()
                .any(|c| c.on.contains(&AlertEvent::SlaMissed));
            if !wanted {
                return Ok(RunLinks::new());
            }
            let cancel = CancellationToken::new();
            let timer = sla_timer(
                due,
                cancel.clone(),
                run_dir.to_path_buf(),
                Arc::new(pipeline.clone()),
                record.clone(),
                sla,
                self.ui_url.clone(),
            );
            let handle = tokio::spawn(timer.in_current_span());
            self.state().entry(record.run_id.clone()).or_default().sla = Some((cancel, handle));
            Ok(RunLinks::new())
        })
    }

    fn attempt_retrying(&self, pipeline: &Pipeline, notice: &RetryNotice<'_>) {
        let task = match notice.shard {
            Some(s) => format!("{}[{s}]", notice.task),
            None => notice.task.to_string(),
        };
        let Some(record) = current_record(notice.run_dir) else {
            return;
        };
        let mut alert = Alert::from_record("retry", &record, self.ui_url.as_deref());
        alert.status = RunStatus::Running.as_str().to_string();
        alert.failed_tasks = vec![FailedTask {
            task: task.clone(),
            error: first_line(&notice.error.message),
            attempts: notice.attempt,
        }];
        alert.summary = format!(
            "{}: attempt {} of {} of task `{task}` failed and is retried in {}: {}",
            pipeline.name,
            notice.attempt,
            notice.max_attempts,
            tweetflow_engine::format_duration(notice.retry_in),
            first_line(&notice.error.message)
        );
        let key = format!("retry:{task}:{}", notice.attempt);
        self.spawn(pipeline, notice.run_dir, AlertEvent::Retry, &key, &alert);
    }

    fn run_finished<'a>(
        &'a self,
        run_dir: &'a Path,
        pipeline: &'a Pipeline,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<(), ObserverError>> {
        Box::pin(async move {
            register_credentials(pipeline);
            let sla = self
                .state()
                .get_mut(&record.run_id)
                .and_then(|s| s.sla.take());
            if let Some((cancel, timer)) = sla {
                cancel.cancel();
                let _ = timer.await;
            }
            // Earlier deliveries (retries) end first: their outcome does not decide
            // `notify.pending`, only the final events' do.
            self.drain(&record.run_id).await;
            let mut events = Vec::new();
            match record.status {
                RunStatus::Failed => events.push(AlertEvent::Failed),
                RunStatus::Succeeded => {
                    events.push(AlertEvent::Succeeded);
                    if follows_failure(run_dir, record) {
                        events.push(AlertEvent::Recovered);
                    }
                }
                _ => {}
            }
            let status = record.status.as_str().to_string();
            DeliveryLog::update(run_dir, |log| log.ended.push(status));
            for event in events {
                let alert = Alert::from_record(event.as_str(), record, self.ui_url.as_deref());
                self.spawn(pipeline, run_dir, event, event.as_str(), &alert);
            }
            let done = self.drain(&record.run_id).await;
            self.state().remove(&record.run_id);
            pending_error(&done)
        })
    }

    fn run_interrupted<'a>(
        &'a self,
        run_dir: &'a Path,
        pipeline: &'a Pipeline,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<(), ObserverError>> {
        Box::pin(async move {
            register_credentials(pipeline);
            let mut alert = Alert::from_record("interrupted", record, self.ui_url.as_deref());
            alert.status = "interrupted".into();
            alert.summary = format!(
                "{}: the engine executing run {} died; the run is interrupted",
                pipeline.name, record.run_id
            );
            // One alert per interruption: a run resumed and interrupted again alerts again.
            let key = format!("interrupted:{}", record.resumed_at.len());
            self.spawn(pipeline, run_dir, AlertEvent::Interrupted, &key, &alert);
            let done = self.drain(&record.run_id).await;
            self.state().remove(&record.run_id);
            pending_error(&done)
        })
    }
}

/// The observer failure for deliveries that failed, so the run is marked `notify.pending`
/// and `--resume` tries them again.
fn pending_error(done: &[Delivery]) -> Result<(), ObserverError> {
    let failed: Vec<String> = done
        .iter()
        .filter(|d| d.status == DeliveryStatus::Failed)
        .map(|d| {
            format!(
                "{} to {}: {}",
                d.event,
                d.channel,
                d.error.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(ObserverError::retryable(format!(
            "alerts not delivered: {}",
            failed.join("; ")
        )))
    }
}

/// The record of the run in `run_dir` as it stands.
fn current_record(run_dir: &Path) -> Option<RunRecord> {
    let root = run_dir.parent()?;
    let id = run_dir.file_name()?.to_str()?;
    RunStore::new(root).load(id).ok()
}

/// Waits until `due`, then sends `sla_missed` (unless `cancel` fires first: the run ended).
async fn sla_timer(
    due: DateTime<Utc>,
    cancel: CancellationToken,
    run_dir: PathBuf,
    pipeline: Arc<Pipeline>,
    start: RunRecord,
    sla: SlaSection,
    ui_url: Option<String>,
) {
    let wait = (due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = cancel.cancelled() => return,
    }
    let record = current_record(&run_dir).unwrap_or(start);
    if record.status != RunStatus::Running {
        return;
    }
    let mut alert = Alert::from_record("sla_missed", &record, ui_url.as_deref());
    let running: Vec<&str> = record
        .ordered_tasks()
        .filter(|(_, t)| t.status == tweetflow_engine::TaskStatus::Running)
        .map(|(id, _)| id)
        .collect();
    let limit = match (&sla.max_duration, &sla.deadline) {
        (Some(d), Some(t)) => format!("max_duration {d}, deadline {t}"),
        (Some(d), None) => format!("max_duration {d}"),
        (None, Some(t)) => format!("deadline {t}"),
        (None, None) => String::new(),
    };
    alert.summary = format!(
        "{}: run {} is still going after {} ({limit}){}",
        pipeline.name,
        record.run_id,
        tweetflow_engine::human_duration(
            (Utc::now() - record.created_at)
                .to_std()
                .unwrap_or_default()
        ),
        if running.is_empty() {
            String::new()
        } else {
            format!("; running: {}", running.join(", "))
        }
    );
    info!(due = %due, "run is late");
    let jobs = jobs(
        &pipeline,
        &run_dir,
        AlertEvent::SlaMissed,
        "sla_missed",
        &alert,
    );
    for job in jobs {
        deliver(job).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_the_first_such_time_after_the_tick_in_the_zone() {
        let t = chrono::NaiveTime::from_hms_opt(7, 0, 0).unwrap();
        let tz: chrono_tz::Tz = "America/Los_Angeles".parse().unwrap();
        // 05:00 in Los Angeles (13:00 UTC in December): due 07:00 there, 15:00 UTC.
        let tick = Utc.with_ymd_and_hms(2026, 12, 7, 13, 0, 0).unwrap();
        assert_eq!(
            deadline_after(tick, t, tz).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 7, 15, 0, 0).unwrap()
        );
        // 23:00 there: the next morning.
        let tick = Utc.with_ymd_and_hms(2026, 12, 8, 7, 0, 0).unwrap();
        assert_eq!(
            deadline_after(tick, t, tz).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 8, 15, 0, 0).unwrap()
        );
    }
}
