//! The bare inference loop: the throughput floor an inference task is compared to.

use std::sync::Barrier;
use std::time::Instant;

use serde::Serialize;

use tweetflow_model::{Classifier, DEFAULT_BATCH_SIZE, ModelError, Result};

/// The outcome of [`bench_bare_loop`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BareLoopBench {
    /// Texts classified (duplicates included: the loop does not de-duplicate).
    pub texts: usize,
    /// Session runs.
    pub batches: usize,
    /// Wall time of the session runs only.
    pub seconds: f64,
    /// `texts / seconds`.
    pub tweets_per_sec: f64,
}

/// Times the model alone: every text is tokenized, sorted by token length, cut into batches
/// of `batch_size` (`0` = 32) and padded *before* the clock starts; then only the ONNX
/// session runs (and the copy of their outputs) are timed. No de-duplication, no label
/// decision, no I/O: this is the floor any inference pipeline over the same texts pays.
pub fn bench_bare_loop(
    classifier: &mut Classifier,
    texts: &[&str],
    batch_size: usize,
) -> Result<BareLoopBench> {
    let (batches, seconds) = time_loop(classifier, texts, batch_size, || {})?;
    Ok(BareLoopBench {
        texts: texts.len(),
        batches,
        seconds,
        tweets_per_sec: rate(texts.len(), seconds),
    })
}

/// [`bench_bare_loop`] of several sessions side by side, one thread each: `texts` is cut into
/// as many contiguous parts as there are `sessions`, each session prepares its part, and
/// every clock starts once all are ready. The figures are of the whole: every text, the
/// batches of all sessions, and the time of the slowest session (the floor of as many
/// single-thread processes as sessions).
pub fn bench_bare_sessions(
    sessions: &mut [Classifier],
    texts: &[&str],
    batch_size: usize,
) -> Result<BareLoopBench> {
    let part = texts.len().div_ceil(sessions.len().max(1)).max(1);
    let ready = Barrier::new(sessions.len().min(texts.chunks(part).len()));
    let timed: Vec<Result<(usize, f64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = sessions
            .iter_mut()
            .zip(texts.chunks(part))
            .map(|(classifier, chunk)| {
                let ready = &ready;
                s.spawn(move || {
                    time_loop(classifier, chunk, batch_size, || {
                        ready.wait();
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ModelError::Worker("a bare loop panicked".into())))
            })
            .collect()
    });
    let (mut batches, mut seconds) = (0, 0.0_f64);
    for t in timed {
        let (b, secs) = t?;
        batches += b;
        seconds = seconds.max(secs);
    }
    Ok(BareLoopBench {
        texts: texts.len(),
        batches,
        seconds,
        tweets_per_sec: rate(texts.len(), seconds),
    })
}

fn rate(texts: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        texts as f64 / seconds
    } else {
        f64::INFINITY
    }
}

/// Tokenizes, sorts and pads `texts` into batches, calls `ready`, then times the session
/// runs alone: the number of batches and the seconds.
fn time_loop(
    classifier: &mut Classifier,
    texts: &[&str],
    batch_size: usize,
    ready: impl FnOnce(),
) -> Result<(usize, f64)> {
    let batch_size = if batch_size == 0 {
        DEFAULT_BATCH_SIZE
    } else {
        batch_size
    };
    let mut encoded = classifier.encode(texts)?;
    encoded.sort_by_key(|e| e.len());
    let batches: Vec<_> = encoded
        .chunks(batch_size)
        .map(|chunk| {
            let seqs: Vec<&[i64]> = chunk.iter().map(|s| s.as_slice()).collect();
            classifier.pad(&seqs)
        })
        .collect();
    ready();
    let t = Instant::now();
    for (ids, mask) in &batches {
        std::hint::black_box(classifier.run(ids, mask, None)?);
    }
    Ok((batches.len(), t.elapsed().as_secs_f64()))
}
