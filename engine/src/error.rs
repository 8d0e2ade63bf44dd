//! Internal errors of the engine (run store I/O, locks), kept apart from user mistakes
//! ([`crate::Diagnostics`]) and task failures ([`crate::TaskError`]).

use std::path::PathBuf;

/// A plugin's settings (a section, an executor's `executor:` settings) that do not read as
/// the plugin's settings type; the message is serde's, which names the field at fault.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SettingsError(#[from] serde_json::Error);

/// An error of the engine itself.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading or writing a file of the run store failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the engine was doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A run-store file could not be decoded.
    #[error("{path} is not a valid run-store file: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        message: String,
    },
    /// No run with this id exists in the run store.
    #[error("no run `{run_id}` in {runs_dir}")]
    RunNotFound {
        /// The id asked for.
        run_id: String,
        /// The run store searched.
        runs_dir: PathBuf,
    },
    /// Another process holds the run.
    #[error("run `{run_id}` is being executed by another process (lock {lock})")]
    Locked {
        /// The run.
        run_id: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// A secret the run needs is not in the environment.
    #[error("run `{run_id}`: {source}")]
    MissingSecret {
        /// The run.
        run_id: String,
        /// The secret.
        #[source]
        source: crate::secrets::MissingSecret,
    },
    /// A run asked to be recovered is not interrupted (its engine is alive, or it ended).
    #[error("run `{run_id}` is not interrupted: it {status}; nothing was changed")]
    NotInterrupted {
        /// The run.
        run_id: String,
        /// Its status (`running` when a live process holds it).
        status: String,
    },
    /// A run cannot be resumed as asked.
    #[error("cannot resume run `{run_id}`: {reason}")]
    NotResumable {
        /// The run.
        run_id: String,
        /// Why.
        reason: String,
    },
}

impl EngineError {
    /// Wraps an I/O error with what was done to which path.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> EngineError {
        let path = path.into();
        move |source| EngineError::Io {
            action,
            path,
            source,
        }
    }
}
