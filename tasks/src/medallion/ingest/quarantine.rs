//! The quarantine log: which batches the quarantine table holds, and committing a batch there.

use std::collections::BTreeSet;

use deltalake::DeltaTable;
use deltalake::kernel::Action;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::params::IngestParams;
use super::state::{APP_ID, BatchId, FileState};
use crate::medallion::log_summary::fold_commit_infos;
use crate::table_error::{Result, TableTaskError};
use tweetflow_delta::commit::{Replans, append_op};
use tweetflow_delta::table::{self, CommitRequest};

/// Which ingest batches the quarantine table already holds, read incrementally from its log
/// (`commitInfo.tweetflow.batches`). Batches of concurrent runs can reach the quarantine table
/// out of order, so this is a set, not a high-water mark.
#[derive(Debug)]
pub(super) struct QuarantineLog {
    /// Last quarantine version read.
    pub(super) seen: i64,
    /// Batches whose quarantine rows are committed (their [`BatchId::key`]s).
    pub(super) done: BTreeSet<String>,
    /// Changed landing file states already reported (`commitInfo.tweetflow.changed`).
    pub(super) changed: BTreeSet<FileState>,
}

impl QuarantineLog {
    pub(super) fn new() -> Self {
        QuarantineLog {
            seen: -1,
            done: BTreeSet::new(),
            changed: BTreeSet::new(),
        }
    }

    /// Reads the quarantine commits after the last one seen (from the newest saved summary,
    /// see [`crate::medallion::log_summary`], on the first call).
    pub(super) async fn update(&mut self, qt: &DeltaTable, loc: &str) -> Result<()> {
        let mut state = QuarantineState {
            done: std::mem::take(&mut self.done),
            changed: std::mem::take(&mut self.changed),
        };
        let folded = fold_commit_infos(qt, loc, "quarantine", &mut state, self.seen, |s, info| {
            if info.get("app").and_then(Value::as_str) != Some(APP_ID) {
                return;
            }
            let batches = info.get("batches").and_then(Value::as_array);
            s.done.extend(
                batches
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_i64)
                    .map(|b| BatchId::of_commit(info, b).key()),
            );
            let changed = info.get("changed").and_then(Value::as_array);
            s.changed.extend(
                changed
                    .into_iter()
                    .flatten()
                    .filter_map(|v| serde_json::from_value::<FileState>(v.clone()).ok()),
            );
        })
        .await;
        self.done = state.done;
        self.changed = state.changed;
        self.seen = folded?;
        Ok(())
    }
}

/// What the quarantine log says, as saved in its summaries.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(from = "StateFormat")]
struct QuarantineState {
    done: BTreeSet<String>,
    changed: BTreeSet<FileState>,
}

/// The saved forms of [`QuarantineState`]: the first summaries held only the batches, and
/// the batches were numbers before shards.
#[derive(Deserialize)]
#[serde(untagged)]
enum StateFormat {
    Batches(Vec<SavedBatch>),
    State {
        done: Vec<SavedBatch>,
        #[serde(default)]
        changed: BTreeSet<FileState>,
    },
}

/// A batch in a saved summary: a number (unsharded, the first format) or a [`BatchId::key`].
#[derive(Deserialize)]
#[serde(untagged)]
enum SavedBatch {
    Number(i64),
    Key(String),
}

impl From<SavedBatch> for String {
    fn from(b: SavedBatch) -> String {
        match b {
            SavedBatch::Number(n) => BatchId::new(None, n).key(),
            SavedBatch::Key(k) => k,
        }
    }
}

impl From<StateFormat> for QuarantineState {
    fn from(f: StateFormat) -> Self {
        let keys = |done: Vec<SavedBatch>| done.into_iter().map(String::from).collect();
        match f {
            StateFormat::Batches(done) => QuarantineState {
                done: keys(done),
                changed: BTreeSet::new(),
            },
            StateFormat::State { done, changed } => QuarantineState {
                done: keys(done),
                changed,
            },
        }
    }
}

/// Commits the quarantine files of bronze batch `batch`, unless that batch's rows are already
/// there; the check and the commit use the same table version (a concurrent commit makes the
/// commit fail and the check run again).
pub(super) async fn commit_quarantine(
    params: &IngestParams,
    q: Option<(DeltaTable, RecordBatchWriter)>,
    batch: &BatchId,
    files: &[String],
    qlog: &mut QuarantineLog,
) -> Result<Option<i64>> {
    let Some((mut qt, mut w)) = q else {
        return Ok(None);
    };
    let loc = params.quarantine_location();
    let adds = w
        .flush()
        .await
        .map_err(|e| TableTaskError::delta(&loc, e))?;
    let rows: u64 = adds
        .iter()
        .filter_map(|a| a.get_stats().ok().flatten().map(|s| s.num_records as u64))
        .sum();
    let actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    let mut replans = Replans::new("ingest quarantine");
    loop {
        table::refresh(&mut qt, &loc).await?;
        qlog.update(&qt, &loc).await?;
        if qlog.done.contains(&batch.key()) {
            return Ok(Some(table::version(&qt)));
        }
        let request = CommitRequest {
            actions: actions.clone(),
            operation: append_op(),
            txn: None,
            info: json!({
                "app": APP_ID, "kind": "quarantine", "batches": [batch.number], "shard": batch.shard,
                "files": files, "rows": rows,
            }),
        };
        match table::commit(&mut qt, &loc, request).await {
            Ok(v) => {
                qlog.done.insert(batch.key());
                return Ok(Some(v));
            }
            Err(err) if replans.again(&err) => continue,
            Err(err) => return Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_of_both_forms_are_read() {
        let old: QuarantineState = serde_json::from_str("[1, 3]").unwrap();
        assert_eq!(old.done, BTreeSet::from(["1".to_string(), "3".into()]));
        assert!(old.changed.is_empty());
        let state = QuarantineState {
            done: BTreeSet::from(["2".to_string(), "shard-1-of-2/2".into()]),
            changed: BTreeSet::from([FileState {
                name: "a.jsonl".into(),
                size: 3,
                modified_ms: Some(5),
                etag: None,
            }]),
        };
        let text = serde_json::to_string(&state).unwrap();
        let back: QuarantineState = serde_json::from_str(&text).unwrap();
        assert_eq!((back.done, back.changed), (state.done, state.changed));
        let numbers: QuarantineState =
            serde_json::from_str(r#"{"done": [4], "changed": []}"#).unwrap();
        assert_eq!(numbers.done, BTreeSet::from(["4".to_string()]));
    }
}
