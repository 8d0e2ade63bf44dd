//! Data-quality expectations on the rows a task is about to commit, on the one write path of
//! every table-writing task.
//!
//! A task attempt runs inside a [`Scope`] holding its expectations ([`scoped`]). The task
//! writes its target table through a [`TargetWriter`] ([`target_writer`]), which evaluates
//! every expectation (a SQL boolean expression, planned once with DataFusion against the
//! batch schema) on each batch before it is written as Parquet: a row passes when the
//! expression is true (false and NULL fail it). By the expectation's [`OnFail`]:
//!
//! * `warn` keeps the row and counts it;
//! * `drop` leaves it out and counts it;
//! * `quarantine` leaves it out, counts it and writes it to the task's quarantine table with
//!   the reason `expectation <name>` (the columns the quarantine table shares with the target,
//!   `reason`, `processing_time`; created as the target's columns + those two when missing);
//! * `fail` stops the attempt with [`StorageError::ExpectationFailed`] (up to 3 failing rows
//!   shown): nothing is committed.
//!
//! **Exactly once.** Counts and quarantined rows belong to the commit of the target, not to
//! the writes: [`crate::table::commit`] records the counts and the quarantine files in the
//! target commit's `commitInfo.tweetflow.expectations` and, once that commit is in, commits
//! those files to the quarantine table with the application transaction
//! `tweetflow-expect:<target URL>` = the target version (an outbox). A crash between the two
//! commits is repaired by the next [`target_writer`] on that target, which commits the
//! recorded files the quarantine table lacks. An attempt that fails or plans again commits
//! nothing, so its counts and rows are dropped with it; [`Scope::tallies`] holds what the
//! attempt's commits carried.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use deltalake::DeltaTable;
use deltalake::arrow::array::{
    Array, ArrayRef, BooleanArray, StringArray, TimestampMicrosecondArray, new_null_array,
};
use deltalake::arrow::compute::{cast, filter_record_batch};
use deltalake::arrow::datatypes::{
    DataType as ArrowType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit,
};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::datafusion::common::DFSchema;
use deltalake::datafusion::physical_expr::PhysicalExpr;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::{Action, Add, StructType, Transaction};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use serde::Serialize;
use serde_json::{Value, json};

use crate::commit::{Replans, append_op};
use crate::error::{Result, StorageError};
use crate::table::{self, CommitRequest};

/// What happens to a row that fails an expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// Keep the row and count it.
    Warn,
    /// Leave the row out and count it.
    Drop,
    /// Move the row to the quarantine table.
    Quarantine,
    /// Fail the attempt; nothing is committed.
    Fail,
}

/// One expectation of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Its name (in outputs, metrics and quarantine reasons).
    pub name: String,
    /// The SQL condition a row must meet.
    pub sql: String,
    /// What happens to a failing row.
    pub on_fail: OnFail,
}

/// The failures of one expectation over the commits of an attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Rows that failed it.
    pub failed: u64,
    /// What happened to them.
    pub action: OnFail,
}

/// The expectations of one task attempt and what its commits counted.
#[derive(Debug)]
pub struct Scope {
    task: String,
    rules: Vec<Rule>,
    control: crate::WriteControl,
    state: Mutex<ScopeState>,
}

#[derive(Debug, Default)]
struct ScopeState {
    /// What the current writer of each target has counted and quarantined, not yet committed.
    pending: HashMap<String, Arc<Mutex<Pending>>>,
    /// Failures carried by the attempt's target commits, by expectation.
    committed: BTreeMap<String, u64>,
    /// Whether a target writer applied the expectations.
    used: bool,
}

/// Counts and quarantine files of a writer since its last commit.
#[derive(Debug, Default)]
struct Pending {
    failed: BTreeMap<String, u64>,
    quarantine: Option<String>,
    quarantine_adds: Vec<Add>,
    quarantined: u64,
}

tokio::task_local! {
    static SCOPE: Arc<Scope>;
}

impl Scope {
    /// The expectations `rules` of task `task`.
    pub fn new(task: impl Into<String>, rules: Vec<Rule>) -> Arc<Self> {
        Self::with_control(task, rules, crate::WriteControl::default())
    }

    /// [`Scope::new`] obeying `control`'s failpoint `expect.before_quarantine_commit`
    /// (between a target commit and its quarantine commit).
    pub fn with_control(
        task: impl Into<String>,
        rules: Vec<Rule>,
        control: crate::WriteControl,
    ) -> Arc<Self> {
        Arc::new(Scope {
            task: task.into(),
            rules,
            control,
            state: Mutex::new(ScopeState::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ScopeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The failures of each expectation carried by the attempt's commits (every expectation,
    /// 0 when none failed).
    pub fn tallies(&self) -> BTreeMap<String, Tally> {
        let state = self.state();
        self.rules
            .iter()
            .map(|r| {
                let failed = state.committed.get(&r.name).copied().unwrap_or(0);
                (
                    r.name.clone(),
                    Tally {
                        failed,
                        action: r.on_fail,
                    },
                )
            })
            .collect()
    }

    /// Whether a target writer applied the expectations during the attempt.
    pub fn used(&self) -> bool {
        self.state().used
    }
}

/// Runs `fut` with `scope`'s expectations applying to the target writers it creates.
pub async fn scoped<F: Future>(scope: Arc<Scope>, fut: F) -> F::Output {
    SCOPE.scope(scope, fut).await
}

/// The scope of the running attempt, if it has expectations.
pub fn current() -> Option<Arc<Scope>> {
    SCOPE
        .try_with(Arc::clone)
        .ok()
        .filter(|s| !s.rules.is_empty())
}

/// The application id of the quarantine commits of `target`'s expectations.
pub fn outbox_app_id(target: &DeltaTable) -> String {
    format!("tweetflow-expect:{}", target.table_url())
}

/// Expectations planned against one batch schema.
struct Compiled {
    schema: SchemaRef,
    exprs: Vec<Arc<dyn PhysicalExpr>>,
}

/// Plans `rules` against `schema`. An unknown column, a syntax error or a non-boolean
/// expression is [`StorageError::Expectation`].
fn compile(rules: &[Rule], schema: SchemaRef) -> Result<Compiled> {
    let ctx = SessionContext::new();
    let df_schema =
        DFSchema::try_from(schema.as_ref().clone()).map_err(|e| StorageError::Expectation {
            message: format!("the written schema: {e}"),
        })?;
    let mut exprs = Vec::with_capacity(rules.len());
    for rule in rules {
        let bad = |message: String| StorageError::Expectation {
            message: format!("expectation `{}` (`{}`): {message}", rule.name, rule.sql),
        };
        let expr = ctx
            .parse_sql_expr(&rule.sql, &df_schema)
            .map_err(|e| bad(format!("{e}; columns: {}", column_list(&schema))))?;
        let physical = ctx
            .create_physical_expr(expr, &df_schema)
            .map_err(|e| bad(e.to_string()))?;
        let ty = physical
            .data_type(schema.as_ref())
            .map_err(|e| bad(e.to_string()))?;
        if ty != ArrowType::Boolean {
            return Err(bad(format!(
                "a condition must be true or false for a row, this one is of type {ty}"
            )));
        }
        exprs.push(physical);
    }
    Ok(Compiled { schema, exprs })
}

fn column_list(schema: &ArrowSchema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why an expectation's SQL does not check: DataFusion's message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SqlCheckError {
    /// DataFusion's message, without the expectation's name.
    pub message: String,
}

/// Checks `sql` as an expectation over `columns` (Arrow fields): `Err` with DataFusion's
/// message (for load-time validation).
pub fn check_sql(sql: &str, schema: SchemaRef) -> std::result::Result<(), SqlCheckError> {
    let rule = Rule {
        name: String::new(),
        sql: sql.to_string(),
        on_fail: OnFail::Warn,
    };
    match compile(std::slice::from_ref(&rule), schema) {
        Ok(_) => Ok(()),
        Err(StorageError::Expectation { message }) => Err(SqlCheckError {
            message: message
                .strip_prefix(&format!("expectation `` (`{sql}`): "))
                .unwrap_or(&message)
                .to_string(),
        }),
        Err(e) => Err(SqlCheckError {
            message: e.to_string(),
        }),
    }
}

/// A failing mask: true where `result` is not true (false or NULL).
fn failing(result: &BooleanArray) -> BooleanArray {
    (0..result.len())
        .map(|i| Some(!(result.is_valid(i) && result.value(i))))
        .collect()
}

/// Up to 3 rows of `batch` where `mask` is true, as `col=value` lists.
fn sample_rows(batch: &RecordBatch, mask: &BooleanArray) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
        .collect();
    let names = batch.schema();
    (0..batch.num_rows())
        .filter(|i| mask.value(*i))
        .take(3)
        .map(|i| {
            let cells: Vec<String> = formatters
                .iter()
                .zip(names.fields())
                .map(|(f, field)| {
                    let mut v = f
                        .as_ref()
                        .map(|f| f.value(i).to_string())
                        .unwrap_or_else(|| "?".into());
                    if v.chars().count() > 80 {
                        v = v.chars().take(77).collect::<String>() + "...";
                    }
                    format!("{}={v}", field.name())
                })
                .collect();
            format!("{{{}}}", cells.join(", "))
        })
        .collect()
}

/// A writer of a task's target table that applies the attempt's expectations to each batch
/// (a plain writer outside a scope with expectations).
pub struct TargetWriter {
    inner: RecordBatchWriter,
    location: String,
    check: Option<Check>,
}

struct Check {
    scope: Arc<Scope>,
    compiled: Option<Compiled>,
    pending: Arc<Mutex<Pending>>,
    quarantine: String,
    sink: Option<QuarantineSink>,
    now_micros: i64,
}

struct QuarantineSink {
    writer: RecordBatchWriter,
    schema: SchemaRef,
}

/// A [`TargetWriter`] for `table` at `location` with Arrow `schema`; rows failing a
/// `quarantine` expectation go to the table at `quarantine`. Commits the quarantine files a
/// crashed earlier attempt left recorded in the target first (see the module docs).
pub async fn target_writer(
    table: &DeltaTable,
    location: &str,
    schema: SchemaRef,
    quarantine: &str,
) -> Result<TargetWriter> {
    let inner = table::writer_for(table, location, schema.clone())?;
    let check = match current() {
        None => None,
        Some(scope) => {
            let compiled = compile(&scope.rules, schema)?;
            let pending = Arc::new(Mutex::new(Pending::default()));
            {
                let mut state = scope.state();
                state.used = true;
                state.pending.insert(location.to_string(), pending.clone());
            }
            if scope.rules.iter().any(|r| r.on_fail == OnFail::Quarantine) {
                recover_outbox(table, location, quarantine).await?;
            }
            Some(Check {
                scope,
                compiled: Some(compiled),
                pending,
                quarantine: quarantine.to_string(),
                sink: None,
                now_micros: chrono_now_micros(),
            })
        }
    };
    Ok(TargetWriter {
        inner,
        location: location.to_string(),
        check,
    })
}

fn chrono_now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl TargetWriter {
    /// The Arrow schema the writer writes.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.inner.arrow_schema()
    }

    /// Checks `batch` against the expectations and writes the rows that stay.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.write_with_mode(batch, WriteMode::Default).await
    }

    /// [`TargetWriter::write`] with a schema mode (schema evolution).
    pub async fn write_with_mode(&mut self, batch: RecordBatch, mode: WriteMode) -> Result<()> {
        let kept = match self.check.as_mut() {
            Some(check) => check.apply(batch, &self.location).await?,
            None => Some(batch),
        };
        if let Some(kept) = kept {
            self.inner
                .write_with_mode(kept, mode)
                .await
                .map_err(|e| StorageError::delta(&self.location, e))?;
        }
        Ok(())
    }

    /// Finishes the open files; returns their `add` actions (not yet committed). The
    /// quarantine files and counts wait for the target's commit.
    pub async fn flush(&mut self) -> Result<Vec<Add>> {
        if let Some(check) = self.check.as_mut()
            && let Some(sink) = check.sink.as_mut()
        {
            let adds = sink
                .writer
                .flush()
                .await
                .map_err(|e| StorageError::delta(&check.quarantine, e))?;
            let mut p = check.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.quarantine = Some(check.quarantine.clone());
            p.quarantine_adds.extend(adds);
        }
        self.inner
            .flush()
            .await
            .map_err(|e| StorageError::delta(&self.location, e))
    }
}

impl Check {
    /// Evaluates the expectations on `batch`: counts, quarantines, fails; returns the rows to
    /// write (`None`: none).
    async fn apply(&mut self, batch: RecordBatch, location: &str) -> Result<Option<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(Some(batch));
        }
        let schema = batch.schema();
        if self.compiled.as_ref().is_none_or(|c| c.schema != schema) {
            self.compiled = Some(compile(&self.scope.rules, schema.clone())?);
        }
        let Some(exprs) = self.compiled.as_ref().map(|c| c.exprs.clone()) else {
            return Ok(Some(batch));
        };
        let scope = self.scope.clone();
        let n = batch.num_rows();
        let mut drop = vec![false; n];
        let mut reasons: Vec<Option<&str>> = vec![None; n];
        let mut counts: Vec<(String, u64)> = Vec::new();
        for (rule, expr) in scope.rules.iter().zip(&exprs) {
            let value = expr
                .evaluate(&batch)
                .and_then(|v| v.into_array(n))
                .map_err(|e| StorageError::Expectation {
                    message: format!("expectation `{}` (`{}`): {e}", rule.name, rule.sql),
                })?;
            let result = value
                .as_any()
                .downcast_ref::<BooleanArray>()
                .cloned()
                .unwrap_or_else(|| BooleanArray::from(vec![false; n]));
            let fails = failing(&result);
            let failed = fails.true_count() as u64;
            if failed == 0 {
                continue;
            }
            counts.push((rule.name.clone(), failed));
            match rule.on_fail {
                OnFail::Warn => {}
                OnFail::Fail => {
                    return Err(StorageError::ExpectationFailed {
                        name: rule.name.clone(),
                        sql: rule.sql.clone(),
                        table: location.to_string(),
                        failed,
                        rows: sample_rows(&batch, &fails),
                    });
                }
                OnFail::Drop => {
                    for (i, d) in drop.iter_mut().enumerate() {
                        *d |= fails.value(i);
                    }
                }
                OnFail::Quarantine => {
                    for (i, r) in reasons.iter_mut().enumerate() {
                        if r.is_none() && fails.value(i) {
                            *r = Some(rule.name.as_str());
                        }
                    }
                }
            }
        }
        if counts.is_empty() {
            return Ok(Some(batch));
        }
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (name, failed) in &counts {
                *p.failed.entry(name.clone()).or_default() += failed;
            }
        }
        let quarantined: BooleanArray = reasons.iter().map(|r| Some(r.is_some())).collect();
        if quarantined.true_count() > 0 {
            let rows = filter_record_batch(&batch, &quarantined)
                .map_err(|e| StorageError::format("selecting quarantined rows", e))?;
            let reason_column: StringArray = reasons
                .iter()
                .flatten()
                .map(|name| Some(format!("expectation {name}")))
                .collect();
            self.quarantine_rows(rows, reason_column, location).await?;
        }
        let keep: BooleanArray = (0..n)
            .map(|i| Some(!drop[i] && reasons[i].is_none()))
            .collect();
        let kept = filter_record_batch(&batch, &keep)
            .map_err(|e| StorageError::format("selecting kept rows", e))?;
        Ok((kept.num_rows() > 0).then_some(kept))
    }

    async fn quarantine_rows(
        &mut self,
        rows: RecordBatch,
        reasons: StringArray,
        target: &str,
    ) -> Result<()> {
        if self.sink.is_none() {
            let table = quarantine_table(&self.quarantine, &rows.schema(), target).await?;
            let schema = table::arrow_schema(&table, &self.quarantine)?;
            if schema.field_with_name("reason").is_err() {
                return Err(StorageError::Expectation {
                    message: format!(
                        "the quarantine table `{}` has no `reason` column, so it cannot take the rows of a `quarantine` expectation",
                        self.quarantine
                    ),
                });
            }
            let writer = table::writer_for(&table, &self.quarantine, schema.clone())?;
            self.sink = Some(QuarantineSink { writer, schema });
        }
        let Some(sink) = self.sink.as_mut() else {
            return Ok(());
        };
        let n = rows.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(sink.schema.fields().len());
        for field in sink.schema.fields() {
            let column: ArrayRef = match field.name().as_str() {
                "reason" => cast(&reasons, field.data_type())
                    .map_err(|e| StorageError::format("quarantine column `reason`", e))?,
                "processing_time" if rows.column_by_name("processing_time").is_none() => cast(
                    &TimestampMicrosecondArray::from(vec![self.now_micros; n]).with_timezone("UTC"),
                    field.data_type(),
                )
                .map_err(|e| StorageError::format("quarantine column `processing_time`", e))?,
                name => match rows.column_by_name(name) {
                    Some(c) if c.data_type() == field.data_type() => c.clone(),
                    Some(c) => cast(c, field.data_type())
                        .unwrap_or_else(|_| new_null_array(field.data_type(), n)),
                    None => new_null_array(field.data_type(), n),
                },
            };
            columns.push(column);
        }
        let batch = RecordBatch::try_new(sink.schema.clone(), columns)
            .map_err(|e| StorageError::format("building quarantine rows", e))?;
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.quarantined += n as u64;
        }
        sink.writer
            .write(batch)
            .await
            .map_err(|e| StorageError::delta(&self.quarantine, e))
    }
}

/// Opens the quarantine table, creating it as the target's columns + `reason` and
/// `processing_time` when it does not exist.
async fn quarantine_table(location: &str, rows: &SchemaRef, target: &str) -> Result<DeltaTable> {
    if let Some(t) = table::open_table(location).await? {
        return Ok(t);
    }
    let mut fields: Vec<Field> = rows
        .fields()
        .iter()
        .filter(|f| !matches!(f.name().as_str(), "reason" | "processing_time"))
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new("reason", ArrowType::Utf8, true));
    fields.push(Field::new(
        "processing_time",
        ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    ));
    let schema: StructType = (&ArrowSchema::new(fields))
        .try_into_kernel()
        .map_err(|e| StorageError::format(format!("the quarantine schema of `{target}`"), e))?;
    table::open_or_create(location, &schema, &[]).await
}

/// A quarantine commit to make after a table's commit: the quarantine table and its files.
pub(crate) type QuarantineCommit = (String, Vec<Add>);

/// Takes the expectation counts and quarantine files waiting for the commit of `location`:
/// the JSON to record in the commit and the quarantine commit to make after it. `None` when
/// the attempt has no expectations on that table.
pub(crate) fn pending_for(location: &str) -> Option<(Value, Option<QuarantineCommit>)> {
    let scope = current()?;
    let pending = scope.state().pending.get(location).cloned()?;
    let p = pending.lock().unwrap_or_else(|e| e.into_inner());
    let quarantine = p
        .quarantine
        .clone()
        .filter(|_| !p.quarantine_adds.is_empty())
        .map(|q| (q, p.quarantine_adds.clone()));
    let info = json!({
        "task": scope.task,
        "failed": p.failed,
        "quarantined": p.quarantined,
        "quarantine": quarantine.as_ref().map(|(q, adds)| json!({"table": q, "adds": adds})),
    });
    Some((info, quarantine))
}

/// After the commit of `location`: the pending counts become the attempt's and the writer
/// starts counting afresh. Fails at the failpoint `expect.before_quarantine_commit`.
pub(crate) fn committed(location: &str) -> Result<()> {
    let Some(scope) = current() else {
        return Ok(());
    };
    let mut state = scope.state();
    let Some(pending) = state.pending.get(location).cloned() else {
        return Ok(());
    };
    let taken = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
    for (name, failed) in taken.failed {
        *state.committed.entry(name).or_default() += failed;
    }
    drop(state);
    scope.control.failpoint("expect.before_quarantine_commit")
}

/// Commits `adds` to the quarantine table for target version `version`, unless its
/// application transaction says they are there already.
pub(crate) async fn commit_outbox(
    target: &DeltaTable,
    quarantine: &str,
    version: i64,
    adds: Vec<Add>,
) -> Result<()> {
    let app = outbox_app_id(target);
    let Some(mut qt) = table::open_table(quarantine).await? else {
        return Err(StorageError::Expectation {
            message: format!("the quarantine table `{quarantine}` disappeared before its commit"),
        });
    };
    let mut replans = Replans::new("expectation quarantine");
    loop {
        table::refresh(&mut qt, quarantine).await?;
        let recorded = table::app_version(&qt, quarantine, &app).await?;
        if recorded.is_some_and(|r| r >= version) {
            return Ok(());
        }
        let request = CommitRequest {
            actions: adds.iter().cloned().map(Action::Add).collect(),
            operation: append_op(),
            txn: Some(Transaction::new(app.clone(), version)),
            info: json!({"app": "tweetflow-expect", "kind": "quarantine", "target_version": version}),
        };
        // The check and the commit see the same version: a concurrent commit fails it.
        match table::commit_plain(&mut qt, quarantine, request).await {
            Ok(_) => return Ok(()),
            Err(err) if replans.again(&err) => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Commits the quarantine files that commits of the target at `location` recorded but the
/// quarantine table does not hold (see the module docs); a no-op without a `quarantine`
/// expectation in scope or without a target table. Called before each attempt.
pub async fn recover(location: &str, quarantine: &str) -> Result<()> {
    let Some(scope) = current() else {
        return Ok(());
    };
    if !scope.rules.iter().any(|r| r.on_fail == OnFail::Quarantine) {
        return Ok(());
    }
    match table::open_table(location).await? {
        Some(target) => recover_outbox(&target, location, quarantine).await,
        None => Ok(()),
    }
}

/// Most target commits looked at when repairing the outbox.
const OUTBOX_LOOKBACK: i64 = 100;

/// Commits the quarantine files that target commits recorded but the quarantine table does
/// not hold (a crash between the two commits), oldest first.
async fn recover_outbox(target: &DeltaTable, location: &str, quarantine: &str) -> Result<()> {
    let latest = table::version(target);
    if latest < 0 {
        return Ok(());
    }
    let app = outbox_app_id(target);
    let recorded = match table::open_table(quarantine).await? {
        Some(qt) => table::app_version(&qt, quarantine, &app).await?,
        None => None,
    };
    let from = recorded
        .map_or(0, |r| r + 1)
        .max(latest - OUTBOX_LOOKBACK + 1);
    for v in from..=latest {
        let actions = match table::commit_actions(target, location, v).await {
            Ok(a) => a,
            Err(StorageError::MissingCommit { .. }) => continue,
            Err(e) => return Err(e),
        };
        for action in actions {
            let Action::CommitInfo(info) = action else {
                continue;
            };
            let Some(q) = info
                .info
                .get(table::COMMIT_INFO_KEY)
                .and_then(|t| t.get("expectations"))
                .and_then(|e| e.get("quarantine"))
                .filter(|q| !q.is_null())
            else {
                continue;
            };
            let (Some(qloc), Some(adds)) = (
                q.get("table").and_then(Value::as_str),
                q.get("adds")
                    .and_then(|a| serde_json::from_value::<Vec<Add>>(a.clone()).ok()),
            ) else {
                continue;
            };
            tracing::warn!(target = %location, version = v, quarantine = %qloc,
                "committing expectation quarantine rows an interrupted run left recorded");
            commit_outbox(target, qloc, v, adds).await?;
        }
    }
    Ok(())
}
