//! `sql`: a new Delta table from a SQL query over Delta tables, on DataFusion.
//!
//! ```yaml
//! per_mention:
//!   type: sql
//!   depends_on: [infer]
//!   with:
//!     tables: { gold: "${params.root}/gold" }
//!     query: "SELECT mention, count(*) AS tweets, avg(predicted_score) AS mean_score FROM gold GROUP BY mention"
//!     table: "${params.root}/per_mention"
//!     mode: overwrite            # append | overwrite | merge (with merge_keys)
//! ```
//!
//! * Each table of `tables` is read at the version it is at when the run plans (recorded in
//!   the output's `read_versions`: caching and lineage use it); the query streams through
//!   DataFusion with a bounded memory pool ([`run::MEMORY_LIMIT`], spilling to disk for
//!   sorts and aggregations) into the target's Parquet files, through the shared write path
//!   ([`tweetflow_delta::expect::target_writer`]: `expect:` applies).
//! * `mode`: `overwrite` replaces the target's rows; `append` adds them; `merge` replaces the
//!   target rows whose `merge_keys` match a new row and keeps the others (the target is
//!   rewritten: fine for the per-key summaries it is meant for).
//! * `incremental: true` (with `append`): each table is read only from the versions this task
//!   has not consumed yet: the target records, per table, the last version consumed as an
//!   application transaction `tweetflow-sql:<name>`, committed with the rows.
//! * Exactly once: every commit records the transaction `tweetflow-sql/<task id>` = a number
//!   derived from the run id, checked again just before the commit (a concurrent writer makes
//!   the run plan again); a retried or resumed attempt whose commit is already in writes
//!   nothing again.
//! * Only queries are run: DDL, DML and `SET` statements are refused. A query that does not
//!   parse or plan is a configuration error with DataFusion's message (and the line and
//!   column it gives); query columns whose type differs from the existing target's are named.

pub mod error;
pub mod run;
pub mod schema;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tweetflow_delta::table;
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};

pub use error::{SqlError, SqlResult};
pub use run::{SqlSummary, run_sql};

/// How the query's rows reach the target table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Replace the target's rows (the default).
    #[default]
    Overwrite,
    /// Add the rows.
    Append,
    /// Replace the target rows whose `merge_keys` match a new row, keep the others.
    Merge,
}

impl Mode {
    /// The name used in pipeline files.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Overwrite => "overwrite",
            Mode::Append => "append",
            Mode::Merge => "merge",
        }
    }
}

/// Params of `sql`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlParams {
    /// The Delta tables the query reads, by the name it uses for them (a SQL identifier).
    pub tables: BTreeMap<String, String>,
    /// The query (one `SELECT`/`WITH` statement; `${params.*}` is interpolated).
    pub query: String,
    /// The Delta table written.
    pub table: String,
    /// `overwrite` (default), `append` or `merge`.
    #[serde(default)]
    pub mode: Mode,
    /// The columns that identify a row for `mode: merge`.
    #[serde(default)]
    pub merge_keys: Vec<String>,
    /// With `mode: append`: read each table only from the versions not consumed yet.
    #[serde(default)]
    pub incremental: bool,
    /// Quarantine table for rows failing a `quarantine` expectation; default: table +
    /// `_quarantine`.
    #[serde(default)]
    pub quarantine: Option<String>,
}

impl SqlParams {
    /// The quarantine table location.
    pub fn quarantine_location(&self) -> String {
        self.quarantine
            .clone()
            .unwrap_or_else(|| crate::medallion::tables::default_quarantine(&self.table))
    }
}

/// The `sql` task.
pub struct SqlTask;

impl Task for SqlTask {
    type Params = SqlParams;
    const TYPE: &'static str = "sql";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "A Delta table from a SQL query over Delta tables (DataFusion): overwrite, append (incremental) or merge, exactly once";
    const WRITES_TABLE: bool = true;

    async fn run(&self, ctx: &TaskContext, params: SqlParams) -> Result<TaskOutput, TaskError> {
        let qloc = params.quarantine_location();
        crate::run_store_guard::refuse_run_store(
            ctx,
            &[("table", &params.table), ("quarantine", &qloc)],
        )?;
        let token = run::run_token(&ctx.run_id, &ctx.task_id);
        let summary = run_sql(
            &params,
            &ctx.task_id,
            token,
            &crate::medallion::write_control(ctx),
        )
        .await?;
        let url = table::table_url(&summary.table).map_err(SqlError::from)?;
        Ok(TaskOutput::from_summary(&summary)?
            .with_fingerprint(format!("{url}@{}", summary.table_version)))
    }

    /// Valid while every table read is at the version read and the target at the version
    /// written.
    async fn output_still_valid(&self, params: &SqlParams, output: &TaskOutput) -> bool {
        let Some(read) = output.get("read_versions").and_then(|v| v.as_object()) else {
            return false;
        };
        for (alias, location) in &params.tables {
            let recorded = read.get(alias).and_then(|v| v.as_i64());
            if recorded.is_none() || recorded != table::latest_version(location).await {
                return false;
            }
        }
        crate::medallion::output_table_still_valid(&params.table, output).await
    }
}

impl crate::expect::WritesTable for SqlTask {
    fn tables(params: &SqlParams) -> (String, String) {
        (params.table.clone(), params.quarantine_location())
    }
}
