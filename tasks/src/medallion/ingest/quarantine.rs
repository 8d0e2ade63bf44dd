//! The quarantine log: which batches the quarantine table holds, and committing a batch there.

use std::collections::BTreeSet;

use deltalake::DeltaTable;
use deltalake::kernel::Action;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use serde_json::{Value, json};

use super::changed::FileState;
use super::shard::BatchId;
use super::{APP_ID, IngestParams};
use crate::medallion::error::{MedallionError, Result};
use crate::medallion::log_summary::fold_commit_infos;
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
        self.seen = fold_commit_infos(
            qt,
            loc,
            "quarantine",
            &mut self.done,
            self.seen,
            |done, info| {
                if info.get("app").and_then(Value::as_str) != Some(APP_ID) {
                    return;
                }
                let changed = info.get("changed").and_then(Value::as_array);
                self.changed.extend(
                    changed
                        .into_iter()
                        .flatten()
                        .filter_map(|v| serde_json::from_value::<FileState>(v.clone()).ok()),
                );
                let batches = info.get("batches").and_then(Value::as_array);
                done.extend(
                    batches
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_i64)
                        .map(|b| BatchId::of_commit(info, b).key()),
                );
            },
        )
        .await?;
        Ok(())
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
        .map_err(|e| MedallionError::delta(&loc, e))?;
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
