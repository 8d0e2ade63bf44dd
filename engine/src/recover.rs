//! Runs whose engine died (`interrupted`, see [`crate::store::liveness`]): recording the
//! interruption, telling the observers, and marking a run failed instead of resuming it.
//! Resuming is [`Engine::resume`] (with [`crate::RunOptions::only_interrupted`]).
//!
//! Every operation takes the run's lock first and reads the record again under it, so two
//! processes (two schedulers, a scheduler and `runs recover`) never act twice on the same
//! interruption: the second finds the run running (lock held) or no longer interrupted.

use std::sync::Arc;

use chrono::Utc;
use tracing::{info, warn};

use crate::error::EngineError;
use crate::observer::RunObserver;
use crate::run::Engine;
use crate::spec::Pipeline;
use crate::store::liveness::note_interrupted;
use crate::store::{Event, RunHandle, RunRecord, RunStatus};

/// The reason recorded on an interrupted run marked failed.
pub fn engine_died_reason(record: &RunRecord) -> String {
    match record.last_event_at {
        Some(t) => format!(
            "engine died (last event {})",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
        None => "engine died".to_string(),
    }
}

impl Engine {
    /// Takes the lock of run `run_id`, with its pipeline when the plan can be read (secrets
    /// from the environment); `None` as pipeline means no observer can be told.
    fn lock_for_recovery(
        &self,
        run_id: &str,
    ) -> Result<(RunHandle, Option<Pipeline>), EngineError> {
        match self.store().reopen(run_id, &crate::secrets::process_env) {
            Ok((handle, pipeline)) => Ok((handle, Some(pipeline))),
            Err(EngineError::MissingSecret { source, .. }) => {
                warn!(run_id, error = %source, "observers are not told: a secret of the run is missing");
                Ok((self.store().lock_record(run_id)?, None))
            }
            Err(e) => Err(e),
        }
    }

    fn observers_of(&self, pipeline: Option<&Pipeline>) -> Vec<Arc<dyn RunObserver>> {
        pipeline.map(|p| self.observers_for(p)).unwrap_or_default()
    }

    /// Records that run `run_id`'s engine died and tells the observers (MLflow sets its run
    /// `KILLED`), once: a run already recorded as interrupted is left alone. Returns the
    /// record when the run is interrupted, `None` when it is not (running elsewhere, or over).
    pub async fn note_interrupted(&self, run_id: &str) -> Result<Option<RunRecord>, EngineError> {
        let written = self.store().load_as_written(run_id)?;
        if written.status == RunStatus::Interrupted {
            return Ok(Some(written)); // already recorded, observers told
        }
        if self.store().live_view(written).status != RunStatus::Interrupted {
            return Ok(None);
        }
        let (mut handle, pipeline) = match self.lock_for_recovery(run_id) {
            Ok(x) => x,
            Err(EngineError::Locked { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let noted = note_interrupted(&mut handle)?;
        let record = handle.record().clone();
        if record.status != RunStatus::Interrupted {
            return Ok(None);
        }
        if noted {
            info!(run_id, last_event_at = ?record.last_event_at, "run interrupted: its engine died");
            // Told under the lock, so a resume (which tells them the run started again)
            // cannot come in between.
            if let Some(p) = &pipeline {
                for o in self.observers_of(Some(p)) {
                    if let Err(e) = o.run_interrupted(handle.dir(), p, &record).await {
                        warn!(observer = o.name(), error = %e, "observer not told of the interruption");
                    }
                }
            }
        }
        Ok(Some(record))
    }

    /// Marks interrupted run `run_id` failed with `reason` (e.g. [`engine_died_reason`]) and
    /// tells the observers it ended. A run that is not interrupted is left as it is
    /// ([`EngineError::NotInterrupted`]).
    pub async fn fail_interrupted(
        &self,
        run_id: &str,
        reason: &str,
    ) -> Result<RunRecord, EngineError> {
        let status = self.store().load(run_id)?.status;
        if status != RunStatus::Interrupted {
            return Err(EngineError::NotInterrupted {
                run_id: run_id.into(),
                status: status.as_str().into(),
            });
        }
        let (mut handle, pipeline) = self.lock_for_recovery(run_id)?;
        note_interrupted(&mut handle)?;
        if handle.record().status != RunStatus::Interrupted {
            return Err(EngineError::NotInterrupted {
                run_id: run_id.into(),
                status: handle.record().status.as_str().into(),
            });
        }
        crate::orphans::stop_orphans(run_id);
        handle.append(Event::RunAbandoned {
            at: Utc::now(),
            reason: reason.to_string(),
        })?;
        let record = handle.record().clone();
        info!(run_id, reason, "interrupted run marked failed");
        if let Some(p) = &pipeline {
            for o in self.observers_of(Some(p)) {
                let outcome = o.run_finished(handle.dir(), p, &record).await;
                let tag = crate::observer::pending_tag(o.name());
                match outcome {
                    Err(e) => {
                        warn!(observer = o.name(), error = %e, "observer not told the run failed");
                        handle.tags_mut().insert(tag, e.to_string());
                    }
                    Ok(()) => {
                        handle.tags_mut().remove(&tag);
                    }
                }
            }
        }
        handle.snapshot()?;
        Ok(crate::secrets::masked(handle.record().clone()))
    }
}
