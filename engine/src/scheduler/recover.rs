//! Runs of the scheduled pipelines whose engine died (`interrupted`): the daemon resumes them
//! (`on_interrupted: resume`, at most `max_resumes` times per run) or marks them failed
//! (`on_interrupted: fail`, or once the resumes are used up) at start-up, before firing new
//! ticks, and whenever it finds one later (every [`RECOVER_EVERY`]).
//!
//! A run being resumed is one of the daemon's runs: the overlap policy counts it as active.
//! Each resume takes the run's lock and checks under it that the run is still interrupted
//! ([`crate::RunOptions::only_interrupted`]), so two daemons (or a daemon and `runs recover`)
//! never resume the same interruption twice.

use super::*;
use crate::recover::engine_died_reason;
use crate::spec::OnInterrupted;
use crate::store::RunRecord;

/// How often the daemon looks for interrupted runs of its pipelines between ticks.
pub const RECOVER_EVERY: Duration = Duration::from_secs(1);

impl PipelineLoop {
    /// Resumes or fails the interrupted runs of the pipeline: every one in the run store when
    /// `full` (start-up), else those found by their active markers (cheap).
    pub(super) async fn recover_interrupted(&mut self, full: bool) -> Result<(), SchedulerError> {
        let store = self.engine.store().clone();
        let name = self.name().to_string();
        let found: Vec<RunRecord> = if full {
            tokio::task::spawn_blocking(move || store.interrupted_runs(Some(&name)))
                .await
                .map_err(|e| EngineError::Corrupt {
                    path: self.engine.store().root().to_path_buf(),
                    message: format!("listing the runs panicked: {e}"),
                })??
        } else {
            store.interrupted_marked(&name)
        };
        for record in found {
            let known = self
                .local
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&record.run_id);
            if known {
                continue;
            }
            let resumes = record.resumed_at.len();
            let max = self.spec.max_resumes as usize;
            match self.spec.on_interrupted {
                OnInterrupted::Resume if resumes < max => self.resume_run(record),
                OnInterrupted::Resume => {
                    let reason = format!(
                        "{}; resumed {resumes} times already (max_resumes: {max})",
                        engine_died_reason(&record)
                    );
                    self.fail_run(record, reason);
                }
                OnInterrupted::Fail => {
                    let reason = engine_died_reason(&record);
                    self.fail_run(record, reason);
                }
            }
        }
        Ok(())
    }

    /// Resumes interrupted run `record` as one of the daemon's runs.
    fn resume_run(&mut self, record: RunRecord) {
        let run_id = record.run_id.clone();
        warn!(run_id = %run_id, last_event_at = ?record.last_event_at, resumes = record.resumed_at.len(), "resuming a run whose engine died");
        let token = CancellationToken::new();
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id.clone(), token.clone());
        let options = RunOptions {
            cancel: token,
            only_interrupted: true,
            ..RunOptions::default()
        };
        let engine = self.engine.clone();
        let local = self.local.clone();
        let retention = self.retention.clone();
        let pipeline = self.name().to_string();
        self.runs.spawn(
            async move {
                // Observers see the interruption (MLflow: KILLED), then the resume (RUNNING).
                if let Err(e) = engine.note_interrupted(&run_id).await {
                    warn!(run_id = %run_id, error = %e, "cannot record the interruption");
                }
                match engine.resume(&run_id, options).await {
                    Ok(record) => info!(run_id = %record.run_id, status = record.status.as_str(), "resumed run finished"),
                    Err(e @ (EngineError::NotInterrupted { .. } | EngineError::Locked { .. })) => {
                        info!(run_id = %run_id, reason = %e, "not resumed: another process has it");
                    }
                    Err(e) => warn!(run_id = %run_id, error = %e, "the interrupted run could not be resumed"),
                }
                local.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id);
                if let Some(policy) = retention {
                    apply_retention(&engine, pipeline, policy).await;
                }
            }
            .in_current_span(),
        );
    }

    /// Marks interrupted run `record` failed with `reason`.
    fn fail_run(&mut self, record: RunRecord, reason: String) {
        let run_id = record.run_id.clone();
        let token = CancellationToken::new();
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id.clone(), token);
        let engine = self.engine.clone();
        let local = self.local.clone();
        self.runs.spawn(
            async move {
                match engine.fail_interrupted(&run_id, &reason).await {
                    Ok(_) => warn!(run_id = %run_id, reason = %reason, "interrupted run marked failed"),
                    Err(e @ (EngineError::NotInterrupted { .. } | EngineError::Locked { .. })) => {
                        info!(run_id = %run_id, reason = %e, "not marked failed: another process has it");
                    }
                    Err(e) => warn!(run_id = %run_id, error = %e, "cannot mark the interrupted run failed"),
                }
                local.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id);
            }
            .in_current_span(),
        );
    }
}
