//! Mapping a model's labels (`config.json` `id2label`) to [`Sentiment`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The canonical sentiment classes every model is mapped to.
///
/// As a param value (e.g. a `labels:` mapping target) its schema is named `LabelClass`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[schemars(
    rename = "LabelClass",
    description = "A sentiment class, as a `labels` mapping target."
)]
pub enum Sentiment {
    /// Negative.
    Negative,
    /// Neutral.
    Neutral,
    /// Positive.
    Positive,
}

impl Sentiment {
    /// `"negative"`, `"neutral"` or `"positive"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Negative => "negative",
            Sentiment::Neutral => "neutral",
            Sentiment::Positive => "positive",
        }
    }

    /// The sentiment a self-explaining label name stands for (case-insensitive):
    /// `NEG`/`negative`, `NEU`/`neutral`, `POS`/`positive`. `None` for other names.
    pub fn from_label_name(name: &str) -> Option<Sentiment> {
        match name.trim().to_ascii_lowercase().as_str() {
            "neg" | "negative" => Some(Sentiment::Negative),
            "neu" | "neutral" => Some(Sentiment::Neutral),
            "pos" | "positive" => Some(Sentiment::Positive),
            _ => None,
        }
    }
}

impl fmt::Display for Sentiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Sentiment {
    type Err = ModelError;
    /// Parses `negative`/`neg`, `neutral`/`neu`, `positive`/`pos` (any case).
    fn from_str(s: &str) -> Result<Sentiment> {
        Sentiment::from_label_name(s).ok_or_else(|| {
            ModelError::Labels(format!(
                "{s:?} is not a sentiment; expected negative, neutral or positive (or NEG, NEU, POS)"
            ))
        })
    }
}

/// `LABEL_<i>` (the Hugging Face default name) -> `i`.
fn generic_index(name: &str) -> Option<usize> {
    name.trim().strip_prefix("LABEL_")?.parse().ok()
}

/// Maps the model's output columns to sentiments.
///
/// `id2label` is `config.json`'s map (column index -> label name). Each column is mapped by,
/// in order: the `mapping` entry for its label name or its index (e.g. `{"joy": positive}` or
/// `{"0": negative}`); a self-explaining name (`NEG`, `negative`, ...); generic names
/// `LABEL_0..LABEL_n` when every label is generic: 2 labels = [negative, positive], 3 =
/// [negative, neutral, positive]. Anything else is an error naming the label and the
/// `labels:` mapping that would fix it. Each sentiment may appear once; negative and
/// positive are required.
pub fn map_labels(
    id2label: &BTreeMap<usize, String>,
    mapping: Option<&BTreeMap<String, Sentiment>>,
) -> Result<Vec<Sentiment>> {
    let n = id2label.len();
    if !(2..=3).contains(&n) {
        return Err(ModelError::Labels(format!(
            "the model has {n} labels ({}); expected 2 (negative, positive) or 3 (negative, neutral, positive)",
            id2label.values().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    if id2label.keys().copied().ne(0..n) {
        return Err(ModelError::Labels(format!(
            "id2label keys must be 0..{}, got {:?}",
            n - 1,
            id2label.keys().collect::<Vec<_>>()
        )));
    }
    if let Some(m) = mapping {
        for key in m.keys() {
            let known =
                id2label.values().any(|v| v == key) || key.parse::<usize>().is_ok_and(|i| i < n);
            if !known {
                return Err(ModelError::Labels(format!(
                    "the labels mapping names {key:?}, which is neither a label of the model ({}) nor a column index",
                    id2label.values().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
    }
    let all_generic = id2label
        .iter()
        .all(|(i, name)| generic_index(name) == Some(*i));
    let mut out = Vec::with_capacity(n);
    for (i, name) in id2label {
        let from_mapping = mapping.and_then(|m| m.get(name).or_else(|| m.get(&i.to_string())));
        let s = match from_mapping {
            Some(s) => *s,
            None => match Sentiment::from_label_name(name) {
                Some(s) => s,
                None if all_generic => match (n, i) {
                    (2, 0) | (3, 0) => Sentiment::Negative,
                    (3, 1) => Sentiment::Neutral,
                    _ => Sentiment::Positive,
                },
                None => {
                    return Err(ModelError::Labels(format!(
                        "label {name:?} (column {i}) is not one of NEG/NEU/POS, negative/neutral/positive or LABEL_<i>; \
                         give a mapping, e.g. labels: {{\"{name}\": negative|neutral|positive}}"
                    )));
                }
            },
        };
        out.push(s);
    }
    for s in [Sentiment::Negative, Sentiment::Neutral, Sentiment::Positive] {
        let count = out.iter().filter(|x| **x == s).count();
        if count > 1 {
            return Err(ModelError::Labels(format!(
                "{s} is given to {count} columns ({}); each sentiment may label one column",
                describe(id2label, &out)
            )));
        }
    }
    for s in [Sentiment::Negative, Sentiment::Positive] {
        if !out.contains(&s) {
            return Err(ModelError::Labels(format!(
                "no column is {s} ({}); a sentiment model needs negative and positive",
                describe(id2label, &out)
            )));
        }
    }
    Ok(out)
}

fn describe(id2label: &BTreeMap<usize, String>, mapped: &[Sentiment]) -> String {
    id2label
        .iter()
        .zip(mapped)
        .map(|((i, name), s)| format!("{i}: {name} -> {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> BTreeMap<usize, String> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.to_string()))
            .collect()
    }

    #[test]
    fn self_explaining_and_generic_names() {
        use Sentiment::*;
        assert_eq!(
            map_labels(&ids(&["NEG", "NEU", "POS"]), None).unwrap(),
            vec![Negative, Neutral, Positive]
        );
        assert_eq!(
            map_labels(&ids(&["positive", "negative"]), None).unwrap(),
            vec![Positive, Negative]
        );
        assert_eq!(
            map_labels(&ids(&["LABEL_0", "LABEL_1"]), None).unwrap(),
            vec![Negative, Positive]
        );
        assert_eq!(
            map_labels(&ids(&["LABEL_0", "LABEL_1", "LABEL_2"]), None).unwrap(),
            vec![Negative, Neutral, Positive]
        );
        let m: BTreeMap<String, Sentiment> = [
            ("sad".to_string(), Negative),
            ("2".to_string(), Positive),
            ("meh".to_string(), Neutral),
        ]
        .into();
        assert_eq!(
            map_labels(&ids(&["sad", "meh", "glad"]), Some(&m)).unwrap(),
            vec![Negative, Neutral, Positive]
        );
        assert!(map_labels(&ids(&["sad", "glad"]), None).is_err());
        assert!(map_labels(&ids(&["NEG", "NEG"]), None).is_err());
        assert!(map_labels(&ids(&["NEG", "NEU"]), None).is_err());
        assert!(map_labels(&ids(&["NEG"]), None).is_err());
        let bad: BTreeMap<String, Sentiment> = [("nope".to_string(), Negative)].into();
        assert!(map_labels(&ids(&["NEG", "POS"]), Some(&bad)).is_err());
        assert_eq!("POS".parse::<Sentiment>().unwrap(), Positive);
    }
}
