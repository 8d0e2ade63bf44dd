//! `log-metrics`: evaluates the model on the gold table and logs the result to MLflow.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};
use tweetflow_mlflow::{Metric, MlflowRunStatus, Param, RunTag};

use crate::mlflow_link::MlflowSection;

use super::chart;
use super::compute::{CLASSES, Metrics};
use super::gold::{self, Wants};
use crate::mlflow_link::{
    Target, configured_tracking_uri, mlflow_error, new_run, pipeline_run, server_version,
};

/// Params of `log-metrics`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogMetricsParams {
    /// The gold Delta table (written by `infer`).
    pub input: String,
    /// The MLflow experiment of a new run, used only when the pipeline run has no MLflow run
    /// of its own (default: the pipeline's `mlflow.experiment`, else `MLFLOW_EXPERIMENT_NAME`).
    #[serde(default)]
    pub experiment: Option<String>,
}

/// The `log-metrics` task.
pub struct LogMetricsTask;

/// Artifact names.
pub const CONFUSION_PNG: &str = "confusion_matrix.png";
/// Artifact names.
pub const METRICS_JSON: &str = "metrics.json";
/// The MLflow artifact folder of this task's files.
pub const ARTIFACT_DIR: &str = "evaluation";

fn join(values: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = values
        .filter(|s| !s.is_empty())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    v.join(", ")
}

/// The MLflow metrics of `m` (keys documented on [`LogMetricsTask`]).
pub fn mlflow_metrics(m: &Metrics, tweets: u64, unscored: u64, step: i64) -> Vec<Metric> {
    let mut out = vec![
        Metric::new("precision", m.precision, step),
        Metric::new("recall", m.recall, step),
        Metric::new("f1", m.f1, step),
        Metric::new("accuracy", m.accuracy, step),
        Metric::new("binary_support", m.binary_support as f64, step),
        Metric::new(
            "neutral_predictions_excluded",
            m.neutral_predictions_excluded as f64,
            step,
        ),
        Metric::new("tweets", tweets as f64, step),
        Metric::new("unscored_tweets", unscored as f64, step),
    ];
    if let Some(f) = m.macro_f1 {
        out.push(Metric::new("macro_f1", f, step));
    }
    for (i, c) in CLASSES.iter().enumerate() {
        out.push(Metric::new(
            format!("support_{c}"),
            m.support[i] as f64,
            step,
        ));
        for (j, p) in CLASSES.iter().enumerate() {
            out.push(Metric::new(
                format!("confusion_{c}_{p}"),
                m.confusion[i][j] as f64,
                step,
            ));
        }
    }
    out
}

async fn log(
    target: &Target,
    metrics: &[Metric],
    params: &BTreeMap<String, String>,
    files: &[std::path::PathBuf],
) -> Result<(), TaskError> {
    let client = &target.client;
    // Params are immutable: a retried or resumed attempt finds them logged already.
    let existing = client
        .get_run(&target.run_id)
        .await
        .map_err(|e| mlflow_error("get run", e))?;
    let mut new_params = Vec::new();
    let mut tags = Vec::new();
    for (k, v) in params {
        match existing.data.param(k) {
            None => new_params.push(Param::new(k.clone(), v.clone())),
            Some(old) if old == v => {}
            Some(old) => {
                tracing::warn!(param = %k, logged = %old, now = %v, "param already logged with another value; recorded as a tag");
                tags.push(RunTag::new(format!("tweetflow.log-metrics.{k}"), v.clone()));
            }
        }
    }
    client
        .log_batch(&target.run_id, metrics, &new_params, &tags)
        .await
        .map_err(|e| mlflow_error("log batch", e))?;
    for f in files {
        client
            .log_artifact(&target.run_id, f, Some(ARTIFACT_DIR))
            .await
            .map_err(|e| mlflow_error("log artifact", e))?;
    }
    Ok(())
}

impl Task for LogMetricsTask {
    type Params = LogMetricsParams;
    const TYPE: &'static str = "log-metrics";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "Evaluate the gold predictions (precision/recall/F1, accuracy, macro F1, confusion matrix) and log them to MLflow";

    async fn run(
        &self,
        ctx: &TaskContext,
        params: LogMetricsParams,
    ) -> Result<TaskOutput, TaskError> {
        let scan = gold::scan(&params.input, Wants::default(), &ctx.cancel).await?;
        if scan.tweets == 0 {
            return Err(TaskError::fatal(format!(
                "gold table `{}` (version {}) has no rows: there is nothing to evaluate",
                params.input, scan.version
            )));
        }
        if scan.tweets == scan.unscored_tweets {
            return Err(TaskError::fatal(format!(
                "gold table `{}` (version {}): none of its {} tweets has both a known label and a prediction",
                params.input, scan.version, scan.tweets
            )));
        }
        let m = Metrics::from_confusion(scan.confusion);
        let silver_version = scan.silver_version.or_else(|| {
            ctx.upstream
                .values()
                .find_map(|o| o.get("silver_version").and_then(Value::as_i64))
        });
        let model_uri = join(scan.models.iter().map(|(u, _)| u.clone()));
        let model_version = join(scan.models.iter().map(|(_, v)| v.clone()));
        let model_name = join(scan.models.iter().map(|(u, _)| gold::model_name(u)));

        let png = ctx
            .artifact_path(CONFUSION_PNG)
            .map_err(|e| TaskError::retryable(format!("artifacts folder: {e}")))?;
        let subtitle = format!(
            "{} tweets with a label and a prediction · gold v{} · {}",
            scan.tweets - scan.unscored_tweets,
            scan.version,
            if model_name.is_empty() {
                "model unknown".to_string()
            } else {
                format!("model {model_name} {model_version}")
            }
        );
        chart::confusion_matrix(&png, &scan.confusion, &subtitle)?;

        // Which MLflow run: the pipeline run's, else a new one when a server is configured.
        let target = match pipeline_run(ctx)? {
            Some(t) => Some(t),
            None => match configured_tracking_uri(ctx) {
                Some(uri) => {
                    let experiment = params
                        .experiment
                        .clone()
                        .or_else(|| ctx.pipeline.section::<MlflowSection>().and_then(|m| m.experiment))
                        .or_else(|| std::env::var("MLFLOW_EXPERIMENT_NAME").ok().filter(|v| !v.trim().is_empty()))
                        .ok_or_else(|| {
                            TaskError::config("experiment", "needed when the pipeline has no `mlflow.experiment` and MLFLOW_EXPERIMENT_NAME is unset")
                        })?;
                    let name = format!("{}-{}-{}", ctx.pipeline.name, ctx.task_id, ctx.run_id);
                    Some(new_run(ctx, &uri, &experiment, &name).await?)
                }
                None => {
                    tracing::warn!(
                        "no MLflow tracking server configured: metrics are written as artifacts only"
                    );
                    None
                }
            },
        };
        let server_version = match &target {
            Some(t) => server_version(&t.client).await,
            None => None,
        };

        let mut mlflow_params = BTreeMap::new();
        mlflow_params.insert("model_name".to_string(), model_name.clone());
        mlflow_params.insert("model_uri".to_string(), model_uri.clone());
        mlflow_params.insert("model_version".to_string(), model_version.clone());
        mlflow_params.insert("gold_table".to_string(), params.input.clone());
        mlflow_params.insert("gold_table_version".to_string(), scan.version.to_string());
        if let Some(v) = silver_version {
            mlflow_params.insert("silver_table_version".to_string(), v.to_string());
        }
        if let Some(v) = &server_version {
            mlflow_params.insert("mlflow_server_version".to_string(), v.clone());
        }
        mlflow_params.insert(
            "tweetflow_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        );
        mlflow_params.retain(|_, v| !v.is_empty());

        let mut doc = json!({
            "gold_table": params.input,
            "gold_table_version": scan.version,
            "silver_table_version": silver_version,
            "rows": scan.rows,
            "tweets": scan.tweets,
            "unscored_tweets": scan.unscored_tweets,
            "model_name": model_name,
            "model_uri": model_uri,
            "model_version": model_version,
            "mlflow_server_version": server_version,
            "tweetflow_version": env!("CARGO_PKG_VERSION"),
        });
        if let (Value::Object(d), Value::Object(mj)) = (&mut doc, m.to_json()) {
            d.extend(mj);
        }
        let json_path = ctx
            .artifact_path(METRICS_JSON)
            .map_err(|e| TaskError::retryable(format!("artifacts folder: {e}")))?;
        let text =
            serde_json::to_string_pretty(&doc).map_err(|e| TaskError::fatal(e.to_string()))?;
        std::fs::write(&json_path, text)
            .map_err(|e| TaskError::retryable(format!("writing `{}`: {e}", json_path.display())))?;

        let mut mlflow_run_id = Value::Null;
        if let Some(target) = &target {
            let metrics =
                mlflow_metrics(&m, scan.tweets, scan.unscored_tweets, scan.version.max(0));
            let result = log(
                target,
                &metrics,
                &mlflow_params,
                &[png.clone(), json_path.clone()],
            )
            .await;
            if target.created {
                let status = if result.is_ok() {
                    MlflowRunStatus::Finished
                } else {
                    MlflowRunStatus::Failed
                };
                if let Err(e) = target.client.end_run(&target.run_id, status).await {
                    tracing::warn!(error = %e, "could not end the MLflow run");
                }
            }
            result?;
            mlflow_run_id = json!(target.run_id);
        }

        Ok(TaskOutput::from_summary(&doc)?
            .with("confusion_matrix_png", png.display().to_string())
            .with("metrics_json", json_path.display().to_string())
            .with("mlflow_run_id", mlflow_run_id)
            .with_fingerprint(format!("{}@{}", params.input, scan.version)))
    }

    /// Valid while gold is at the version the metrics were computed on.
    async fn output_still_valid(&self, params: &LogMetricsParams, output: &TaskOutput) -> bool {
        let Some(expected) = output.get("gold_table_version").and_then(Value::as_i64) else {
            return false;
        };
        matches!(tweetflow_delta::table::open_table(&params.input).await, Ok(Some(t)) if tweetflow_delta::table::version(&t) == expected)
    }
}
