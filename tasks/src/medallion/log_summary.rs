//! Folding a table's `commitInfo` history without replaying its whole log on every run.
//!
//! Some bookkeeping lives only in the `commitInfo` of each commit (which files an ingest
//! batch took, which batches the quarantine holds), and checkpoints do not keep `commitInfo`.
//! So the fold up to a version is saved as an immutable object under the table,
//! `_tweetflow/<kind>/history-<version>.json` (committed Delta versions never change, and the
//! tables keep their log):
//!
//! ```text
//!  newest summary ≤ latest (1 listing + 1 read) ──► fold commits after it ──► state
//!                                                    │ ≥ SUMMARY_EVERY read
//!                                                    ▼
//!                                         write history-<latest>.json
//! ```
//!
//! A summary of another table at the same location (another table id) is ignored; `vacuum`
//! leaves `_tweetflow/` alone (a hidden folder) and `reset` deletes it with the table. Writing
//! a summary is best effort: a run that cannot write it reads the log again next time.

use deltalake::DeltaTable;
use deltalake::logstore::object_store::{ObjectStoreExt, PutPayload};
use deltalake::{ObjectStore, Path};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::table_error::{Result, TableTaskError};
use tweetflow_delta::StorageError;
use tweetflow_delta::table;

/// A new summary is written once a run had to read this many commits after the last one.
pub const SUMMARY_EVERY: i64 = 20;

/// A stored summary: the state folded up to `version` of the table `table_id`.
#[derive(Serialize, Deserialize)]
struct Summary<T> {
    table_id: String,
    version: i64,
    /// (`history` in the summaries of the first format.)
    #[serde(alias = "history")]
    state: T,
}

fn summary_path(kind: &str, version: i64) -> Path {
    Path::from(format!("_tweetflow/{kind}/history-{version:020}.json"))
}

/// The newest readable summary of `table_id` at or below `latest`.
async fn newest_summary<T: DeserializeOwned>(
    store: &dyn ObjectStore,
    kind: &str,
    table_id: &str,
    latest: i64,
) -> Option<Summary<T>> {
    let listing = store
        .list_with_delimiter(Some(&Path::from(format!("_tweetflow/{kind}"))))
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
        let Ok(got) = store.get(&summary_path(kind, v)).await else {
            continue;
        };
        let Ok(bytes) = got.bytes().await else {
            continue;
        };
        match serde_json::from_slice::<Summary<T>>(&bytes) {
            Ok(s) if s.table_id == table_id && s.version == v => return Some(s),
            _ => continue,
        }
    }
    None
}

/// Folds the tweetflow `commitInfo` (see [`table::COMMIT_INFO_KEY`]) of every commit of
/// `table` into `state` (a summary's state plus the commits after it); commits already folded
/// into `state` up to `seen` are skipped. Returns the version folded up to.
pub async fn fold_commit_infos<T>(
    table: &DeltaTable,
    location: &str,
    kind: &str,
    state: &mut T,
    seen: i64,
    mut fold: impl FnMut(&mut T, &Value),
) -> Result<i64>
where
    T: Serialize + DeserializeOwned + Default,
{
    let latest = table::version(table);
    if latest <= seen {
        return Ok(seen);
    }
    let table_id = table
        .snapshot()
        .map_err(|e| TableTaskError::delta(location, e))?
        .metadata()
        .id()
        .to_string();
    let store = table.object_store();
    let mut from = seen;
    if seen < 0
        && let Some(s) = newest_summary::<T>(store.as_ref(), kind, &table_id, latest).await
    {
        *state = s.state;
        from = s.version;
    }
    for v in (from + 1)..=latest {
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
                fold(state, value);
            }
        }
    }
    if latest - from >= SUMMARY_EVERY {
        let summary = Summary {
            table_id,
            version: latest,
            state: std::mem::take(state),
        };
        if let Ok(bytes) = serde_json::to_vec(&summary)
            && let Err(e) = store
                .put(&summary_path(kind, latest), PutPayload::from(bytes))
                .await
        {
            tracing::warn!(table = %location, error = %e, "cannot write the history summary");
        }
        *state = summary.state;
    }
    Ok(latest)
}
