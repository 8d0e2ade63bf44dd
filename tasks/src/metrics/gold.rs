//! One streamed pass over the gold table: counts only, each tweet counted once.
//!
//! Gold has one row per (tweet, mention); the label and the prediction belong to the tweet, so
//! the confusion matrix, the hours and the users count a `tweet_id` the first time it is seen.
//! Per-mention counts count each distinct (tweet, mention) pair once. What is kept in memory
//! is the set of tweet ids seen (and, for the report, of (tweet, mention) pairs) plus
//! counters, never the rows.
//!
//! The label of a tweet is `sentiment` (`positive`/`negative`/`neutral`, or the Sentiment140
//! codes `4`/`0`/`2`), else `sentiment_id` (1/0); its prediction is `predicted_sentiment`,
//! else `predicted_sentiment_id`. A tweet without a usable label or prediction is counted in
//! `unscored_tweets` and left out of every metric.

use std::collections::{BTreeSet, HashMap, HashSet};

use deltalake::arrow::array::{Array, AsArray, StringArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType as ArrowType, Int64Type, TimeUnit};
use deltalake::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tweetflow_delta::table;

use crate::table_error::TableTaskError;
use tweetflow_engine::TaskError;

use super::compute::{NEG, POS, class_of_id, parse_class};

/// Application id of the `infer` commits in gold: its version is the silver version consumed.
pub const INFER_APP_ID: &str = "tweetflow-infer";

/// What to collect besides the confusion matrix.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wants {
    /// Per-mention positive/negative counts, tweets per hour, tweets per user.
    pub report: bool,
}

/// The counts of one pass.
#[derive(Clone, Debug, Default)]
pub struct GoldScan {
    /// The gold table version read.
    pub version: i64,
    /// The silver version gold was computed from (its `tweetflow-infer` transaction).
    pub silver_version: Option<i64>,
    /// Rows read.
    pub rows: u64,
    /// Distinct tweets.
    pub tweets: u64,
    /// Tweets without a usable label or prediction.
    pub unscored_tweets: u64,
    /// True class in rows, predicted class in columns (negative, neutral, positive).
    pub confusion: [[u64; 3]; 3],
    /// Distinct `(model_uri, model_version)` pairs (at most [`MAX_MODELS`]).
    pub models: BTreeSet<(String, String)>,
    /// Mention -> tweets predicted positive that mention it (report only).
    pub positive_mentions: HashMap<String, u64>,
    /// Mention -> tweets predicted negative that mention it (report only).
    pub negative_mentions: HashMap<String, u64>,
    /// Tweets per UTC hour of day (report only).
    pub hours: [u64; 24],
    /// Tweets per user, when gold has a `user` column (report only).
    pub users: Option<HashMap<String, u64>>,
}

/// Distinct model pairs kept.
pub const MAX_MODELS: usize = 16;

fn fatal(e: impl Into<TableTaskError>) -> TaskError {
    e.into().into()
}

/// Column `name` cast to `to`; `None` when gold has no such column.
fn cast_column(
    batch: &RecordBatch,
    name: &str,
    to: &ArrowType,
) -> Result<Option<deltalake::arrow::array::ArrayRef>, TaskError> {
    batch
        .column_by_name(name)
        .map(|c| cast(c, to).map_err(|e| TaskError::fatal(format!("gold column `{name}`: {e}"))))
        .transpose()
}

fn strings(batch: &RecordBatch, name: &str) -> Result<Option<StringArray>, TaskError> {
    Ok(cast_column(batch, name, &ArrowType::Utf8)?.map(|a| a.as_string::<i32>().clone()))
}

fn ints(
    batch: &RecordBatch,
    name: &str,
) -> Result<Option<deltalake::arrow::array::Int64Array>, TaskError> {
    Ok(cast_column(batch, name, &ArrowType::Int64)?.map(|a| a.as_primitive::<Int64Type>().clone()))
}

/// Timestamps as microseconds since the epoch.
fn micros(
    batch: &RecordBatch,
    name: &str,
) -> Result<Option<deltalake::arrow::array::Int64Array>, TaskError> {
    let ts = ArrowType::Timestamp(TimeUnit::Microsecond, None);
    match cast_column(batch, name, &ts)? {
        None => Ok(None),
        Some(t) => {
            let t = cast(&t, &ArrowType::Int64)
                .map_err(|e| TaskError::fatal(format!("gold column `{name}`: {e}")))?;
            Ok(Some(t.as_primitive::<Int64Type>().clone()))
        }
    }
}

fn class_at(
    s: &Option<StringArray>,
    id: &Option<deltalake::arrow::array::Int64Array>,
    i: usize,
) -> Option<usize> {
    if let Some(s) = s
        && !s.is_null(i)
        && let Some(c) = parse_class(s.value(i))
    {
        return Some(c);
    }
    match id {
        Some(a) if !a.is_null(i) => class_of_id(a.value(i)),
        _ => None,
    }
}

/// Reads the gold table at `location` once (see the module docs).
///
/// Fails (fatal) when there is no table there or it lacks the columns the metrics need; an
/// empty table is not an error here (the caller decides).
pub async fn scan(
    location: &str,
    wants: Wants,
    cancel: &CancellationToken,
) -> Result<GoldScan, TaskError> {
    let t = table::open_table(location)
        .await
        .map_err(fatal)?
        .ok_or_else(|| {
            TaskError::fatal(format!("no Delta table at `{location}` (has `infer` run?)"))
        })?;
    let schema = table::arrow_schema(&t, location).map_err(fatal)?;
    let has = |c: &str| schema.field_with_name(c).is_ok();
    let mut missing = Vec::new();
    if !has("tweet_id") {
        missing.push("tweet_id");
    }
    if !has("sentiment") && !has("sentiment_id") {
        missing.push("sentiment (or sentiment_id)");
    }
    if !has("predicted_sentiment") && !has("predicted_sentiment_id") {
        missing.push("predicted_sentiment (or predicted_sentiment_id)");
    }
    if wants.report {
        for c in ["mention", "timestamp"] {
            if !has(c) {
                missing.push(c);
            }
        }
    }
    if !missing.is_empty() {
        return Err(TaskError::fatal(format!(
            "`{location}` is not a gold table: missing column(s) {}",
            missing.join(", ")
        )));
    }
    let mut columns = vec![
        "tweet_id",
        "sentiment",
        "sentiment_id",
        "predicted_sentiment",
        "predicted_sentiment_id",
        "model_uri",
        "model_version",
    ];
    if wants.report {
        columns.extend(["mention", "timestamp", "user"]);
    }
    let columns: Vec<&str> = columns.into_iter().filter(|c| has(c)).collect();

    let mut out = GoldScan {
        version: table::version(&t),
        silver_version: table::app_version(&t, location, INFER_APP_ID)
            .await
            .map_err(fatal)?,
        users: (wants.report && has("user")).then(HashMap::new),
        ..GoldScan::default()
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut pairs: HashSet<(String, String)> = HashSet::new();
    for (path, _, _) in table::active_files(&t, location).map_err(fatal)? {
        let mut stream = table::read_file(&t, &path, &columns).await.map_err(fatal)?;
        while let Some(batch) = stream.next().await {
            if cancel.is_cancelled() {
                return Err(TaskError::cancelled());
            }
            let batch = batch.map_err(|e| {
                TaskError::retryable(format!("reading `{path}` of `{location}`: {e}"))
            })?;
            out.rows += batch.num_rows() as u64;
            let id = strings(&batch, "tweet_id")?
                .ok_or_else(|| TaskError::fatal(format!("`{path}` has no tweet_id")))?;
            let label = strings(&batch, "sentiment")?;
            let label_id = ints(&batch, "sentiment_id")?;
            let pred = strings(&batch, "predicted_sentiment")?;
            let pred_id = ints(&batch, "predicted_sentiment_id")?;
            let uri = strings(&batch, "model_uri")?;
            let version = strings(&batch, "model_version")?;
            let mention = if wants.report {
                strings(&batch, "mention")?
            } else {
                None
            };
            let ts = if wants.report {
                micros(&batch, "timestamp")?
            } else {
                None
            };
            let user = if wants.report {
                strings(&batch, "user")?
            } else {
                None
            };
            for i in 0..batch.num_rows() {
                let tid = if id.is_null(i) { "" } else { id.value(i) };
                let first = !seen.contains(tid);
                let predicted = class_at(&pred, &pred_id, i);
                if first {
                    seen.insert(tid.to_string());
                    out.tweets += 1;
                    match (class_at(&label, &label_id, i), predicted) {
                        (Some(t), Some(p)) => out.confusion[t][p] += 1,
                        _ => out.unscored_tweets += 1,
                    }
                    if out.models.len() < MAX_MODELS {
                        let get = |a: &Option<StringArray>| {
                            a.as_ref()
                                .filter(|a| !a.is_null(i))
                                .map_or_else(String::new, |a| a.value(i).to_string())
                        };
                        let pair = (get(&uri), get(&version));
                        if !(pair.0.is_empty() && pair.1.is_empty()) {
                            out.models.insert(pair);
                        }
                    }
                    if let Some(ts) = &ts
                        && !ts.is_null(i)
                    {
                        let hour = ts.value(i).div_euclid(3_600_000_000).rem_euclid(24) as usize;
                        out.hours[hour] += 1;
                    }
                    if let (Some(users), Some(u)) = (out.users.as_mut(), &user)
                        && !u.is_null(i)
                    {
                        *users.entry(u.value(i).to_string()).or_default() += 1;
                    }
                }
                if let Some(m) = &mention
                    && !m.is_null(i)
                    && matches!(predicted, Some(POS) | Some(NEG))
                {
                    let name = m.value(i);
                    if pairs.insert((tid.to_string(), name.to_string())) {
                        let counts = if predicted == Some(POS) {
                            &mut out.positive_mentions
                        } else {
                            &mut out.negative_mentions
                        };
                        *counts.entry(name.to_string()).or_default() += 1;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The model name of a model URI: `NAME` of `models:/NAME/...` or `models:/NAME@alias`, else
/// the last path component.
pub fn model_name(uri: &str) -> String {
    if let Some(rest) = uri.strip_prefix("models:/") {
        let end = rest.find(['/', '@']).unwrap_or(rest.len());
        return rest[..end].to_string();
    }
    uri.trim_end_matches('/')
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(uri)
        .to_string()
}

/// `(name, count)` pairs, most first, ties by name; at most `n`.
pub fn top(counts: &HashMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.iter().map(|(k, c)| (k.clone(), *c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        assert_eq!(model_name("models:/sentiment@champion"), "sentiment");
        assert_eq!(model_name("models:/sentiment/3"), "sentiment");
        assert_eq!(model_name("models:/sentiment"), "sentiment");
        assert_eq!(
            model_name("/work/models/distilbert-sst2/"),
            "distilbert-sst2"
        );
    }
}
