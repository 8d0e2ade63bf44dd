//! An async client for the [MLflow](https://mlflow.org) tracking server, usable on its own.
//!
//! - **Tracking**: experiments (race-free get-or-create), runs, metrics with step and
//!   timestamp, params, tags, `log-batch` split to the server's limits, metric history.
//! - **Artifacts** through the server's `mlflow-artifacts` proxy: upload a file or a
//!   directory, list, download a file or a directory.
//! - **Datasets** a run read or wrote (`runs/log-inputs`), see [`datasets`].
//! - **Model registry**: registered models, versions, aliases, stages, and `models:/` URIs
//!   ([`ModelUri`]) resolved to a version and downloaded ([`Client::download_model`]).
//!
//! Configuration follows MLflow's environment variables (`MLFLOW_TRACKING_URI`,
//! `MLFLOW_EXPERIMENT_NAME`, `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`,
//! `MLFLOW_TRACKING_TOKEN`); see [`ClientConfig`]. Requests have a timeout and are retried
//! with exponential backoff on connection errors, timeouts, 429 and 5xx ([`Error::is_retryable`]).
//!
//! The client refuses, before sending, what the server would silently accept or cut: empty
//! names, non-finite metric values (unless [`ClientConfig::allow_non_finite_metrics`]), param
//! values over 6000 characters, and a new value for a param already logged on the run
//! ([`Error::ParamChanged`]).
//!
//! ```no_run
//! # async fn demo() -> tweetflow_mlflow::Result<()> {
//! use tweetflow_mlflow::{Client, Metric, Param, MlflowRunStatus};
//! let client = Client::from_env()?;
//! let exp = client.get_or_create_experiment("sentiment").await?;
//! let run = client.create_run(&exp.experiment_id, Some("train"), &[]).await?;
//! let id = &run.info.run_id;
//! client.log_batch(id, &[Metric::new("loss", 0.3, 1)], &[Param::new("lr", "0.01")], &[]).await?;
//! client.log_artifacts(id, std::path::Path::new("out/model"), Some("model")).await?;
//! client.end_run(id, MlflowRunStatus::Finished).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod artifacts;
mod client;
pub mod config;
pub mod datasets;
pub mod error;
pub mod model_uri;
pub mod registry;
pub mod tracking;
pub mod types;
pub mod validation;

pub use client::Client;
pub use config::{Auth, ClientConfig};
pub use datasets::{Dataset, DatasetInput, InputTag, RunInputs};
pub use error::{Error, ErrorCode, Result};
pub use model_uri::ModelUri;
pub use registry::ResolvedModel;
pub use tracking::{BatchReport, DEFAULT_EXPERIMENT_ID};
pub use types::{
    Experiment, ExperimentTag, FileInfo, Metric, MlflowRunStatus, ModelAlias, ModelTag,
    ModelVersion, Param, RegisteredModel, Run, RunData, RunInfo, RunTag, RunsPage, SearchRuns,
    ViewType,
};
