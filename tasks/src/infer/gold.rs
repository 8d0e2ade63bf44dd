//! The gold table: its schema, the ids derived from labels, and the gold batch of one silver
//! batch with its predictions.

use std::collections::HashMap;
use std::sync::Arc;

use crate::medallion::tables::assemble;
use crate::table_error::TableTaskError;
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, StringArray, new_null_array,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType as ArrowType, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{DataType, StructType};
use tweetflow_delta::table;
use tweetflow_model::Sentiment;

use super::resolve::ScoringModel;

/// Application id of infer commits (gold).
pub const APP_ID: &str = "tweetflow-infer";

/// Silver columns infer reads.
pub const SILVER_COLUMNS: [&str; 5] = [
    "tweet_id",
    "timestamp",
    "mention",
    "cleaned_text",
    "sentiment",
];

/// The gold schema.
#[allow(clippy::result_large_err)]
pub fn gold_schema() -> tweetflow_delta::Result<StructType> {
    table::schema_of(&[
        ("tweet_id", DataType::STRING),
        ("timestamp", DataType::TIMESTAMP),
        ("mention", DataType::STRING),
        ("cleaned_text", DataType::STRING),
        ("sentiment", DataType::STRING),
        ("sentiment_id", DataType::INTEGER),
        ("predicted_sentiment", DataType::STRING),
        ("predicted_score", DataType::DOUBLE),
        ("predicted_sentiment_id", DataType::INTEGER),
        ("model_uri", DataType::STRING),
        ("model_version", DataType::STRING),
    ])
}

/// `sentiment_id` of a landed label: 1 positive (`positive`, `pos`, `4`), 0 negative
/// (`negative`, `neg`, `0`), `None` otherwise. Case-insensitive.
pub fn sentiment_id(label: &str) -> Option<i32> {
    match label.trim().to_ascii_lowercase().as_str() {
        "positive" | "pos" | "4" => Some(1),
        "negative" | "neg" | "0" => Some(0),
        _ => None,
    }
}

/// `predicted_sentiment_id`: 1 positive, 0 negative, `None` for neutral.
pub fn predicted_id(s: Sentiment) -> Option<i32> {
    match s {
        Sentiment::Positive => Some(1),
        Sentiment::Negative => Some(0),
        Sentiment::Neutral => None,
    }
}

/// Column `name` of `batch`, cast to `to` when it has another type.
#[allow(clippy::result_large_err)]
pub(crate) fn column_as(
    batch: &RecordBatch,
    name: &str,
    to: &ArrowType,
) -> Result<ArrayRef, TableTaskError> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| TableTaskError::Data(format!("silver data lacks the column `{name}`")))?;
    if col.data_type() == to {
        Ok(col.clone())
    } else {
        cast(col, to).map_err(|e| TableTaskError::format(format!("column `{name}`"), e))
    }
}

/// Builds the gold batch of one silver batch.
#[allow(clippy::result_large_err)]
pub(crate) fn gold_batch(
    schema: &SchemaRef,
    silver: &RecordBatch,
    preds: &[Option<(Sentiment, f32)>],
    model: &ScoringModel,
) -> Result<RecordBatch, TableTaskError> {
    let rows = silver.num_rows();
    let mut m: HashMap<&str, ArrayRef> = HashMap::new();
    for name in SILVER_COLUMNS {
        let field = schema
            .field_with_name(name)
            .map_err(|e| TableTaskError::format("gold schema", e))?;
        m.insert(name, column_as(silver, name, field.data_type())?);
    }
    let sentiment = column_as(silver, "sentiment", &ArrowType::Utf8)?;
    let sentiment = sentiment.as_string::<i32>();
    let ids: Int32Array = (0..rows)
        .map(|i| {
            if sentiment.is_null(i) {
                None
            } else {
                sentiment_id(sentiment.value(i))
            }
        })
        .collect();
    m.insert("sentiment_id", Arc::new(ids));
    let labels: StringArray = preds.iter().map(|p| p.map(|(s, _)| s.as_str())).collect();
    m.insert("predicted_sentiment", Arc::new(labels));
    let scores: Float64Array = preds.iter().map(|p| p.map(|(_, s)| f64::from(s))).collect();
    m.insert("predicted_score", Arc::new(scores));
    let pids: Int32Array = preds
        .iter()
        .map(|p| p.and_then(|(s, _)| predicted_id(s)))
        .collect();
    m.insert("predicted_sentiment_id", Arc::new(pids));
    m.insert(
        "model_uri",
        Arc::new(StringArray::from(vec![model.uri.as_str(); rows])),
    );
    m.insert(
        "model_version",
        Arc::new(StringArray::from(vec![model.version.as_str(); rows])),
    );
    if rows == 0 {
        for f in schema.fields() {
            m.insert(f.name().as_str(), new_null_array(f.data_type(), 0));
        }
    }
    assemble(schema, m, rows)
}
