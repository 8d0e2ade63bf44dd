//! `mlflow-log`: logs the numbers of JSON files (e.g. a training step's metrics) as metrics
//! and params of the pipeline run's MLflow run.
//!
//! Nested objects are flattened with dots (`band_tuning.score`); in `metrics` files every
//! number becomes a metric and other values are ignored; in `params` files every scalar
//! becomes a param (lists are written as JSON). When the pipeline run has no MLflow run (no
//! `mlflow:` section and no `MLFLOW_TRACKING_URI`), nothing is logged and the task says so in
//! its output `logged: false`.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};
use tweetflow_mlflow::{Client, Metric, Param};

use crate::mlflow_link::{MlflowRunLink, config_for_uri};

/// The `mlflow-log` task type.
pub struct MlflowLogTask;

/// Params of `mlflow-log`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MlflowLogParams {
    /// JSON files whose numbers are logged as metrics (default: none).
    #[serde(default)]
    pub metrics: Vec<String>,
    /// JSON files whose scalar values are logged as params (default: none).
    #[serde(default)]
    pub params: Vec<String>,
    /// Prefix of every key, e.g. `validation.` (default: none).
    #[serde(default)]
    pub prefix: String,
}

/// Flattens `value` into (dotted key, leaf) pairs.
pub fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => out.push((prefix.to_string(), leaf.clone())),
    }
}

fn read_json(path: &str) -> Result<Value, TaskError> {
    let bytes =
        std::fs::read(path).map_err(|e| TaskError::fatal(format!("cannot read `{path}`: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| TaskError::fatal(format!("`{path}` is not JSON: {e}")))
}

fn leaves(files: &[String], prefix: &str) -> Result<Vec<(String, Value)>, TaskError> {
    let mut out = Vec::new();
    for f in files {
        let mut found = Vec::new();
        flatten("", &read_json(f)?, &mut found);
        out.extend(found.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
    }
    Ok(out)
}

impl Task for MlflowLogTask {
    type Params = MlflowLogParams;
    const TYPE: &'static str = "mlflow-log";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Logs the numbers of JSON files as metrics and params of the pipeline run's MLflow run";

    async fn run(
        &self,
        ctx: &TaskContext,
        params: MlflowLogParams,
    ) -> Result<TaskOutput, TaskError> {
        let metrics: Vec<Metric> = leaves(&params.metrics, &params.prefix)?
            .into_iter()
            .filter_map(|(k, v)| v.as_f64().map(|x| Metric::new(k, x, 0)))
            .collect();
        let logged_params: Vec<Param> = leaves(&params.params, &params.prefix)?
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| Param::new(k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect();
        let Some(link) = ctx.link::<MlflowRunLink>() else {
            tracing::warn!("the pipeline run has no MLflow run: nothing logged");
            return Ok(TaskOutput::new()
                .with("logged", false)
                .with("metrics", metrics.len())
                .with("params", logged_params.len()));
        };
        let config = config_for_uri(Some(&link.tracking_uri))
            .map_err(|e| TaskError::config("MLFLOW_*", e))?;
        let client = Client::new(config).map_err(|e| TaskError::config("MLFLOW_*", e))?;
        // Params are immutable: on a retry or resume, only the missing ones are sent.
        let existing = client
            .get_run(&link.run_id)
            .await
            .map_err(|e| TaskError::retryable(e.to_string()))?;
        let fresh: Vec<Param> = logged_params
            .iter()
            .filter(|p| !existing.data.params.iter().any(|e| e.key == p.key))
            .cloned()
            .collect();
        client
            .log_batch(&link.run_id, &metrics, &fresh, &[])
            .await
            .map_err(|e| {
                if e.is_retryable() {
                    TaskError::retryable(e.to_string())
                } else {
                    TaskError::fatal(e.to_string())
                }
            })?;
        tracing::info!(metrics = metrics.len(), params = fresh.len(), run = %link.run_id, "logged to MLflow");
        Ok(TaskOutput::new()
            .with("logged", true)
            .with("metrics", metrics.len())
            .with("params", logged_params.len())
            .with("mlflow_run_id", link.run_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_with_dots() {
        let mut out = Vec::new();
        flatten(
            "",
            &serde_json::json!({"a": 1, "b": {"c": 2.5, "d": [1, 2]}, "e": "x"}),
            &mut out,
        );
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b.c", "b.d", "e"]);
    }
}
