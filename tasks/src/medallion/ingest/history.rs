//! What the bronze log records about earlier ingest batches, read without replaying the whole
//! log on every run.
//!
//! The batch number comes from the table's application-transaction state (kept in the
//! checkpoints). The files each batch took are in the `commitInfo` of its commit, which
//! checkpoints do not keep: they are folded with a saved summary under the table
//! (`_tweetflow/ingest/`, see [`crate::medallion::log_summary`]), so the log is read once, not
//! once per run.

use std::collections::{BTreeMap, BTreeSet};

use deltalake::DeltaTable;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::medallion::error::Result;
use crate::medallion::log_summary::fold_commit_infos;
use tweetflow_delta::table;

use super::APP_ID;
use super::changed::FileState;

/// What the bronze log says about earlier ingest batches.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct BronzeHistory {
    pub(super) batch: i64,
    pub(super) files: BTreeSet<String>,
    /// batch number -> (files, quarantined lines)
    pub(super) batches: BTreeMap<i64, (Vec<String>, u64)>,
    /// The state of each taken file when it was taken (commits that recorded it).
    #[serde(default)]
    pub(super) taken: BTreeMap<String, FileState>,
}

/// Adds the ingest commit `info` to `history`.
fn record(history: &mut BronzeHistory, info: &Value) {
    if info.get("app").and_then(Value::as_str) != Some(APP_ID) {
        return;
    }
    let Some(b) = info.get("batch").and_then(Value::as_i64) else {
        return;
    };
    let list: Vec<String> = info
        .get("files")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let q = info.get("quarantined").and_then(Value::as_u64).unwrap_or(0);
    let states = info.get("taken").and_then(Value::as_array);
    for state in states.into_iter().flatten() {
        if let Ok(state) = serde_json::from_value::<FileState>(state.clone()) {
            history.taken.insert(state.name.clone(), state);
        }
    }
    history.files.extend(list.iter().cloned());
    history.batches.insert(b, (list, q));
}

/// The ingest history of bronze `table` at its current version.
pub(super) async fn read_history(table: &DeltaTable, location: &str) -> Result<BronzeHistory> {
    let batch = table::app_version(table, location, APP_ID)
        .await?
        .unwrap_or(0);
    let mut history = BronzeHistory::default();
    fold_commit_infos(table, location, "ingest", &mut history, -1, record).await?;
    history.batch = batch;
    Ok(history)
}
