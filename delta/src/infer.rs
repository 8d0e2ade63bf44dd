//! `infer`: silver to gold, the model's sentiment for every (tweet, mention) row, exactly once.
//!
//! The gold table records, as its application transaction (`tweetflow-infer`), the silver
//! version it has consumed. A run reads the silver commits after that version up to the
//! latest one, takes the files they added with `dataChange = true`, and streams them in
//! batches of [`crate::table::BATCH_ROWS`] rows. Each batch's `cleaned_text` values are classified by a
//! [`Classifier`] in `spawn_blocking` (the classifier is `Send`, not `Sync`); the model runs
//! once per distinct text (a tweet with three mentions is one inference; a bounded cache of
//! [`DEDUP_CACHE_TEXTS`] texts carries predictions across batches), in batches sorted by token
//! length. Gold files are written as the run goes and committed at the end with the new
//! application transaction, after checking that the recorded silver version has not moved.
//! A rerun without new silver data creates no gold version.
//!
//! Gold columns: `tweet_id`, `timestamp`, `mention`, `cleaned_text`, `sentiment` (the label
//! as landed), `sentiment_id` (1 positive, 0 negative, null otherwise), `predicted_sentiment`
//! (`positive`/`negative`/`neutral`), `predicted_score` (0-100), `predicted_sentiment_id` (1
//! positive, 0 negative, null for neutral), `model_uri`, `model_version`.
//!
//! The model is a directory or a registry URI (`models:/NAME@ALIAS`, `models:/NAME/3`,
//! `models:/NAME/latest`, `models:/NAME/Production`), resolved by
//! [`tweetflow_model::resolve`] (downloaded once into `cache_dir`). For a directory,
//! `model_uri` is its absolute path and `model_version` the first 12 hex digits of the
//! SHA-256 of its `manifest.json` (`local` when that cannot be read); for a registry URI,
//! `model_uri` is the URI as given and `model_version` the registry version it resolved to.
//!
//! The model is resolved only when there is new silver data, once per run: a run without new
//! data needs neither the registry nor ONNX Runtime. New rows are scored by the version the
//! URI names at that moment; rows already in gold keep the prediction and `model_version`
//! they were scored with (when an alias moves, history is not re-scored behind the user's
//! back: reset the gold table and rerun to re-score everything with the new version).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, StringArray, new_null_array,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType as ArrowType, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{Action, DataType, StructType, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::DeltaWriter;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};
use tweetflow_mlflow::{Client, ClientConfig};
use tweetflow_model::{
    Classifier, ClassifierOptions, ErrorClass, Manifest, ModelError, ModelSource, Sentiment,
};

use crate::RunOptions;
use crate::error::DeltaTaskError;
use crate::ingest::assemble;
use crate::table::{self, CommitRequest};

/// Application id of infer commits (gold).
pub const APP_ID: &str = "tweetflow-infer";
/// Silver columns infer reads.
pub const SILVER_COLUMNS: [&str; 5] = [
    "tweet_id",
    "timestamp",
    "mention",
    "cleaned_text",
    "sentiment",
];
/// Distinct texts whose predictions are kept across batches of one run (bounds memory; the
/// cache is emptied when full).
pub const DEDUP_CACHE_TEXTS: usize = 200_000;
/// Without a terminal, a progress log line every this many silver rows.
pub const LOG_EVERY_ROWS: u64 = 50_000;
/// Default `batch_size`.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Default `cache_dir`.
pub const DEFAULT_CACHE_DIR: &str = tweetflow_model::DEFAULT_CACHE_DIR;
/// How many commits back a run without new silver data looks for the model gold last used.
pub const RECORDED_MODEL_LOOKBACK: i64 = 20;
/// `model_version` of a directory model whose manifest hash cannot be read.
pub const LOCAL_VERSION: &str = "local";

fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

/// A sentiment class, as a `labels` mapping target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LabelClass {
    /// Negative.
    Negative,
    /// Neutral.
    Neutral,
    /// Positive.
    Positive,
}

impl From<LabelClass> for Sentiment {
    fn from(c: LabelClass) -> Sentiment {
        match c {
            LabelClass::Negative => Sentiment::Negative,
            LabelClass::Neutral => Sentiment::Neutral,
            LabelClass::Positive => Sentiment::Positive,
        }
    }
}

/// Params of `infer`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InferParams {
    /// Silver Delta table (written by `clean`).
    pub input: String,
    /// Gold Delta table.
    pub table: String,
    /// Model directory, or registry URI: `models:/NAME@ALIAS`, `models:/NAME/VERSION`,
    /// `models:/NAME/latest`, `models:/NAME/Production`.
    pub model: String,
    /// Texts per model batch (default 32).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads (default: the number of cores).
    #[serde(default)]
    pub threads: Option<usize>,
    /// Maps model label names (or column indices) to `negative` / `neutral` / `positive`,
    /// for models whose labels are not self-explaining (default: automatic mapping).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, LabelClass>>,
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

    fn classifier_options(&self) -> ClassifierOptions {
        ClassifierOptions {
            threads: self.threads(),
            labels: self.labels.as_ref().map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), Sentiment::from(*v)))
                    .collect()
            }),
        }
    }
}

/// Errors of `infer`: the Delta side, the model side, or the registry client configuration.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// Delta tables, Arrow, I/O, failpoints, cancellation.
    #[error(transparent)]
    Delta(#[from] DeltaTaskError),
    /// Resolving, loading or running the model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The MLflow client could not be configured (tracking URI, credentials).
    #[error("model registry client: {0}")]
    Client(tweetflow_mlflow::Error),
    /// The inference worker thread panicked.
    #[error("inference worker failed: {0}")]
    Worker(String),
}

impl InferError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            InferError::Delta(e) => e.is_retryable(),
            InferError::Model(e) => e.class() == ErrorClass::Retryable,
            InferError::Client(_) | InferError::Worker(_) => false,
        }
    }
}

impl From<InferError> for TaskError {
    fn from(err: InferError) -> Self {
        match err {
            InferError::Delta(e) => e.into(),
            InferError::Model(e) => match e.class() {
                ErrorClass::Retryable => TaskError::retryable(e.to_string()),
                ErrorClass::Fatal => TaskError::fatal(e.to_string()),
                ErrorClass::Config => TaskError::config("model", e),
            },
            InferError::Client(e) => TaskError::config("tracking_uri", e),
            InferError::Worker(m) => TaskError::fatal(format!("inference worker failed: {m}")),
        }
    }
}

/// Shorthand for results of this module.
pub type InferResult<T> = std::result::Result<T, InferError>;

/// What an infer run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InferSummary {
    /// Gold rows written (one per silver row read).
    pub rows: u64,
    /// Distinct texts sent to the model (after de-duplication).
    pub distinct_texts: u64,
    /// Rows the model ran on (the classifier's counter).
    pub inferred: u64,
    /// Model batches run.
    pub model_batches: u64,
    /// Silver version consumed so far.
    pub silver_version: i64,
    /// Gold table version after the run.
    pub table_version: i64,
    /// The model URI recorded in gold.
    pub model_uri: String,
    /// The model version recorded in gold.
    pub model_version: String,
}

/// The gold schema.
pub fn gold_schema() -> Result<StructType, DeltaTaskError> {
    table::schema_of(&[
        ("tweet_id", DataType::STRING),
        ("timestamp", DataType::TIMESTAMP),
        ("mention", DataType::STRING),
        ("cleaned_text", DataType::STRING),
        ("sentiment", DataType::STRING),
        ("sentiment_id", DataType::INTEGER),
        ("predicted_sentiment", DataType::STRING),
        ("predicted_score", DataType::DOUBLE),
        ("predicted_sentiment_id", DataType::INTEGER),
        ("model_uri", DataType::STRING),
        ("model_version", DataType::STRING),
    ])
}

/// `sentiment_id` of a landed label: 1 positive (`positive`, `pos`, `4`), 0 negative
/// (`negative`, `neg`, `0`), `None` otherwise. Case-insensitive.
pub fn sentiment_id(label: &str) -> Option<i32> {
    match label.trim().to_ascii_lowercase().as_str() {
        "positive" | "pos" | "4" => Some(1),
        "negative" | "neg" | "0" => Some(0),
        _ => None,
    }
}

/// `predicted_sentiment_id`: 1 positive, 0 negative, `None` for neutral.
pub fn predicted_id(s: Sentiment) -> Option<i32> {
    match s {
        Sentiment::Positive => Some(1),
        Sentiment::Negative => Some(0),
        Sentiment::Neutral => None,
    }
}

/// A resolved model: where its files are and what gold records about it.
#[derive(Clone, Debug)]
pub struct ResolvedModel {
    /// The verified model directory.
    pub dir: PathBuf,
    /// Recorded as `model_uri`.
    pub uri: String,
    /// Recorded as `model_version`.
    pub version: String,
    /// The directory's manifest, verified against its files when the model was resolved.
    pub manifest: Manifest,
}

/// Resolves `params.model`: a directory is verified, a `models:/` URI is resolved on the
/// registry (`tracking_uri`, else `MLFLOW_TRACKING_URI`) and downloaded into the cache once.
pub async fn resolve_model(params: &InferParams) -> InferResult<ResolvedModel> {
    let source = ModelSource::parse(&params.model)?;
    match &source {
        ModelSource::Dir(dir) => {
            let manifest = tweetflow_model::verify_dir(dir)?;
            let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            let version = tweetflow_model::manifest::sha256_file(
                &dir.join(tweetflow_model::manifest::MANIFEST_FILE),
            )
            .map(|(hex, _)| hex.chars().take(12).collect())
            .unwrap_or_else(|_| LOCAL_VERSION.to_string());
            Ok(ResolvedModel {
                dir: dir.clone(),
                uri: abs.display().to_string(),
                version,
                manifest,
            })
        }
        ModelSource::Registry(_) => {
            let client = registry_client(params.tracking_uri.as_deref())?;
            let local = tweetflow_model::resolve(&client, &source, &params.cache_dir()).await?;
            tracing::info!(model = %params.model, version = ?local.version, dir = %local.dir.display(),
                from_cache = local.from_cache, offline = local.offline, "infer: model resolved");
            Ok(ResolvedModel {
                uri: params.model.trim().to_string(),
                version: local
                    .version
                    .clone()
                    .unwrap_or_else(|| LOCAL_VERSION.into()),
                dir: local.dir,
                manifest: local.manifest,
            })
        }
    }
}

/// The registry client: `tracking_uri` when given (other settings from the `MLFLOW_*`
/// environment variables), else [`Client::from_env`].
#[allow(clippy::result_large_err)]
pub fn registry_client(tracking_uri: Option<&str>) -> InferResult<Client> {
    let config = match tracking_uri {
        Some(uri) => {
            let uri = uri.to_string();
            ClientConfig::from_lookup(move |k| {
                if k == "MLFLOW_TRACKING_URI" {
                    Some(uri.clone())
                } else {
                    std::env::var(k).ok()
                }
            })
        }
        None => ClientConfig::from_env(),
    }
    .map_err(InferError::Client)?;
    Client::new(config).map_err(InferError::Client)
}

/// Loads the classifier in a blocking thread.
pub async fn load_classifier(dir: &Path, options: ClassifierOptions) -> InferResult<Classifier> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || Classifier::load(&dir, options))
        .await
        .map_err(|e| InferError::Worker(e.to_string()))?
        .map_err(InferError::from)
}

/// The model side of a run: the classifier (loaded on first use) and the prediction cache.
pub struct Predictor {
    classifier: Option<Classifier>,
    loading: Option<tokio::task::JoinHandle<tweetflow_model::Result<Classifier>>>,
    dir: PathBuf,
    /// Set when the directory was verified already (the load does not hash it again).
    manifest: Option<Manifest>,
    options: ClassifierOptions,
    batch_size: usize,
    cache: HashMap<String, (Sentiment, f32)>,
    /// Distinct texts sent to the model.
    pub distinct_texts: u64,
}

fn text_key(t: &str) -> &str {
    if t.trim().is_empty() { "" } else { t }
}

impl Predictor {
    /// A predictor for the model in `dir` (loaded on the first [`Predictor::predict`]).
    pub fn new(dir: PathBuf, options: ClassifierOptions, batch_size: usize) -> Self {
        Predictor {
            classifier: None,
            loading: None,
            dir,
            manifest: None,
            options,
            batch_size: batch_size.max(1),
            cache: HashMap::new(),
            distinct_texts: 0,
        }
    }

    /// A predictor for a resolved model, whose verified manifest spares the load a second
    /// pass over the files.
    pub fn for_model(model: &ResolvedModel, options: ClassifierOptions, batch_size: usize) -> Self {
        let mut p = Predictor::new(model.dir.clone(), options, batch_size);
        p.manifest = Some(model.manifest.clone());
        p
    }

    /// A predictor around an already loaded classifier.
    pub fn with_classifier(classifier: Classifier, batch_size: usize) -> Self {
        let dir = classifier.dir().to_path_buf();
        Predictor {
            classifier: Some(classifier),
            loading: None,
            dir,
            manifest: None,
            options: ClassifierOptions::default(),
            batch_size: batch_size.max(1),
            cache: HashMap::new(),
            distinct_texts: 0,
        }
    }

    /// Starts loading the classifier in a blocking thread, so that the load overlaps with
    /// whatever the caller does next (planning, reading the first batch); the first
    /// [`Predictor::predict`] waits for it. Does nothing when it is loaded or loading.
    pub fn preload(&mut self) {
        if self.classifier.is_none() && self.loading.is_none() {
            let dir = self.dir.clone();
            let options = self.options.clone();
            let manifest = self.manifest.clone();
            self.loading = Some(tokio::task::spawn_blocking(move || match manifest {
                Some(m) => Classifier::load_verified(&dir, &m, options),
                None => Classifier::load(&dir, options),
            }));
        }
    }

    /// The classifier's counters (zero before it is loaded).
    pub fn stats(&self) -> tweetflow_model::ClassifierStats {
        self.classifier
            .as_ref()
            .map(|c| c.stats())
            .unwrap_or_default()
    }

    /// Label and score of every text (`None` texts get `None`), running the model once per
    /// distinct text not already cached, in a blocking thread.
    pub async fn predict(
        &mut self,
        texts: &StringArray,
    ) -> InferResult<Vec<Option<(Sentiment, f32)>>> {
        let mut out: Vec<Option<(Sentiment, f32)>> = Vec::with_capacity(texts.len());
        let mut seen: HashSet<&str> = HashSet::new();
        let mut misses: Vec<String> = Vec::new();
        for i in 0..texts.len() {
            if texts.is_null(i) {
                out.push(None);
                continue;
            }
            let key = text_key(texts.value(i));
            let hit = self.cache.get(key).copied();
            if hit.is_none() && seen.insert(key) {
                misses.push(key.to_string());
            }
            out.push(hit);
        }
        if misses.is_empty() {
            return Ok(out);
        }
        self.distinct_texts += misses.len() as u64;
        let classifier = match self.classifier.take() {
            Some(c) => c,
            None => {
                self.preload();
                match self.loading.take() {
                    Some(loading) => loading
                        .await
                        .map_err(|e| InferError::Worker(e.to_string()))??,
                    None => {
                        return Err(InferError::Worker(
                            "the classifier load was not started".into(),
                        ));
                    }
                }
            }
        };
        let batch_size = self.batch_size;
        let (classifier, misses, preds) = tokio::task::spawn_blocking(move || {
            let mut classifier = classifier;
            let refs: Vec<&str> = misses.iter().map(String::as_str).collect();
            let preds = classifier.predict(&refs, batch_size);
            (classifier, misses, preds)
        })
        .await
        .map_err(|e| InferError::Worker(e.to_string()))?;
        self.classifier = Some(classifier);
        let preds = preds?;
        let fresh: HashMap<&str, (Sentiment, f32)> = misses
            .iter()
            .zip(&preds)
            .map(|(t, p)| (t.as_str(), (p.label, p.score_0_100)))
            .collect();
        for (i, slot) in out.iter_mut().enumerate() {
            if slot.is_none() && !texts.is_null(i) {
                *slot = fresh.get(text_key(texts.value(i))).copied();
            }
        }
        if self.cache.len() + fresh.len() > DEDUP_CACHE_TEXTS {
            self.cache.clear();
        }
        for (t, p) in fresh {
            self.cache.insert(t.to_string(), p);
        }
        Ok(out)
    }
}

fn column_as(batch: &RecordBatch, name: &str, to: &ArrowType) -> Result<ArrayRef, DeltaTaskError> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| DeltaTaskError::Data(format!("silver data lacks the column `{name}`")))?;
    if col.data_type() == to {
        Ok(col.clone())
    } else {
        cast(col, to).map_err(|e| DeltaTaskError::format(format!("column `{name}`"), e))
    }
}

/// Builds the gold batch of one silver batch.
fn gold_batch(
    schema: &SchemaRef,
    silver: &RecordBatch,
    preds: &[Option<(Sentiment, f32)>],
    model: &ResolvedModel,
) -> Result<RecordBatch, DeltaTaskError> {
    let rows = silver.num_rows();
    let mut m: HashMap<&str, ArrayRef> = HashMap::new();
    for name in SILVER_COLUMNS {
        let field = schema
            .field_with_name(name)
            .map_err(|e| DeltaTaskError::format("gold schema", e))?;
        m.insert(name, column_as(silver, name, field.data_type())?);
    }
    let sentiment = column_as(silver, "sentiment", &ArrowType::Utf8)?;
    let sentiment = sentiment.as_string::<i32>();
    let ids: Int32Array = (0..rows)
        .map(|i| {
            if sentiment.is_null(i) {
                None
            } else {
                sentiment_id(sentiment.value(i))
            }
        })
        .collect();
    m.insert("sentiment_id", Arc::new(ids));
    let labels: StringArray = preds.iter().map(|p| p.map(|(s, _)| s.as_str())).collect();
    m.insert("predicted_sentiment", Arc::new(labels));
    let scores: Float64Array = preds.iter().map(|p| p.map(|(_, s)| f64::from(s))).collect();
    m.insert("predicted_score", Arc::new(scores));
    let pids: Int32Array = preds
        .iter()
        .map(|p| p.and_then(|(s, _)| predicted_id(s)))
        .collect();
    m.insert("predicted_sentiment_id", Arc::new(pids));
    m.insert(
        "model_uri",
        Arc::new(StringArray::from(vec![model.uri.as_str(); rows])),
    );
    m.insert(
        "model_version",
        Arc::new(StringArray::from(vec![model.version.as_str(); rows])),
    );
    if rows == 0 {
        for f in schema.fields() {
            m.insert(f.name().as_str(), new_null_array(f.data_type(), 0));
        }
    }
    assemble(schema, m, rows)
}

fn append_op() -> DeltaOperation {
    DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    }
}

/// Runs `infer` once: every silver version not yet consumed.
///
/// The model is resolved (and a registry URI looked up) only when there is new silver data:
/// a run with nothing to do needs neither the registry nor ONNX Runtime.
///
/// When another run commits to gold meanwhile, the work is planned again from the log (up to
/// [`crate::CONFLICT_REPLANS`] times, then a retryable conflict).
pub async fn infer(params: &InferParams, opts: &RunOptions) -> InferResult<InferSummary> {
    let mut model = LoadedModel::default();
    infer_with(params, opts, &mut model).await
}

/// The model of a run, resolved on first need and kept across re-plans.
#[derive(Default)]
pub struct LoadedModel {
    resolved: Option<(ResolvedModel, Predictor)>,
}

impl LoadedModel {
    /// A model resolved already, with its predictor (which may hold a loaded classifier).
    pub fn new(model: ResolvedModel, predictor: Predictor) -> Self {
        LoadedModel {
            resolved: Some((model, predictor)),
        }
    }

    async fn get(&mut self, params: &InferParams) -> InferResult<(&ResolvedModel, &mut Predictor)> {
        if self.resolved.is_none() {
            let model = resolve_model(params).await?;
            let predictor =
                Predictor::for_model(&model, params.classifier_options(), params.batch_size);
            self.resolved = Some((model, predictor));
        }
        match &mut self.resolved {
            Some((model, predictor)) => Ok((model, predictor)),
            None => Err(InferError::Worker("model slot left empty".into())),
        }
    }
}

/// [`infer`] with a model slot (which may hold a resolved model and a loaded classifier).
pub async fn infer_with(
    params: &InferParams,
    opts: &RunOptions,
    model: &mut LoadedModel,
) -> InferResult<InferSummary> {
    if params.batch_size == 0 {
        return Err(DeltaTaskError::Param {
            param: "batch_size",
            message: "must be at least 1".into(),
        }
        .into());
    }
    // Mistakes in `model` are reported whether or not there is data: the URI's syntax, and a
    // model directory that is not there (both without any network access).
    if let ModelSource::Dir(dir) = ModelSource::parse(&params.model)?
        && !dir.is_dir()
    {
        tweetflow_model::verify_dir(&dir)?;
    }
    let mut replans = 0;
    loop {
        match infer_attempt(params, opts, model).await {
            Err(InferError::Delta(DeltaTaskError::Conflict { table, message }))
                if replans < crate::CONFLICT_REPLANS =>
            {
                replans += 1;
                tracing::info!(%table, %message, replans, "infer: concurrent commit, planning again");
            }
            other => return other,
        }
    }
}

/// The model URI and version of gold's latest infer commit (searching back at most
/// [`RECORDED_MODEL_LOOKBACK`] commits).
async fn recorded_model(gold: &deltalake::DeltaTable, location: &str) -> Option<(String, String)> {
    let latest = table::version(gold);
    let oldest = (latest - RECORDED_MODEL_LOOKBACK).max(0);
    for v in (oldest..=latest).rev() {
        let Ok(actions) = table::commit_actions(gold, location, v).await else {
            continue;
        };
        for action in actions {
            if let Action::CommitInfo(info) = action
                && let Some(value) = info.info.get(table::COMMIT_INFO_KEY)
                && value.get("app").and_then(|a| a.as_str()) == Some(APP_ID)
            {
                let field = |k: &str| value.get(k).and_then(|x| x.as_str()).map(str::to_string);
                if let (Some(uri), Some(version)) = (field("model_uri"), field("model_version")) {
                    return Some((uri, version));
                }
            }
        }
    }
    None
}

struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    next_log: u64,
    started: Instant,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "infer {bar:40} {pos}/{len} rows {per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            total,
            done: 0,
            next_log: LOG_EVERY_ROWS,
            started: Instant::now(),
        }
    }

    fn add(&mut self, rows: u64) {
        self.done += rows;
        if let Some(bar) = &self.bar {
            bar.inc(rows);
        } else if self.done >= self.next_log {
            self.next_log = self.done + LOG_EVERY_ROWS;
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                rows = self.done,
                total = self.total,
                rows_per_sec = (self.done as f64 / secs).round(),
                "infer: progress"
            );
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn add_rows(add: &deltalake::kernel::Add) -> u64 {
    add.stats
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v.get("numRecords").and_then(|n| n.as_u64()))
        .unwrap_or(0)
}

async fn infer_attempt(
    params: &InferParams,
    opts: &RunOptions,
    model: &mut LoadedModel,
) -> InferResult<InferSummary> {
    let silver_loc = params.input.clone();
    let gold_loc = params.table.clone();
    let silver =
        table::open_table(&silver_loc)
            .await?
            .ok_or_else(|| DeltaTaskError::MissingInput {
                what: "silver table (run clean first)",
                location: silver_loc.clone(),
            })?;
    let hi = table::version(&silver);
    // Gold is created only when there is something to write (and the model resolved).
    let existing_gold = table::open_table(&gold_loc).await?;
    let lo = match &existing_gold {
        Some(gold) => table::app_version(gold, &gold_loc, APP_ID)
            .await?
            .unwrap_or(-1),
        None => -1,
    };
    let mut summary = InferSummary {
        silver_version: lo,
        table_version: existing_gold.as_ref().map_or(-1, table::version),
        ..Default::default()
    };
    if lo > hi {
        return Err(DeltaTaskError::Data(format!(
            "gold `{gold_loc}` has consumed silver version {lo} but silver `{silver_loc}` is at version {hi}: \
             silver was reset; reset the gold table too"
        ))
        .into());
    }
    if lo == hi {
        // Nothing new: the model is not resolved; the summary names the one gold last used.
        summary.silver_version = hi;
        if let Some(gold) = &existing_gold
            && let Some((uri, version)) = recorded_model(gold, &gold_loc).await
        {
            summary.model_uri = uri;
            summary.model_version = version;
        }
        return Ok(summary);
    }
    let (model, predictor) = model.get(params).await?;
    predictor.preload();
    summary.model_uri = model.uri.clone();
    summary.model_version = model.version.clone();
    let mut gold = match existing_gold {
        Some(gold) => gold,
        None => table::open_or_create(&gold_loc, &gold_schema()?, &[]).await?,
    };
    // Plan: the files silver versions lo+1..=hi added.
    let mut files = Vec::new();
    for v in (lo + 1)..=hi {
        for action in table::commit_actions(&silver, &silver_loc, v).await? {
            match action {
                Action::Add(add) if add.data_change => files.push(add),
                Action::Remove(remove) if remove.data_change => {
                    tracing::warn!(silver = %silver_loc, version = v, file = %remove.path,
                        "silver removed data; gold keeps the rows it already derived from it");
                }
                _ => {}
            }
        }
    }
    let total: u64 = files.iter().map(add_rows).sum();
    let gold_schema = table::arrow_schema(&gold, &gold_loc)?;
    let mut writer = table::writer_for(&gold, &gold_loc, gold_schema.clone())?;
    let stats_before = predictor.stats();
    let distinct_before = predictor.distinct_texts;
    let mut progress = Progress::new(total);
    tracing::info!(silver = %silver_loc, gold = %gold_loc, silver_from = lo + 1, silver_to = hi,
        files = files.len(), rows = total, model = %model.uri, version = %model.version, "infer: planned");
    for add in &files {
        let path = table::add_path(add)?;
        let mut stream = table::read_file(&silver, &path, &SILVER_COLUMNS).await?;
        while let Some(batch) = stream.next().await {
            opts.check_cancel()?;
            let batch =
                batch.map_err(|e| DeltaTaskError::format(format!("reading `{path}`"), e))?;
            if batch.num_rows() == 0 {
                continue;
            }
            let texts = column_as(&batch, "cleaned_text", &ArrowType::Utf8)?;
            let preds = predictor.predict(texts.as_string::<i32>()).await?;
            let out = gold_batch(&gold_schema, &batch, &preds, model)?;
            writer
                .write(out)
                .await
                .map_err(|e| DeltaTaskError::delta(&gold_loc, e))?;
            summary.rows += batch.num_rows() as u64;
            progress.add(batch.num_rows() as u64);
        }
    }
    drop(progress);
    let adds = writer
        .flush()
        .await
        .map_err(|e| DeltaTaskError::delta(&gold_loc, e))?;
    opts.failpoint("infer.after_write")?;
    let stats = predictor.stats();
    summary.inferred = stats.rows_inferred - stats_before.rows_inferred;
    summary.model_batches = stats.batches - stats_before.batches;
    summary.distinct_texts = predictor.distinct_texts - distinct_before;
    summary.silver_version = hi;

    // Exactly-once check, in the commit path: gold must still record `lo`.
    table::refresh(&mut gold, &gold_loc).await?;
    let recorded = table::app_version(&gold, &gold_loc, APP_ID)
        .await?
        .unwrap_or(-1);
    if recorded != lo {
        return Err(DeltaTaskError::Conflict {
            table: gold_loc,
            message: format!("planned after silver version {lo} but gold records {recorded}"),
        }
        .into());
    }
    let version = table::commit(
        &mut gold,
        &gold_loc,
        CommitRequest {
            actions: adds.into_iter().map(Action::Add).collect(),
            operation: append_op(),
            txn: Some(Transaction::new(APP_ID, hi)),
            info: json!({
                "app": APP_ID, "kind": "infer", "silver_from": lo + 1, "silver_to": hi,
                "rows": summary.rows, "distinct_texts": summary.distinct_texts,
                "inferred": summary.inferred, "model_uri": model.uri, "model_version": model.version,
                "batch_size": params.batch_size,
            }),
        },
    )
    .await?;
    opts.failpoint("infer.after_commit")?;
    summary.table_version = version;
    tracing::info!(gold = %params.table, silver_to = hi, rows = summary.rows,
        inferred = summary.inferred, version, "infer committed");
    Ok(summary)
}

/// The `infer` task.
pub struct InferTask;

impl Task for InferTask {
    type Params = InferParams;
    const TYPE: &'static str = "infer";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "Classify new silver tweets with an ONNX sentiment model (directory or models:/ URI) into a gold Delta table, exactly once";

    async fn run(
        &self,
        ctx: &TaskContext,
        params: InferParams,
    ) -> std::result::Result<TaskOutput, TaskError> {
        let opts = RunOptions::from_context(ctx);
        let s = infer(&params, &opts).await?;
        let url = table::table_url(&params.table)?;
        Ok(TaskOutput::new()
            .with("rows", s.rows)
            .with("distinct_texts", s.distinct_texts)
            .with("inferred", s.inferred)
            .with("silver_version", s.silver_version)
            .with("table", params.table.clone())
            .with("table_version", s.table_version)
            .with("model_uri", s.model_uri.clone())
            .with("model_version", s.model_version.clone())
            .with_fingerprint(format!("{url}@{}", s.table_version)))
    }

    /// Valid while gold is at the version the output names and silver has no newer version.
    async fn output_still_valid(&self, params: &InferParams, output: &TaskOutput) -> bool {
        let consumed = output.get("silver_version").and_then(|v| v.as_i64());
        let silver = match table::open_table(&params.input).await {
            Ok(Some(t)) => table::version(&t),
            _ => return false,
        };
        consumed == Some(silver) && crate::output_table_still_valid(&params.table, output).await
    }
}

/// Options of [`bench_infer`].
#[derive(Clone, Debug)]
pub struct InferBenchOptions {
    /// A Sentiment140 CSV (`.csv` or `.csv.gz`: replayed, ingested and cleaned into a silver
    /// table first, untimed) or an existing silver Delta table.
    pub input: PathBuf,
    /// The model directory.
    pub model_dir: PathBuf,
    /// Texts per model batch (`0` = 32).
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads (`0` = the number of cores).
    pub threads: usize,
    /// Tweets replayed from a CSV input (default: all).
    pub limit: Option<usize>,
    /// Rounds; each times the bare loop and the task once, in alternating order (`0` = 1).
    pub rounds: usize,
    /// Where the landing files and tables go (default: a new temporary folder, removed
    /// afterwards unless `keep`).
    pub work_dir: Option<PathBuf>,
    /// Keep the work folder.
    pub keep: bool,
}

/// Default [`InferBenchOptions::rounds`].
pub const DEFAULT_BENCH_ROUNDS: usize = 9;

impl InferBenchOptions {
    /// Batch 32, one thread per core, every tweet, nine rounds, a temporary work folder.
    pub fn new(input: impl Into<PathBuf>, model_dir: impl Into<PathBuf>) -> Self {
        InferBenchOptions {
            input: input.into(),
            model_dir: model_dir.into(),
            batch_size: DEFAULT_BATCH_SIZE,
            threads: 0,
            limit: None,
            rounds: DEFAULT_BENCH_ROUNDS,
            work_dir: None,
            keep: false,
        }
    }
}

/// One round of [`bench_infer`]: the bare loop and the task, back to back.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct InferBenchRound {
    /// Whether the task ran before the bare loop in this round.
    pub task_first: bool,
    /// Seconds of the bare loop (session runs only).
    pub bare_secs: f64,
    /// Seconds of the whole task.
    pub task_secs: f64,
    /// Bare-loop tweets per second.
    pub bare_tweets_per_sec: f64,
    /// Task tweets per second.
    pub task_tweets_per_sec: f64,
    /// `task_tweets_per_sec / bare_tweets_per_sec`.
    pub task_vs_bare: f64,
}

/// Measurements of [`bench_infer`]. Throughputs count distinct texts (tweets; the mention
/// rows of one tweet share a text) per second; the headline numbers are medians over the
/// rounds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InferBenchReport {
    /// Silver rows (tweet × mention) read by the task.
    pub silver_rows: u64,
    /// Distinct texts classified.
    pub distinct_texts: u64,
    /// Texts per model batch.
    pub batch_size: usize,
    /// ONNX Runtime threads.
    pub threads: usize,
    /// Seconds to load the classifier (median over the rounds; not part of the bare loop's
    /// time, part of the task's).
    pub load_secs: f64,
    /// Every round, in order.
    pub rounds: Vec<InferBenchRound>,
    /// Median tweets per second of the bare loop ([`tweetflow_model::bench_bare_loop`]), the
    /// floor.
    pub bare_tweets_per_sec: f64,
    /// Median tweets per second of the task (model load, silver read, tokenization,
    /// inference, gold write and commit).
    pub task_tweets_per_sec: f64,
    /// Median silver rows per second of the task.
    pub task_rows_per_sec: f64,
    /// Median over the rounds of task throughput over bare-loop throughput (1.0 = no
    /// overhead). Each ratio compares two runs made seconds apart, so a machine whose speed
    /// drifts over minutes moves both.
    pub task_vs_bare: f64,
    /// Best task throughput over best bare-loop throughput (each side's least disturbed
    /// round).
    pub best_task_vs_bare: f64,
    /// Gold rows written per task run.
    pub gold_rows: u64,
    /// Peak resident memory of the process in MiB (`VmHWM`).
    pub peak_rss_mib: f64,
    /// The silver table used.
    pub silver: String,
    /// The work folder.
    pub work_dir: String,
}

impl std::fmt::Display for InferBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "input            {} silver rows, {} distinct texts (batch {}, {} threads)",
            self.silver_rows, self.distinct_texts, self.batch_size, self.threads
        )?;
        writeln!(f, "model load       {:8.2} s", self.load_secs)?;
        for (i, r) in self.rounds.iter().enumerate() {
            writeln!(
                f,
                "round {:<2}         bare {:8.2} s {:>7.0} tweets/s   task {:8.2} s {:>7.0} tweets/s   task/bare {:.3}{}",
                i + 1,
                r.bare_secs,
                r.bare_tweets_per_sec,
                r.task_secs,
                r.task_tweets_per_sec,
                r.task_vs_bare,
                if r.task_first { "  (task first)" } else { "" }
            )?;
        }
        writeln!(
            f,
            "bare loop        {:>10.0} tweets/s  (median; model only: the floor)",
            self.bare_tweets_per_sec
        )?;
        writeln!(
            f,
            "infer task       {:>10.0} tweets/s  {:>10.0} rows/s  (median)",
            self.task_tweets_per_sec, self.task_rows_per_sec
        )?;
        writeln!(
            f,
            "task / bare      {:8.3}  (median of the rounds' ratios; best task / best bare {:.3})",
            self.task_vs_bare, self.best_task_vs_bare
        )?;
        writeln!(f, "gold rows        {}", self.gold_rows)?;
        writeln!(f, "peak RSS         {:8.1} MiB", self.peak_rss_mib)?;
        write!(f, "silver           {}", self.silver)
    }
}

fn best(rounds: &[InferBenchRound], f: impl Fn(&InferBenchRound) -> f64) -> f64 {
    rounds.iter().map(f).fold(0.0, f64::max)
}

fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Reads every `cleaned_text` of a silver table's active files (bench only: in memory).
async fn silver_texts(location: &str) -> InferResult<Vec<String>> {
    let t = table::open_table(location)
        .await?
        .ok_or_else(|| DeltaTaskError::MissingInput {
            what: "silver table",
            location: location.to_string(),
        })?;
    let mut out = Vec::new();
    for (path, _, _) in table::active_files(&t, location)? {
        let mut stream = table::read_file(&t, &path, &["cleaned_text"]).await?;
        while let Some(batch) = stream.next().await {
            let batch =
                batch.map_err(|e| DeltaTaskError::format(format!("reading `{path}`"), e))?;
            let col = column_as(&batch, "cleaned_text", &ArrowType::Utf8)?;
            let col = col.as_string::<i32>();
            for i in 0..col.len() {
                if !col.is_null(i) {
                    out.push(col.value(i).to_string());
                }
            }
        }
    }
    Ok(out)
}

/// Times the infer task against the bare model loop on the same texts.
///
/// With a CSV input, the tweets are replayed, ingested and cleaned into a silver table in the
/// work folder first (not timed). Then each round times (a) the distinct `cleaned_text`
/// values of silver through [`tweetflow_model::bench_bare_loop`] (tokenized and padded
/// before the clock starts: the floor) and (b) the whole [`infer`] task from silver into a
/// fresh gold table, in alternating order, so that both see the machine in the same state.
/// This is what `tweetflow bench infer` prints.
pub async fn bench_infer(opts: &InferBenchOptions) -> InferResult<InferBenchReport> {
    let (work, _tmp) = match &opts.work_dir {
        Some(d) => (d.clone(), None),
        None => {
            let tmp = tempfile_dir()?;
            (tmp.clone(), Some(TempDir(tmp, opts.keep)))
        }
    };
    std::fs::create_dir_all(&work)
        .map_err(|e| DeltaTaskError::io(format!("creating `{}`", work.display()), e))?;
    let batch_size = if opts.batch_size == 0 {
        DEFAULT_BATCH_SIZE
    } else {
        opts.batch_size
    };
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let input = opts.input.display().to_string();
    let silver = if opts.input.join("_delta_log").is_dir() {
        input
    } else {
        let p = |n: &str| work.join(n).display().to_string();
        let mut rp = crate::replay::ReplayParams::new(input, p("landing"));
        rp.limit = opts.limit;
        let ro = RunOptions::default();
        crate::replay::replay(&rp, &ro).await?;
        crate::ingest::ingest(
            &crate::ingest::IngestParams::new(p("landing"), p("bronze")),
            &ro,
        )
        .await?;
        crate::clean::clean(
            &crate::clean::CleanParams::new(p("bronze"), p("silver")),
            &ro,
        )
        .await?;
        p("silver")
    };

    let texts = silver_texts(&silver).await?;
    let silver_rows = texts.len() as u64;
    let mut seen = HashSet::new();
    let distinct: Arc<Vec<String>> = Arc::new(
        texts
            .into_iter()
            .filter_map(|t| {
                let k = text_key(&t).to_string();
                seen.insert(k.clone()).then_some(k)
            })
            .collect(),
    );
    drop(seen);
    let n_distinct = distinct.len();
    let options = ClassifierOptions {
        threads,
        labels: None,
    };
    let mut load_secs = Vec::new();

    let mut rounds = Vec::new();
    let mut gold_rows = 0;
    let mut task_rows_per_sec = Vec::new();
    for round in 0..opts.rounds.max(1) {
        let task_first = round % 2 == 1;
        let mut bare = None;
        let mut task = None;
        for step in 0..2 {
            if (step == 0) != task_first {
                // (a) The bare loop on the distinct texts, with a session of its own that is
                // dropped before the task runs (one live session at a time, as in a run).
                let t = Instant::now();
                let c = load_classifier(&opts.model_dir, options.clone()).await?;
                load_secs.push(t.elapsed().as_secs_f64());
                let texts = distinct.clone();
                let r = tokio::task::spawn_blocking(move || {
                    let mut c = c;
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    tweetflow_model::bench_bare_loop(&mut c, &refs, batch_size)
                })
                .await
                .map_err(|e| InferError::Worker(e.to_string()))?;
                bare = Some(r?);
            } else {
                // (b) The whole task, into a fresh gold table.
                let gold = work.join(format!("gold-{round}")).display().to_string();
                let mut params =
                    InferParams::new(silver.clone(), gold, opts.model_dir.display().to_string());
                params.batch_size = batch_size;
                params.threads = Some(threads);
                let t = Instant::now();
                let s = infer(&params, &RunOptions::default()).await?;
                let secs = t.elapsed().as_secs_f64().max(1e-9);
                gold_rows = s.rows;
                task_rows_per_sec.push(s.rows as f64 / secs);
                task = Some(secs);
            }
        }
        let (Some(bare), Some(task_secs)) = (bare, task) else {
            return Err(InferError::Worker("a bench round did not run".into()));
        };
        let task_tps = n_distinct as f64 / task_secs;
        rounds.push(InferBenchRound {
            task_first,
            bare_secs: bare.seconds,
            task_secs,
            bare_tweets_per_sec: bare.tweets_per_sec,
            task_tweets_per_sec: task_tps,
            task_vs_bare: task_tps / bare.tweets_per_sec,
        });
    }
    Ok(InferBenchReport {
        silver_rows,
        distinct_texts: n_distinct as u64,
        batch_size,
        threads,
        load_secs: median(load_secs),
        bare_tweets_per_sec: median(rounds.iter().map(|r| r.bare_tweets_per_sec).collect()),
        task_tweets_per_sec: median(rounds.iter().map(|r| r.task_tweets_per_sec).collect()),
        task_rows_per_sec: median(task_rows_per_sec),
        task_vs_bare: median(rounds.iter().map(|r| r.task_vs_bare).collect()),
        best_task_vs_bare: best(&rounds, |r| r.task_tweets_per_sec)
            / best(&rounds, |r| r.bare_tweets_per_sec),
        rounds,
        gold_rows,
        peak_rss_mib: crate::bench::peak_rss_mib().unwrap_or(0.0),
        silver,
        work_dir: work.display().to_string(),
    })
}

#[allow(clippy::result_large_err)]
fn tempfile_dir() -> InferResult<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "tweetflow-bench-infer-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| DeltaTaskError::io(format!("creating `{}`", dir.display()), e))?;
    Ok(dir)
}

/// Removes the work folder on drop unless it is kept.
struct TempDir(PathBuf, bool);

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
