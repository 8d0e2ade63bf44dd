//! The crate's error type and its mapping to the engine's [`TaskError`].
//!
//! Transient problems (I/O, object store, a concurrent commit that won the race) become
//! retryable task errors; bad params, missing inputs and bad data become config or fatal
//! errors that retrying cannot fix.

use tweetflow_engine::TaskError;

/// Everything that can go wrong in the Delta tasks.
#[derive(Debug, thiserror::Error)]
pub enum DeltaTaskError {
    /// A param is invalid (names the param).
    #[error("param `{param}`: {message}")]
    Param {
        /// The offending param.
        param: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// An input (landing folder, upstream table, CSV file) does not exist.
    #[error("{what} `{location}` does not exist")]
    MissingInput {
        /// What kind of input (e.g. "landing folder").
        what: &'static str,
        /// Where it was looked for.
        location: String,
    },
    /// Input data that the task refuses to handle (e.g. an unknown field with
    /// `schema_evolution: fail`).
    #[error("{0}")]
    Data(String),
    /// A refused operation (e.g. `reset` without `confirm: true`).
    #[error("{0}")]
    Refused(String),
    /// Another writer committed to the table while this attempt was running; retrying
    /// re-plans from the table's recorded progress.
    #[error("concurrent commit on `{table}`: {message}")]
    Conflict {
        /// The table.
        table: String,
        /// Details.
        message: String,
    },
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A Delta Lake operation failed.
    #[error("delta table `{table}`: {source}")]
    Delta {
        /// The table location.
        table: String,
        /// The delta-rs error.
        #[source]
        source: deltalake::DeltaTableError,
    },
    /// Arrow, Parquet or the Delta kernel failed on data or a schema the task produced or read.
    #[error("{context}: {source}")]
    Format {
        /// What was being done.
        context: String,
        /// The library's error.
        #[source]
        source: FormatError,
    },
    /// A commit named in a table's history is missing from its log (expired log files).
    #[error("table `{table}`: commit {version} is missing from the log (expired log files?)")]
    MissingCommit {
        /// The table location.
        table: String,
        /// The missing commit.
        version: i64,
    },
    /// A test-only failpoint fired (simulates a crash at a named point).
    #[error("failpoint `{0}` fired")]
    Failpoint(String),
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// The library error behind [`DeltaTaskError::Format`], kept as it was raised.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// An Arrow error (casts, batches, schema conversion).
    #[error(transparent)]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    /// A Parquet error (reading or writing files).
    #[error(transparent)]
    Parquet(#[from] deltalake::parquet::errors::ParquetError),
    /// A Delta kernel error (schemas).
    #[error(transparent)]
    Kernel(#[from] deltalake::kernel::Error),
    /// A delta-rs error raised while handling data rather than a table.
    #[error(transparent)]
    Delta(#[from] deltalake::DeltaTableError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = DeltaTaskError> = std::result::Result<T, E>;

impl DeltaTaskError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DeltaTaskError::Io {
            context: context.into(),
            source,
        }
    }

    /// A delta-rs error on `table`.
    pub fn delta(table: impl Into<String>, source: deltalake::DeltaTableError) -> Self {
        DeltaTaskError::Delta {
            table: table.into(),
            source,
        }
    }

    /// An Arrow, Parquet or kernel error with context.
    pub fn format(context: impl Into<String>, err: impl Into<FormatError>) -> Self {
        DeltaTaskError::Format {
            context: context.into(),
            source: err.into(),
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeltaTaskError::Conflict { .. } => true,
            DeltaTaskError::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::InvalidInput
            ),
            DeltaTaskError::Delta { source, .. } => delta_error_is_transient(source),
            DeltaTaskError::Failpoint(_) => true,
            _ => false,
        }
    }
}

fn delta_error_is_transient(err: &deltalake::DeltaTableError) -> bool {
    use deltalake::DeltaTableError as E;
    match err {
        E::ObjectStore { source } => !matches!(
            source,
            deltalake::ObjectStoreError::NotFound { .. }
                | deltalake::ObjectStoreError::PermissionDenied { .. }
                | deltalake::ObjectStoreError::Unauthenticated { .. }
                | deltalake::ObjectStoreError::InvalidPath { .. }
        ),
        E::Io { .. } | E::VersionAlreadyExists(_) | E::Transaction { .. } => true,
        _ => false,
    }
}

impl From<DeltaTaskError> for TaskError {
    fn from(err: DeltaTaskError) -> Self {
        match &err {
            DeltaTaskError::Param { param, message } => TaskError::config(param, message),
            DeltaTaskError::Cancelled => TaskError::cancelled(),
            _ if err.is_retryable() => TaskError::retryable(err.to_string()),
            _ => TaskError::fatal(err.to_string()),
        }
    }
}
