//! [`Predictor`]: classifier [`Sessions`] for async callers, loaded on first use in a blocking
//! thread, with a bounded cache of predictions so that the model runs once per distinct text
//! across the batches of a run.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::classifier::{Classifier, ClassifierOptions, ClassifierStats};
use crate::error::{ModelError, Result};
use crate::labels::Sentiment;
use crate::manifest::Manifest;
use crate::sessions::Sessions;

/// Distinct texts whose predictions are kept across batches of one run (bounds memory; the
/// cache is emptied when full).
pub const DEDUP_CACHE_TEXTS: usize = 200_000;

/// The key a text is cached and de-duplicated under: blank texts share one (the empty text).
pub fn dedup_key(text: &str) -> &str {
    if text.trim().is_empty() { "" } else { text }
}

/// The label and score (0-100) of one text.
pub type Scored = (Sentiment, f32);

/// The model side of a run: the classifier sessions (loaded on first use) and the prediction
/// cache.
pub struct Predictor {
    classifier: Option<Sessions>,
    loading: Option<tokio::task::JoinHandle<Result<Sessions>>>,
    dir: PathBuf,
    /// Set when the directory was verified already (the load does not hash it again).
    manifest: Option<Manifest>,
    options: ClassifierOptions,
    /// ONNX Runtime sessions to load (each with `options.threads` intra-op threads).
    sessions: usize,
    batch_size: usize,
    cache: HashMap<String, Scored>,
    /// Distinct texts sent to the model.
    pub distinct_texts: u64,
}

fn worker_failed(err: tokio::task::JoinError) -> ModelError {
    ModelError::Worker(err.to_string())
}

impl Predictor {
    /// A predictor for the model in `dir` (loaded on the first [`Predictor::predict`]), one
    /// session.
    pub fn new(dir: PathBuf, options: ClassifierOptions, batch_size: usize) -> Self {
        Predictor {
            classifier: None,
            loading: None,
            dir,
            manifest: None,
            options,
            sessions: 1,
            batch_size: batch_size.max(1),
            cache: HashMap::new(),
            distinct_texts: 0,
        }
    }

    /// A predictor for a directory verified already against `manifest`, which spares the
    /// load a second pass over the files.
    pub fn verified(
        dir: PathBuf,
        manifest: Manifest,
        options: ClassifierOptions,
        batch_size: usize,
    ) -> Self {
        let mut p = Predictor::new(dir, options, batch_size);
        p.manifest = Some(manifest);
        p
    }

    /// The same predictor with `count` ONNX Runtime sessions (at least one), which share
    /// the model batches of each prediction (see [`Sessions`]); set before the first load.
    pub fn with_sessions(mut self, count: usize) -> Self {
        self.sessions = count.max(1);
        self
    }

    /// A predictor around an already loaded classifier (one session).
    pub fn with_classifier(classifier: Classifier, batch_size: usize) -> Self {
        let dir = classifier.dir().to_path_buf();
        Predictor {
            classifier: Some(classifier.into()),
            loading: None,
            dir,
            manifest: None,
            options: ClassifierOptions::default(),
            sessions: 1,
            batch_size: batch_size.max(1),
            cache: HashMap::new(),
            distinct_texts: 0,
        }
    }

    /// ONNX Runtime sessions this predictor loads (or has loaded).
    pub fn sessions(&self) -> usize {
        self.classifier
            .as_ref()
            .map_or(self.sessions, Sessions::len)
    }

    /// Starts loading the sessions in a blocking thread, so that the load overlaps with
    /// whatever the caller does next (planning, reading the first batch); the first
    /// [`Predictor::predict`] waits for it. Does nothing when they are loaded or loading.
    pub fn preload(&mut self) {
        if self.classifier.is_none() && self.loading.is_none() {
            let dir = self.dir.clone();
            let options = self.options.clone();
            let manifest = self.manifest.clone();
            let count = self.sessions;
            self.loading = Some(tokio::task::spawn_blocking(move || {
                let m = match manifest {
                    Some(m) => m,
                    None => crate::manifest::verify_dir(&dir)?,
                };
                Sessions::load_verified(&dir, &m, &options, count)
            }));
        }
    }

    /// The counters of the sessions, added up (zero before they are loaded).
    pub fn stats(&self) -> ClassifierStats {
        self.classifier
            .as_ref()
            .map(|c| c.stats())
            .unwrap_or_default()
    }

    /// The sessions, waiting for (or starting) their load.
    async fn take_classifier(&mut self) -> Result<Sessions> {
        if let Some(c) = self.classifier.take() {
            return Ok(c);
        }
        self.preload();
        match self.loading.take() {
            Some(loading) => loading.await.map_err(worker_failed)?,
            None => Err(ModelError::Worker(
                "the classifier load was not started".into(),
            )),
        }
    }

    /// Label and score of every text (`None` texts get `None`), running the model once per
    /// distinct text not already cached, in a blocking thread.
    pub async fn predict(&mut self, texts: &[Option<&str>]) -> Result<Vec<Option<Scored>>> {
        let mut out: Vec<Option<Scored>> = Vec::with_capacity(texts.len());
        let mut seen: HashSet<&str> = HashSet::new();
        let mut misses: Vec<String> = Vec::new();
        for text in texts {
            let Some(text) = text else {
                out.push(None);
                continue;
            };
            let key = dedup_key(text);
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
        let classifier = self.take_classifier().await?;
        let batch_size = self.batch_size;
        let (classifier, misses, preds) = tokio::task::spawn_blocking(move || {
            let mut classifier = classifier;
            let refs: Vec<&str> = misses.iter().map(String::as_str).collect();
            let preds = classifier.predict(&refs, batch_size);
            (classifier, misses, preds)
        })
        .await
        .map_err(worker_failed)?;
        self.classifier = Some(classifier);
        let preds = preds?;
        let fresh: HashMap<&str, Scored> = misses
            .iter()
            .zip(&preds)
            .map(|(t, p)| (t.as_str(), (p.label, p.score_0_100)))
            .collect();
        for (slot, text) in out.iter_mut().zip(texts) {
            if slot.is_none()
                && let Some(text) = text
            {
                *slot = fresh.get(dedup_key(text)).copied();
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
