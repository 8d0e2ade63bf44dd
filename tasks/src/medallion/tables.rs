//! What the medallion tables share: Arrow batches built in a table's column order, the
//! `processing_time` column, and the name of a table's quarantine table.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, TimestampMicrosecondArray, new_null_array};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;

use crate::table_error::{Result, TableTaskError};

/// Builds a batch with `schema`'s columns in order, null-filling the ones not given.
pub fn assemble(
    schema: &SchemaRef,
    mut by_name: HashMap<&str, ArrayRef>,
    rows: usize,
) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            by_name
                .remove(f.name().as_str())
                .unwrap_or_else(|| new_null_array(f.data_type(), rows))
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| TableTaskError::format("building a batch", e))
}

/// A `processing_time` column: `rows` times the UTC instant `micros`.
pub(crate) fn timestamps(micros: i64, rows: usize) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![micros; rows]).with_timezone("UTC"))
}

/// The quarantine table of `table`: `TABLE` + `_quarantine` (keeping a trailing slash out of
/// the way).
pub fn default_quarantine(table: &str) -> String {
    format!("{}_quarantine", table.trim_end_matches('/'))
}
