//! # tweetflow-delta
//!
//! The medallion Delta Lake tasks of tweetflow, on delta-rs (`deltalake`, without DataFusion)
//! and Arrow:
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
//! [`maintenance::VacuumTask`], [`maintenance::ResetTask`]; [`register`] adds them all to a
//! registry. The CLI calls [`replay::replay`], [`maintenance::optimize`],
//! [`maintenance::vacuum`], [`maintenance::reset`], [`maintenance::show`] and
//! [`bench::bench_medallion`].
//!
//! Exactly-once writes follow one pattern, described in [`table`]: the application
//! transaction recorded in the target table's log says what was consumed, and it is checked
//! again just before the commit that advances it.

#![warn(missing_docs)]

pub mod aggregate;
pub mod bench;
pub mod clean;
pub mod error;
pub mod ingest;
pub mod maintenance;
pub mod profile;
pub mod replay;
pub mod table;
pub mod text;

pub use error::{DeltaTaskError, Result};

use tweetflow_engine::{Registry, TaskContext, TaskOutput};

/// How many times `ingest` and `clean` plan again after losing a commit race before they give
/// up with a retryable conflict. Every lost race means another writer made progress, so
/// concurrent runs cannot livelock; the bound only caps the work of one attempt.
pub const CONFLICT_REPLANS: u32 = 50;

/// Environment variable naming a failpoint (see [`RunOptions::failpoint`]); for crash tests.
pub const FAILPOINT_ENV: &str = "TWEETFLOW_DELTA_FAILPOINT";

/// Options of one task run besides its params.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// A named point at which the run stops with [`DeltaTaskError::Failpoint`], simulating a
    /// crash: `ingest.after_write` (Parquet written, nothing committed), `ingest.after_commit`
    /// (bronze committed, quarantine not), `ingest.after_quarantine_commit`,
    /// `clean.after_write`, `clean.after_quarantine_commit`, `clean.after_commit`,
    /// `aggregate.after_write`, `aggregate.after_commit`. Append `:abort` to abort the
    /// process at that point instead of returning an error.
    pub failpoint: Option<String>,
    /// Stops the run between files and batches when cancelled.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
}

impl RunOptions {
    /// Options for a task attempt: the context's cancellation and the failpoint env variable.
    pub fn from_context(ctx: &TaskContext) -> Self {
        RunOptions {
            failpoint: std::env::var(FAILPOINT_ENV).ok().filter(|s| !s.is_empty()),
            cancel: Some(ctx.cancel.clone()),
        }
    }

    /// Options that fire `failpoint`.
    pub fn with_failpoint(name: &str) -> Self {
        RunOptions {
            failpoint: Some(name.to_string()),
            cancel: None,
        }
    }

    /// Fails when `name` is the configured failpoint; with the suffix `:abort`
    /// (`ingest.after_commit:abort`) the whole process aborts there instead, like a crash.
    pub fn failpoint(&self, name: &str) -> Result<()> {
        let Some(configured) = &self.failpoint else {
            return Ok(());
        };
        let (point, action) = configured
            .split_once(':')
            .unwrap_or((configured.as_str(), "error"));
        if point != name {
            return Ok(());
        }
        if action == "abort" {
            tracing::error!(failpoint = name, "failpoint: aborting the process");
            std::process::abort();
        }
        Err(DeltaTaskError::Failpoint(name.to_string()))
    }

    /// Fails when the run was cancelled.
    pub fn check_cancel(&self) -> Result<()> {
        match &self.cancel {
            Some(c) if c.is_cancelled() => Err(DeltaTaskError::Cancelled),
            _ => Ok(()),
        }
    }
}

/// Registers every task of this crate.
pub fn register(registry: &mut Registry) {
    registry
        .register(replay::ReplayTask)
        .register(ingest::IngestTask)
        .register(clean::CleanTask)
        .register(aggregate::AggregateTask)
        .register(profile::ProfileTask)
        .register(maintenance::OptimizeTask)
        .register(maintenance::VacuumTask)
        .register(maintenance::ResetTask);
}

/// Whether the table named in a cached output still exists at the version the output names.
pub async fn output_table_still_valid(location: &str, output: &TaskOutput) -> bool {
    let Some(expected) = output.get("table_version").and_then(|v| v.as_i64()) else {
        return false;
    };
    match table::open_table(location).await {
        Ok(Some(t)) => table::version(&t) == expected,
        Ok(None) => expected < 0,
        Err(_) => false,
    }
}
