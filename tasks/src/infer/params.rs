//! The params of `infer` and their defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tweetflow_model::{ClassifierOptions, Sentiment};

/// Default `batch_size`.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Default `cache_dir`.
pub const DEFAULT_CACHE_DIR: &str = tweetflow_model::DEFAULT_CACHE_DIR;

fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

/// Params of `infer`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InferParams {
    /// Silver Delta table (written by `clean`).
    pub input: String,
    /// Gold Delta table.
    pub table: String,
    /// Model directory (local, or an `s3://`, `az://`, `gs://` prefix copied once into the
    /// cache), or registry URI: `models:/NAME@ALIAS`, `models:/NAME/VERSION`,
    /// `models:/NAME/latest`, `models:/NAME/Production`.
    pub model: String,
    /// Texts per model batch (default 32).
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1))]
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads (default: the number of cores).
    #[serde(default)]
    pub threads: Option<usize>,
    /// Maps model label names (or column indices) to `negative` / `neutral` / `positive`,
    /// for models whose labels are not self-explaining (default: automatic mapping).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, Sentiment>>,
    /// Where registry models are downloaded (default `data/model-cache`).
    #[serde(default)]
    pub cache_dir: Option<String>,
    /// MLflow tracking server for `models:/` URIs (default: the `MLFLOW_TRACKING_URI`
    /// environment variable).
    #[serde(default)]
    pub tracking_uri: Option<String>,
}

impl InferParams {
    /// Params with every default.
    pub fn new(
        input: impl Into<String>,
        table: impl Into<String>,
        model: impl Into<String>,
    ) -> Self {
        InferParams {
            input: input.into(),
            table: table.into(),
            model: model.into(),
            batch_size: DEFAULT_BATCH_SIZE,
            threads: None,
            labels: None,
            cache_dir: None,
            tracking_uri: None,
        }
    }

    /// ONNX Runtime threads: `threads`, else the number of cores.
    pub fn threads(&self) -> usize {
        match self.threads {
            Some(n) if n > 0 => n,
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The model cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        PathBuf::from(self.cache_dir.as_deref().unwrap_or(DEFAULT_CACHE_DIR))
    }

    /// The classifier options these params ask for (threads, label mapping).
    pub fn classifier_options(&self) -> ClassifierOptions {
        ClassifierOptions {
            threads: self.threads(),
            labels: self.labels.clone(),
        }
    }
}
