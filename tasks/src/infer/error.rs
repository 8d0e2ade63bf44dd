//! The error type of `infer` and its mapping to the engine's [`TaskError`] kinds.

use crate::table_error::TableTaskError;
use tweetflow_delta::commit::ConflictError;
use tweetflow_engine::TaskError;
use tweetflow_model::{ErrorClass, ModelError};

/// Errors of `infer`: the Delta side, the model side, or the registry client configuration.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// Delta tables, Arrow, I/O, failpoints, cancellation.
    #[error(transparent)]
    Delta(#[from] TableTaskError),
    /// Resolving, loading or running the model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The MLflow client could not be configured (tracking URI, credentials).
    #[error("model registry client: {0}")]
    Client(#[source] tweetflow_mlflow::Error),
    /// A blocking worker thread (the classifier load) panicked or was cancelled.
    #[error("inference worker failed: {0}")]
    Worker(#[source] tokio::task::JoinError),
}

impl InferError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            InferError::Delta(e) => e.is_retryable(),
            InferError::Model(e) => e.class() == ErrorClass::Retryable,
            InferError::Client(_) | InferError::Worker(_) => false,
        }
    }
}

impl From<InferError> for TaskError {
    fn from(err: InferError) -> Self {
        match err {
            InferError::Delta(e) => e.into(),
            InferError::Model(e) => {
                let task_err = match e.class() {
                    ErrorClass::Retryable => TaskError::retryable(e.to_string()),
                    // A broken model directory (missing or corrupt file, manifest mismatch) is
                    // the fault of what the `model` param names.
                    ErrorClass::Fatal
                        if matches!(
                            e,
                            ModelError::MissingFile { .. }
                                | ModelError::Manifest { .. }
                                | ModelError::InvalidModel { .. }
                        ) =>
                    {
                        TaskError::fatal(format!("param `model`: {e}")).with_param("model")
                    }
                    ErrorClass::Fatal => TaskError::fatal(e.to_string()),
                    ErrorClass::Config => TaskError::config("model", &e),
                };
                task_err.with_source(e)
            }
            InferError::Client(e) => TaskError::config("tracking_uri", &e).with_source(e),
            InferError::Worker(_) => {
                let message = err.to_string();
                TaskError::fatal(message).with_source(err)
            }
        }
    }
}

impl ConflictError for InferError {
    fn as_conflict(&self) -> Option<(&str, &str)> {
        match self {
            InferError::Delta(e) => e.as_conflict(),
            _ => None,
        }
    }
}

impl From<tweetflow_delta::StorageError> for InferError {
    fn from(err: tweetflow_delta::StorageError) -> Self {
        InferError::Delta(err.into())
    }
}

/// Shorthand for results of `infer`.
pub type InferResult<T> = std::result::Result<T, InferError>;
