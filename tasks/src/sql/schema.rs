//! The target schema of a query: Arrow types as Delta stores them, the check against an
//! existing target, and casting the query's batches to it.

use std::sync::Arc;

use deltalake::arrow::array::ArrayRef;
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::record_batch::RecordBatch;

use super::error::{SqlError, SqlResult};
use tweetflow_delta::StorageError;

/// The type Delta stores for a query column of type `t` (views and large variants become
/// plain strings and binaries, timestamps microseconds, unsigned integers signed ones).
pub fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
            DataType::Binary
        }
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Dictionary(_, v) => delta_type(v),
        DataType::Null => DataType::Utf8,
        other => other.clone(),
    }
}

/// The schema a new target gets for the query's `schema`: Delta types, every column nullable.
pub fn target_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), delta_type(f.data_type()), true))
            .collect::<Vec<_>>(),
    ))
}

/// Checks that the query's columns fit the existing target: the same names, and each of the
/// type the target has (after [`delta_type`]). Every offending column is named.
pub fn check_fits(query: &Schema, target: &Schema, location: &str) -> SqlResult<()> {
    let mut problems = Vec::new();
    for f in query.fields() {
        match target.field_with_name(f.name()) {
            Err(_) => problems.push(format!("column `{}` is not in the table", f.name())),
            Ok(t) if delta_type(f.data_type()) != *t.data_type() => problems.push(format!(
                "column `{}` is {} in the query but {} in the table",
                f.name(),
                delta_type(f.data_type()),
                t.data_type()
            )),
            Ok(_) => {}
        }
    }
    for t in target.fields() {
        if query.field_with_name(t.name()).is_err() {
            problems.push(format!(
                "the table's column `{}` is not in the query",
                t.name()
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(SqlError::Mismatch(format!(
        "the query's columns do not fit the existing table `{location}`: {}; change the query, or write another table",
        problems.join("; ")
    )))
}

/// `batch` cast to `schema` (columns by name).
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> SqlResult<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let c = batch.column_by_name(f.name()).ok_or_else(|| {
            SqlError::Mismatch(format!("the query produced no column `{}`", f.name()))
        })?;
        columns.push(if c.data_type() == f.data_type() {
            c.clone()
        } else {
            cast(c, f.data_type()).map_err(|e| {
                SqlError::Storage(StorageError::format(format!("column `{}`", f.name()), e))
            })?
        });
    }
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| SqlError::Storage(StorageError::format("building the rows", e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatches_name_every_column() {
        let query = Schema::new(vec![
            Field::new("mention", DataType::Utf8View, false),
            Field::new("tweets", DataType::Int64, false),
            Field::new("extra", DataType::Int64, false),
        ]);
        let target = Schema::new(vec![
            Field::new("mention", DataType::Utf8, true),
            Field::new("tweets", DataType::Float64, true),
            Field::new("mean_score", DataType::Float64, true),
        ]);
        assert!(check_fits(&query, &target_schema(&query), "t").is_ok());
        let err = check_fits(&query, &target, "t").unwrap_err().to_string();
        assert!(
            err.contains("`tweets` is Int64 in the query but Float64"),
            "{err}"
        );
        assert!(err.contains("`extra` is not in the table"), "{err}");
        assert!(err.contains("`mean_score` is not in the query"), "{err}");
        assert!(!err.contains("`mention`"), "{err}");
    }
}
