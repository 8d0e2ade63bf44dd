//! The plugin API of executors: where a task attempt runs when it does not run in the
//! engine's process.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::resolved::ResolvedAttempt;
use crate::error::SettingsError;
use crate::task::{BoxFuture, ErrorKind, TaskError, TaskOutput};

/// Records the id of the job running an attempt (shown per attempt in the run record).
#[derive(Clone)]
pub struct JobReporter(pub(crate) Arc<dyn Fn(&str) + Send + Sync>);

impl JobReporter {
    /// A reporter calling `f` with each job id.
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        JobReporter(Arc::new(f))
    }

    /// Records `job_id` as the job of the attempt.
    pub fn report(&self, job_id: &str) {
        (self.0)(job_id)
    }
}

impl std::fmt::Debug for JobReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobReporter")
    }
}

/// One attempt handed to an executor.
#[derive(Clone, Debug)]
pub struct RemoteAttempt {
    /// What the attempt runs (also written to [`RemoteAttempt::file`]).
    pub resolved: ResolvedAttempt,
    /// The resolved attempt's file (absolute).
    pub file: PathBuf,
    /// The attempt's directory (absolute), for its result files.
    pub dir: PathBuf,
    /// An id derived from the run id, task, shard and attempt: the same attempt of a resumed
    /// run has the same id, so an executor can find the job it submitted before.
    pub submission_id: String,
    /// The command line of `tweetflow task exec` on this machine (the program and its
    /// leading arguments; the executor appends `FILE --result PATH`).
    pub exec_command: Vec<String>,
    /// Fires on a timeout or when the run is cancelled: stop the job, then return.
    pub cancel: CancellationToken,
    /// Records the job's id in the run record.
    pub jobs: JobReporter,
}

/// A place where task attempts run, registered by a plugin and chosen per task with
/// `executor: { NAME: { ...settings } }`.
pub trait Executor: Send + Sync + 'static {
    /// The settings (`deny_unknown_fields`, documented fields, defaults): checked by the
    /// loader with positions, like a task's params.
    type Config: DeserializeOwned + Serialize + JsonSchema + Send + Sync + 'static;

    /// The name pipelines use under `executor:`.
    const NAME: &'static str;
    /// One line on where attempts run.
    const DESCRIPTION: &'static str;

    /// Runs one attempt to its end and returns its output or error. On
    /// [`RemoteAttempt::cancel`], stops the job and returns (the engine decides the error).
    fn run(
        &self,
        config: Self::Config,
        attempt: RemoteAttempt,
    ) -> impl Future<Output = Result<TaskOutput, TaskError>> + Send;

    /// The local folders the attempts see at the engine's paths: `None` (the default) when
    /// they run where the engine's files are; otherwise only these (a shared file system),
    /// and the loader refuses a task's local locations outside them ([`crate::Task::locations`]).
    fn shared_paths(&self, _config: &Self::Config) -> Option<Vec<String>> {
        None
    }
}

/// An executor with its settings type erased, as the registry stores it.
pub trait DynExecutor: Send + Sync {
    /// See [`Executor::NAME`].
    fn name(&self) -> &'static str;
    /// See [`Executor::DESCRIPTION`].
    fn description(&self) -> &'static str;
    /// JSON Schema of the settings.
    fn schema(&self) -> Value;
    /// Reads `value` as the settings and writes them back with every default filled in.
    fn normalize(&self, value: &Value) -> Result<Value, SettingsError>;
    /// See [`Executor::run`].
    fn run<'a>(
        &'a self,
        config: &'a Value,
        attempt: RemoteAttempt,
    ) -> BoxFuture<'a, Result<TaskOutput, TaskError>>;
    /// See [`Executor::shared_paths`].
    fn shared_paths(&self, config: &Value) -> Option<Vec<String>>;
}

/// Wraps an [`Executor`] as a [`DynExecutor`].
pub(crate) struct Erased<E>(pub E);

impl<E: Executor> DynExecutor for Erased<E> {
    fn name(&self) -> &'static str {
        E::NAME
    }

    fn description(&self) -> &'static str {
        E::DESCRIPTION
    }

    fn schema(&self) -> Value {
        let settings = schemars::generate::SchemaSettings::draft2020_12();
        settings
            .into_generator()
            .into_root_schema_for::<E::Config>()
            .to_value()
    }

    fn normalize(&self, value: &Value) -> Result<Value, SettingsError> {
        let typed: E::Config = serde_json::from_value(value.clone())?;
        Ok(serde_json::to_value(typed)?)
    }

    fn shared_paths(&self, config: &Value) -> Option<Vec<String>> {
        let config: E::Config = serde_json::from_value(config.clone()).ok()?;
        self.0.shared_paths(&config)
    }

    fn run<'a>(
        &'a self,
        config: &'a Value,
        attempt: RemoteAttempt,
    ) -> BoxFuture<'a, Result<TaskOutput, TaskError>> {
        Box::pin(async move {
            let config: E::Config = serde_json::from_value(config.clone()).map_err(|e| {
                TaskError::new(ErrorKind::Config, format!("executor `{}`: {e}", E::NAME))
            })?;
            self.0.run(config, attempt).await
        })
    }
}
