//! One `sql` run: pin the tables (and, incrementally, the files not consumed yet), run the
//! query on DataFusion, stream its rows through the shared write path, commit exactly once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::Path;
use deltalake::arrow::datatypes::Schema;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::{Action, Add, StructType, Transaction};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::error::{SqlError, SqlResult};
use super::schema::{check_fits, conform, target_schema};
use super::{Mode, SqlParams};
use tweetflow_delta::commit::{Replans, append_op, commit_planned, overwrite_op};
use tweetflow_delta::table::{self, CommitRequest};
use tweetflow_delta::{StorageError, WriteControl, expect, incremental};

/// Most memory one query's operators hold; sorts and aggregations spill to disk beyond it.
pub const MEMORY_LIMIT: usize = 512 * 1024 * 1024;
/// Prefix of the application transactions of `sql` commits.
pub const APP: &str = "tweetflow-sql";

/// The application id recording which run of task `task_id` last committed.
pub fn run_app(task_id: &str) -> String {
    format!("{APP}/{task_id}")
}

/// The application id recording the last version of table `alias` an incremental run consumed.
pub fn cursor_app(alias: &str) -> String {
    format!("{APP}:{alias}")
}

/// The number a run's commits record for task `task_id` of run `run_id` (a hash).
pub fn run_token(run_id: &str, task_id: &str) -> i64 {
    let hash = blake3::hash(format!("{run_id}\n{task_id}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(bytes) >> 1) as i64
}

/// What a `sql` run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SqlSummary {
    /// Rows the query produced (before expectations).
    pub rows: u64,
    /// How they were written.
    pub mode: &'static str,
    /// The version of each table read, by its name in the query.
    pub read_versions: BTreeMap<String, i64>,
    /// Incremental runs: the first version read of each table (versions before it were
    /// consumed by earlier runs).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub read_from: BTreeMap<String, i64>,
    /// The target table.
    pub table: String,
    /// Its version after the run.
    pub table_version: i64,
    /// Whether an earlier attempt of the same run had committed already (nothing written).
    pub already_committed: bool,
}

/// Runs the query of `params` for task `task_id`, recording `token` (see [`run_token`]).
pub async fn run_sql(
    params: &SqlParams,
    task_id: &str,
    token: i64,
    ctl: &WriteControl,
) -> SqlResult<SqlSummary> {
    check_params(params)?;
    let mut replans = Replans::new("sql");
    loop {
        match attempt(params, task_id, token, ctl).await {
            Err(err) if replans.again(&err) => continue,
            other => return other,
        }
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_params(p: &SqlParams) -> SqlResult<()> {
    let param = |param, message: String| Err(SqlError::Param { param, message });
    if p.tables.is_empty() {
        return param("tables", "name at least one Delta table".into());
    }
    if let Some(bad) = p.tables.keys().find(|a| !is_identifier(a)) {
        return param(
            "tables",
            format!(
                "`{bad}` is not a table name the query can use: use lower-case letters, digits and `_`"
            ),
        );
    }
    if p.query.trim().is_empty() {
        return param("query", "the query is empty".into());
    }
    match (p.mode, p.merge_keys.is_empty()) {
        (Mode::Merge, true) => {
            return param("merge_keys", "`mode: merge` needs the key columns".into());
        }
        (Mode::Append | Mode::Overwrite, false) => {
            return param("merge_keys", "only used with `mode: merge`".into());
        }
        _ => {}
    }
    if p.incremental && p.mode != Mode::Append {
        return param(
            "incremental",
            format!(
                "an incremental run appends the rows of new data: use `mode: append`, not `{}`",
                p.mode.as_str()
            ),
        );
    }
    Ok(())
}

/// A DataFusion session with a bounded memory pool, plain (non-view) string types.
fn session() -> SqlResult<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(MEMORY_LIMIT, 1.0)
        .build_arc()?;
    let mut config = SessionConfig::new().with_batch_size(table::BATCH_ROWS);
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// Only queries: no DDL, DML or `SET`.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// What the planning of a run found.
struct Plan {
    read_versions: BTreeMap<String, i64>,
    read_from: BTreeMap<String, i64>,
    /// Incremental: whether any table has files not consumed yet.
    anything_new: bool,
}

async fn attempt(
    params: &SqlParams,
    task_id: &str,
    token: i64,
    ctl: &WriteControl,
) -> SqlResult<SqlSummary> {
    let loc = params.table.as_str();
    let app = run_app(task_id);
    let existing = table::open_table(loc).await?;
    let planned_after = match &existing {
        Some(t) => table::app_version(t, loc, &app).await?,
        None => None,
    };
    if let Some(t) = &existing
        && planned_after == Some(token)
    {
        return committed_summary(t, params, token).await;
    }
    let ctx = session()?;
    let plan = register_tables(&ctx, params, existing.as_ref()).await?;
    let mut summary = SqlSummary {
        mode: params.mode.as_str(),
        read_versions: plan.read_versions.clone(),
        read_from: plan.read_from.clone(),
        table: params.table.clone(),
        table_version: existing.as_ref().map_or(-1, table::version),
        ..Default::default()
    };
    if params.incremental && !plan.anything_new {
        tracing::info!(table = %loc, "sql: no new data in the tables read");
        return Ok(summary);
    }
    let df = ctx
        .sql_with_options(&params.query, read_only())
        .await
        .map_err(|e| SqlError::Query(e.to_string()))?;
    let query_schema: Schema = df.schema().as_arrow().clone();
    if let Some(missing) = params
        .merge_keys
        .iter()
        .find(|k| query_schema.field_with_name(k).is_err())
    {
        return Err(SqlError::Param {
            param: "merge_keys",
            message: format!("`{missing}` is not a column of the query"),
        });
    }
    let mut target = match existing {
        Some(t) => t,
        None => {
            let schema: StructType = target_schema(&query_schema)
                .as_ref()
                .try_into_kernel()
                .map_err(|e| StorageError::format("the query's schema", e))?;
            table::open_or_create(loc, &schema, &[]).await?
        }
    };
    let schema = table::arrow_schema(&target, loc)?;
    check_fits(&query_schema, &schema, loc)?;

    let mut writer =
        expect::target_writer(&target, loc, schema.clone(), &params.quarantine_location()).await?;
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        ctl.check_cancel()?;
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        summary.rows += batch.num_rows() as u64;
        writer.write(conform(&batch, &schema)?).await?;
    }
    let adds = writer.flush().await?;
    ctl.failpoint("sql.after_write")?;

    let mut actions: Vec<Action> = Vec::new();
    let operation = match params.mode {
        Mode::Append => append_op(),
        Mode::Overwrite => {
            table::refresh(&mut target, loc).await?;
            actions.extend(table::remove_all(&target, loc, true)?);
            overwrite_op()
        }
        Mode::Merge => {
            table::refresh(&mut target, loc).await?;
            let kept = keep_unmatched(&target, loc, &schema, &adds, &params.merge_keys).await?;
            actions.extend(table::remove_all(&target, loc, true)?);
            actions.extend(kept.into_iter().map(Action::Add));
            overwrite_op()
        }
    };
    actions.extend(adds.into_iter().map(Action::Add));
    if params.incremental {
        for (alias, v) in &plan.read_versions {
            actions.push(Action::Txn(Transaction::new(cursor_app(alias), *v)));
        }
    }
    let info = json!({
        "app": APP, "task": task_id, "kind": params.mode.as_str(), "rows": summary.rows,
        "read_versions": plan.read_versions, "read_from": plan.read_from, "run_token": token,
    });
    let request = CommitRequest {
        actions,
        operation,
        txn: Some(Transaction::new(app, token)),
        info,
    };
    let version = commit_planned(&mut target, loc, planned_after, request).await?;
    ctl.failpoint("sql.after_commit")?;
    summary.table_version = version;
    tracing::info!(table = %loc, rows = summary.rows, version, mode = params.mode.as_str(), "sql committed");
    Ok(summary)
}

/// Registers every table of `params` in `ctx` at its latest version (incremental: only the
/// files added after the version the target records as consumed).
async fn register_tables(
    ctx: &SessionContext,
    params: &SqlParams,
    target: Option<&DeltaTable>,
) -> SqlResult<Plan> {
    let mut plan = Plan {
        read_versions: BTreeMap::new(),
        read_from: BTreeMap::new(),
        anything_new: false,
    };
    for (alias, location) in &params.tables {
        let source = table::open_table(location)
            .await?
            .ok_or_else(|| SqlError::MissingInput {
                alias: alias.clone(),
                location: location.clone(),
            })?;
        let version = table::version(&source);
        plan.read_versions.insert(alias.clone(), version);
        source
            .update_datafusion_session(&ctx.state())
            .map_err(|e| StorageError::delta(location.as_str(), e))?;
        let provider = if params.incremental {
            let after = match target {
                Some(t) => table::app_version(t, &params.table, &cursor_app(alias))
                    .await?
                    .unwrap_or(-1),
                None => -1,
            };
            if after > version {
                return Err(SqlError::Param {
                    param: "tables",
                    message: format!(
                        "`{alias}` (`{location}`) is at version {version} but `{}` consumed it up to version {after}: the table was reset; reset the target too",
                        params.table
                    ),
                });
            }
            plan.read_from.insert(alias.clone(), after + 1);
            let adds = unconsumed(&source, location, after, version).await?;
            plan.anything_new |= !adds.is_empty();
            source.table_provider().with_adds(adds).await?
        } else {
            source.table_provider().await?
        };
        ctx.register_table(alias.as_str(), provider)?;
    }
    Ok(plan)
}

/// The data files versions `after + 1 ..= upto` of `source` added and that are still active
/// (a file compacted away by `optimize` since is skipped, with a warning).
async fn unconsumed(
    source: &DeltaTable,
    location: &str,
    after: i64,
    upto: i64,
) -> SqlResult<Vec<Add>> {
    let files = incremental::new_files(source, location, after, upto).await?;
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let active: HashSet<Path> = table::active_files(source, location)?
        .into_iter()
        .map(|(p, _, _)| p)
        .collect();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        if active.contains(&Path::from(f.add.path.as_str())) {
            out.push(f.add);
        } else {
            tracing::warn!(table = %location, version = f.version, file = %f.add.path,
                "a file not consumed yet is no longer active (rewritten by optimize?); its rows are read from the rewritten files only if those are new");
        }
    }
    Ok(out)
}

/// `merge`: writes the target rows whose keys match no new row (the files `new` hold the new
/// rows, not yet committed) and returns their files.
async fn keep_unmatched(
    target: &DeltaTable,
    loc: &str,
    schema: &deltalake::arrow::datatypes::SchemaRef,
    new: &[Add],
    keys: &[String],
) -> SqlResult<Vec<Add>> {
    if table::active_files(target, loc)?.is_empty() {
        return Ok(Vec::new());
    }
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let key_schema = Arc::new(
        schema
            .project(
                &keys
                    .iter()
                    .filter_map(|k| schema.index_of(k).ok())
                    .collect::<Vec<_>>(),
            )
            .map_err(|e| StorageError::format("the merge keys", e))?,
    );
    let mut key_batches: Vec<RecordBatch> = Vec::new();
    for add in new {
        let path = table::add_path(add)?;
        let mut rows = table::read_file(target, &path, &key_refs).await?;
        while let Some(batch) = rows.next().await {
            let batch = batch.map_err(|e| StorageError::format(format!("reading `{path}`"), e))?;
            key_batches.push(conform(&batch, &key_schema)?);
        }
    }
    let ctx = session()?;
    target
        .update_datafusion_session(&ctx.state())
        .map_err(|e| StorageError::delta(loc, e))?;
    ctx.register_table("__target", target.table_provider().await?)?;
    ctx.register_table(
        "__new_keys",
        Arc::new(MemTable::try_new(key_schema, vec![key_batches])?),
    )?;
    let on = keys
        .iter()
        .map(|k| format!("t.\"{k}\" = n.\"{k}\""))
        .collect::<Vec<_>>()
        .join(" AND ");
    let df = ctx
        .sql(&format!(
            "SELECT t.* FROM __target t LEFT ANTI JOIN __new_keys n ON {on}"
        ))
        .await?;
    let mut writer = table::writer_for(target, loc, schema.clone())?;
    let mut stream = df.execute_stream().await?;
    use deltalake::writer::DeltaWriter;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() > 0 {
            writer
                .write(conform(&batch, schema)?)
                .await
                .map_err(|e| StorageError::delta(loc, e))?;
        }
    }
    Ok(writer
        .flush()
        .await
        .map_err(|e| StorageError::delta(loc, e))?)
}

/// The summary of the commit an earlier attempt of this run made (read from the target's
/// recent history).
async fn committed_summary(
    target: &DeltaTable,
    params: &SqlParams,
    token: i64,
) -> SqlResult<SqlSummary> {
    let loc = params.table.as_str();
    let latest = table::version(target);
    let mut summary = SqlSummary {
        mode: params.mode.as_str(),
        table: params.table.clone(),
        table_version: latest,
        already_committed: true,
        ..Default::default()
    };
    for v in ((latest - 50).max(0)..=latest).rev() {
        let Ok(actions) = table::commit_actions(target, loc, v).await else {
            continue;
        };
        let info = actions.into_iter().find_map(|a| match a {
            Action::CommitInfo(i) => i.info.get(table::COMMIT_INFO_KEY).cloned(),
            _ => None,
        });
        if let Some(info) = info
            && info.get("run_token").and_then(Value::as_i64) == Some(token)
        {
            summary.rows = info.get("rows").and_then(Value::as_u64).unwrap_or(0);
            summary.read_versions =
                serde_json::from_value(info["read_versions"].clone()).unwrap_or_default();
            summary.read_from =
                serde_json::from_value(info["read_from"].clone()).unwrap_or_default();
            break;
        }
    }
    tracing::info!(table = %loc, version = latest, "sql: this run committed already");
    Ok(summary)
}
