//! Planning a run: the silver version gold has consumed, the latest silver version, and the
//! files the silver commits in between added.

use crate::medallion::MedallionError;
use deltalake::DeltaTable;
use deltalake::kernel::{Action, Add};
use tweetflow_delta::table;

use super::APP_ID;
use super::error::InferResult;
use super::params::InferParams;

/// How many commits back a run without new silver data looks for the model gold last used.
pub const RECORDED_MODEL_LOOKBACK: i64 = 20;

/// Silver and gold as an attempt finds them.
pub(super) struct Tables {
    /// The silver table.
    pub silver: DeltaTable,
    /// The gold table, when it exists (it is created only when there is something to write).
    pub gold: Option<DeltaTable>,
    /// The silver version gold records as consumed (-1 when none).
    pub consumed: i64,
    /// The latest silver version.
    pub latest: i64,
}

/// Opens silver and gold and reads how far gold has consumed silver.
pub(super) async fn open_tables(params: &InferParams) -> InferResult<Tables> {
    let silver_loc = &params.input;
    let gold_loc = &params.table;
    let silver =
        table::open_table(silver_loc)
            .await?
            .ok_or_else(|| MedallionError::MissingInput {
                what: "silver table (run clean first)",
                location: silver_loc.clone(),
            })?;
    let latest = table::version(&silver);
    let gold = table::open_table(gold_loc).await?;
    let consumed = match &gold {
        Some(gold) => table::app_version(gold, gold_loc, APP_ID)
            .await?
            .unwrap_or(-1),
        None => -1,
    };
    if consumed > latest {
        return Err(MedallionError::Data(format!(
            "gold `{gold_loc}` has consumed silver version {consumed} but silver `{silver_loc}` is at version {latest}: \
             silver was reset; reset the gold table too"
        ))
        .into());
    }
    Ok(Tables {
        silver,
        gold,
        consumed,
        latest,
    })
}

/// The files silver versions `from..=to` added (`dataChange = true`); removals are logged
/// and otherwise ignored (gold keeps what it derived from them).
pub(super) async fn added_files(
    silver: &DeltaTable,
    silver_loc: &str,
    from: i64,
    to: i64,
) -> InferResult<Vec<Add>> {
    let mut files = Vec::new();
    for v in from..=to {
        for action in table::commit_actions(silver, silver_loc, v).await? {
            match action {
                Action::Add(add) if add.data_change => files.push(add),
                Action::Remove(remove) if remove.data_change => {
                    tracing::warn!(silver = %silver_loc, version = v, file = %remove.path,
                        "silver removed data; gold keeps the rows it already derived from it");
                }
                _ => {}
            }
        }
    }
    Ok(files)
}

/// The row count an add action's statistics record (0 when they do not).
pub(super) fn add_rows(add: &Add) -> u64 {
    add.stats
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v.get("numRecords").and_then(|n| n.as_u64()))
        .unwrap_or(0)
}

/// The model URI and version of gold's latest infer commit (searching back at most
/// [`RECORDED_MODEL_LOOKBACK`] commits).
pub(super) async fn recorded_model(gold: &DeltaTable, location: &str) -> Option<(String, String)> {
    let latest = table::version(gold);
    let oldest = (latest - RECORDED_MODEL_LOOKBACK).max(0);
    for v in (oldest..=latest).rev() {
        let Ok(actions) = table::commit_actions(gold, location, v).await else {
            continue;
        };
        for action in actions {
            if let Action::CommitInfo(info) = action
                && let Some(value) = info.info.get(table::COMMIT_INFO_KEY)
                && value.get("app").and_then(|a| a.as_str()) == Some(APP_ID)
            {
                let field = |k: &str| value.get(k).and_then(|x| x.as_str()).map(str::to_string);
                if let (Some(uri), Some(version)) = (field("model_uri"), field("model_version")) {
                    return Some((uri, version));
                }
            }
        }
    }
    None
}
