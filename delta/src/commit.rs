//! Exactly-once commits: the application transaction check in the commit path, and the loop
//! that plans a run again after it lost a commit race.
//!
//! A writing run reads the application transaction version its target table records, plans
//! its work after that point and writes Parquet files (not yet visible). [`commit_planned`]
//! then reloads the table, checks that the recorded version has not moved and commits the files
//! together with the new application transaction; a concurrent writer turns into a retryable
//! [`StorageError::Conflict`]. [`Replans`] decides when a run plans again from scratch
//! after that.

use deltalake::DeltaTable;
use deltalake::protocol::{DeltaOperation, SaveMode};

use crate::error::{Result, StorageError};
use crate::table::{self, CommitRequest};

/// How many times a run plans again after losing a commit race before it gives up with a
/// retryable conflict. Every lost race means another writer made progress, so concurrent
/// runs cannot livelock; the bound only caps the work of one attempt.
pub const CONFLICT_REPLANS: u32 = 50;

/// The operation of a commit that appends files.
pub fn append_op() -> DeltaOperation {
    DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    }
}

/// The operation of a commit that replaces every file of the table.
pub fn overwrite_op() -> DeltaOperation {
    DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: None,
        predicate: None,
    }
}

/// An error that can say "another writer won the commit race".
pub trait ConflictError {
    /// The table and the details when this error is a lost commit race.
    fn as_conflict(&self) -> Option<(&str, &str)>;
}

impl ConflictError for StorageError {
    fn as_conflict(&self) -> Option<(&str, &str)> {
        match self {
            StorageError::Conflict { table, message } => Some((table, message)),
            _ => None,
        }
    }
}

/// The re-plan policy of one run: after a lost commit race the run plans again from the
/// table logs, up to [`CONFLICT_REPLANS`] times; then the conflict is its error.
///
/// ```ignore
/// let mut replans = Replans::new("clean");
/// loop {
///     match attempt(params, ctl).await {
///         Err(err) if replans.again(&err) => continue,
///         other => return other,
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Replans {
    what: &'static str,
    done: u32,
}

impl Replans {
    /// The policy for a run named `what` in logs.
    pub fn new(what: &'static str) -> Self {
        Replans { what, done: 0 }
    }

    /// Whether to plan again after `err`: it is a lost commit race and the bound is not reached.
    pub fn again<E: ConflictError>(&mut self, err: &E) -> bool {
        match err.as_conflict() {
            Some((table, message)) if self.done < CONFLICT_REPLANS => {
                self.done += 1;
                tracing::info!(%table, %message, replans = self.done,
                    "{}: concurrent commit, planning again", self.what);
                true
            }
            _ => false,
        }
    }
}

/// Commits `request` if `table` still records, for the request's application transaction, the
/// version the run planned after (`None`: none recorded); otherwise a retryable
/// [`StorageError::Conflict`]. Without an application transaction it simply commits.
/// Returns the new table version.
pub async fn commit_planned(
    table: &mut DeltaTable,
    location: &str,
    planned_after: Option<i64>,
    request: CommitRequest,
) -> Result<i64> {
    if let Some(txn) = &request.txn {
        table::refresh(table, location).await?;
        let recorded = table::app_version(table, location, &txn.app_id).await?;
        if recorded != planned_after {
            let show = |v: Option<i64>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
            return Err(StorageError::Conflict {
                table: location.to_string(),
                message: format!(
                    "`{}` planned after version {} but the table records {}",
                    txn.app_id,
                    show(planned_after),
                    show(recorded)
                ),
            });
        }
    }
    table::commit(table, location, request).await
}
