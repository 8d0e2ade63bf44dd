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

use crate::medallion::log_summary::fold_commit_infos;
use crate::table_error::Result;
use tweetflow_delta::table;

use super::state::{APP_ID, BatchId, FileState};

/// What the bronze log says about earlier ingest batches.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct BronzeHistory {
    /// The last batch number of the run's application id (its shard's, when split).
    pub(super) batch: i64,
    pub(super) files: BTreeSet<String>,
    /// batch key ([`BatchId::key`]) -> (files, quarantined lines)
    pub(super) batches: BTreeMap<String, (Vec<String>, u64)>,
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
    let b = BatchId::of_commit(info, b).key();
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

/// The ingest history of bronze `table` at its current version, with the batch number of
/// application id `app`.
pub(super) async fn read_history(
    table: &DeltaTable,
    location: &str,
    app: &str,
) -> Result<BronzeHistory> {
    let batch = table::app_version(table, location, app).await?.unwrap_or(0);
    let mut history = BronzeHistory::default();
    fold_commit_infos(table, location, "ingest", &mut history, -1, record).await?;
    history.batch = batch;
    Ok(history)
}

/// Adds the ingest commits of `table` after version `seen` to `history` (which holds every
/// commit up to `seen`); returns the version read up to.
pub(super) async fn read_commits(
    history: &mut BronzeHistory,
    table: &DeltaTable,
    location: &str,
    seen: i64,
) -> Result<i64> {
    let batch = history.batch;
    let seen = fold_commit_infos(table, location, "ingest", history, seen, record).await?;
    history.batch = batch;
    Ok(seen)
}
