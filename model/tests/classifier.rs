//! Classifier tests on the tiny fixture models (fp32 and int8, a few KB).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{copy_dir, fixture, sample_texts, tiny_with_labels};
use tweetflow_model::{Classifier, ClassifierOptions, ErrorClass, ModelError, Sentiment};
use tweetflow_test_support::{tiny_model, tiny_model_int8};

fn load(dir: &std::path::Path) -> Classifier {
    Classifier::load(
        dir,
        ClassifierOptions {
            threads: 1,
            labels: None,
        },
    )
    .unwrap()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-3)
}

#[test]
fn tiny_model_predicts_the_obvious() {
    let mut c = load(&tiny_model());
    assert_eq!(
        c.labels(),
        &[Sentiment::Negative, Sentiment::Neutral, Sentiment::Positive]
    );
    assert!(c.has_token_type_ids());
    let p = c
        .predict(
            &["I love this", "I hate this", "the phone is on the table"],
            32,
        )
        .unwrap();
    assert_eq!(p[0].label, Sentiment::Positive);
    assert_eq!(p[1].label, Sentiment::Negative);
    assert_eq!(p[2].label, Sentiment::Neutral);
    for x in &p {
        let sum: f32 = x.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{x:?}");
        let best = x.probabilities.iter().cloned().fold(f32::MIN, f32::max);
        assert!((x.score_0_100 - 100.0 * best).abs() < 1e-3, "{x:?}");
    }
    assert!(p[0].score_0_100 > 50.0);
}

#[test]
fn batching_and_order_do_not_change_predictions() {
    batching_and_order_do_not_change_predictions_of(&tiny_model());
}

/// The int8 fixture is quantized like the real encoder (activations per row): batch mates
/// must not move a text's probabilities either.
#[test]
fn batching_and_order_do_not_change_predictions_of_the_int8_model() {
    batching_and_order_do_not_change_predictions_of(&tiny_model_int8());
}

fn batching_and_order_do_not_change_predictions_of(model: &std::path::Path) {
    let texts = sample_texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut c = load(model);
    let one = c.predict(&refs, 1).unwrap();
    let unsorted = c.predict_in_input_order(&refs, 32).unwrap();
    let many = c.predict(&refs, 32).unwrap();
    let default = c.predict(&refs, 0).unwrap();
    // Same texts, reversed and sorted by length: predictions follow their text.
    let mut reversed = refs.clone();
    reversed.reverse();
    let rev = c.predict(&reversed, 7).unwrap();
    let mut sorted = refs.clone();
    sorted.sort_by_key(|t| t.len());
    let srt = c.predict(&sorted, 32).unwrap();
    for (i, t) in refs.iter().enumerate() {
        assert_eq!(one[i].label, many[i].label, "{t}");
        assert!(
            close(&one[i].probabilities, &many[i].probabilities),
            "{t}: {:?} vs {:?}",
            one[i],
            many[i]
        );
        assert!(
            close(&one[i].probabilities, &default[i].probabilities),
            "{t}"
        );
        assert_eq!(one[i].label, unsorted[i].label, "{t}");
        assert!(
            close(&one[i].probabilities, &unsorted[i].probabilities),
            "{t}: {:?} vs {:?} in unsorted batches",
            one[i],
            unsorted[i]
        );
        let j = refs.len() - 1 - i;
        assert_eq!(rev[j].label, one[i].label, "{t}");
        assert!(close(&rev[j].probabilities, &one[i].probabilities), "{t}");
        let k = sorted.iter().position(|s| s == t).unwrap();
        assert_eq!(srt[k].label, one[i].label, "{t}");
        assert!(close(&srt[k].probabilities, &one[i].probabilities), "{t}");
    }
}

#[test]
fn duplicates_are_inferred_once() {
    let mut c = load(&tiny_model());
    let texts = vec!["I love this"; 100];
    let p = c.predict(&texts, 32).unwrap();
    assert_eq!(p.len(), 100);
    assert!(p.iter().all(|x| x == &p[0]));
    let s = c.stats();
    assert_eq!((s.texts, s.rows_inferred, s.batches), (100, 1, 1));

    c.reset_stats();
    let mixed = ["a", "I hate this", "a", "", "  ", "\n", "I hate this", "b"];
    let p = c.predict(&mixed, 2).unwrap();
    assert_eq!(p.len(), mixed.len());
    assert_eq!(p[0], p[2]);
    assert_eq!(p[1], p[6]);
    assert_eq!(p[3], p[4]);
    assert_eq!(p[3], p[5]);
    let s = c.stats();
    // distinct: "a", "I hate this", "" (empty and whitespace-only), "b"
    assert_eq!(s.rows_inferred, 4);
    assert_eq!(s.batches, 2);
}

#[test]
fn empty_and_whitespace_texts_get_the_empty_string_prediction() {
    let mut c = load(&tiny_model());
    let p = c.predict(&["", "   ", "\t\n", "I love this"], 32).unwrap();
    assert_eq!(p[0], p[1]);
    assert_eq!(p[0], p[2]);
    assert!(p[0].probabilities.iter().all(|x| x.is_finite()));
    // The tiny model pools nothing for "[CLS] [SEP]": equal logits, uniform probabilities.
    assert!(close(&p[0].probabilities, &[1.0 / 3.0; 3]), "{:?}", p[0]);
    assert_eq!(c.predict(&[], 32).unwrap(), vec![]);
}

#[test]
fn label_mappings() {
    use Sentiment::*;
    let tmp = tempfile::tempdir().unwrap();
    let opts =
        |labels: Option<BTreeMap<String, Sentiment>>| ClassifierOptions { threads: 1, labels };
    let mut reference = load(&tiny_model());
    let want = reference
        .predict(
            &["I love this", "I hate this", "the phone is on the table"],
            32,
        )
        .unwrap();
    for names in [
        ["negative", "neutral", "positive"],
        ["Neg", "neu", "POS"],
        ["LABEL_0", "LABEL_1", "LABEL_2"],
    ] {
        let dir = tiny_with_labels(tmp.path(), &names);
        let mut c = Classifier::load(&dir, opts(None)).unwrap();
        assert_eq!(c.labels(), &[Negative, Neutral, Positive], "{names:?}");
        assert_eq!(
            c.predict(
                &["I love this", "I hate this", "the phone is on the table"],
                32
            )
            .unwrap(),
            want
        );
    }
    // Names that do not explain themselves: refused without a mapping, accepted with one.
    let dir = tiny_with_labels(tmp.path(), &["sad", "meh", "glad"]);
    let err = Classifier::load(&dir, opts(None)).unwrap_err();
    assert!(matches!(err, ModelError::Labels(_)), "{err}");
    assert_eq!(err.class(), ErrorClass::Config);
    assert!(err.to_string().contains("\"sad\""), "{err}");
    assert!(err.to_string().contains("labels:"), "{err}");
    let mapping: BTreeMap<String, Sentiment> = [
        ("sad".into(), Negative),
        ("meh".into(), Neutral),
        ("2".into(), Positive),
    ]
    .into();
    let mut c = Classifier::load(&dir, opts(Some(mapping))).unwrap();
    assert_eq!(c.labels(), &[Negative, Neutral, Positive]);
    assert_eq!(c.label_names(), &["sad", "meh", "glad"]);
    assert_eq!(c.predict_one("I love this").unwrap().label, Positive);
    // A mapping can also reorder: columns mapped by the caller win over the names.
    let swapped: BTreeMap<String, Sentiment> =
        [("NEG".into(), Positive), ("POS".into(), Negative)].into();
    let mut c = Classifier::load(&tiny_model(), opts(Some(swapped))).unwrap();
    assert_eq!(c.predict_one("I love this").unwrap().label, Negative);
    // A mapping naming a label the model does not have is refused.
    let wrong: BTreeMap<String, Sentiment> = [("joy".into(), Positive)].into();
    let err = Classifier::load(&tiny_model(), opts(Some(wrong))).unwrap_err();
    assert!(err.to_string().contains("joy"), "{err}");
    // Two columns for one sentiment.
    let dir = tiny_with_labels(tmp.path(), &["NEG", "NEG", "POS"]);
    assert!(matches!(
        Classifier::load(&dir, opts(None)).unwrap_err(),
        ModelError::Labels(_)
    ));
}

#[test]
fn binary_model_with_generic_labels_and_neutral_band() {
    use Sentiment::*;
    let mut c = load(&fixture("binary"));
    assert_eq!(c.labels(), &[Negative, Positive]);
    assert_eq!(c.neutral_band(), Some((0.4, 0.6)));
    assert!(!c.has_token_type_ids() || c.has_token_type_ids());
    let p = c
        .predict(
            &[
                "I love this",
                "I hate this",
                "the phone is on the table",
                "good bad",
            ],
            32,
        )
        .unwrap();
    assert_eq!(p[0].label, Positive);
    assert_eq!(p[1].label, Negative);
    // No sentiment word: P(POS) = 0.5, inside the band.
    assert_eq!(p[2].label, Neutral);
    assert!((p[2].probabilities[1] - 0.5).abs() < 1e-4);
    assert!((p[2].score_0_100 - 100.0).abs() < 1e-2, "{:?}", p[2]);
    assert_eq!(p[3].label, Neutral);
    assert!((p[0].score_0_100 - 100.0 * p[0].probabilities[1]).abs() < 1e-3);
}

#[test]
fn tampered_manifest_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_dir(&tiny_model(), &dir);
    let mut tok = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap();
    tok = tok.replacen("\"love\"", "\"lve\"", 1);
    tok.push(' ');
    std::fs::write(dir.join("tokenizer.json"), tok).unwrap();
    let err = Classifier::load(&dir, ClassifierOptions::default()).unwrap_err();
    assert!(matches!(err, ModelError::Manifest { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(err.class(), ErrorClass::Fatal);
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    // Same size, different content: caught by the SHA-256.
    let dir = tmp.path().join("m2");
    copy_dir(&tiny_model(), &dir);
    let mut bytes = std::fs::read(dir.join("model.onnx")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(dir.join("model.onnx"), bytes).unwrap();
    let err = Classifier::load(&dir, ClassifierOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("model.onnx") && err.to_string().contains("SHA-256"),
        "{err}"
    );
}

#[test]
fn missing_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    for file in [
        "model.onnx",
        "tokenizer.json",
        "config.json",
        "manifest.json",
    ] {
        let dir = tmp.path().join(file.replace('.', "-"));
        copy_dir(&tiny_model(), &dir);
        std::fs::remove_file(dir.join(file)).unwrap();
        let err = Classifier::load(&dir, ClassifierOptions::default()).unwrap_err();
        match &err {
            ModelError::MissingFile { file: f, .. } => assert_eq!(f, file),
            other => panic!("{file}: {other:?}"),
        }
        assert!(err.to_string().contains(file), "{err}");
    }
    // A required file that exists but is not in the manifest cannot be verified.
    let dir = tmp.path().join("unlisted");
    copy_dir(&tiny_model(), &dir);
    let m = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&m).unwrap();
    v["files"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["path"] != "config.json");
    std::fs::write(dir.join("manifest.json"), v.to_string()).unwrap();
    let err = Classifier::load(&dir, ClassifierOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("does not list config.json"),
        "{err}"
    );
    let err = Classifier::load(&tmp.path().join("nope"), ClassifierOptions::default()).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn graph_without_attention_mask_is_refused() {
    let err =
        Classifier::load(&fixture("no-attention-mask"), ClassifierOptions::default()).unwrap_err();
    assert!(matches!(err, ModelError::InvalidModel { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("model.onnx") && msg.contains("attention_mask"),
        "{msg}"
    );
}

#[test]
fn classifier_can_move_to_a_worker_thread() {
    fn is_send<T: Send>() {}
    is_send::<Classifier>();
    let mut c = load(&tiny_model());
    let p = std::thread::spawn(move || c.predict_one("I love this").unwrap())
        .join()
        .unwrap();
    assert_eq!(p.label, Sentiment::Positive);
}

#[test]
fn token_type_ids_are_fed_only_when_the_graph_has_them() {
    let mut without = load(&fixture("no-token-type-ids"));
    assert!(!without.has_token_type_ids());
    let mut with = load(&tiny_model());
    let texts = sample_texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_eq!(
        without.predict(&refs, 32).unwrap(),
        with.predict(&refs, 32).unwrap()
    );
}

#[test]
fn long_texts_are_truncated_not_refused() {
    let mut c = load(&tiny_model());
    let long = "I love this movie ".repeat(200);
    let p = c.predict(&[long.as_str(), "I hate this"], 32).unwrap();
    assert_eq!(p[0].label, Sentiment::Positive);
    assert_eq!(p[1].label, Sentiment::Negative);
    // tokenizer.json truncates at 128 tokens.
    let enc = c.tokenizer().encode(long.as_str(), true).unwrap();
    assert_eq!(enc.get_ids().len(), 128);
}
