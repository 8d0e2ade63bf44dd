//! The overlap policy: what a tick does while a run of the same pipeline is active.

use super::*;

/// Runs of a pipeline started by this process, with their cancel tokens.
pub type LocalRuns = Mutex<HashMap<String, CancellationToken>>;

/// The outcome of an overlap check.
#[derive(Debug, PartialEq, Eq)]
pub enum OverlapDecision {
    /// Start the run.
    Start,
    /// Do not start it, by policy.
    Skip(String),
    /// Do not start it: its deadline passed while waiting.
    Missed(String),
    /// Shutdown came while waiting.
    Shutdown,
}

fn active(store: &RunStore, pipeline: &str, local: &LocalRuns) -> Vec<String> {
    let mut ids = store.active_runs(pipeline);
    ids.extend(
        local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned(),
    );
    ids.sort();
    ids.dedup();
    ids
}

/// Applies `overlap` to a new run of `pipeline` (scheduled or started by hand): waits,
/// cancels or refuses as the policy says.
pub async fn resolve_overlap(
    store: &RunStore,
    pipeline: &str,
    overlap: Overlap,
    local: &LocalRuns,
    clock: &dyn Clock,
    deadline: Option<DateTime<Utc>>,
    shutdown: &CancellationToken,
) -> OverlapDecision {
    let running = active(store, pipeline, local);
    if running.is_empty() || overlap == Overlap::Allow {
        return OverlapDecision::Start;
    }
    match overlap {
        Overlap::Allow => OverlapDecision::Start,
        Overlap::Skip => OverlapDecision::Skip(format!(
            "run {} is still active (overlap: skip)",
            running.join(", ")
        )),
        Overlap::Queue | Overlap::CancelRunning => {
            if overlap == Overlap::CancelRunning {
                for run_id in &running {
                    let token = local
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(run_id)
                        .cloned();
                    match token {
                        Some(t) => t.cancel(),
                        None => {
                            if let Err(e) = store.request_cancel(run_id) {
                                warn!(run_id = %run_id, error = %e, "cannot request cancellation");
                            }
                        }
                    }
                    info!(run_id = %run_id, "cancelling the active run (overlap: cancel_running)");
                }
            }
            loop {
                if active(store, pipeline, local).is_empty() {
                    return OverlapDecision::Start;
                }
                if let Some(d) = deadline
                    && clock.now() > d
                {
                    return OverlapDecision::Missed(
                        "still queued behind an active run at its start_deadline".into(),
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return OverlapDecision::Shutdown,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}
