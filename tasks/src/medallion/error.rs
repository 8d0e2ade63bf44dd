//! The error type of the medallion tasks and its mapping to the engine's [`TaskError`].
//!
//! Transient problems (I/O, object store, a concurrent commit that won the race) become
//! retryable task errors; bad params, missing inputs and bad data become config or fatal
//! errors that retrying cannot fix.

use tweetflow_delta::StorageError;
use tweetflow_delta::commit::ConflictError;
use tweetflow_engine::TaskError;

/// Everything that can go wrong in the medallion tasks.
#[derive(Debug, thiserror::Error)]
pub enum MedallionError {
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
        source: Box<MedallionError>,
    },
}

/// Shorthand for results of the medallion tasks.
pub type Result<T, E = MedallionError> = std::result::Result<T, E>;

impl MedallionError {
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

    /// Names the param behind a location error: a misconfigured or invalid location whose
    /// text is one of `params`' values becomes a [`MedallionError::Param`] of that param (a
    /// config error retrying cannot fix).
    pub fn naming(self, params: &[(&'static str, &str)]) -> Self {
        if let MedallionError::MissingInput { location, .. } = &self
            && let Some((param, _)) = params.iter().find(|(_, value)| value == location)
        {
            return MedallionError::Unusable {
                param,
                source: Box::new(self),
            };
        }
        let (location, message) = match &self {
            MedallionError::Storage(StorageError::Config { location, message }) => {
                (Some(location.as_str()), format!("`{location}`: {message}"))
            }
            MedallionError::Storage(StorageError::InvalidLocation { message }) => {
                (None, message.clone())
            }
            _ => return self,
        };
        let param = params.iter().find(|(_, value)| match location {
            Some(l) => l == *value,
            None => message.contains(&format!("`{value}`")),
        });
        match param {
            Some((param, _)) => MedallionError::Param { param, message },
            None => self,
        }
    }

    /// Whether this is a simulated crash at a failpoint.
    pub fn is_failpoint(&self) -> bool {
        matches!(self, MedallionError::Storage(StorageError::Failpoint(_)))
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            MedallionError::Storage(e) => e.is_retryable(),
            MedallionError::Unusable { source, .. } => source.is_retryable(),
            _ => false,
        }
    }
}

impl ConflictError for MedallionError {
    fn as_conflict(&self) -> Option<(&str, &str)> {
        match self {
            MedallionError::Storage(e) => e.as_conflict(),
            _ => None,
        }
    }
}

impl From<MedallionError> for TaskError {
    fn from(err: MedallionError) -> Self {
        if let MedallionError::Unusable { param, source } = err {
            // The cause's kind, its message prefixed with the param.
            let mut task_err = TaskError::from(*source);
            if !task_err.message.starts_with("param `") {
                task_err.message = format!("param `{param}`: {}", task_err.message);
            }
            return task_err;
        }
        match &err {
            MedallionError::Param { param, message } => TaskError::config(param, message),
            MedallionError::Storage(StorageError::InvalidLocation { message }) => {
                TaskError::config("table", message)
            }
            MedallionError::Storage(StorageError::Config { location, message }) => {
                TaskError::config("table", format!("`{location}`: {message}"))
            }
            MedallionError::Storage(StorageError::Cancelled) => TaskError::cancelled(),
            MedallionError::Storage(StorageError::Expectation { message }) => TaskError {
                kind: tweetflow_engine::ErrorKind::Config,
                message: format!("expect: {message}"),
            },

            _ if err.is_retryable() => TaskError::retryable(err.to_string()),
            _ => TaskError::fatal(err.to_string()),
        }
    }
}
