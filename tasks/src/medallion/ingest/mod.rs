//! `ingest`: landing JSON-lines files into the bronze Delta table, exactly once.
//!
//! Each landing file is a JSON-lines file of tweets `{"date", "user", "text", "sentiment"}`
//! (strings), plain or gzip-compressed (`*.gz`, read as a stream). The landing folder is a
//! local folder or an object-store prefix (`s3://...`, listed with one object listing per run).
//! The task lists it (regular files or the objects directly under the prefix, sorted by name),
//! leaves out hidden and temporary names (`skip_names`) and files modified within
//! `settle_time` (still being written: a later run takes them; see [`landing`]), takes the
//! files no earlier commit took, at most `max_files_per_batch` per commit, and streams them in
//! bounded Arrow batches into Parquet. A taken file that changed since is reported, not read
//! again (see [`changed`]).
//!
//! **Exactly once.** Every bronze commit records the application transaction
//! (`tweetflow-ingest`, batch number) and, in `commitInfo.tweetflow`, the files it took and how
//! many of their lines were quarantined. A run reads the recorded batch number and the files
//! already taken, and just before committing checks again that the batch number has not
//! moved. A crash before the commit leaves only unreferenced Parquet files (a later `vacuum`
//! removes them); a crash after it is seen by the next run, which skips those files. The
//! quarantine table is committed after bronze, one commit per batch, listing the batch number
//! in `commitInfo.tweetflow.batches`; a commit is made only if that batch is not there yet
//! (checked on the version the commit builds on). When a crash came between the two commits,
//! the next run rebuilds the missing quarantine rows from the files the bronze commit lists
//! (landed files are immutable).
//!
//! **Shards.** With `shards: N`, shard `i` takes the landing files whose name hashes to `i`,
//! numbers its batches in its own application transaction and commits them so that every
//! file is taken once whatever the shard count of each run (see [`shard`]).
//!
//! **Schema enforcement.** A line that is not UTF-8, not JSON, not an object, lacks a required
//! field (or has it `null`), has a non-string required field, or a `sentiment` other than
//! `positive`/`negative`/`neutral` (or, with `add_columns`, an unknown field whose name clashes
//! with a bronze column) goes to the quarantine table with its raw text (lossy),
//! raw bytes, file, line number and reason. So does a line longer than `max_record_bytes`
//! (only its first bytes are kept; the line is never held whole, see [`lines`]) and the
//! undecodable rest of a corrupt gzip file. Empty lines are skipped. Unknown fields follow
//! `schema_evolution`.

mod batch;
mod changed;
mod history;
mod landing;
mod lines;
mod params;
mod quarantine;
mod shard;
mod state;
mod writer;

pub use changed::CHANGED_AFTER_INGEST;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::{Action, MetadataExt, StructType, Transaction};
use serde_json::json;
use tweetflow_engine::task::Shard;
use tweetflow_engine::{
    ProgressReporter, Task, TaskContext, TaskError, TaskOutput, human_duration,
};

use crate::medallion::table_shape;
use crate::table_error::{Result, TableTaskError};
use tweetflow_delta::WriteControl;
use tweetflow_delta::commit::{Replans, append_op};
use tweetflow_delta::folder::{Folder, Listed};
use tweetflow_delta::table::{self, CommitRequest};

use changed::{changed_files, report_changed};
use history::{BronzeHistory, read_history};
use landing::{LandingFilter, Selected};
pub use params::{
    DEFAULT_MAX_RECORD_BYTES, DEFAULT_SETTLE_TIME, DEFAULT_SKIP_NAMES, IngestParams, IngestSummary,
    META_COLUMNS, REQUIRED, RESCUED, SENTIMENTS, SchemaEvolution, bronze_schema, quarantine_schema,
};
use quarantine::{QuarantineLog, commit_quarantine};
pub use state::APP_ID;
use state::{BatchId, FileState};
use writer::BatchWriter;

/// The landed object names of `source` (a local folder or an object-store prefix), sorted;
/// a missing local folder is an error.
pub async fn list_landing(folder: &Folder, source: &str) -> Result<Vec<String>> {
    folder
        .list()
        .await?
        .ok_or_else(|| TableTaskError::MissingInput {
            what: "landing folder",
            location: source.to_string(),
        })
}

/// The files of `source` split by `filter` into ready and still-settling ones; a missing
/// local folder is an error.
async fn list_ready(folder: &Folder, source: &str, filter: &LandingFilter) -> Result<Selected> {
    if let Some(dir) = folder.local_path()
        && dir.exists()
        && !dir.is_dir()
    {
        return Err(TableTaskError::Param {
            param: "source",
            message: format!("`{source}` is a file, not a landing folder"),
        });
    }
    let listed: Vec<Listed> = match folder.list_entries().await {
        Ok(Some(listed)) => listed,
        Ok(None) => {
            return Err(TableTaskError::MissingInput {
                what: "landing folder",
                location: source.to_string(),
            });
        }
        // An unreadable folder (permissions) names the param; transient failures stay
        // retryable.
        Err(e @ tweetflow_delta::StorageError::Io { .. }) => {
            return Err(TableTaskError::Unusable {
                param: "source",
                source: Box::new(e.into()),
            });
        }
        Err(e) => return Err(e.into()),
    };
    Ok(filter.select(listed, std::time::SystemTime::now()))
}

/// Runs `ingest` to completion: every pending landing file, batch by batch.
///
/// When another writer commits to the table while a batch is being written, the batch is
/// dropped and planned again from the log (see [`Replans`]).
pub async fn ingest(params: &IngestParams, ctl: &WriteControl) -> Result<IngestSummary> {
    ingest_shard(params, ctl, None).await
}

/// [`ingest`] for shard `shard` of the task (see [`shard`]); `None`: every landing file.
pub async fn ingest_shard(
    params: &IngestParams,
    ctl: &WriteControl,
    shard: Option<Shard>,
) -> Result<IngestSummary> {
    if params.max_files_per_batch == 0 {
        return Err(TableTaskError::Param {
            param: "max_files_per_batch",
            message: "must be at least 1".into(),
        });
    }
    if params.max_record_bytes == 0 {
        return Err(TableTaskError::Param {
            param: "max_record_bytes",
            message: "must be at least 1".into(),
        });
    }
    let filter = LandingFilter::new(params)?;
    let mut summary = IngestSummary {
        table: params.table.clone(),
        table_version: -1,
        quarantine: params.quarantine_location(),
        quarantine_version: -1,
        ..Default::default()
    };
    let mut replans = Replans::new("ingest");
    loop {
        match ingest_attempt(params, ctl, shard, &mut summary).await {
            Err(err) if replans.again(&err) => continue,
            Err(err) => return Err(err),
            Ok(fresh) => {
                summary.left = summary.left_in_words(&params.settle_time);
                log_waiting(params, &filter, &fresh, &summary, SystemTime::now());
                return Ok(summary);
            }
        }
    }
}

/// Logs one info line about the files left because they are still settling: when the run
/// took nothing else, the file that settles first and when a run can take it.
fn log_waiting(
    params: &IngestParams,
    filter: &LandingFilter,
    fresh: &[Listed],
    summary: &IngestSummary,
    now: SystemTime,
) {
    if fresh.is_empty() {
        return;
    }
    let source = &params.source;
    let settle_time = &params.settle_time;
    // The first to settle: the oldest modification time (the first name among equals).
    let first = fresh
        .iter()
        .filter_map(|l| l.modified_ms.map(|m| (m, l)))
        .min_by_key(|(m, _)| *m);
    match first {
        Some((modified, file)) if summary.files == 0 => {
            let at_ms = filter.settled_at_ms(modified);
            let now_ms = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let wait = Duration::from_millis(at_ms.saturating_sub(now_ms).max(0) as u64);
            let at = chrono::DateTime::from_timestamp_millis(at_ms)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_else(|| at_ms.to_string());
            tracing::info!(source = %source, files = fresh.len(), settle_time = %settle_time,
                file = %file.name, taken_from = %at,
                "no landing file ingested: {} {} modified in the last {settle_time} (settle_time); \
                 the first, `{}`, is taken by a run from {at} (in {})",
                fresh.len(),
                if fresh.len() == 1 { "file is" } else { "files are" },
                file.name,
                human_duration(wait));
        }
        _ => {
            tracing::info!(source = %source, files = fresh.len(), settle_time = %settle_time,
                "landing files modified within the settle time are left for a later run");
        }
    }
}

/// One pass of [`ingest`]; counts add up in `summary` across passes. Returns the files left
/// because they are still settling.
async fn ingest_attempt(
    params: &IngestParams,
    ctl: &WriteControl,
    shard: Option<Shard>,
    summary: &mut IngestSummary,
) -> Result<Vec<Listed>> {
    let loc = params.table.clone();
    let qloc = params.quarantine_location();
    // One listing per attempt (fails early on a missing folder, before touching any table).
    let folder = Folder::open(&params.source)?;
    let filter = LandingFilter::new(params)?;
    let mut selected = list_ready(&folder, &params.source, &filter).await?;
    // A shard sees only its part of the landing files.
    selected.ready.retain(|l| shard::takes(&l.name, shard));
    selected.fresh.retain(|l| shard::takes(&l.name, shard));
    selected.skipped.retain(|name| shard::takes(name, shard));
    summary.settling = selected.fresh.len() as u64;
    summary.skipped_names = selected.skipped.len() as u64;
    let states: BTreeMap<String, FileState> = selected
        .ready
        .iter()
        .map(|l| (l.name.clone(), FileState::from(l)))
        .collect();
    let landed: Vec<String> = selected.ready.iter().map(|l| l.name.clone()).collect();
    let mut table = table::open_table(&loc).await?;
    check_tables(params, table.as_ref()).await?;

    // What earlier runs committed, read once from the log; kept up to date in memory after
    // each of this run's commits (the commit path re-checks the recorded batch number).
    let app = shard::app_id(shard);
    let mut history = match table.as_ref() {
        Some(t) => read_history(t, &loc, &app).await?,
        None => BronzeHistory::default(),
    };
    let mut checked = table.as_ref().map_or(-1, table::version);
    // Catch up quarantine rows of committed batches whose quarantine commit is missing.
    let mut qlog = QuarantineLog::new();
    if let Some(t) = table.as_ref() {
        let p = &history;
        catch_up_quarantine(params, &folder, t, p, shard, &mut qlog, ctl).await?;
        if !changed_files(&selected.ready, &p.taken, &qlog).is_empty() {
            if let Some(qt) = table::open_table(&qloc).await? {
                qlog.update(&qt, &qloc).await?;
            }
            let changed = changed_files(&selected.ready, &p.taken, &qlog);
            let now = chrono::Utc::now().timestamp_micros();
            if let Some(qv) = report_changed(params, &changed, &mut qlog, now).await? {
                summary.quarantine_version = qv;
                summary.changed += changed.len() as u64;
            }
        }
    }
    let mut progress = ProgressReporter::new("landing files", None);
    loop {
        ctl.check_cancel()?;
        let pending: Vec<String> = landed
            .iter()
            .filter(|name| !history.files.contains(*name))
            .take(params.max_files_per_batch)
            .cloned()
            .collect();
        if pending.is_empty() {
            break;
        }
        let batch_no = history.batch + 1;
        let t = match table.take() {
            Some(t) => t,
            None => {
                table::open_or_create(
                    &loc,
                    &bronze_schema(params.schema_evolution)?,
                    &[table::KEEP_LOG],
                )
                .await?
            }
        };
        let mut t = t;
        let schema = table::arrow_schema(&t, &loc)?;
        let mut w = BatchWriter::new(params, loc.clone(), schema, true);
        for name in &pending {
            ctl.check_cancel()?;
            w.read_file(&t, name, &folder).await?;
            progress.add(1);
        }
        w.flush_bronze(&t).await?;
        w.flush_quarantine().await?;
        let adds = match w.writer.as_mut() {
            Some(writer) => writer.flush().await?,
            None => Vec::new(),
        };
        ctl.failpoint("ingest.after_write")?;

        let mut actions: Vec<Action> = Vec::new();
        let mut schema_at = None;
        if w.evolved {
            table::refresh(&mut t, &loc).await?;
            schema_at = Some(table::version(&t));
            let new_schema: StructType = w
                .schema
                .as_ref()
                .try_into_kernel()
                .map_err(|e| TableTaskError::format("evolving the schema", e))?;
            let snapshot = t.snapshot().map_err(|e| TableTaskError::delta(&loc, e))?;
            let metadata = snapshot
                .metadata()
                .clone()
                .with_schema(&new_schema)
                .map_err(|e| TableTaskError::format("evolving the schema", e))?;
            actions.push(Action::Metadata(metadata));
        }
        actions.extend(adds.into_iter().map(Action::Add));
        let files: Vec<String> = pending;
        let taken: Vec<&FileState> = files.iter().filter_map(|f| states.get(f)).collect();
        // Exactly-once check, in the commit path: the recorded batch must not have moved and
        // no other commit may have taken these files.
        let planned_after = (batch_no > 1).then_some(batch_no - 1);
        let batch = BatchId::new(shard, batch_no);
        let info = json!({
            "app": APP_ID, "kind": "ingest", "batch": batch_no, "files": files,
            "taken": taken, "rows": w.rows, "quarantined": w.quarantined, "shard": batch.shard,
        });
        let version = shard::commit_batch(
            &mut t,
            &loc,
            shard,
            planned_after,
            &files,
            schema_at,
            &mut history,
            &mut checked,
            || CommitRequest {
                actions: actions.clone(),
                operation: append_op(),
                txn: Some(Transaction::new(app.clone(), batch_no)),
                info: info.clone(),
            },
        )
        .await?;
        ctl.failpoint("ingest.after_commit")?;
        let rows = w.rows;
        let quarantined = w.quarantined;
        let q = w.q_writer.take();
        if let Some(qv) = commit_quarantine(params, q, &batch, &files, &mut qlog).await? {
            summary.quarantine_version = qv;
        }
        ctl.failpoint("ingest.after_quarantine_commit")?;
        summary.rows += rows;
        summary.quarantined += quarantined;
        summary.files += files.len() as u64;
        summary.batches += 1;
        summary.table_version = version;
        let p = &mut history;
        p.batch = batch_no;
        p.files.extend(files.iter().cloned());
        for name in &files {
            if let Some(state) = states.get(name) {
                p.taken.insert(name.clone(), state.clone());
            }
        }
        p.batches.insert(batch.key(), (files.clone(), quarantined));
        tracing::info!(table = %loc, batch = batch_no, files = files.len(), rows, quarantined, version, "ingest batch committed");
        table = Some(t);
    }
    if let Some(t) = table.as_ref() {
        summary.table_version = table::version(t);
    }
    if summary.quarantine_version < 0
        && let Some(qt) = table::open_table(&qloc).await?
    {
        summary.quarantine_version = table::version(&qt);
    }
    Ok(selected.fresh)
}

/// Fails (naming the param) when an existing bronze or quarantine table lacks a column ingest
/// writes, before anything is written.
async fn check_tables(params: &IngestParams, bronze: Option<&DeltaTable>) -> Result<()> {
    if let Some(t) = bronze {
        let expected = bronze_schema(SchemaEvolution::Ignore)?;
        let columns = table_shape::columns_of(&expected, &[]);
        table_shape::require_columns(t, &params.table, "table", "a bronze table", &columns)?;
    }
    table_shape::require_columns_if_exists(
        &params.quarantine_location(),
        "quarantine",
        "an ingest quarantine table",
        &quarantine_schema()?,
        &[],
    )
    .await
}

/// Rebuilds the quarantine rows of committed bronze batches whose quarantine commit is missing
/// (a crash between the two commits), one quarantine commit per batch.
async fn catch_up_quarantine(
    params: &IngestParams,
    folder: &Folder,
    bronze: &DeltaTable,
    history: &BronzeHistory,
    shard: Option<Shard>,
    qlog: &mut QuarantineLog,
    ctl: &WriteControl,
) -> Result<()> {
    let qloc = params.quarantine_location();
    if let Some(qt) = table::open_table(&qloc).await? {
        qlog.update(&qt, &qloc).await?;
    }
    let missing: Vec<(BatchId, Vec<String>)> = history
        .batches
        .iter()
        .filter(|(b, (_, q))| *q > 0 && !qlog.done.contains(*b))
        .filter_map(|(b, (files, _))| Some((BatchId::parse(b)?, files.clone())))
        .filter(|(b, _)| b.caught_up_by(shard))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let landing: BTreeSet<String> = list_landing(folder, &params.source)
        .await?
        .into_iter()
        .collect();
    for (b, files) in missing {
        let schema = table::arrow_schema(bronze, &params.table)?;
        let mut w = BatchWriter::new(params, params.table.clone(), schema, false);
        for name in &files {
            ctl.check_cancel()?;
            if !landing.contains(name) {
                return Err(TableTaskError::Data(format!(
                    "cannot rebuild the quarantine rows of batch {}: landing file `{name}` is gone",
                    b.key()
                )));
            }
            w.read_file(bronze, name, folder).await?;
        }
        w.flush_quarantine().await?;
        let q = w.q_writer.take();
        commit_quarantine(params, q, &b, &files, qlog).await?;
        tracing::info!(quarantine = %qloc, batch = %b.key(), "quarantine rows of a committed batch rebuilt");
    }
    Ok(())
}

/// How many ready landing files (not skipped, settled) no bronze commit has taken yet.
pub async fn pending_files(params: &IngestParams) -> Result<usize> {
    let folder = Folder::open(&params.source)?;
    let filter = LandingFilter::new(params)?;
    let landing = list_ready(&folder, &params.source, &filter).await?.ready;
    let Some(t) = table::open_table(&params.table).await? else {
        return Ok(landing.len());
    };
    let history = read_history(&t, &params.table, APP_ID).await?;
    Ok(landing
        .iter()
        .filter(|l| !history.files.contains(&l.name))
        .count())
}

/// The `ingest` task.
pub struct IngestTask;

impl Task for IngestTask {
    type Params = IngestParams;
    const TYPE: &'static str = "ingest";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Ingest landing JSON-lines files into a bronze Delta table, exactly once, with quarantine";
    /// Shards split the landing files by a hash of their names (see [`shard`]).
    const SHARDABLE: bool = true;
    const WRITES_TABLE: bool = true;

    fn output_columns(&self, params: &IngestParams) -> Option<Vec<(String, String)>> {
        (params.schema_evolution != SchemaEvolution::AddColumns)
            .then(|| bronze_schema(params.schema_evolution).ok())
            .flatten()
            .map(|s| crate::expect::columns_of(&s))
    }

    fn locations(&self, p: &IngestParams) -> Vec<(&'static str, String)> {
        let mut out = vec![("source", p.source.clone()), ("table", p.table.clone())];
        out.extend(p.quarantine.clone().map(|q| ("quarantine", q)));
        out
    }

    async fn run(
        &self,
        ctx: &TaskContext,
        params: IngestParams,
    ) -> std::result::Result<TaskOutput, TaskError> {
        let qloc = params.quarantine_location();
        crate::run_store_guard::refuse_run_store(
            ctx,
            &[("table", &params.table), ("quarantine", &qloc)],
        )?;
        let s = ingest_shard(&params, &super::write_control(ctx), ctx.shard)
            .await
            .map_err(|e| {
                e.naming(&[
                    ("source", &params.source),
                    ("table", &params.table),
                    ("quarantine", &qloc),
                ])
            })?;
        super::table_output(&s, &s.table, s.table_version)
    }

    /// The landing folder when it is local: new files there are new input (an object-store
    /// prefix is polled by `--interval`).
    fn watch_paths(&self, params: &IngestParams) -> Vec<PathBuf> {
        match Folder::open(&params.source) {
            Ok(Folder::Local(dir)) => vec![dir],
            _ => Vec::new(),
        }
    }

    /// Valid while the table is at the version the output names and no landing file is pending.
    async fn output_still_valid(&self, params: &IngestParams, output: &TaskOutput) -> bool {
        if !super::output_table_still_valid(&params.table, output).await {
            return false;
        }
        matches!(pending_files(params).await, Ok(0))
    }
}

impl crate::expect::WritesTable for IngestTask {
    fn tables(params: &IngestParams) -> (String, String) {
        (params.table.clone(), params.quarantine_location())
    }
}
