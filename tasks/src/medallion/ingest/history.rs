//! What the bronze log records about earlier ingest batches, read without replaying the whole
//! log on every run.
//!
//! The batch number comes from the table's application-transaction state (kept in the
//! checkpoints). The files each batch took are in the `commitInfo` of its commit, which
//! checkpoints do not keep, so the history up to a version is summarised in an immutable
//! object under the table, `_tweetflow/ingest/history-<version>.json` (committed Delta
//! versions never change, and the tables keep their log). A run reads the newest summary at
//! or below the table's version (one listing, one read) and the commits after it, and writes
//! a new summary when it read [`SUMMARY_EVERY`] commits or more: the log is read once, not
//! once per run. A summary of another table at the same location (another table id) is
//! ignored; `vacuum` leaves `_tweetflow/` alone (a hidden folder) and `reset` deletes it with
//! the table.

use std::collections::{BTreeMap, BTreeSet};

use deltalake::DeltaTable;
use deltalake::logstore::object_store::{ObjectStoreExt, PutPayload};
use deltalake::{ObjectStore, Path};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::medallion::error::{MedallionError, Result};
use tweetflow_delta::StorageError;
use tweetflow_delta::table;

use super::APP_ID;
use super::shard::BatchId;

/// A new summary is written once a run had to read this many commits after the last one.
pub const SUMMARY_EVERY: i64 = 20;
/// Where the summaries live, relative to the table root.
const SUMMARY_DIR: &str = "_tweetflow/ingest";

/// What the bronze log says about earlier ingest batches.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct BronzeHistory {
    /// The last batch number of the run's application id (its shard's, when split).
    pub(super) batch: i64,
    pub(super) files: BTreeSet<String>,
    /// batch key ([`BatchId::key`]) -> (files, quarantined lines)
    pub(super) batches: BTreeMap<String, (Vec<String>, u64)>,
}

/// A stored summary: the history up to `version` of the table `table_id`.
#[derive(Serialize, Deserialize)]
struct Summary {
    table_id: String,
    version: i64,
    history: BronzeHistory,
}

fn summary_path(version: i64) -> Path {
    Path::from(format!("{SUMMARY_DIR}/history-{version:020}.json"))
}

/// The newest readable summary of `table_id` at or below `latest`.
async fn newest_summary(store: &dyn ObjectStore, table_id: &str, latest: i64) -> Option<Summary> {
    let listing = store
        .list_with_delimiter(Some(&Path::from(SUMMARY_DIR)))
        .await
        .ok()?;
    let mut versions: Vec<i64> = listing
        .objects
        .iter()
        .filter_map(|m| {
            m.location
                .filename()?
                .strip_prefix("history-")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .filter(|v| *v <= latest)
        .collect();
    versions.sort_unstable();
    for v in versions.into_iter().rev() {
        let Ok(got) = store.get(&summary_path(v)).await else {
            continue;
        };
        let Ok(bytes) = got.bytes().await else {
            continue;
        };
        match serde_json::from_slice::<Summary>(&bytes) {
            Ok(s) if s.table_id == table_id && s.version == v => return Some(s),
            _ => continue,
        }
    }
    None
}

/// Adds the ingest commits after version `from` up to `to` to `history`.
pub(super) async fn read_commits(
    history: &mut BronzeHistory,
    table: &DeltaTable,
    location: &str,
    from: i64,
    to: i64,
) -> Result<()> {
    for v in (from + 1)..=to {
        let actions = match table::commit_actions(table, location, v).await {
            Ok(a) => a,
            // Expired commits hold nothing we can use.
            Err(StorageError::MissingCommit { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        for action in actions {
            if let deltalake::kernel::Action::CommitInfo(info) = action
                && let Some(value) = info.info.get(table::COMMIT_INFO_KEY)
            {
                record(history, value);
            }
        }
    }
    Ok(())
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
    history.files.extend(list.iter().cloned());
    history.batches.insert(b, (list, q));
}

/// Reads the history of the bronze table `table`, with the batch number of application id `app`.
pub(super) async fn read_history(
    table: &DeltaTable,
    location: &str,
    app: &str,
) -> Result<BronzeHistory> {
    let batch = table::app_version(table, location, app).await?.unwrap_or(0);
    let latest = table::version(table);
    let table_id = table
        .snapshot()
        .map_err(|e| MedallionError::delta(location, e))?
        .metadata()
        .id()
        .to_string();
    let store = table.object_store();
    let (mut history, from) = match newest_summary(store.as_ref(), &table_id, latest).await {
        Some(s) => (s.history, s.version),
        None => (BronzeHistory::default(), -1),
    };
    read_commits(&mut history, table, location, from, latest).await?;
    history.batch = batch;
    if latest - from >= SUMMARY_EVERY {
        let summary = Summary {
            table_id,
            version: latest,
            history,
        };
        // Best effort: a run that cannot write the summary reads the log again next time.
        if let Ok(bytes) = serde_json::to_vec(&summary)
            && let Err(e) = store
                .put(&summary_path(latest), PutPayload::from(bytes))
                .await
        {
            tracing::warn!(table = %location, error = %e, "cannot write the ingest history summary");
        }
        history = summary.history;
    }
    Ok(history)
}
