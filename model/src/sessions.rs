//! [`Sessions`]: one model directory loaded as several ONNX Runtime sessions in one process,
//! which share the model batches of each prediction.
//!
//! On short texts (tweets), ONNX Runtime's intra-op threads scale poorly: two sessions of one
//! thread each classify about 1.2-2x as many texts per second on 2 cores as one session of two
//! threads. [`Sessions::predict`] therefore plans a prediction exactly as
//! [`Classifier::predict`] does (the same distinct texts, sorted by token length, cut into the
//! same batches), tokenizes the distinct texts in as many parts as there are sessions side by
//! side, then hands the batches out in order: each session's thread takes the next batch not
//! yet taken, runs it, and takes the next. Every batch is the very tensor one session would
//! have run, so the predictions are those of one session, text for text.
//!
//! Memory: each session loads the model (its weights and ONNX Runtime's buffers); `N`
//! sessions cost about `N` times the resident memory of one.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use crate::classifier::{
    Classifier, ClassifierOptions, ClassifierStats, Prediction, distinct_texts, encode_with,
    plan_batches,
};
use crate::error::{ModelError, Result};
use crate::manifest::Manifest;

/// Classifiers of one model directory, each with its own ONNX Runtime session, that split
/// the batches of a prediction between them (see the module docs).
#[derive(Debug)]
pub struct Sessions {
    sessions: Vec<Classifier>,
}

/// A batch a session ran: its index in the plan and one probability row per text.
type RanBatch = (usize, Vec<Vec<f32>>);

/// The answer of a thread that panicked.
fn panicked(what: &str) -> ModelError {
    ModelError::Worker(format!("a model session's thread panicked while {what}"))
}

impl From<Classifier> for Sessions {
    /// One session.
    fn from(classifier: Classifier) -> Self {
        Sessions {
            sessions: vec![classifier],
        }
    }
}

impl Sessions {
    /// Loads `count` sessions (at least one) of a directory whose manifest `m` was verified
    /// against its files, side by side, each with `options` (its intra-op threads included).
    pub fn load_verified(
        dir: &std::path::Path,
        m: &Manifest,
        options: &ClassifierOptions,
        count: usize,
    ) -> Result<Sessions> {
        let count = count.max(1);
        if count == 1 {
            return Ok(Classifier::load_verified(dir, m, options.clone())?.into());
        }
        let loaded: Vec<Result<Classifier>> = thread::scope(|s| {
            let handles: Vec<_> = (0..count)
                .map(|_| s.spawn(|| Classifier::load_verified(dir, m, options.clone())))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(panicked("loading"))))
                .collect()
        });
        Ok(Sessions {
            sessions: loaded.into_iter().collect::<Result<Vec<_>>>()?,
        })
    }

    /// How many sessions there are.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Always false: there is at least one session.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The counters of every session, added up.
    pub fn stats(&self) -> ClassifierStats {
        self.sessions
            .iter()
            .map(Classifier::stats)
            .fold(ClassifierStats::default(), |a, b| ClassifierStats {
                texts: a.texts + b.texts,
                rows_inferred: a.rows_inferred + b.rows_inferred,
                batches: a.batches + b.batches,
            })
    }

    /// [`Classifier::predict`] over every session: the same predictions, in the input order,
    /// with the batches shared between the sessions (see the module docs).
    pub fn predict(&mut self, texts: &[&str], batch_size: usize) -> Result<Vec<Prediction>> {
        if self.sessions.len() <= 1 {
            return match self.sessions.first_mut() {
                Some(session) => session.predict(texts, batch_size),
                None => Err(ModelError::Worker("no model session is loaded".into())),
            };
        }
        self.sessions[0].count_texts(texts.len());
        let (distinct, slot) = distinct_texts(texts);
        let encoded = self.encode(&distinct)?;
        let plan = plan_batches(&encoded, batch_size, true);
        let mut probs = self.sessions[0].uniform(&plan, distinct.len());
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let ran: Vec<Result<Vec<RanBatch>>> = thread::scope(|s| {
            let handles: Vec<_> = self
                .sessions
                .iter_mut()
                .map(|session| {
                    let (plan, encoded, next, failed) = (&plan, &encoded, &next, &failed);
                    s.spawn(move || {
                        let mut done = Vec::new();
                        while !failed.load(Ordering::Relaxed) {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(batch) = plan.batches.get(i) else {
                                break;
                            };
                            match session.run_encoded(encoded, batch) {
                                Ok(rows) => done.push((i, rows)),
                                Err(e) => {
                                    failed.store(true, Ordering::Relaxed);
                                    return Err(e);
                                }
                            }
                        }
                        Ok(done)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(panicked("running"))))
                .collect()
        });
        for outcome in ran {
            for (i, rows) in outcome? {
                for (&text, row) in plan.batches[i].iter().zip(rows) {
                    probs[text] = Some(row);
                }
            }
        }
        self.sessions[0].decide_all(probs, &slot)
    }

    /// Token ids of each text, the texts tokenized in as many parts as there are sessions,
    /// side by side.
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<i64>>> {
        let part = texts.len().div_ceil(self.sessions.len()).max(1);
        let parts: Vec<Result<Vec<Vec<i64>>>> = thread::scope(|s| {
            let handles: Vec<_> = texts
                .chunks(part)
                .zip(&self.sessions)
                .map(|(chunk, session)| {
                    let (encoder, model) = session.encoder();
                    s.spawn(move || encode_with(encoder, model, chunk))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(panicked("tokenizing"))))
                .collect()
        });
        let mut out = Vec::with_capacity(texts.len());
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }
}
