//! Entities of the MLflow REST API (experiments, runs, metrics, registered models, ...).
//!
//! Field names follow the JSON of the REST API. Timestamps are milliseconds since the Unix
//! epoch; ids (experiment ids, model versions) are strings, as on the wire. Integers are
//! accepted both as JSON numbers and as strings, since protobuf's JSON form may send either.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A tag of an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentTag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    #[serde(default)]
    pub value: String,
}

/// An MLflow experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Id (a string of digits).
    pub experiment_id: String,
    /// Unique name.
    pub name: String,
    /// Root of the artifacts of its runs (e.g. `mlflow-artifacts:/1`).
    #[serde(default)]
    pub artifact_location: String,
    /// `active` or `deleted`.
    #[serde(default)]
    pub lifecycle_stage: String,
    /// Creation time (ms).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub creation_time: Option<i64>,
    /// Last update time (ms).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub last_update_time: Option<i64>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<ExperimentTag>,
}

/// Status of an MLflow run (as the tracking server names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MlflowRunStatus {
    /// Running.
    Running,
    /// Scheduled, not started.
    Scheduled,
    /// Finished successfully.
    Finished,
    /// Failed.
    Failed,
    /// Killed.
    Killed,
}

impl MlflowRunStatus {
    /// True for the states a run ends in (finished, failed, killed).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MlflowRunStatus::Finished | MlflowRunStatus::Failed | MlflowRunStatus::Killed
        )
    }
}

/// Metadata of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run id.
    pub run_id: String,
    /// Run name.
    #[serde(default)]
    pub run_name: String,
    /// Experiment id.
    pub experiment_id: String,
    /// User that created the run.
    #[serde(default)]
    pub user_id: String,
    /// Status.
    pub status: MlflowRunStatus,
    /// Start time (ms).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub start_time: Option<i64>,
    /// End time (ms), once ended.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub end_time: Option<i64>,
    /// Root of the run's artifacts (`mlflow-artifacts:/<exp>/<run>/artifacts`).
    #[serde(default)]
    pub artifact_uri: String,
    /// `active` or `deleted`.
    #[serde(default)]
    pub lifecycle_stage: String,
}

/// A metric point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Metric key.
    pub key: String,
    /// Value; NaN and ±inf travel as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    #[serde(
        serialize_with = "ser_metric_value",
        deserialize_with = "de_metric_value"
    )]
    pub value: f64,
    /// Time of the measure (ms).
    #[serde(deserialize_with = "de_i64")]
    pub timestamp: i64,
    /// Step (0 when not given).
    #[serde(default, deserialize_with = "de_i64")]
    pub step: i64,
}

impl Metric {
    /// A metric point at `step`, timestamped now.
    pub fn new(key: impl Into<String>, value: f64, step: i64) -> Self {
        Metric {
            key: key.into(),
            value,
            timestamp: now_millis(),
            step,
        }
    }

    /// A metric point with an explicit timestamp (ms).
    pub fn at(key: impl Into<String>, value: f64, step: i64, timestamp: i64) -> Self {
        Metric {
            key: key.into(),
            value,
            timestamp,
            step,
        }
    }
}

/// A run parameter (immutable once logged).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Param {
    /// Key.
    pub key: String,
    /// Value (at most [`MAX_PARAM_VALUE_LENGTH`](crate::validation::MAX_PARAM_VALUE_LENGTH) characters).
    #[serde(default)]
    pub value: String,
}

impl Param {
    /// A param.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Param {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A run tag (can be overwritten).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunTag {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

impl RunTag {
    /// A tag.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        RunTag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Metrics (latest value per key), params and tags of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    /// Latest value of each metric.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Params.
    #[serde(default)]
    pub params: Vec<Param>,
    /// Tags (including MLflow's `mlflow.*` system tags).
    #[serde(default)]
    pub tags: Vec<RunTag>,
}

impl RunData {
    /// Value of a param.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    /// Value of a tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }

    /// Latest value of a metric.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.key == key).map(|m| m.value)
    }
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Metadata.
    pub info: RunInfo,
    /// Logged data.
    #[serde(default)]
    pub data: RunData,
    /// Datasets attached with `runs/log-inputs`.
    #[serde(default)]
    pub inputs: crate::datasets::RunInputs,
}

/// One page of [`Client::search_runs`](crate::Client::search_runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunsPage {
    /// Runs of this page.
    #[serde(default)]
    pub runs: Vec<Run>,
    /// Token of the next page, if any.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// Which runs a search returns, by lifecycle stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ViewType {
    /// Active runs only (default).
    #[default]
    ActiveOnly,
    /// Deleted runs only.
    DeletedOnly,
    /// Both.
    All,
}

/// Query of [`Client::search_runs`](crate::Client::search_runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SearchRuns {
    /// Experiments to search.
    pub experiment_ids: Vec<String>,
    /// MLflow filter expression, e.g. `params.lr = '0.1' and metrics.acc > 0.9`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Lifecycle filter.
    pub run_view_type: ViewType,
    /// Page size (server default 1000, max 50000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
    /// Ordering, e.g. `["metrics.acc DESC"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<String>,
    /// Token from a previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
}

impl SearchRuns {
    /// Active runs of the given experiments.
    pub fn in_experiments<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        SearchRuns {
            experiment_ids: ids.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Adds a filter expression.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Adds an ordering clause.
    pub fn order_by(mut self, clause: impl Into<String>) -> Self {
        self.order_by.push(clause.into());
        self
    }

    /// Sets the page size.
    pub fn max_results(mut self, n: u32) -> Self {
        self.max_results = Some(n);
        self
    }
}

/// An artifact (file or directory) as listed by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Path relative to the artifact root it was listed from (e.g. `model/model.onnx`).
    pub path: String,
    /// True for a directory.
    #[serde(default)]
    pub is_dir: bool,
    /// Size in bytes (files only).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub file_size: Option<i64>,
}

/// A tag of a registered model or model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelTag {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// An alias of a registered model, pointing at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAlias {
    /// Alias (e.g. `champion`).
    pub alias: String,
    /// Version it points at.
    #[serde(deserialize_with = "de_string")]
    pub version: String,
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// Unique name.
    pub name: String,
    /// Creation time (ms).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub creation_timestamp: Option<i64>,
    /// Last update (ms).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub last_updated_timestamp: Option<i64>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Latest version per stage.
    #[serde(default)]
    pub latest_versions: Vec<ModelVersion>,
    /// Aliases.
    #[serde(default)]
    pub aliases: Vec<ModelAlias>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<ModelTag>,
}

/// A version of a registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Model name.
    pub name: String,
    /// Version number, as a string.
    #[serde(deserialize_with = "de_string")]
    pub version: String,
    /// Creation time (ms).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub creation_timestamp: Option<i64>,
    /// Last update (ms).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub last_updated_timestamp: Option<i64>,
    /// Stage (`None`, `Staging`, `Production`, `Archived`).
    #[serde(default)]
    pub current_stage: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Where the model's files live (`mlflow-artifacts:/...`).
    #[serde(default)]
    pub source: String,
    /// Run that produced it, if any.
    #[serde(default)]
    pub run_id: Option<String>,
    /// `READY`, `PENDING_REGISTRATION` or `FAILED_REGISTRATION`.
    #[serde(default)]
    pub status: Option<String>,
    /// Details of the status, if any.
    #[serde(default)]
    pub status_message: Option<String>,
    /// Aliases pointing at this version.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<ModelTag>,
}

impl ModelVersion {
    /// The version as a number (0 if the server sent something else).
    pub fn version_number(&self) -> u64 {
        self.version.parse().unwrap_or(0)
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

// ---- lenient (de)serializers ----

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrString {
    I(i64),
    F(f64),
    S(String),
}

fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match NumOrString::deserialize(d)? {
        NumOrString::I(i) => Ok(i),
        NumOrString::F(f) => Ok(f as i64),
        NumOrString::S(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<NumOrString>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrString::I(i)) => Ok(Some(i)),
        Some(NumOrString::F(f)) => Ok(Some(f as i64)),
        Some(NumOrString::S(s)) if s.trim().is_empty() => Ok(None),
        Some(NumOrString::S(s)) => s.trim().parse().map(Some).map_err(serde::de::Error::custom),
    }
}

fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match NumOrString::deserialize(d)? {
        NumOrString::I(i) => Ok(i.to_string()),
        NumOrString::F(f) => Ok(f.to_string()),
        NumOrString::S(s) => Ok(s),
    }
}

fn de_metric_value<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match NumOrString::deserialize(d)? {
        NumOrString::I(i) => Ok(i as f64),
        NumOrString::F(f) => Ok(f),
        NumOrString::S(s) => match s.as_str() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(serde::de::Error::custom),
        },
    }
}

fn ser_metric_value<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if *v == f64::INFINITY {
        s.serialize_str("Infinity")
    } else if *v == f64::NEG_INFINITY {
        s.serialize_str("-Infinity")
    } else {
        s.serialize_f64(*v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_on_the_wire() {
        let m = Metric::at("loss", f64::NAN, 1, 5);
        let j = serde_json::to_value(&m).unwrap();
        assert_eq!(j["value"], "NaN");
        let back: Metric = serde_json::from_value(j).unwrap();
        assert!(back.value.is_nan());
        let m: Metric =
            serde_json::from_str(r#"{"key":"a","value":"-Infinity","timestamp":"12","step":"3"}"#)
                .unwrap();
        assert_eq!((m.value, m.timestamp, m.step), (f64::NEG_INFINITY, 12, 3));
        let m: Metric = serde_json::from_str(r#"{"key":"a","value":2,"timestamp":12}"#).unwrap();
        assert_eq!((m.value, m.step), (2.0, 0));
    }

    #[test]
    fn versions_as_numbers_or_strings() {
        let a: ModelAlias = serde_json::from_str(r#"{"alias":"x","version":3}"#).unwrap();
        assert_eq!(a.version, "3");
        let s = serde_json::to_string(&SearchRuns::in_experiments(["1"]).filter("x")).unwrap();
        assert!(s.contains(r#""run_view_type":"ACTIVE_ONLY""#), "{s}");
    }
}
