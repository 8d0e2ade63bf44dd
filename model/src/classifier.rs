//! [`Classifier`]: a model directory loaded on ONNX Runtime, predicting [`Sentiment`]s.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ndarray::Array2;
use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::error::{ModelError, Result};
use crate::labels::{Sentiment, map_labels};
use crate::manifest::{self, Manifest};

/// Batch size used when a caller passes `0`.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// The ONNX graph file of a model directory.
pub const MODEL_FILE: &str = "model.onnx";
/// The Hugging Face tokenizer file of a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The configuration file (with `id2label`) of a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// Preferred name of the output holding class probabilities.
pub const OUTPUT_NAME: &str = "probabilities";

/// Options of [`Classifier::load`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierOptions {
    /// ONNX Runtime intra-op threads (`0` = ONNX Runtime's default: one per core).
    pub threads: usize,
    /// Maps model labels (by name, e.g. `"joy"`, or column index, e.g. `"0"`) to sentiments,
    /// for models whose `id2label` names are not self-explaining. Takes precedence over the
    /// automatic mapping.
    pub labels: Option<BTreeMap<String, Sentiment>>,
}

impl Default for ClassifierOptions {
    /// Two threads, automatic label mapping.
    fn default() -> Self {
        ClassifierOptions {
            threads: 2,
            labels: None,
        }
    }
}

/// The prediction for one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The predicted sentiment.
    pub label: Sentiment,
    /// 100 × the probability of the predicted label (for a neutral decided by a binary
    /// model's `neutral_band`: 100 × (1 − |P(positive) − P(negative)|)).
    pub score_0_100: f32,
    /// The model's output row, in column order (see [`Classifier::labels`]).
    pub probabilities: Vec<f32>,
}

/// Counters of a [`Classifier`], to check batching and de-duplication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifierStats {
    /// Texts passed to [`Classifier::predict`].
    pub texts: u64,
    /// Rows run through the model (one per distinct text).
    pub rows_inferred: u64,
    /// Calls of the ONNX session.
    pub batches: u64,
}

#[derive(Deserialize)]
struct ConfigFile {
    id2label: Option<BTreeMap<String, String>>,
    #[serde(default)]
    neutral_band: Option<Vec<f64>>,
    #[serde(default)]
    onnx_output: Option<String>,
    #[serde(default)]
    max_length: Option<usize>,
}

/// A loaded model directory: tokenizer, ONNX session, label mapping.
///
/// Not `Sync`: [`Classifier::predict`] takes `&mut self` (ONNX sessions run with `&mut`);
/// load one classifier per worker thread.
pub struct Classifier {
    dir: PathBuf,
    model_path: PathBuf,
    session: Session,
    /// Padding `BatchLongest`, truncation as in `tokenizer.json`.
    tokenizer: Tokenizer,
    /// The same without padding: texts are encoded one by one, then batched.
    encoder: Tokenizer,
    labels: Vec<Sentiment>,
    label_names: Vec<String>,
    neutral_band: Option<(f32, f32)>,
    input_ids: String,
    attention_mask: String,
    token_type_ids: Option<String>,
    output: String,
    pad_id: i64,
    stats: ClassifierStats,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("dir", &self.dir)
            .field("labels", &self.labels)
            .field("neutral_band", &self.neutral_band)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

fn require_file(dir: &Path, m: &manifest::Manifest, file: &str, what: &str) -> Result<PathBuf> {
    let p = dir.join(file);
    if !p.is_file() {
        return Err(ModelError::MissingFile {
            dir: dir.to_path_buf(),
            file: file.into(),
            hint: format!(" ({what})"),
        });
    }
    if !m.lists(file) {
        return Err(ModelError::Manifest {
            dir: dir.to_path_buf(),
            message: format!(
                "{} does not list {file}; its content cannot be verified",
                manifest::MANIFEST_FILE
            ),
        });
    }
    Ok(p)
}

fn ort_err(path: &Path, what: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::invalid_model(path, format!("{what}: {e}"))
}

impl Classifier {
    /// Loads a model directory: verifies `manifest.json` (SHA-256 of every file), reads
    /// `config.json` (`id2label`, optional `neutral_band` for 2-label models), maps the labels
    /// (see [`map_labels`]), loads `tokenizer.json` (padding forced to the longest text of
    /// each batch, truncation kept; when the tokenizer has none, `config.json` `max_length`
    /// is applied), and opens `model.onnx` on ONNX Runtime ([`crate::runtime::init`]) with
    /// `options.threads` intra-op threads. The graph must have the inputs `input_ids` and
    /// `attention_mask` (int64 [batch, sequence]); `token_type_ids` is fed (zeros) only when
    /// the graph has it. The output is `probabilities`, else `config.json` `onnx_output`,
    /// else the first output (float32 [batch, labels]).
    pub fn load(dir: &Path, options: ClassifierOptions) -> Result<Classifier> {
        let m = manifest::verify_dir(dir)?;
        Self::load_verified(dir, &m, options)
    }

    /// [`Classifier::load`] of a directory whose manifest `m` was just verified against its
    /// files (by [`manifest::verify_dir`] or [`crate::resolve`]): the files are not hashed a
    /// second time.
    pub fn load_verified(
        dir: &Path,
        m: &Manifest,
        options: ClassifierOptions,
    ) -> Result<Classifier> {
        let model_path = require_file(dir, m, MODEL_FILE, "the ONNX graph")?;
        let tok_path = require_file(dir, m, TOKENIZER_FILE, "the Hugging Face tokenizer")?;
        let cfg_path = require_file(dir, m, CONFIG_FILE, "with id2label")?;

        // config.json
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
        let cfg: ConfigFile = serde_json::from_str(&text)
            .map_err(|e| ModelError::invalid_model(&cfg_path, format!("not valid JSON: {e}")))?;
        let raw = cfg
            .id2label
            .ok_or_else(|| ModelError::invalid_model(&cfg_path, "no id2label"))?;
        let mut id2label = BTreeMap::new();
        for (k, v) in raw {
            let i: usize = k.trim().parse().map_err(|_| {
                ModelError::invalid_model(
                    &cfg_path,
                    format!("id2label key {k:?} is not a column index"),
                )
            })?;
            id2label.insert(i, v);
        }
        let labels = map_labels(&id2label, options.labels.as_ref()).map_err(|e| match e {
            ModelError::Labels(msg) => ModelError::Labels(format!("{}: {msg}", cfg_path.display())),
            other => other,
        })?;
        let label_names: Vec<String> = id2label.values().cloned().collect();
        let neutral_band = match (&cfg.neutral_band, labels.len()) {
            (Some(b), 2) => match b.as_slice() {
                [lo, hi] if 0.0 <= *lo && lo < hi && *hi <= 1.0 => Some((*lo as f32, *hi as f32)),
                _ => {
                    return Err(ModelError::invalid_model(
                        &cfg_path,
                        format!(
                            "neutral_band must be [low, high] with 0 <= low < high <= 1, got {b:?}"
                        ),
                    ));
                }
            },
            // 3-label models decide neutral themselves (the band is informational there).
            _ => None,
        };

        // tokenizer.json
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| {
            ModelError::invalid_model(&tok_path, format!("cannot load the tokenizer: {e}"))
        })?;
        let mut padding = tokenizer.get_padding().cloned().unwrap_or_else(|| {
            let mut p = PaddingParams::default();
            if let Some(id) = tokenizer.token_to_id("[PAD]") {
                p.pad_id = id;
            } else if let Some(id) = tokenizer.token_to_id("<pad>") {
                p.pad_id = id;
                p.pad_token = "<pad>".into();
            }
            p
        });
        padding.strategy = PaddingStrategy::BatchLongest;
        padding.pad_to_multiple_of = None;
        let pad_id = i64::from(padding.pad_id);
        if tokenizer.get_truncation().is_none()
            && let Some(max) = cfg.max_length
        {
            tokenizer
                .with_truncation(Some(TruncationParams {
                    max_length: max,
                    ..Default::default()
                }))
                .map_err(|e| ModelError::invalid_model(&tok_path, format!("truncation: {e}")))?;
        }
        let mut encoder = tokenizer.clone();
        encoder.with_padding(None);
        tokenizer.with_padding(Some(padding));

        // model.onnx
        let rt = crate::runtime::init()?;
        let threads = options.threads;
        let session = {
            let b = Session::builder(&rt.env)
                .map_err(|e| ort_err(&model_path, "session options", e))?;
            let b = b
                .with_intra_threads(threads)
                .map_err(|e| ort_err(&model_path, "intra-op threads", e))?;
            let mut b = b
                .with_inter_threads(1)
                .map_err(|e| ort_err(&model_path, "inter-op threads", e))?;
            b.commit_from_file(&model_path)
                .map_err(|e| ort_err(&model_path, "ONNX Runtime cannot load the graph", e))?
        };
        let inputs: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        for required in ["input_ids", "attention_mask"] {
            if !inputs.iter().any(|n| n == required) {
                return Err(ModelError::invalid_model(
                    &model_path,
                    format!(
                        "the graph has no input {required:?} (inputs: {}); a model directory's graph takes \
                         input_ids and attention_mask (and optionally token_type_ids), int64 [batch, sequence]",
                        inputs.join(", ")
                    ),
                ));
            }
        }
        if let Some(other) = inputs.iter().find(|n| {
            !matches!(
                n.as_str(),
                "input_ids" | "attention_mask" | "token_type_ids"
            )
        }) {
            return Err(ModelError::invalid_model(
                &model_path,
                format!(
                    "the graph has an input {other:?} this classifier cannot feed (inputs: {})",
                    inputs.join(", ")
                ),
            ));
        }
        let outputs: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let output = if outputs.iter().any(|o| o == OUTPUT_NAME) {
            OUTPUT_NAME.to_string()
        } else if let Some(o) = cfg.onnx_output.filter(|o| outputs.contains(o)) {
            o
        } else {
            outputs
                .first()
                .cloned()
                .ok_or_else(|| ModelError::invalid_model(&model_path, "the graph has no output"))?
        };
        if let Some(o) = session.outputs().iter().find(|o| o.name() == output)
            && let ort::value::ValueType::Tensor { shape, .. } = o.dtype()
            && let Some(&width) = shape.last()
            && shape.len() == 2
            && width > 0
            && width as usize != labels.len()
        {
            return Err(ModelError::invalid_model(
                &model_path,
                format!(
                    "output {output:?} has {width} columns but {} has {} labels",
                    cfg_path.display(),
                    labels.len()
                ),
            ));
        }
        Ok(Classifier {
            dir: dir.to_path_buf(),
            model_path,
            session,
            tokenizer,
            encoder,
            labels,
            label_names,
            neutral_band,
            input_ids: "input_ids".into(),
            attention_mask: "attention_mask".into(),
            token_type_ids: inputs.iter().find(|n| *n == "token_type_ids").cloned(),
            output,
            pad_id,
            stats: ClassifierStats::default(),
        })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sentiment of each output column.
    pub fn labels(&self) -> &[Sentiment] {
        &self.labels
    }

    /// The model's own label names (`id2label`), in column order.
    pub fn label_names(&self) -> &[String] {
        &self.label_names
    }

    /// The neutral band applied to a 2-label model (`config.json` `neutral_band`), if any.
    pub fn neutral_band(&self) -> Option<(f32, f32)> {
        self.neutral_band
    }

    /// The tokenizer (padding `BatchLongest`, truncation as configured).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Whether the graph takes `token_type_ids`.
    pub fn has_token_type_ids(&self) -> bool {
        self.token_type_ids.is_some()
    }

    /// Counters since load (or the last [`Classifier::reset_stats`]).
    pub fn stats(&self) -> ClassifierStats {
        self.stats
    }

    /// Sets the counters to zero.
    pub fn reset_stats(&mut self) {
        self.stats = ClassifierStats::default();
    }

    /// Token ids of each text (no padding), in order.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<i64>>> {
        encode_with(&self.encoder, &self.model_path, texts)
    }

    /// The tokenizer of [`Classifier::encode`] and the model file its errors name.
    pub(crate) fn encoder(&self) -> (&Tokenizer, &Path) {
        (&self.encoder, &self.model_path)
    }

    /// Padded `[batch, longest]` arrays (ids, mask) of a batch of encodings.
    pub fn pad(&self, batch: &[&[i64]]) -> (Array2<i64>, Array2<i64>) {
        let width = batch.iter().map(|b| b.len()).max().unwrap_or(0).max(1);
        let mut ids = Array2::from_elem((batch.len(), width), self.pad_id);
        let mut mask = Array2::zeros((batch.len(), width));
        for (r, seq) in batch.iter().enumerate() {
            for (c, &t) in seq.iter().enumerate() {
                ids[[r, c]] = t;
                mask[[r, c]] = 1;
            }
        }
        (ids, mask)
    }

    /// Runs one padded batch (from [`Classifier::pad`]); returns one probability row per text.
    /// No de-duplication, no label decision: [`Classifier::predict`] does those.
    pub fn run(
        &mut self,
        ids: &Array2<i64>,
        mask: &Array2<i64>,
        types: Option<&Array2<i64>>,
    ) -> Result<Vec<Vec<f32>>> {
        let model = self.model_path.clone();
        let fail = |what: &str, e: &dyn std::fmt::Display| ModelError::Inference {
            model: model.clone(),
            message: format!("{what}: {e}"),
        };
        let rows = ids.nrows();
        let mut feed: Vec<(String, ort::session::SessionInputValue<'_>)> = vec![
            (
                self.input_ids.clone(),
                TensorRef::from_array_view(ids.view())
                    .map_err(|e| fail("input_ids", &e))?
                    .into(),
            ),
            (
                self.attention_mask.clone(),
                TensorRef::from_array_view(mask.view())
                    .map_err(|e| fail("attention_mask", &e))?
                    .into(),
            ),
        ];
        let zeros;
        if let Some(name) = &self.token_type_ids {
            let t = match types {
                Some(t) => t,
                None => {
                    zeros = Array2::<i64>::zeros(ids.raw_dim());
                    &zeros
                }
            };
            feed.push((
                name.clone(),
                TensorRef::from_array_view(t.view())
                    .map_err(|e| fail("token_type_ids", &e))?
                    .into(),
            ));
        }
        let n = self.labels.len();
        let output = self.output.clone();
        let outputs = self.session.run(feed).map_err(|e| fail("run", &e))?;
        let value = outputs
            .get(&output)
            .ok_or_else(|| fail("output", &format!("no output {output:?}")))?;
        let arr = value
            .try_extract_array::<f32>()
            .map_err(|e| fail(&format!("output {output:?} is not float32"), &e))?;
        if arr.shape() != [rows, n] {
            return Err(fail(
                "output shape",
                &format!(
                    "{output:?} has shape {:?}, expected [{rows}, {n}]",
                    arr.shape()
                ),
            ));
        }
        let out: Vec<Vec<f32>> = arr
            .outer_iter()
            .map(|r| r.iter().copied().collect())
            .collect();
        drop(outputs);
        self.stats.batches += 1;
        self.stats.rows_inferred += rows as u64;
        Ok(out)
    }

    /// Label and score of one probability row.
    fn decide(&self, probs: Vec<f32>) -> Result<Prediction> {
        if probs.iter().any(|p| !p.is_finite()) {
            return Err(ModelError::Inference {
                model: self.model_path.clone(),
                message: format!("the model answered non-finite probabilities {probs:?}"),
            });
        }
        let mut best = 0;
        for (i, p) in probs.iter().enumerate() {
            if *p > probs[best] {
                best = i;
            }
        }
        if let Some((lo, hi)) = self.neutral_band {
            let col = |s: Sentiment| self.labels.iter().position(|l| *l == s);
            if let (Some(pos), Some(neg)) = (col(Sentiment::Positive), col(Sentiment::Negative)) {
                let p = probs[pos];
                if lo < p && p < hi {
                    let score = 100.0 * (1.0 - (probs[pos] - probs[neg]).abs());
                    return Ok(Prediction {
                        label: Sentiment::Neutral,
                        score_0_100: score,
                        probabilities: probs,
                    });
                }
            }
        }
        Ok(Prediction {
            label: self.labels[best],
            score_0_100: 100.0 * probs[best],
            probabilities: probs,
        })
    }

    /// Classifies texts; the answer has one prediction per text, in the input order.
    ///
    /// Identical texts are run once. Distinct texts are sorted by token length and cut into
    /// batches of `batch_size` (`0` = [`DEFAULT_BATCH_SIZE`]) padded to their longest text, so
    /// that short texts do not pay for long ones.
    ///
    /// Empty and whitespace-only texts are classified as the empty string: the model runs on
    /// the tokenizer's encoding of `""` (`[CLS] [SEP]` for BERT tokenizers), so they get the
    /// model's own answer for a text without content. If a tokenizer yields no token at all
    /// for a text, the model is not run for it: its probabilities are uniform and the label
    /// follows the usual rule (first column, or neutral within a binary model's band).
    pub fn predict(&mut self, texts: &[&str], batch_size: usize) -> Result<Vec<Prediction>> {
        self.predict_batched(texts, batch_size, true)
    }

    /// [`Classifier::predict`] with batches cut in the order the distinct texts first appear
    /// (no length sorting: more padding, same answers). Shows that a text's prediction does
    /// not depend on its batch mates.
    pub fn predict_in_input_order(
        &mut self,
        texts: &[&str],
        batch_size: usize,
    ) -> Result<Vec<Prediction>> {
        self.predict_batched(texts, batch_size, false)
    }

    fn predict_batched(
        &mut self,
        texts: &[&str],
        batch_size: usize,
        sort_by_length: bool,
    ) -> Result<Vec<Prediction>> {
        self.count_texts(texts.len());
        let (distinct, slot) = distinct_texts(texts);
        let encoded = self.encode(&distinct)?;
        let plan = plan_batches(&encoded, batch_size, sort_by_length);
        let mut probs = self.uniform(&plan, distinct.len());
        for batch in &plan.batches {
            let rows = self.run_encoded(&encoded, batch)?;
            for (&i, row) in batch.iter().zip(rows) {
                probs[i] = Some(row);
            }
        }
        self.decide_all(probs, &slot)
    }

    /// Counts `n` texts passed to a prediction.
    pub(crate) fn count_texts(&mut self, n: usize) {
        self.stats.texts += n as u64;
    }

    /// The probabilities known before the model runs: uniform for the texts without tokens,
    /// `None` for the others (`n`: the number of distinct texts).
    pub(crate) fn uniform(&self, plan: &BatchPlan, n: usize) -> Vec<Option<Vec<f32>>> {
        let labels = self.labels.len();
        let mut probs: Vec<Option<Vec<f32>>> = vec![None; n];
        for &i in &plan.empty {
            probs[i] = Some(vec![1.0 / labels as f32; labels]);
        }
        probs
    }

    /// Pads and runs one planned batch (indices into `encoded`): one probability row per text.
    pub(crate) fn run_encoded(
        &mut self,
        encoded: &[Vec<i64>],
        batch: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        let seqs: Vec<&[i64]> = batch.iter().map(|&i| encoded[i].as_slice()).collect();
        let (ids, mask) = self.pad(&seqs);
        self.run(&ids, &mask, None)
    }

    /// The predictions of the texts whose distinct text is `slot[i]`, from the probabilities
    /// of every distinct text.
    pub(crate) fn decide_all(
        &self,
        probs: Vec<Option<Vec<f32>>>,
        slot: &[usize],
    ) -> Result<Vec<Prediction>> {
        let mut decided = Vec::with_capacity(probs.len());
        for p in probs {
            let p = p.ok_or_else(|| ModelError::Inference {
                model: self.model_path.clone(),
                message: "internal error: a text got no prediction".into(),
            })?;
            decided.push(self.decide(p)?);
        }
        Ok(slot.iter().map(|&s| decided[s].clone()).collect())
    }

    /// [`Classifier::predict`] for one text.
    pub fn predict_one(&mut self, text: &str) -> Result<Prediction> {
        let mut v = self.predict(&[text], 1)?;
        v.pop().ok_or_else(|| ModelError::Inference {
            model: self.model_path.clone(),
            message: "internal error: no prediction".into(),
        })
    }
}

/// The distinct texts of `texts` in the order they first appear (blank texts as the empty
/// text), and for each text the index of its distinct text.
pub(crate) fn distinct_texts<'t>(texts: &[&'t str]) -> (Vec<&'t str>, Vec<usize>) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut distinct: Vec<&str> = Vec::new();
    let slot: Vec<usize> = texts
        .iter()
        .map(|t| {
            let key = if t.trim().is_empty() { "" } else { *t };
            *index.entry(key).or_insert_with(|| {
                distinct.push(key);
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, slot)
}

/// The model batches of one prediction, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchPlan {
    /// Texts without any token (the model does not run for them).
    pub(crate) empty: Vec<usize>,
    /// Batches of at most `batch_size` texts (indices into the encodings).
    pub(crate) batches: Vec<Vec<usize>>,
}

/// Cuts `encoded` into batches of `batch_size` (`0` = [`DEFAULT_BATCH_SIZE`]): by token length
/// when `sort_by_length` (so that short texts do not pay for long ones), else in input order.
pub(crate) fn plan_batches(
    encoded: &[Vec<i64>],
    batch_size: usize,
    sort_by_length: bool,
) -> BatchPlan {
    let batch_size = if batch_size == 0 {
        DEFAULT_BATCH_SIZE
    } else {
        batch_size
    };
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    if sort_by_length {
        order.sort_by_key(|&i| encoded[i].len());
    }
    let (empty, nonempty): (Vec<usize>, Vec<usize>) =
        order.into_iter().partition(|&i| encoded[i].is_empty());
    BatchPlan {
        empty,
        batches: nonempty.chunks(batch_size).map(<[usize]>::to_vec).collect(),
    }
}

/// [`Classifier::encode`] with `encoder`; errors name `model`.
pub(crate) fn encode_with(
    encoder: &Tokenizer,
    model: &Path,
    texts: &[&str],
) -> Result<Vec<Vec<i64>>> {
    let owned: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    let enc = encoder
        .encode_batch(owned, true)
        .map_err(|e| ModelError::Inference {
            model: model.to_path_buf(),
            message: format!("tokenization failed: {e}"),
        })?;
    Ok(enc
        .iter()
        .map(|e| e.get_ids().iter().map(|&i| i64::from(i)).collect())
        .collect())
}
