//! The error type of the `sql` task and its mapping to the engine's [`TaskError`].

use tweetflow_delta::StorageError;
use tweetflow_delta::commit::ConflictError;
use tweetflow_engine::TaskError;

use crate::table_error::TableTaskError;

/// Everything that can go wrong in a `sql` run.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// A param is invalid (names the param): a configuration error.
    #[error("param `{param}`: {message}")]
    Param {
        /// The offending param.
        param: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The query does not parse or plan (DataFusion's message, with its position): a
    /// configuration error.
    #[error("param `query`: {0}")]
    Query(String),
    /// The query's columns do not fit the existing target table (names the columns).
    #[error("param `table`: {0}")]
    Mismatch(String),
    /// A table named in `tables` does not exist (an upstream task may create it).
    #[error("param `tables`: table `{alias}` at `{location}` does not exist")]
    MissingInput {
        /// Its name in the query.
        alias: String,
        /// Its location.
        location: String,
    },
    /// Executing the query failed.
    #[error("running the query: {0}")]
    Execution(#[source] Box<deltalake::datafusion::error::DataFusionError>),
    /// Reading or writing a table failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Shorthand for results of the `sql` task.
pub type SqlResult<T> = std::result::Result<T, SqlError>;

impl From<deltalake::datafusion::error::DataFusionError> for SqlError {
    fn from(e: deltalake::datafusion::error::DataFusionError) -> Self {
        SqlError::Execution(Box::new(e))
    }
}

impl ConflictError for SqlError {
    fn as_conflict(&self) -> Option<(&str, &str)> {
        match self {
            SqlError::Storage(e) => e.as_conflict(),
            _ => None,
        }
    }
}

impl From<SqlError> for TaskError {
    fn from(err: SqlError) -> Self {
        match err {
            SqlError::Param { param, message } => TaskError::config(param, message),
            SqlError::Query(m) => TaskError::config("query", m),
            SqlError::Mismatch(m) => TaskError::config("table", m),
            SqlError::MissingInput { .. } => TaskError::fatal(err.to_string()),
            SqlError::Execution(e) => {
                // Resources (memory, I/O) may be transient; a plan that fails on data is not.
                let text = e.to_string();
                if matches!(
                    *e,
                    deltalake::datafusion::error::DataFusionError::IoError(_)
                        | deltalake::datafusion::error::DataFusionError::ObjectStore(_)
                        | deltalake::datafusion::error::DataFusionError::ResourcesExhausted(_)
                ) {
                    TaskError::retryable(format!("running the query: {text}"))
                } else {
                    TaskError::fatal(format!("running the query: {text}"))
                }
            }
            SqlError::Storage(e) => TableTaskError::from(e).naming(&[]).into(),
        }
    }
}
