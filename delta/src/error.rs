//! The storage error type: what can go wrong opening, reading and committing Delta tables.
//!
//! The errors of Arrow, Parquet, the Delta kernel, delta-rs and the file system are kept as
//! their `source`. [`StorageError::is_retryable`] tells transient problems (I/O, object store,
//! a concurrent commit that won the race, a simulated crash) from the ones retrying cannot fix.

/// Everything that can go wrong in the table helpers.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A table location that is not a usable path or URL.
    #[error("param `table`: {message}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        message: String,
    },
    /// A misconfigured location: unknown bucket, missing or rejected credentials, an
    /// unreachable endpoint, an unsafe commit mode. Retrying cannot fix it.
    #[error("`{location}`: {message}")]
    Config {
        /// The location.
        location: String,
        /// The cause and the fix.
        message: String,
    },
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
        /// The delta-rs error (boxed: it is large).
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    /// Arrow, Parquet or the Delta kernel failed on data or a schema that was produced or read.
    #[error("{context}: {source}")]
    Format {
        /// What was being done.
        context: String,
        /// The library's error (boxed: it can be large).
        #[source]
        source: Box<FormatError>,
    },
    /// A commit named in a table's history is missing from its log (expired log files).
    #[error("table `{table}`: commit {version} is missing from the log (expired log files?)")]
    MissingCommit {
        /// The table location.
        table: String,
        /// The missing commit.
        version: i64,
    },
    /// A test-only failpoint fired (simulates a crash at a named point; only in builds with
    /// the `failpoints` feature).
    #[error("failpoint `{0}` fired")]
    Failpoint(String),
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// An expectation that cannot be evaluated on the written rows (unknown column, syntax,
    /// not a condition) or a quarantine table that cannot take its rows: a configuration
    /// error.
    #[error("{message}")]
    Expectation {
        /// What is wrong, naming the expectation.
        message: String,
    },
    /// Rows failed an expectation with `on_fail: fail`: the attempt stops, nothing is
    /// committed.
    #[error("expectation `{name}` failed (`{sql}`) on {failed} row(s) about to be written to `{table}`; nothing was committed; failing rows: {}", rows.join("; "))]
    ExpectationFailed {
        /// The expectation.
        name: String,
        /// Its SQL.
        sql: String,
        /// The target table.
        table: String,
        /// Failing rows in the batch that stopped the attempt.
        failed: u64,
        /// Up to 3 of them, as `{column=value, ...}`.
        rows: Vec<String>,
    },
}

/// The library error behind [`StorageError::Format`], kept as it was raised.
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
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }

    /// A delta-rs error on `table`.
    pub fn delta(table: impl Into<String>, source: deltalake::DeltaTableError) -> Self {
        StorageError::Delta {
            table: table.into(),
            source: Box::new(source),
        }
    }

    /// A delta-rs error on `table`, as [`StorageError::Config`] when it is a misconfiguration
    /// (see [`crate::storage::classify`]).
    pub fn classified(table: impl Into<String>, source: deltalake::DeltaTableError) -> Self {
        crate::storage::classify(&table.into(), source)
    }

    /// An Arrow, Parquet or kernel error with context.
    pub fn format(context: impl Into<String>, err: impl Into<FormatError>) -> Self {
        StorageError::Format {
            context: context.into(),
            source: Box::new(err.into()),
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            StorageError::Conflict { .. } | StorageError::Failpoint(_) => true,
            StorageError::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::InvalidInput
            ),
            StorageError::Delta { source, .. } => delta_error_is_transient(source),
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
