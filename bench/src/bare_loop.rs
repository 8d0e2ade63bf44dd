//! The bare inference loop: the throughput floor an inference task is compared to.

use std::time::Instant;

use serde::Serialize;

use tweetflow_model::{Classifier, DEFAULT_BATCH_SIZE, Result};

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
    let t = Instant::now();
    for (ids, mask) in &batches {
        std::hint::black_box(classifier.run(ids, mask, None)?);
    }
    let seconds = t.elapsed().as_secs_f64();
    Ok(BareLoopBench {
        texts: texts.len(),
        batches: batches.len(),
        seconds,
        tweets_per_sec: if seconds > 0.0 {
            texts.len() as f64 / seconds
        } else {
            f64::INFINITY
        },
    })
}
