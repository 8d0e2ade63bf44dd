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
//! Exactly-once writes follow one pattern, built from the storage helpers:
//!
//! ```text
//!  table::open_table / open_or_create      the target (and the upstream table it consumes)
//!        │
//!  table::app_version                      what the target has consumed (application transaction)
//!        │
//!  incremental::new_files                  the upstream commits after it: files added as new data
//!        │
//!  table::read_file ─▶ table::writer_for   stream, transform, write Parquet (not yet visible);
//!        │                                 WriteControl: cancellation between batches, failpoints
//!  commit::commit_planned                  reload, check the recorded version has not moved,
//!        │                                 commit files + new application transaction at once
//!        ├─ ok ───────────▶ new table version
//!        └─ Conflict ─────▶ commit::Replans: plan again from the logs (bounded), else retryable
//! ```
//!
//! Errors are [`DeltaTaskError`]: the Arrow, Parquet, kernel and delta-rs errors are kept as
//! their source ([`FormatError`], [`DeltaTaskError::Delta`]).

#![warn(missing_docs)]

pub mod aggregate;
pub mod bench;
pub mod clean;
pub mod commit;
pub mod control;
pub mod error;
pub mod incremental;
pub mod ingest;
pub mod maintenance;
pub mod profile;
pub mod replay;
pub mod table;
pub mod text;

pub use error::{DeltaTaskError, FormatError, Result};

use tweetflow_engine::{Registry, TaskContext, TaskOutput};

pub use commit::CONFLICT_REPLANS;
pub use control::{FAILPOINT_ENV, WriteControl};

/// The former name of [`WriteControl`].
pub type RunOptions = WriteControl;

impl WriteControl {
    /// Control of a task attempt: the context's cancellation and the failpoint env variable.
    pub fn from_context(ctx: &TaskContext) -> Self {
        WriteControl::from_env(ctx.cancel.clone())
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
    match output.get("table_version").and_then(|v| v.as_i64()) {
        Some(expected) => table::is_at_version(location, expected).await,
        None => false,
    }
}
