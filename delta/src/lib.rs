//! # tweetflow-delta
//!
//! Delta Lake table storage helpers for tweetflow, on delta-rs (`deltalake`, with DataFusion
//! for SQL) and Arrow: open or create tables ([`table`]), read the commits a consumer has
//! not seen yet ([`incremental`]), commit exactly once with an application transaction and
//! plan again after a lost commit race ([`commit`]), failpoints and cancellation
//! ([`control`]), data-quality expectations evaluated on the rows about to be committed
//! ([`expect`]), and one error type ([`error`]). The tasks that use them live in
//! `tweetflow-tasks`.
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
//! Errors are [`StorageError`]: the Arrow, Parquet, kernel and delta-rs errors are kept as
//! their source ([`FormatError`], [`StorageError::Delta`]).

#![warn(missing_docs)]

pub mod commit;
pub mod control;
pub mod counting;
pub mod error;
pub mod expect;
pub mod folder;
pub mod incremental;
pub mod log_versions;
pub mod storage;
pub mod table;

pub use commit::CONFLICT_REPLANS;
pub use control::{FAILPOINT_ENV, WriteControl};
pub use error::{FormatError, Result, StorageError};
pub use log_versions::{LogLister, LogVersions};
