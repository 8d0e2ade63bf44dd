//! Planning a run: the silver version gold has consumed and the latest silver version (the
//! files in between are [`tweetflow_delta::incremental::new_files`]), and the model gold last
//! recorded.

use crate::medallion::clean::silver_schema;
use crate::medallion::table_shape;
use crate::table_error::TableTaskError;
use deltalake::DeltaTable;
use deltalake::kernel::Action;
use tweetflow_delta::table;

use super::error::InferResult;
use super::gold::APP_ID;
use super::gold::gold_schema;
use super::params::InferParams;
use super::shard;
use tweetflow_engine::task::Shard;

/// How many commits back a run without new silver data looks for the model gold last used.
pub const RECORDED_MODEL_LOOKBACK: i64 = 20;

/// Silver and gold as an attempt finds them.
pub(super) struct Tables {
    /// The silver table.
    pub silver: DeltaTable,
    /// The gold table, when it exists (it is created only when there is something to write).
    pub gold: Option<DeltaTable>,
    /// The silver version gold records as consumed (`None`: none).
    pub consumed: Option<i64>,
    /// The shard's recorded progress (see [`super::shard`]).
    pub progress: shard::Progress,
    /// The latest silver version.
    pub latest: i64,
}

/// Opens silver and gold and reads how far gold has consumed silver.
pub(super) async fn open_tables(params: &InferParams, shard: Option<Shard>) -> InferResult<Tables> {
    let silver_loc = &params.input;
    let gold_loc = &params.table;
    let silver =
        table::open_table(silver_loc)
            .await?
            .ok_or_else(|| TableTaskError::MissingInput {
                what: "silver table (run clean first)",
                location: silver_loc.clone(),
            })?;
    let latest = table::version(&silver);
    table_shape::require_columns(
        &silver,
        silver_loc,
        "input",
        "a silver table",
        &table_shape::columns_of(&silver_schema()?, &["user"]),
    )?;
    let gold = table::open_table(gold_loc).await?;
    if let Some(gold) = &gold {
        let columns = table_shape::columns_of(&gold_schema()?, &[]);
        table_shape::require_columns(gold, gold_loc, "table", "a gold table", &columns)?;
    }
    let progress = match &gold {
        Some(gold) => shard::GOLD.progress(gold, gold_loc, shard).await?,
        None => shard::Progress::default(),
    };
    let consumed = progress.consumed;
    if let Some(consumed) = consumed
        && consumed > latest
    {
        return Err(TableTaskError::Data(format!(
            "gold `{gold_loc}` has consumed silver version {consumed} but silver `{silver_loc}` is at version {latest}: \
             silver was reset; reset the gold table too"
        ))
        .into());
    }
    Ok(Tables {
        silver,
        gold,
        consumed,
        progress,
        latest,
    })
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
