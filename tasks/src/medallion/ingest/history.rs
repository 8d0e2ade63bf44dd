//! What the bronze log records about earlier ingest batches.

use std::collections::{BTreeMap, BTreeSet};

use deltalake::DeltaTable;
use serde_json::Value;

use crate::medallion::error::Result;
use tweetflow_delta::table;

use super::APP_ID;

/// What the bronze log says about earlier ingest batches.
pub(super) struct BronzeHistory {
    pub(super) batch: i64,
    pub(super) files: BTreeSet<String>,
    /// batch number -> (files, quarantined lines)
    pub(super) batches: BTreeMap<i64, (Vec<String>, u64)>,
}

pub(super) async fn read_history(table: &DeltaTable, location: &str) -> Result<BronzeHistory> {
    let batch = table::app_version(table, location, APP_ID)
        .await?
        .unwrap_or(0);
    let mut files = BTreeSet::new();
    let mut batches = BTreeMap::new();
    for (_, info) in table::history_infos(table, location).await? {
        if info.get("app").and_then(Value::as_str) != Some(APP_ID) {
            continue;
        }
        let Some(b) = info.get("batch").and_then(Value::as_i64) else {
            continue;
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
        files.extend(list.iter().cloned());
        batches.insert(b, (list, q));
    }
    Ok(BronzeHistory {
        batch,
        files,
        batches,
    })
}
