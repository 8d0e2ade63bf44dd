//! What the executor's spans say when they end (status, rows, error: attributes of the
//! exported trace spans), and the run's trace context kept in its directory so that a resumed
//! run links to its first execution.

use std::path::Path;

use tracing::Span;

use super::Outcome;
use crate::store::{RunStatus, TaskStatus};
use crate::task::{TaskError, TaskOutput};
use crate::telemetry::context;

/// The file in a run's directory that holds the `traceparent` of its first execution.
pub(super) const TRACE_FILE: &str = "traceparent";

/// Keeps the trace context of a run's first execution in `run_dir`; a resumed run's span
/// (marked `resumed`) links to it instead. Does nothing else when traces are not exported.
pub(super) fn mark_run(span: &Span, run_dir: &Path, resumed: bool) {
    let path = run_dir.join(TRACE_FILE);
    if resumed {
        span.record("resumed", true);
    }
    if resumed && let Ok(first) = std::fs::read_to_string(&path) {
        context::link_to(span, &first);
        return;
    }
    if let Ok(outer) = std::env::var(context::TRACEPARENT_ENV) {
        // Started inside a trace (a CI job, a `command` task of another run): continue it.
        context::continue_trace(span, &outer);
    }
    if let Some(traceparent) = context::traceparent(span) {
        let _ = std::fs::write(&path, traceparent);
    }
}

/// Records how the run ended on its span.
pub(super) fn end_run(span: &Span, status: RunStatus) {
    span.record("status", status.as_str());
    if status == RunStatus::Failed {
        span.record("otel.status_code", "ERROR");
    }
}

/// Records how a task ended on its span: status, rows written, error.
pub(super) fn end_task(span: &Span, outcome: &Outcome, error: &Option<TaskError>) {
    span.record("status", outcome.status.as_str());
    if let Some(rows) = outcome.output.as_ref().and_then(rows) {
        span.record("rows", i64::try_from(rows).unwrap_or(i64::MAX));
    }
    if let Some(e) = error {
        span.record("error", e.message.as_str());
    }
    if outcome.status == TaskStatus::Failed {
        span.record("otel.status_code", "ERROR");
    }
}

/// Records how an attempt ended on its span.
pub(super) fn end_attempt(span: &Span, result: &Result<TaskOutput, TaskError>) {
    match result {
        Ok(_) => {
            span.record("status", "succeeded");
        }
        Err(e) => {
            span.record("status", "failed");
            span.record("error", e.message.as_str());
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// The rows a task's output says it wrote.
fn rows(output: &TaskOutput) -> Option<u64> {
    output
        .values
        .get("rows")
        .and_then(serde_json::Value::as_u64)
}
