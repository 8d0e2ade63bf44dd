//! `aggregate`: silver to the per-mention application table.
//!
//! One row per mention: `mention`, `min_timestamp`, `max_timestamp`, `negative`, `neutral`,
//! `positive`, `total`, sorted by mention. The table always equals a full recomputation from
//! its input: when the silver version differs from the one recorded as the application
//! transaction (`tweetflow-aggregate`), the task recomputes everything and replaces the table
//! content in one commit (remove every current file, add the new ones); when it is the same,
//! it does nothing (no new version). Rerunning never double counts.
//!
//! The label column's values count as negative/neutral/positive when they are (case
//! insensitively) `negative`/`neutral`/`positive` or `0`/`2`/`4`; other values count only in
//! `total`.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType as ArrowType, TimeUnit, TimestampMicrosecondType};
use deltalake::kernel::{Action, DataType, StructType, Transaction};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};

use super::table_shape;
use super::tables::assemble;
use crate::table_error::{Result, TableTaskError};
use tweetflow_delta::WriteControl;
use tweetflow_delta::commit::{commit_planned, overwrite_op};
use tweetflow_delta::table::{self, CommitRequest};

/// Application id of aggregate commits.
pub const APP_ID: &str = "tweetflow-aggregate";

fn default_label() -> String {
    "sentiment".into()
}

/// Params of `aggregate`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateParams {
    /// Silver Delta table (written by `clean`).
    pub input: String,
    /// Per-mention Delta table to (re)write.
    pub table: String,
    /// Column holding the label (default `sentiment`).
    #[serde(default = "default_label")]
    pub label_column: String,
}

impl AggregateParams {
    /// Params with the default label column.
    pub fn new(input: impl Into<String>, table: impl Into<String>) -> Self {
        AggregateParams {
            input: input.into(),
            table: table.into(),
            label_column: default_label(),
        }
    }
}

/// What an aggregate run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AggregateSummary {
    /// Mentions (rows) in the table.
    pub mentions: u64,
    /// Silver rows read (0 when skipped).
    pub input_rows: u64,
    /// Whether the table was recomputed (false: input unchanged).
    pub recomputed: bool,
    /// Silver version the table reflects.
    pub input_version: i64,
    /// The aggregate table.
    pub table: String,
    /// Table version after the run.
    pub table_version: i64,
}

/// The aggregate table schema.
pub fn aggregate_schema() -> tweetflow_delta::Result<StructType> {
    table::schema_of(&[
        ("mention", DataType::STRING),
        ("min_timestamp", DataType::TIMESTAMP),
        ("max_timestamp", DataType::TIMESTAMP),
        ("negative", DataType::LONG),
        ("neutral", DataType::LONG),
        ("positive", DataType::LONG),
        ("total", DataType::LONG),
    ])
}

/// Counters of one mention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MentionStats {
    /// Earliest timestamp (µs since the epoch, UTC); `i64::MAX` when none.
    pub min_ts: i64,
    /// Latest timestamp; `i64::MIN` when none.
    pub max_ts: i64,
    /// Negative rows.
    pub negative: i64,
    /// Neutral rows.
    pub neutral: i64,
    /// Positive rows.
    pub positive: i64,
    /// All rows.
    pub total: i64,
}

impl Default for MentionStats {
    fn default() -> Self {
        MentionStats {
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            negative: 0,
            neutral: 0,
            positive: 0,
            total: 0,
        }
    }
}

/// Which class a label value counts in: 0 negative, 1 neutral, 2 positive.
pub fn label_class(label: &str) -> Option<usize> {
    let l = label.trim();
    if l.eq_ignore_ascii_case("negative") || l == "0" {
        Some(0)
    } else if l.eq_ignore_ascii_case("neutral") || l == "2" {
        Some(1)
    } else if l.eq_ignore_ascii_case("positive") || l == "4" {
        Some(2)
    } else {
        None
    }
}

/// Runs `aggregate`.
pub async fn aggregate(params: &AggregateParams, ctl: &WriteControl) -> Result<AggregateSummary> {
    let in_loc = params.input.clone();
    let out_loc = params.table.clone();
    let silver = table::open_table(&in_loc)
        .await?
        .ok_or_else(|| TableTaskError::MissingInput {
            what: "silver table (run clean first)",
            location: in_loc.clone(),
        })?;
    let in_version = table::version(&silver);
    let silver_schema = table::arrow_schema(&silver, &in_loc)?;
    for col in ["mention", "timestamp", params.label_column.as_str()] {
        if silver_schema.field_with_name(col).is_err() {
            let param = if col == params.label_column {
                "label_column"
            } else {
                "input"
            };
            return Err(TableTaskError::Param {
                param,
                message: format!("table `{in_loc}` has no column `{col}`"),
            });
        }
    }
    let silver_columns = [
        ("mention".to_string(), DataType::STRING),
        ("timestamp".to_string(), DataType::TIMESTAMP),
    ];
    table_shape::require_columns(&silver, &in_loc, "input", "a silver table", &silver_columns)?;
    let mut out = table::open_or_create(&out_loc, &aggregate_schema()?, &[]).await?;
    let out_columns = table_shape::columns_of(&aggregate_schema()?, &[]);
    table_shape::require_columns(&out, &out_loc, "table", "a mentions table", &out_columns)?;
    let done = table::app_version(&out, &out_loc, APP_ID).await?;
    if done == Some(in_version) {
        let mentions = table::row_count(&out, &out_loc)?.unwrap_or(0);
        return Ok(AggregateSummary {
            mentions,
            input_rows: 0,
            recomputed: false,
            input_version: in_version,
            table: out_loc,
            table_version: table::version(&out),
        });
    }

    let mut stats: HashMap<String, MentionStats> = HashMap::new();
    let mut input_rows = 0u64;
    let columns = ["mention", "timestamp", params.label_column.as_str()];
    for (path, _, _) in table::active_files(&silver, &in_loc)? {
        let mut stream = table::read_file(&silver, &path, &columns).await?;
        while let Some(batch) = stream.next().await {
            ctl.check_cancel()?;
            let batch =
                batch.map_err(|e| TableTaskError::format(format!("reading `{path}`"), e))?;
            let get = |name: &str, ty: &ArrowType| -> Result<ArrayRef> {
                let col = batch.column_by_name(name).ok_or_else(|| {
                    TableTaskError::Data(format!("`{path}` lacks the column `{name}`"))
                })?;
                cast(col, ty).map_err(|e| TableTaskError::format(format!("column `{name}`"), e))
            };
            let mention = get("mention", &ArrowType::Utf8)?;
            let mention = mention.as_string::<i32>();
            let ts = get(
                "timestamp",
                &ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )?;
            let ts = ts.as_primitive::<TimestampMicrosecondType>();
            let label = get(&params.label_column, &ArrowType::Utf8)?;
            let label = label.as_string::<i32>();
            for i in 0..batch.num_rows() {
                input_rows += 1;
                if mention.is_null(i) {
                    continue;
                }
                let m = mention.value(i);
                let entry = match stats.get_mut(m) {
                    Some(e) => e,
                    None => stats.entry(m.to_string()).or_default(),
                };
                if !ts.is_null(i) {
                    let t = ts.value(i);
                    entry.min_ts = entry.min_ts.min(t);
                    entry.max_ts = entry.max_ts.max(t);
                }
                entry.total += 1;
                if !label.is_null(i) {
                    match label_class(label.value(i)) {
                        Some(0) => entry.negative += 1,
                        Some(1) => entry.neutral += 1,
                        Some(_) => entry.positive += 1,
                        None => {}
                    }
                }
            }
        }
    }

    let mut names: Vec<&String> = stats.keys().collect();
    names.sort();
    let schema = table::arrow_schema(&out, &out_loc)?;
    let quarantine = super::tables::default_quarantine(&out_loc);
    let mut writer =
        tweetflow_delta::expect::target_writer(&out, &out_loc, schema.clone(), &quarantine).await?;
    for chunk in names.chunks(table::BATCH_ROWS) {
        let mut mention = StringBuilder::new();
        let mut min_ts = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut max_ts = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut neg = Int64Builder::new();
        let mut neu = Int64Builder::new();
        let mut pos = Int64Builder::new();
        let mut total = Int64Builder::new();
        for name in chunk {
            let Some(s) = stats.get(*name) else { continue };
            mention.append_value(name);
            min_ts.append_option((s.min_ts != i64::MAX).then_some(s.min_ts));
            max_ts.append_option((s.max_ts != i64::MIN).then_some(s.max_ts));
            neg.append_value(s.negative);
            neu.append_value(s.neutral);
            pos.append_value(s.positive);
            total.append_value(s.total);
        }
        let mut m: HashMap<&str, ArrayRef> = HashMap::new();
        m.insert("mention", Arc::new(mention.finish()));
        m.insert("min_timestamp", Arc::new(min_ts.finish()));
        m.insert("max_timestamp", Arc::new(max_ts.finish()));
        m.insert("negative", Arc::new(neg.finish()));
        m.insert("neutral", Arc::new(neu.finish()));
        m.insert("positive", Arc::new(pos.finish()));
        m.insert("total", Arc::new(total.finish()));
        let batch = assemble(&schema, m, chunk.len())?;
        writer.write(batch).await?;
    }
    let adds = writer.flush().await?;
    ctl.failpoint("aggregate.after_write")?;

    // Same code path: the recorded input version must not have moved since planning (the
    // removes are taken from the table as it is now).
    table::refresh(&mut out, &out_loc).await?;
    let mut actions = table::remove_all(&out, &out_loc, true)?;
    actions.extend(adds.into_iter().map(Action::Add));
    let version = commit_planned(
        &mut out,
        &out_loc,
        done,
        CommitRequest {
            actions,
            operation: overwrite_op(),
            txn: Some(Transaction::new(APP_ID, in_version)),
            info: json!({"app": APP_ID, "kind": "aggregate", "input_version": in_version, "mentions": stats.len(), "input_rows": input_rows}),
        },
    )
    .await?;
    ctl.failpoint("aggregate.after_commit")?;
    Ok(AggregateSummary {
        mentions: stats.len() as u64,
        input_rows,
        recomputed: true,
        input_version: in_version,
        table: out_loc,
        table_version: version,
    })
}

/// The `aggregate` task.
pub struct AggregateTask;

impl Task for AggregateTask {
    type Params = AggregateParams;
    const TYPE: &'static str = "aggregate";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "Per-mention counts by label and first/last timestamp, recomputed from silver when it changed";
    const WRITES_TABLE: bool = true;

    fn output_columns(&self, _params: &AggregateParams) -> Option<Vec<(String, String)>> {
        aggregate_schema()
            .ok()
            .map(|s| crate::expect::columns_of(&s))
    }

    fn locations(&self, p: &AggregateParams) -> Vec<(&'static str, String)> {
        vec![("input", p.input.clone()), ("table", p.table.clone())]
    }

    async fn run(
        &self,
        ctx: &TaskContext,
        params: AggregateParams,
    ) -> std::result::Result<TaskOutput, TaskError> {
        crate::run_store_guard::refuse_run_store(ctx, &[("table", &params.table)])?;
        let ctl = super::write_control(ctx);
        let s = aggregate(&params, &ctl)
            .await
            .map_err(|e| e.naming(&[("input", &params.input), ("table", &params.table)]))?;
        super::table_output(&s, &s.table, s.table_version)
    }

    /// Valid while the table is at the version the output names and silver has not moved.
    async fn output_still_valid(&self, params: &AggregateParams, output: &TaskOutput) -> bool {
        let used = output.get("input_version").and_then(|v| v.as_i64());
        used.is_some()
            && used == table::latest_version(&params.input).await
            && super::output_table_still_valid(&params.table, output).await
    }
}

impl crate::expect::WritesTable for AggregateTask {
    fn tables(params: &AggregateParams) -> (String, String) {
        (
            params.table.clone(),
            super::tables::default_quarantine(&params.table),
        )
    }
}
