//! Classification metrics from a confusion matrix, with scikit-learn's definitions.
//!
//! Classes are ordered `negative`, `neutral`, `positive` (the sorted label strings, as
//! scikit-learn orders them). The confusion matrix has the true class in rows and the
//! predicted class in columns.
//!
//! * **Binary metrics** (positive class = `positive`) are computed over the tweets whose label
//!   is `positive` or `negative` *and* whose prediction is `positive` or `negative`. Tweets with
//!   a binary label but a `neutral` prediction are left out and counted in
//!   `neutral_predictions_excluded`.
//!   - precision = TP / (TP + FP), recall = TP / (TP + FN),
//!     F1 = 2·TP / (2·TP + FP + FN), accuracy = (TP + TN) / n.
//!   - **Zero-division rule**: a ratio whose denominator is 0 is 0 (scikit-learn's
//!     `zero_division=0`). So no positive prediction gives precision 0, no positive label gives
//!     recall 0, and an empty binary set (for example every prediction `neutral`) gives
//!     precision, recall, F1 and accuracy 0 with `binary_support` 0.
//! * **Macro F1** is the mean of the per-class F1 over the three classes, computed over every
//!   tweet with a label and a prediction, and only when at least one tweet is labelled
//!   `neutral` (otherwise it is `None`: a three-class score means nothing without neutral
//!   labels). A class with no true and no predicted tweet has F1 0 (same zero-division rule);
//!   this equals `f1_score(average="macro", labels=[...3 classes], zero_division=0)`.
//! * **Support** per class is the number of tweets with that true label (row sums).

use serde_json::{Value, json};

/// The classes, in confusion-matrix order.
pub const CLASSES: [&str; 3] = ["negative", "neutral", "positive"];
/// Index of `negative`.
pub const NEG: usize = 0;
/// Index of `neutral`.
pub const NEU: usize = 1;
/// Index of `positive`.
pub const POS: usize = 2;

/// Parses a label or prediction: `positive`/`negative`/`neutral` (any case, trimmed), or the
/// Sentiment140 codes `4`/`0`/`2`.
pub fn parse_class(s: &str) -> Option<usize> {
    match s.trim().to_ascii_lowercase().as_str() {
        "negative" | "neg" | "0" => Some(NEG),
        "neutral" | "neu" | "2" => Some(NEU),
        "positive" | "pos" | "4" => Some(POS),
        _ => None,
    }
}

/// A sentiment id (`1` positive, `0` negative) as a class.
pub fn class_of_id(id: i64) -> Option<usize> {
    match id {
        1 => Some(POS),
        0 => Some(NEG),
        _ => None,
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn f1_of(tp: u64, fp: u64, fn_: u64) -> f64 {
    ratio(2 * tp, 2 * tp + fp + fn_)
}

/// The numbers `log-metrics` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Precision of the positive class over the binary set.
    pub precision: f64,
    /// Recall of the positive class over the binary set.
    pub recall: f64,
    /// F1 of the positive class over the binary set.
    pub f1: f64,
    /// Accuracy over the binary set.
    pub accuracy: f64,
    /// Tweets in the binary set.
    pub binary_support: u64,
    /// Tweets with a binary label whose prediction was `neutral` (left out of the binary set).
    pub neutral_predictions_excluded: u64,
    /// Three-class macro F1 (only when neutral labels exist).
    pub macro_f1: Option<f64>,
    /// Tweets per true class.
    pub support: [u64; 3],
    /// Tweets per predicted class.
    pub predicted: [u64; 3],
    /// Rows: true class; columns: predicted class.
    pub confusion: [[u64; 3]; 3],
}

impl Metrics {
    /// Computes every metric from a confusion matrix (see the module docs).
    pub fn from_confusion(cm: [[u64; 3]; 3]) -> Metrics {
        let tp = cm[POS][POS];
        let fp = cm[NEG][POS];
        let fn_ = cm[POS][NEG];
        let tn = cm[NEG][NEG];
        let n = tp + fp + fn_ + tn;
        let support: [u64; 3] = std::array::from_fn(|c| cm[c].iter().sum());
        let predicted: [u64; 3] = std::array::from_fn(|c| cm.iter().map(|row| row[c]).sum());
        let macro_f1 = (support[NEU] > 0).then(|| {
            (0..3)
                .map(|c| f1_of(cm[c][c], predicted[c] - cm[c][c], support[c] - cm[c][c]))
                .sum::<f64>()
                / 3.0
        });
        Metrics {
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: f1_of(tp, fp, fn_),
            accuracy: ratio(tp + tn, n),
            binary_support: n,
            neutral_predictions_excluded: cm[POS][NEU] + cm[NEG][NEU],
            macro_f1,
            support,
            predicted,
            confusion: cm,
        }
    }

    /// The metrics as JSON (the shape of `metrics.json`'s `metrics` and of the task output).
    pub fn to_json(&self) -> Value {
        let per_class = |v: &[u64; 3]| -> Value {
            json!({ CLASSES[0]: v[0], CLASSES[1]: v[1], CLASSES[2]: v[2] })
        };
        json!({
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "accuracy": self.accuracy,
            "binary_support": self.binary_support,
            "neutral_predictions_excluded": self.neutral_predictions_excluded,
            "macro_f1": self.macro_f1,
            "support": per_class(&self.support),
            "predicted": per_class(&self.predicted),
            "labels": CLASSES,
            "confusion_matrix": self.confusion.iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked() {
        // true\pred  neg neu pos
        // neg         3   1   1
        // neu         0   2   1
        // pos         2   1   4
        let m = Metrics::from_confusion([[3, 1, 1], [0, 2, 1], [2, 1, 4]]);
        assert_eq!(m.binary_support, 10);
        assert_eq!(m.neutral_predictions_excluded, 2);
        assert!((m.precision - 4.0 / 5.0).abs() < 1e-12);
        assert!((m.recall - 4.0 / 6.0).abs() < 1e-12);
        assert!((m.f1 - 8.0 / 11.0).abs() < 1e-12);
        assert!((m.accuracy - 7.0 / 10.0).abs() < 1e-12);
        // per-class F1: neg 6/(6+2+2)=0.6, neu 4/(4+2+1)=4/7, pos 8/(8+2+3)=8/13
        let expected = (0.6 + 4.0 / 7.0 + 8.0 / 13.0) / 3.0;
        assert!((m.macro_f1.unwrap() - expected).abs() < 1e-12);
        assert_eq!(m.support, [5, 3, 7]);
    }

    #[test]
    fn zero_division_is_zero() {
        let m = Metrics::from_confusion([[2, 0, 0], [0, 0, 0], [3, 0, 0]]);
        assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
        assert!((m.accuracy - 0.4).abs() < 1e-12);
        assert_eq!(m.macro_f1, None);
        let m = Metrics::from_confusion([[0, 2, 0], [0, 1, 0], [0, 3, 0]]);
        assert_eq!(
            (m.precision, m.recall, m.f1, m.accuracy, m.binary_support),
            (0.0, 0.0, 0.0, 0.0, 0)
        );
        assert_eq!(m.neutral_predictions_excluded, 5);
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_class(" Positive "), Some(POS));
        assert_eq!(parse_class("0"), Some(NEG));
        assert_eq!(parse_class("2"), Some(NEU));
        assert_eq!(parse_class("mixed"), None);
        assert_eq!(class_of_id(1), Some(POS));
        assert_eq!(class_of_id(7), None);
    }
}
