//! The crate's error type. Every variant says whether repeating the operation may succeed
//! ([`ModelError::class`]).

use std::path::PathBuf;

/// How a caller (e.g. a workflow task) should treat an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Another attempt may succeed (the model registry was unreachable, a server error).
    Retryable,
    /// The same input fails again: a broken model directory, an inference failure.
    Fatal,
    /// The configuration is wrong (labels mapping, model source, ONNX Runtime location):
    /// fix it and run again.
    Config,
}

/// Everything that can go wrong when locating the runtime, loading, running, resolving or
/// registering a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The ONNX Runtime shared library could not be found or loaded. Config (not retryable):
    /// the message names every place looked and the command that fixes it.
    #[error("{0}")]
    Runtime(String),
    /// A file of the model directory is missing. Fatal (not retryable).
    #[error("model directory {dir}: missing file {file}{hint}")]
    MissingFile {
        /// The model directory.
        dir: PathBuf,
        /// The missing file, relative to the directory.
        file: String,
        /// Extra explanation (may be empty).
        hint: String,
    },
    /// `manifest.json` is malformed, or a file does not match its SHA-256 / size. Fatal.
    #[error("model directory {dir}: {message}")]
    Manifest {
        /// The model directory.
        dir: PathBuf,
        /// What is wrong, naming the file.
        message: String,
    },
    /// A model file (config.json, tokenizer.json, model.onnx) cannot be read or does not
    /// follow the model directory contract (e.g. the graph lacks `attention_mask`). Fatal.
    #[error("{path}: {message}")]
    InvalidModel {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The labels cannot be mapped to negative / neutral / positive, or another option is
    /// wrong. Config (not retryable).
    #[error("model labels: {0}")]
    Labels(String),
    /// A model source (`models:/...` URI or directory) that cannot be parsed, or an invalid
    /// argument. Config (not retryable).
    #[error("invalid {what}: {message}")]
    InvalidInput {
        /// What was invalid (e.g. "model source").
        what: String,
        /// Why.
        message: String,
    },
    /// ONNX Runtime failed while running the model, or answered an unexpected shape. Fatal.
    #[error("inference failed ({model}): {message}")]
    Inference {
        /// The model file.
        model: PathBuf,
        /// The runtime's message.
        message: String,
    },
    /// The MLflow model registry failed. Retryable when the server was unreachable, timed
    /// out or answered 429/5xx ([`tweetflow_mlflow::Error::is_retryable`]), else fatal.
    #[error("model registry: {context}: {source}")]
    Registry {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: tweetflow_mlflow::Error,
    },
    /// The blocking thread that loads or runs the classifier failed (panicked or was
    /// cancelled). Fatal.
    #[error("inference worker failed: {0}")]
    Worker(String),
    /// A local file system error (model cache, temp directories). Fatal.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ModelError {
    /// How to treat the error: retryable, fatal or a configuration error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ModelError::Runtime(_) | ModelError::Labels(_) | ModelError::InvalidInput { .. } => {
                ErrorClass::Config
            }
            ModelError::Registry { source, .. } if source.is_retryable() => ErrorClass::Retryable,
            ModelError::Registry { .. }
            | ModelError::MissingFile { .. }
            | ModelError::Manifest { .. }
            | ModelError::InvalidModel { .. }
            | ModelError::Inference { .. }
            | ModelError::Worker(_)
            | ModelError::Io { .. } => ErrorClass::Fatal,
        }
    }

    /// True when another attempt may succeed (see [`ErrorClass::Retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ModelError {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid_model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ModelError::InvalidModel {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn registry(context: impl Into<String>, source: tweetflow_mlflow::Error) -> Self {
        ModelError::Registry {
            context: context.into(),
            source,
        }
    }
}

/// Result alias of the crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
