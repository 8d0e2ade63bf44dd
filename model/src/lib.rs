//! Tweet sentiment on ONNX Runtime: model directories, batched prediction, label mapping,
//! and the MLflow model registry glue.
//!
//! A **model directory** holds `model.onnx` (inputs `input_ids`, `attention_mask`, optional
//! `token_type_ids`, int64 `[batch, sequence]`; output `probabilities` or the first output,
//! float32 `[batch, labels]`), `tokenizer.json` (Hugging Face tokenizers), `config.json`
//! (`id2label`, optional `neutral_band` for binary models) and `manifest.json` (SHA-256 and
//! size of every other file, checked on every load).
//!
//! ```no_run
//! # fn demo() -> tweetflow_model::Result<()> {
//! use tweetflow_model::{Classifier, ClassifierOptions};
//! let mut c = Classifier::load(std::path::Path::new("data/model/tweet-sentiment"), ClassifierOptions::default())?;
//! let p = c.predict(&["I love this", "I hate this"], 32)?;
//! println!("{} {:.0}", p[0].label, p[0].score_0_100);
//! # Ok(()) }
//! ```
//!
//! * [`runtime`]: finds and loads the ONNX Runtime shared library once per process.
//! * [`Classifier`]: load ([`Classifier::load`]) and [`Classifier::predict`] (de-duplication,
//!   length-sorted batches, input order kept).
//! * [`Sessions`]: one model as several ONNX Runtime sessions in one process, sharing the
//!   batches of each prediction (the same predictions as one session, text for text).
//! * [`Predictor`]: classifier sessions for async callers (loaded in a blocking thread on first
//!   use) with a bounded cache of predictions across batches.
//! * [`labels`]: `id2label` names to [`Sentiment`].
//! * [`registry`]: [`ModelSource`], [`resolve`] (download once into a cache) and [`register`].
//! * [`Classifier::encode`], [`Classifier::pad`], [`Classifier::run`]: the steps of a
//!   prediction, for callers that time the model alone (`tweetflow bench infer`).
//!
//! Errors are [`ModelError`]; [`ModelError::class`] tells retryable, fatal and configuration
//! errors apart.

#![warn(missing_docs)]

pub mod classifier;
pub mod error;
pub mod labels;
pub mod manifest;
pub mod predictor;
pub mod registry;
pub mod runtime;
pub mod sessions;

pub use classifier::{
    Classifier, ClassifierOptions, ClassifierStats, DEFAULT_BATCH_SIZE, Prediction,
};
pub use error::{ErrorClass, ModelError, Result};
pub use labels::{Sentiment, map_labels};
pub use manifest::{Manifest, verify_dir};
pub use predictor::{DEDUP_CACHE_TEXTS, Predictor, dedup_key};
pub use registry::{
    DEFAULT_CACHE_DIR, LocalModel, ModelSource, REGISTER_EXPERIMENT, RegisteredVersion, register,
    register_from_run, resolve,
};
pub use sessions::Sessions;
