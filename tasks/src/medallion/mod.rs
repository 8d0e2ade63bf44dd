//! The medallion Delta Lake tasks, on the storage helpers of `tweetflow-delta`:
//!
//! ```text
//!  Sentiment140 CSV ──replay──▶ landing/*.jsonl ──ingest──▶ bronze ──clean──▶ silver ──aggregate──▶ mentions
//!                                                      │                │
//!                                                      ▼                ▼
//!                                              bronze_quarantine  silver_quarantine
//! ```
//!
//! Tasks: [`replay::ReplayTask`], [`ingest::IngestTask`], [`clean::CleanTask`],
//! [`aggregate::AggregateTask`], [`profile::ProfileTask`], [`maintenance::OptimizeTask`],
//! [`maintenance::VacuumTask`], [`maintenance::ResetTask`]. The CLI calls [`replay::replay`], [`maintenance::optimize`],
//! [`maintenance::vacuum`], [`maintenance::reset`], [`maintenance::table_info`] and
//! [`bench::bench_medallion`].
//!
//! Exactly-once writes follow the pattern of [`tweetflow_delta::commit`]: the application
//! transaction recorded in the target table's log says what was consumed, and it is checked
//! again just before the commit that advances it.

pub mod aggregate;
pub mod clean;
pub mod ingest;
mod log_summary;
pub mod maintenance;
pub mod profile;
pub mod replay;
pub(crate) mod table_shape;
pub(crate) mod tables;

pub use tweetflow_tweet::tweet_id;

use tweetflow_delta::{WriteControl, table};
use tweetflow_engine::{TaskContext, TaskError, TaskOutput};

use crate::table_error::TableTaskError;

/// Failpoints and cancellation of a task attempt: the context's cancellation and the
/// failpoint named by [`tweetflow_delta::FAILPOINT_ENV`].
pub fn write_control(ctx: &TaskContext) -> WriteControl {
    WriteControl::from_env(ctx.cancel.clone())
}

/// Whether the table named in a cached output still exists at the version the output names
/// (its `table_version`).
pub async fn output_table_still_valid(location: &str, output: &TaskOutput) -> bool {
    match output.get("table_version").and_then(|v| v.as_i64()) {
        Some(expected) => table::is_at_version(location, expected).await,
        None => false,
    }
}

/// The output of a task that wrote `table`: the fields of its summary, fingerprinted by the
/// table's URL and the version it left the table at (a downstream cache key changes exactly
/// when the table does).
pub(crate) fn table_output(
    summary: &impl serde::Serialize,
    table: &str,
    version: i64,
) -> std::result::Result<TaskOutput, TaskError> {
    let url = table::table_url(table).map_err(TableTaskError::from)?;
    Ok(TaskOutput::from_summary(summary)?.with_fingerprint(format!("{url}@{version}")))
}
