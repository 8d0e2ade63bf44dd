//! The MLflow side of a pipeline run, in one place: the `mlflow:` section, the link from a
//! pipeline run to its MLflow run, and the client plumbing the tasks and the observer share.
//!
//! The observer ([`crate::observers::mlflow_runs`]) creates the MLflow run when the pipeline
//! run starts and attaches an [`MlflowRunLink`] to it; a task reads it with
//! [`pipeline_run`] (or `ctx.link::<MlflowRunLink>()`), never from a file. The observer also
//! keeps the link in `runs/<run_id>/mlflow.json`, so a resumed run logs into the same MLflow
//! run and `tweetflow run` can print its page.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tweetflow_engine::{RunLink, Section, TaskContext, TaskError};
use tweetflow_mlflow::{Client, ClientConfig};

/// The `mlflow:` section: each run of the pipeline becomes an MLflow run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MlflowSection {
    /// The experiment (default: `MLFLOW_EXPERIMENT_NAME`, else the pipeline's name).
    #[serde(default)]
    pub experiment: Option<String>,
    /// The tracking server (default: `MLFLOW_TRACKING_URI`).
    #[serde(default)]
    pub tracking_uri: Option<String>,
}

impl Section for MlflowSection {
    const NAME: &'static str = "mlflow";
    const DESCRIPTION: &'static str = "Each run of the pipeline becomes an MLflow run.";
    const EXAMPLE: &'static str = "mlflow: { experiment: tweet_sentiment }";
}

/// Where a pipeline run lives in MLflow: attached to the run for its tasks, and kept by the
/// observer in `runs/<run_id>/mlflow.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MlflowRunLink {
    /// The tracking server (without user information).
    pub tracking_uri: String,
    /// The experiment id.
    pub experiment_id: String,
    /// The MLflow run id.
    pub run_id: String,
    /// The run's page in the MLflow UI.
    pub url: String,
    /// Whether the final state was logged.
    pub complete: bool,
}

impl RunLink for MlflowRunLink {
    const NAME: &'static str = "mlflow";
}

/// The file of a run directory that keeps its link.
const LINK_FILE: &str = "mlflow.json";

impl MlflowRunLink {
    /// The link kept in the run directory `run_dir`, if the run was logged.
    pub fn read(run_dir: &Path) -> Option<MlflowRunLink> {
        serde_json::from_slice(&std::fs::read(run_dir.join(LINK_FILE)).ok()?).ok()
    }

    /// Keeps the link in the run directory `run_dir` (atomically).
    pub fn write(&self, run_dir: &Path) -> Result<(), tweetflow_engine::EngineError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| {
            tweetflow_engine::EngineError::io("write", run_dir.join(LINK_FILE))(
                std::io::Error::other(e),
            )
        })?;
        tweetflow_engine::store::write_atomic(&run_dir.join(LINK_FILE), &bytes)
    }
}

/// The MLflow configuration from the environment, pointed at `tracking_uri` when given.
pub fn config_for_uri(tracking_uri: Option<&str>) -> Result<ClientConfig, tweetflow_mlflow::Error> {
    let mut config = ClientConfig::from_env()?;
    if let Some(uri) = tracking_uri {
        config.tracking_uri = uri.to_string();
    }
    Ok(config)
}

/// A client of `tracking_uri` (else the environment's server); a bad configuration is the
/// `mlflow` config's fault.
pub(crate) fn client(tracking_uri: Option<&str>) -> Result<Client, TaskError> {
    let config = config_for_uri(tracking_uri).map_err(|e| TaskError::config("mlflow", e))?;
    Client::new(config).map_err(|e| TaskError::config("mlflow", e))
}

/// An MLflow error as a task error (retryable when the client says so).
pub(crate) fn mlflow_error(what: &str, e: tweetflow_mlflow::Error) -> TaskError {
    let message = format!("MLflow: {what}: {e}");
    let task_err = if e.is_retryable() {
        TaskError::retryable(message)
    } else {
        TaskError::fatal(message)
    };
    task_err.with_source(e)
}

/// Where a task's results go in MLflow.
pub(crate) struct Target {
    /// The client of the run's server.
    pub client: Client,
    /// The MLflow run.
    pub run_id: String,
    /// The run was created by the task (it ends it).
    pub created: bool,
}

/// The MLflow run of the current pipeline run, if it has one.
pub(crate) fn pipeline_run(ctx: &TaskContext) -> Result<Option<Target>, TaskError> {
    let Some(link) = ctx.link::<MlflowRunLink>() else {
        return Ok(None);
    };
    Ok(Some(Target {
        client: client(Some(&link.tracking_uri))?,
        run_id: link.run_id,
        created: false,
    }))
}

/// The tracking server configured for the pipeline: its `mlflow.tracking_uri`, else
/// `MLFLOW_TRACKING_URI`.
pub(crate) fn configured_tracking_uri(ctx: &TaskContext) -> Option<String> {
    ctx.pipeline
        .section::<MlflowSection>()
        .and_then(|m| m.tracking_uri)
        .or_else(|| std::env::var("MLFLOW_TRACKING_URI").ok())
        .filter(|u| !u.trim().is_empty())
}

/// A new run in `experiment` on the configured server, tagged with the pipeline run, the
/// pipeline and the task.
pub(crate) async fn new_run(
    ctx: &TaskContext,
    tracking_uri: &str,
    experiment: &str,
    name: &str,
) -> Result<Target, TaskError> {
    let client = client(Some(tracking_uri))?;
    let exp = client
        .get_or_create_experiment(experiment)
        .await
        .map_err(|e| mlflow_error("experiment", e))?;
    let tags = [
        tweetflow_mlflow::RunTag::new("tweetflow.run_id", ctx.run_id.clone()),
        tweetflow_mlflow::RunTag::new("tweetflow.pipeline", ctx.pipeline.name.clone()),
        tweetflow_mlflow::RunTag::new("tweetflow.task", ctx.task_id.clone()),
    ];
    let run = client
        .create_run(&exp.experiment_id, Some(name), &tags)
        .await
        .map_err(|e| mlflow_error("create run", e))?;
    Ok(Target {
        client,
        run_id: run.info.run_id,
        created: true,
    })
}

/// The tracking server's version (`GET /version`), when it answers within a few seconds.
pub(crate) async fn server_version(client: &Client) -> Option<String> {
    let url = client.tracking_uri().join("version").ok()?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .ok()?;
    let resp = http.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = resp.text().await.ok()?;
    let v = body.trim();
    (!v.is_empty() && v.len() < 64 && !v.contains('<')).then(|| v.to_string())
}
