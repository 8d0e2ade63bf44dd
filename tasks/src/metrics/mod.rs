//! Model evaluation on the gold table: `log-metrics` and `report`.
//!
//! * [`LogMetricsTask`] (`log-metrics`) reads gold once, computes the classification metrics of
//!   [`compute`] (scikit-learn's definitions), draws the confusion matrix and logs metrics,
//!   params and artifacts to MLflow.
//! * [`ReportTask`] (`report`) draws the exploratory charts and writes one self-contained
//!   `report.html` with the profile, the metrics, the charts and the run's task timings.
//!
//! Both log into the MLflow run of the current pipeline run when there is one (its id is in
//! `runs/<run_id>/mlflow.json`, written by [`crate::observers::mlflow_runs`]).
//!
//! | type | params (defaults) | output values |
//! | --- | --- | --- |
//! | `log-metrics` | `input` (gold table), `experiment` (pipeline's `mlflow.experiment`, else `MLFLOW_EXPERIMENT_NAME`) | `precision`, `recall`, `f1`, `accuracy`, `binary_support`, `neutral_predictions_excluded`, `macro_f1` (null without neutral labels), `support`, `predicted`, `labels`, `confusion_matrix`, `rows`, `tweets`, `unscored_tweets`, `model_name`, `model_uri`, `model_version`, `gold_table`, `gold_table_version`, `silver_table_version`, `mlflow_server_version`, `tweetflow_version`, `confusion_matrix_png`, `metrics_json`, `mlflow_run_id`; fingerprint `GOLD@version` |
//! | `report` | `input` (gold table), `profile` (a `profile.json`; default: a direct upstream `profile` output), `title` (`<pipeline> report`) | `report`, `charts`, `notes`, `gold_table_version`, `tweets`, `mlflow_run_id` |
//!
//! **Gold.** One streamed pass ([`gold::scan`]); each tweet counted once (gold has one row per
//! mention). An empty gold table, or one where no tweet has both a label and a prediction, is a
//! fatal error of `log-metrics` (there is nothing to evaluate); `report` draws empty charts.
//!
//! **Metric definitions** and the zero-division rule: see [`compute`].
//!
//! **MLflow (`log-metrics`).** The run is the pipeline run's; without one, a new run named
//! `<pipeline>-<task>-<run id>` in `experiment` on the pipeline's `mlflow.tracking_uri` (else
//! `MLFLOW_TRACKING_URI`), ended FINISHED; with no tracking server configured at all, nothing is
//! logged (a warning) and the files are still written. Metrics (step = gold version):
//! `precision`, `recall`, `f1`, `accuracy`, `binary_support`, `neutral_predictions_excluded`,
//! `macro_f1` (when defined), `tweets`, `unscored_tweets`, `support_<class>`,
//! `confusion_<true>_<predicted>`. Params: `model_name`, `model_uri`, `model_version` (distinct
//! values in gold, comma-separated), `gold_table`, `gold_table_version`, `silver_table_version`
//! (gold's `tweetflow-infer` transaction, else an upstream `silver_version` output),
//! `mlflow_server_version` (`GET /version`, when it answers), `tweetflow_version`. A param
//! already logged with the same value is skipped (retries, resumes); with another value it is
//! recorded as the tag `tweetflow.log-metrics.<param>`. Artifacts under `evaluation/`:
//! `confusion_matrix.png`, `metrics.json`.
//!
//! **Report.** Charts (PNG, 1000 px wide): top 20 tweeters (gold's `user` column, else the
//! profile's `top_users`, else skipped with a note), top 20 mentions by tweets *predicted*
//! positive and by tweets predicted negative, tweets per UTC hour of day. `report.html` embeds
//! them as base64 PNGs with inline CSS (it fetches nothing), with the profile numbers, the
//! metrics of a direct upstream `log-metrics` (and its confusion matrix) and the per-task
//! timings read from the run store. Artifacts under `report/` of the pipeline run's MLflow run
//! (only when the pipeline run has one).

pub mod chart;
pub mod compute;
pub mod gold;
mod log_metrics;
mod report;

use std::path::{Path, PathBuf};

pub use log_metrics::{LogMetricsParams, LogMetricsTask};
pub use report::{ARTIFACT_DIR as REPORT_ARTIFACT_DIR, REPORT_HTML, ReportParams, ReportTask};

use tweetflow_engine::{TaskContext, TaskError};
use tweetflow_mlflow::{Client, ClientConfig};

use crate::observers::mlflow_runs::{MlflowRunLink, MlflowSection};

/// The run directory of the attempt: `runs/<run_id>` (the parent of `artifacts/<task>`).
pub fn run_dir(ctx: &TaskContext) -> Option<PathBuf> {
    ctx.artifacts_dir.parent()?.parent().map(Path::to_path_buf)
}

/// An MLflow error as a task error (retryable when the client says so).
pub(crate) fn mlflow_error(what: &str, e: tweetflow_mlflow::Error) -> TaskError {
    let message = format!("MLflow: {what}: {e}");
    if e.is_retryable() {
        TaskError::retryable(message)
    } else {
        TaskError::fatal(message)
    }
}

/// Where the results go in MLflow.
pub(crate) struct Target {
    pub client: Client,
    pub run_id: String,
    /// The run was created by the task (it ends it).
    pub created: bool,
}

fn client(tracking_uri: Option<&str>) -> Result<Client, TaskError> {
    let mut config = ClientConfig::from_env().map_err(|e| TaskError::config("mlflow", e))?;
    if let Some(uri) = tracking_uri {
        config.tracking_uri = uri.to_string();
    }
    Client::new(config).map_err(|e| TaskError::config("mlflow", e))
}

/// The MLflow run of the current pipeline run, if it has one.
pub(crate) fn pipeline_run(ctx: &TaskContext) -> Result<Option<Target>, TaskError> {
    let Some(link) = run_dir(ctx).and_then(|d| MlflowRunLink::read(&d)) else {
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

/// A new run in `experiment` on the configured server.
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
