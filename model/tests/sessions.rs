//! [`Sessions`]: several sessions of one model give the predictions of one session, text for
//! text, whatever the number of sessions.
#![allow(clippy::unwrap_used)]

mod common;

use common::sample_texts;
use tweetflow_model::{Classifier, ClassifierOptions, Sessions, verify_dir};
use tweetflow_test_support::{tiny_model, tiny_model_int8};

fn one_thread() -> ClassifierOptions {
    ClassifierOptions {
        threads: 1,
        labels: None,
    }
}

fn sessions_predict_as_one_session(model: &std::path::Path) {
    // Duplicates, blanks and texts of many lengths, more than a few batches.
    let mut texts: Vec<String> = Vec::new();
    for round in 0..6 {
        for t in sample_texts() {
            texts.push(format!("{t} {round}"));
            texts.push(t);
        }
        texts.push("   ".into());
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut one = Classifier::load(model, one_thread()).unwrap();
    let expected = one.predict(&refs, 4).unwrap();
    let manifest = verify_dir(model).unwrap();
    for count in [1, 2, 3] {
        let mut sessions = Sessions::load_verified(model, &manifest, &one_thread(), count).unwrap();
        assert_eq!(sessions.len(), count);
        let got = sessions.predict(&refs, 4).unwrap();
        // Bit for bit: every batch is the tensor the single session ran.
        assert_eq!(got, expected, "{count} sessions");
        let (a, b) = (sessions.stats(), one.stats());
        assert_eq!(
            (a.texts, a.rows_inferred, a.batches),
            (b.texts, b.rows_inferred, b.batches),
            "{count} sessions"
        );
        // Again, with other batches: still the same answers.
        assert_eq!(sessions.predict(&refs[..17], 4).unwrap(), expected[..17]);
    }
}

#[test]
fn sessions_predict_as_one_session_text_for_text() {
    sessions_predict_as_one_session(&tiny_model());
}

#[test]
fn sessions_of_the_int8_model_predict_as_one_session_text_for_text() {
    sessions_predict_as_one_session(&tiny_model_int8());
}
