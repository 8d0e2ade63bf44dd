//! The error of the tasks that read and write Delta tables (the medallion tasks, `infer`, the
//! shard bookkeeping of [`crate::shards`]) and its mapping to the engine's [`TaskError`].
//!
//! Transient problems (I/O, object store, a concurrent commit that won the race) become
//! retryable task errors; bad params, missing inputs and bad data become config or fatal
//! errors that retrying cannot fix.

use tweetflow_delta::StorageError;
use tweetflow_delta::commit::ConflictError;
use tweetflow_engine::TaskError;

/// Everything that can go wrong in a task that reads or writes Delta tables.
#[derive(Debug, thiserror::Error)]
pub enum TableTaskError {
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
    /// Reading or writing a table failed (the storage error keeps its own source).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An input or output named by a param cannot be used (a landing folder that cannot be
    /// listed, an input that does not exist): the param and the cause.
    #[error("param `{param}`: {source}")]
    Unusable {
        /// The param naming the input.
        param: &'static str,
        /// Why it cannot be used.
        #[source]
        source: Box<TableTaskError>,
    },
}

/// Shorthand for results of the table tasks.
pub type Result<T, E = TableTaskError> = std::result::Result<T, E>;

impl TableTaskError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::io(context, source).into()
    }

    /// A delta-rs error on `table`.
    pub fn delta(table: impl Into<String>, source: deltalake::DeltaTableError) -> Self {
        StorageError::delta(table, source).into()
    }

    /// An Arrow, Parquet or kernel error with context.
    pub fn format(
        context: impl Into<String>,
        err: impl Into<tweetflow_delta::FormatError>,
    ) -> Self {
        StorageError::format(context, err).into()
    }

    /// Names the param behind a location error: a missing input, a misconfigured or an
    /// invalid location whose `location` is the value of one of `params` becomes an error of
    /// that param (a config error retrying cannot fix). The param is found by comparing the
    /// error's location with the params' values, never by reading its text.
    pub fn naming(self, params: &[(&'static str, &str)]) -> Self {
        let location = match &self {
            TableTaskError::MissingInput { location, .. }
            | TableTaskError::Storage(StorageError::Config { location, .. })
            | TableTaskError::Storage(StorageError::InvalidLocation { location, .. }) => location,
            _ => return self,
        };
        let Some(&(param, _)) = params
            .iter()
            .find(|(_, value)| !value.is_empty() && value == location)
        else {
            return self;
        };
        match self {
            TableTaskError::Storage(StorageError::Config { location, message }) => {
                TableTaskError::Param {
                    param,
                    message: format!("`{location}`: {message}"),
                }
            }
            TableTaskError::Storage(StorageError::InvalidLocation { message, .. }) => {
                TableTaskError::Param { param, message }
            }
            missing => TableTaskError::Unusable {
                param,
                source: Box::new(missing),
            },
        }
    }

    /// Whether this is a simulated crash at a failpoint.
    pub fn is_failpoint(&self) -> bool {
        matches!(self, TableTaskError::Storage(StorageError::Failpoint(_)))
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            TableTaskError::Storage(e) => e.is_retryable(),
            TableTaskError::Unusable { source, .. } => source.is_retryable(),
            _ => false,
        }
    }
}

impl ConflictError for TableTaskError {
    fn as_conflict(&self) -> Option<(&str, &str)> {
        match self {
            TableTaskError::Storage(e) => e.as_conflict(),
            _ => None,
        }
    }
}

impl From<TableTaskError> for TaskError {
    fn from(err: TableTaskError) -> Self {
        if let TableTaskError::Unusable { param, source } = err {
            // The cause's kind, its message prefixed with the param (unless it names one).
            let cause = TaskError::from(*source);
            if cause.param.is_some() {
                return cause;
            }
            return TaskError {
                message: format!("param `{param}`: {}", cause.message),
                param: Some(param.to_string()),
                ..cause
            };
        }
        let task_err = match &err {
            TableTaskError::Param { param, message } => TaskError::config(param, message),
            TableTaskError::Storage(StorageError::InvalidLocation { message, .. }) => {
                TaskError::config("table", message)
            }
            TableTaskError::Storage(StorageError::Config { location, message }) => {
                TaskError::config("table", format!("`{location}`: {message}"))
            }
            TableTaskError::Storage(StorageError::Cancelled) => return TaskError::cancelled(),
            TableTaskError::Storage(StorageError::Expectation { message }) => TaskError::new(
                tweetflow_engine::ErrorKind::Config,
                format!("expect: {message}"),
            )
            .with_param("expect"),
            _ if err.is_retryable() => TaskError::retryable(err.to_string()),
            _ => TaskError::fatal(err.to_string()),
        };
        task_err.with_source(err)
    }
}
