//! The params of `infer` and their defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tweetflow_engine::task::Shard;
use tweetflow_model::{ClassifierOptions, Sentiment};

/// Default `batch_size`.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Default `cache_dir`.
pub const DEFAULT_CACHE_DIR: &str = tweetflow_model::DEFAULT_CACHE_DIR;
/// At most this many ONNX Runtime sessions by default (each holds the model in memory); on
/// more cores, each session gets several intra-op threads.
pub const MAX_DEFAULT_SESSIONS: usize = 8;

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
    /// ONNX Runtime intra-op threads of one session. Default: one session per core (at most
    /// 8), each with 1 thread, sharing the model batches in order (the fastest on short
    /// texts; each session holds the model in memory). Set it to run one session with this
    /// many threads (less memory). A task split into `shards:` runs one session per shard,
    /// with this many threads (default: the number of cores).
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
            _ => cores(),
        }
    }

    /// The ONNX Runtime sessions of a run of shard `shard` and the intra-op threads of each:
    /// with `threads` set, or split into shards, one session of [`InferParams::threads`];
    /// else one session per core (at most [`MAX_DEFAULT_SESSIONS`]), each with 1 thread (on
    /// more cores than that, the cores split between the sessions).
    pub fn sessions(&self, shard: Option<Shard>) -> (usize, usize) {
        let sharded = shard.is_some_and(|s| s.count > 1);
        if sharded || self.threads.is_some_and(|n| n > 0) {
            return (1, self.threads());
        }
        sessions_for(cores())
    }

    /// The model cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        PathBuf::from(self.cache_dir.as_deref().unwrap_or(DEFAULT_CACHE_DIR))
    }

    /// The classifier options of one session of a run of shard `shard` (its threads, see
    /// [`InferParams::sessions`], and the label mapping).
    pub fn classifier_options(&self, shard: Option<Shard>) -> ClassifierOptions {
        ClassifierOptions {
            threads: self.sessions(shard).1,
            labels: self.labels.clone(),
        }
    }
}

/// The cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The default sessions on `cores` cores and the threads of each.
fn sessions_for(cores: usize) -> (usize, usize) {
    let sessions = cores.clamp(1, MAX_DEFAULT_SESSIONS);
    (sessions, (cores / sessions).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_default_to_one_per_core_and_threads_or_shards_keep_one() {
        assert_eq!(sessions_for(1), (1, 1));
        assert_eq!(sessions_for(2), (2, 1));
        assert_eq!(sessions_for(8), (8, 1));
        assert_eq!(sessions_for(20), (8, 2));
        let mut p = InferParams::new("s", "g", "m");
        assert_eq!(p.sessions(None), sessions_for(cores()));
        assert_eq!(
            p.sessions(Some(Shard { index: 0, count: 1 })),
            sessions_for(cores())
        );
        assert_eq!(p.sessions(Some(Shard { index: 1, count: 2 })), (1, cores()));
        p.threads = Some(3);
        assert_eq!(p.sessions(None), (1, 3));
        assert_eq!(p.classifier_options(None).threads, 3);
        p.threads = Some(0);
        assert_eq!(p.sessions(None), sessions_for(cores()));
    }
}
