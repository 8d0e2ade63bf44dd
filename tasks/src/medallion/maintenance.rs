//! Table maintenance: `optimize` (compaction, optionally sorted by a column), `vacuum`,
//! `reset`, and `show` for the CLI (`tweetflow table optimize|vacuum|reset|show TABLE`).
//!
//! * **optimize** bin-packs the files smaller than the target size into files of about that
//!   size, in one commit whose `add`/`remove` actions have `dataChange = false` (readers such
//!   as `clean` do not see new data). With `zorder_by`, each new file is sorted by that
//!   column: a Z-order on a single column is a linear sort, which is what makes min/max
//!   statistics prune well (multi-column Z-order curves are not implemented). A table with
//!   fewer than two small files is left alone (no new version).
//! * **vacuum** deletes files no longer referenced by the table and older than the retention
//!   (default 168h, the Delta default). It refuses a retention below the table's
//!   `delta.deletedFileRetentionDuration` (7 days by default), so readers of recent versions
//!   and commits in flight are safe; `dry_run` lists what would go. Orphans left by crashed
//!   attempts (Parquet written, never committed) are deleted too once old enough.
//! * **reset** deletes whole tables (data and log, hence their exactly-once progress
//!   records); it refuses unless `confirm` is true, and refuses to delete a location that is
//!   not a Delta table.

use std::collections::HashMap;

use deltalake::arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use deltalake::kernel::Action;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::DeltaWriter;
use futures::{StreamExt, TryStreamExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};

use crate::table_error::{Result, TableTaskError};
use tweetflow_delta::StorageError;
use tweetflow_delta::WriteControl;
use tweetflow_delta::table::{self, CommitRequest};

fn default_target_mb() -> u64 {
    32
}

/// Params of `optimize`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimizeParams {
    /// The Delta table to compact.
    pub table: String,
    /// Target file size in MiB (default 32); files at least this big are left alone.
    #[serde(default = "default_target_mb")]
    pub target_size_mb: u64,
    /// Sort the rows of each compacted file by this column (single-column Z-order).
    #[serde(default)]
    pub zorder_by: Option<String>,
}

impl OptimizeParams {
    /// Params with defaults.
    pub fn new(table: impl Into<String>) -> Self {
        OptimizeParams {
            table: table.into(),
            target_size_mb: default_target_mb(),
            zorder_by: None,
        }
    }
}

/// What `optimize` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OptimizeSummary {
    /// Files replaced.
    pub files_removed: u64,
    /// Files written.
    pub files_added: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// The table.
    pub table: String,
    /// Table version after the run (unchanged when nothing was done).
    pub table_version: i64,
}

/// Compacts the small files of `params.table` (see the module docs).
pub async fn optimize(params: &OptimizeParams, ctl: &WriteControl) -> Result<OptimizeSummary> {
    let loc = params.table.clone();
    let mut t = table::open_table(&loc)
        .await?
        .ok_or_else(|| TableTaskError::MissingInput {
            what: "table",
            location: loc.clone(),
        })?;
    let target = params.target_size_mb.max(1) * 1024 * 1024;
    let schema = table::arrow_schema(&t, &loc)?;
    if let Some(col) = &params.zorder_by
        && schema.field_with_name(col).is_err()
    {
        return Err(TableTaskError::Param {
            param: "zorder_by",
            message: format!("`{loc}` has no column `{col}`"),
        });
    }
    let snapshot = t.snapshot().map_err(|e| TableTaskError::delta(&loc, e))?;
    let mut small: Vec<_> = snapshot
        .log_data()
        .iter()
        .filter(|f| (f.size() as u64) < target)
        .collect();
    small.sort_by_key(|f| f.path().to_string());
    // Bin-pack in path order.
    let mut bins: Vec<Vec<_>> = Vec::new();
    let mut current: Vec<_> = Vec::new();
    let mut current_size = 0u64;
    for f in small {
        if current_size + f.size() as u64 > target && !current.is_empty() {
            bins.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current_size += f.size() as u64;
        current.push(f);
    }
    if !current.is_empty() {
        bins.push(current);
    }
    bins.retain(|b| b.len() >= 2);
    let mut summary = OptimizeSummary {
        table: params.table.clone(),
        table_version: table::version(&t),
        ..Default::default()
    };
    if bins.is_empty() {
        return Ok(summary);
    }
    let mut actions: Vec<Action> = Vec::new();
    let mut writer = table::writer_for(&t, &loc, schema.clone())?.with_target_file_size(target);
    for bin in &bins {
        let mut batches = Vec::new();
        for f in bin {
            ctl.check_cancel()?;
            let path = f.object_store_path();
            let stream = table::read_file(&t, &path, &[]).await?;
            let mut stream = stream.map_err(|e| TableTaskError::format("reading for optimize", e));
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                summary.rows += batch.num_rows() as u64;
                if params.zorder_by.is_some() {
                    batches.push(batch);
                } else {
                    writer
                        .write(batch)
                        .await
                        .map_err(|e| TableTaskError::delta(&loc, e))?;
                }
            }
            actions.push(Action::Remove(f.remove_action(false)));
            summary.files_removed += 1;
        }
        if let Some(col) = &params.zorder_by {
            if batches.is_empty() {
                continue;
            }
            let all = concat_batches(&batches[0].schema(), &batches)
                .map_err(|e| TableTaskError::format("optimize", e))?;
            drop(batches);
            let key = all
                .column_by_name(col)
                .ok_or_else(|| TableTaskError::Data(format!("no column `{col}`")))?;
            let idx = sort_to_indices(
                key,
                Some(SortOptions {
                    descending: false,
                    nulls_first: false,
                }),
                None,
            )
            .map_err(|e| TableTaskError::format("sorting", e))?;
            let sorted =
                take_record_batch(&all, &idx).map_err(|e| TableTaskError::format("sorting", e))?;
            drop(all);
            let mut offset = 0;
            while offset < sorted.num_rows() {
                let len = table::BATCH_ROWS.min(sorted.num_rows() - offset);
                writer
                    .write(sorted.slice(offset, len))
                    .await
                    .map_err(|e| TableTaskError::delta(&loc, e))?;
                offset += len;
            }
        }
    }
    let adds = writer
        .flush()
        .await
        .map_err(|e| TableTaskError::delta(&loc, e))?;
    summary.files_added = adds.len() as u64;
    actions.extend(adds.into_iter().map(|mut a| {
        a.data_change = false;
        Action::Add(a)
    }));
    let version = table::commit(
        &mut t,
        &loc,
        CommitRequest {
            actions,
            operation: DeltaOperation::Optimize {
                predicate: None,
                target_size: target as i64,
            },
            txn: None,
            info: json!({
                "app": "tweetflow-optimize", "kind": "optimize", "zorder_by": params.zorder_by,
                "files_removed": summary.files_removed, "files_added": summary.files_added,
            }),
        },
    )
    .await?;
    summary.table_version = version;
    Ok(summary)
}

fn default_retention() -> String {
    "168h".into()
}

/// Params of `vacuum`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VacuumParams {
    /// The Delta table to vacuum.
    pub table: String,
    /// Keep unreferenced files younger than this (default `168h`; shorter than the table's
    /// `delta.deletedFileRetentionDuration` is refused).
    #[serde(default = "default_retention")]
    pub retention: String,
    /// Only list the files that would be deleted.
    #[serde(default)]
    pub dry_run: bool,
}

impl VacuumParams {
    /// Params with defaults.
    pub fn new(table: impl Into<String>) -> Self {
        VacuumParams {
            table: table.into(),
            retention: default_retention(),
            dry_run: false,
        }
    }
}

/// What `vacuum` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VacuumSummary {
    /// How many files were deleted (or would be, with `dry_run`).
    pub files_deleted: usize,
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
    /// Files deleted (or that would be, with `dry_run`).
    pub files: Vec<String>,
    /// The table.
    pub table: String,
    /// Table version after the run.
    pub table_version: i64,
}

/// Vacuums `params.table` (see the module docs).
pub async fn vacuum(params: &VacuumParams) -> Result<VacuumSummary> {
    let loc = params.table.clone();
    let retention =
        tweetflow_engine::parse_duration(&params.retention).map_err(|e| TableTaskError::Param {
            param: "retention",
            message: e.to_string(),
        })?;
    let retention = chrono::Duration::from_std(retention).map_err(|e| TableTaskError::Param {
        param: "retention",
        message: e.to_string(),
    })?;
    let t = table::open_table(&loc)
        .await?
        .ok_or_else(|| TableTaskError::MissingInput {
            what: "table",
            location: loc.clone(),
        })?;
    let result = t
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(true)
        .with_mode(VacuumMode::Full)
        .with_dry_run(params.dry_run)
        .await;
    match result {
        Ok((t, metrics)) => Ok(VacuumSummary {
            files_deleted: metrics.files_deleted.len(),
            dry_run: metrics.dry_run,
            files: metrics.files_deleted,
            table: loc,
            table_version: table::version(&t),
        }),
        Err(deltalake::DeltaTableError::GenericError { source })
            if source.to_string().contains("retention") =>
        {
            Err(TableTaskError::Param {
                param: "retention",
                message: source.to_string(),
            })
        }
        Err(e) => Err(TableTaskError::delta(&loc, e)),
    }
}

/// Params of `reset`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetParams {
    /// The Delta tables to delete (data, log and progress records).
    pub tables: Vec<String>,
    /// Must be `true`: resetting deletes data.
    #[serde(default)]
    pub confirm: bool,
}

/// Deletes the given tables. Refuses without `confirm` and for locations that exist but are
/// not Delta tables. Returns, per location, `deleted` or `absent`.
pub async fn reset(tables: &[String], confirm: bool) -> Result<Vec<(String, &'static str)>> {
    if !confirm {
        return Err(TableTaskError::Refused(format!(
            "reset deletes {} table(s) ({}); pass `confirm: true` to proceed",
            tables.len(),
            tables.join(", ")
        )));
    }
    let mut out = Vec::new();
    // Check every location first, delete afterwards: all or nothing on a refusal.
    let mut found = Vec::new();
    for loc in tables {
        match table::open_table(loc).await? {
            Some(t) => found.push((loc.clone(), Some(t))),
            None => {
                if let Some(dir) = table::local_dir(loc)
                    && dir.exists()
                    && std::fs::read_dir(&dir)
                        .map(|mut d| d.next().is_some())
                        .unwrap_or(true)
                {
                    return Err(TableTaskError::Refused(format!(
                        "`{loc}` is not a Delta table; reset does not delete it"
                    )));
                }
                found.push((loc.clone(), None));
            }
        }
    }
    for (loc, t) in found {
        let Some(t) = t else {
            out.push((loc, "absent"));
            continue;
        };
        if let Some(dir) = table::local_dir(&loc) {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| TableTaskError::io(format!("deleting `{}`", dir.display()), e))?;
        } else {
            let store = t.object_store();
            let paths: Vec<_> = store
                .list(None)
                .map_ok(|m| m.location)
                .try_collect()
                .await
                .map_err(|e| TableTaskError::delta(&loc, e.into()))?;
            for p in paths {
                store
                    .delete(&p)
                    .await
                    .map_err(|e| TableTaskError::delta(&loc, e.into()))?;
            }
        }
        tracing::info!(table = %loc, "table reset");
        out.push((loc, "deleted"));
    }
    Ok(out)
}

/// One commit of a table's history, newest first in [`TableInfo::history`].
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    /// Table version.
    pub version: i64,
    /// Commit time (ms since the epoch).
    pub timestamp: Option<i64>,
    /// Delta operation (`WRITE`, `CREATE TABLE`, `OPTIMIZE`, ...).
    pub operation: Option<String>,
    /// What this crate recorded (`commitInfo.tweetflow`), if any.
    pub tweetflow: Option<Value>,
}

/// What a table holds (`tweetflow table show` prints it).
#[derive(Clone, Debug, Serialize)]
pub struct TableInfo {
    /// The location as given.
    pub location: String,
    /// The table URL.
    pub url: String,
    /// Current version.
    pub version: i64,
    /// Columns: name, Delta type, nullable.
    pub schema: Vec<(String, String, bool)>,
    /// Rows (from file statistics; `None` if a file has none).
    pub rows: Option<u64>,
    /// Active data files.
    pub files: u64,
    /// Their total size in bytes.
    pub size_bytes: u64,
    /// Application transactions recorded (app id, version).
    pub app_transactions: Vec<(String, i64)>,
    /// Commits, newest first (at most `history_limit`).
    pub history: Vec<HistoryEntry>,
}

/// Describes the table at `location`: schema, version, rows, files and the latest
/// `history_limit` commits.
pub async fn table_info(location: &str, history_limit: usize) -> Result<TableInfo> {
    let t = table::open_table(location)
        .await?
        .ok_or_else(|| TableTaskError::MissingInput {
            what: "table",
            location: location.to_string(),
        })?;
    let schema = table::delta_schema(&t, location)?;
    let files = table::active_files(&t, location)?;
    let version = table::version(&t);
    let mut history = Vec::new();
    let mut apps: HashMap<String, i64> = HashMap::new();
    let first = (version + 1 - history_limit as i64).max(0);
    for v in (0..=version).rev() {
        let actions = match table::commit_actions(&t, location, v).await {
            Ok(a) => a,
            Err(StorageError::MissingCommit { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        for a in actions {
            match a {
                Action::Txn(txn) => {
                    apps.entry(txn.app_id.clone()).or_insert(txn.version);
                }
                Action::CommitInfo(ci) if v >= first => history.push(HistoryEntry {
                    version: v,
                    timestamp: ci.timestamp,
                    operation: ci.operation.clone(),
                    tweetflow: ci.info.get(table::COMMIT_INFO_KEY).cloned(),
                }),
                _ => {}
            }
        }
    }
    let mut app_transactions: Vec<(String, i64)> = apps.into_iter().collect();
    app_transactions.sort();
    Ok(TableInfo {
        location: location.to_string(),
        url: t.table_url().to_string(),
        version,
        schema: schema
            .fields()
            .map(|f| {
                (
                    f.name().clone(),
                    serde_json::to_value(f.data_type())
                        .map(|v| match v {
                            Value::String(s) => s,
                            other => other.to_string(),
                        })
                        .unwrap_or_default(),
                    f.is_nullable(),
                )
            })
            .collect(),
        rows: table::row_count(&t, location)?,
        files: files.len() as u64,
        size_bytes: files.iter().map(|(_, s, _)| *s as u64).sum(),
        app_transactions,
        history,
    })
}

/// The `optimize` task.
pub struct OptimizeTask;

impl Task for OptimizeTask {
    type Params = OptimizeParams;
    const TYPE: &'static str = "optimize";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Compact the small files of a Delta table, optionally sorted by a column";

    async fn run(
        &self,
        ctx: &TaskContext,
        params: OptimizeParams,
    ) -> std::result::Result<TaskOutput, TaskError> {
        crate::run_store_guard::refuse_run_store(ctx, &[("table", &params.table)])?;
        let s = optimize(&params, &super::write_control(ctx)).await?;
        super::table_output(&s, &s.table, s.table_version)
    }

    async fn output_still_valid(&self, _params: &OptimizeParams, _output: &TaskOutput) -> bool {
        false
    }
}

/// The `vacuum` task.
pub struct VacuumTask;

impl Task for VacuumTask {
    type Params = VacuumParams;
    const TYPE: &'static str = "vacuum";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Delete unreferenced files of a Delta table older than the retention (default 168h)";

    async fn run(
        &self,
        ctx: &TaskContext,
        params: VacuumParams,
    ) -> std::result::Result<TaskOutput, TaskError> {
        crate::run_store_guard::refuse_run_store(ctx, &[("table", &params.table)])?;
        let s = vacuum(&params).await?;
        super::table_output(&s, &s.table, s.table_version)
    }

    async fn output_still_valid(&self, _params: &VacuumParams, _output: &TaskOutput) -> bool {
        false
    }
}

/// The `reset` task.
pub struct ResetTask;

impl Task for ResetTask {
    type Params = ResetParams;
    const TYPE: &'static str = "reset";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Delete Delta tables and their progress records (needs confirm: true)";

    async fn run(
        &self,
        ctx: &TaskContext,
        params: ResetParams,
    ) -> std::result::Result<TaskOutput, TaskError> {
        let tables: Vec<(&str, &str)> = params
            .tables
            .iter()
            .map(|t| ("tables", t.as_str()))
            .collect();
        crate::run_store_guard::refuse_run_store(ctx, &tables)?;
        if !params.confirm {
            return Err(TaskError::config(
                "confirm",
                "reset deletes tables; set `confirm: true`",
            ));
        }
        let done = reset(&params.tables, params.confirm).await?;
        let map: serde_json::Map<String, Value> =
            done.into_iter().map(|(k, v)| (k, json!(v))).collect();
        Ok(TaskOutput::new().with("tables", Value::Object(map)))
    }

    async fn output_still_valid(&self, _params: &ResetParams, _output: &TaskOutput) -> bool {
        false
    }
}
