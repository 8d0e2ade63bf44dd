//! The model side of a run: the classifier, loaded on first use, and a bounded cache of
//! predictions so that the model runs once per distinct text.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use deltalake::arrow::array::{Array, StringArray};
use tweetflow_model::{Classifier, ClassifierOptions, Manifest, Sentiment};

use super::error::{InferError, InferResult};
use super::resolve::ResolvedModel;

/// Distinct texts whose predictions are kept across batches of one run (bounds memory; the
/// cache is emptied when full).
pub const DEDUP_CACHE_TEXTS: usize = 200_000;

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

/// The key a text is cached and de-duplicated under (blank texts share one).
pub(crate) fn text_key(t: &str) -> &str {
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
