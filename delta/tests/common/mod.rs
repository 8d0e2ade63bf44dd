//! What the storage tests share: appending a file of words with an application transaction.

use deltalake::arrow::array::{ArrayRef, StringArray};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{Action, DataType, Transaction};
use deltalake::writer::DeltaWriter;
use serde_json::json;
use std::sync::Arc;
use tweetflow_delta::StorageError;
use tweetflow_delta::commit::{append_op, commit_planned};
use tweetflow_delta::table::{self, CommitRequest};

/// The application id of the test commits.
pub const APP: &str = "storage-test";

/// Writes one file of `values` to the table and commits it with the application transaction
/// `txn`, planned after `planned_after`.
pub async fn append(
    location: &str,
    values: &[&str],
    planned_after: Option<i64>,
    txn: i64,
) -> Result<i64, StorageError> {
    let schema = table::schema_of(&[("word", DataType::STRING)])?;
    let mut t = table::open_or_create(location, &schema, &[]).await?;
    let arrow = table::arrow_schema(&t, location)?;
    let mut writer = table::writer_for(&t, location, arrow.clone())?;
    let column: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
    let batch =
        RecordBatch::try_new(arrow, vec![column]).map_err(|e| StorageError::format("batch", e))?;
    writer
        .write(batch)
        .await
        .map_err(|e| StorageError::delta(location, e))?;
    let adds = writer
        .flush()
        .await
        .map_err(|e| StorageError::delta(location, e))?;
    commit_planned(
        &mut t,
        location,
        planned_after,
        CommitRequest {
            actions: adds.into_iter().map(Action::Add).collect(),
            operation: append_op(),
            txn: Some(Transaction::new(APP, txn)),
            info: json!({"app": APP}),
        },
    )
    .await
}
