//! The bare ONNX Runtime loop on the tiny fixture model.
#![allow(clippy::unwrap_used)]

use tweetflow_bench::bench_bare_loop;
use tweetflow_model::{Classifier, ClassifierOptions};
use tweetflow_test_support::tiny_model;

#[test]
fn bare_loop_counts_every_text_and_batch() {
    // 70 texts of different lengths, duplicates included (the loop does not de-duplicate).
    let texts: Vec<String> = (0..70)
        .map(|i| format!("tweet {i} {}", "so good ".repeat(i % 7)))
        .chain(["I love this".to_string(), "I love this".to_string()])
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut c = Classifier::load(
        &tiny_model(),
        ClassifierOptions {
            threads: 1,
            labels: None,
        },
    )
    .unwrap();
    let b = bench_bare_loop(&mut c, &refs, 32).unwrap();
    assert_eq!(b.texts, 72);
    assert_eq!(b.batches, 3);
    assert!(b.seconds > 0.0 && b.tweets_per_sec.is_finite());
    // Every text went through the session, in as many runs as batches.
    assert_eq!(c.stats().rows_inferred, 72);
    assert_eq!(c.stats().batches, 3);

    let b = bench_bare_loop(&mut c, &refs, 0).unwrap();
    assert_eq!(
        b.batches,
        72_usize.div_ceil(tweetflow_model::DEFAULT_BATCH_SIZE)
    );
}

#[test]
fn bare_sessions_count_every_text_of_every_session() {
    let texts: Vec<String> = (0..70)
        .map(|i| format!("tweet {i} {}", "so good ".repeat(i % 7)))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let load = || {
        Classifier::load(
            &tiny_model(),
            ClassifierOptions {
                threads: 1,
                labels: None,
            },
        )
        .unwrap()
    };
    let mut sessions = vec![load(), load()];
    let b = tweetflow_bench::bench_bare_sessions(&mut sessions, &refs, 32).unwrap();
    assert_eq!(b.texts, 70);
    // 35 texts per session: 2 batches each.
    assert_eq!(b.batches, 4);
    assert!(b.seconds > 0.0 && b.tweets_per_sec.is_finite());
    for s in &sessions {
        assert_eq!(s.stats().rows_inferred, 35);
    }
}
