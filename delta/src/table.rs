//! Shared Delta table plumbing: locations, open/create, exactly-once commits, reading files.
//!
//! Table locations are strings: a local path (relative to the working directory) or a URL
//! (`file:///...`, `s3://bucket/prefix`, `az://`, `abfss://`, `gs://`), handed to delta-rs as a
//! URL with the storage options of [`crate::storage`].
//!
//! Every writing task follows the same exactly-once pattern: it reads its application
//! transaction version from the target table (`txn` action, keyed by an app id), plans the
//! work after that point, writes Parquet files (not yet visible), then, in the same code path,
//! reloads the table, checks that the recorded version has not moved, and commits the files
//! together with the new application transaction in one Delta commit. Commits never retry
//! on top of a newer table version (`max_retries = 0`): a concurrent commit turns into a
//! retryable [`StorageError::Conflict`], and the next attempt re-plans from the log.

use std::sync::Arc;

use deltalake::arrow::datatypes::{Schema as ArrowSchema, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, StructField, StructType, Transaction};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::parquet::arrow::ParquetRecordBatchStreamBuilder;
use deltalake::parquet::arrow::ProjectionMask;
#[allow(deprecated)]
use deltalake::parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStream};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::RecordBatchWriter;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, ObjectStore, Path};
use futures::TryStreamExt;
use serde_json::Value;
use url::Url;

use crate::error::{Result, StorageError};
use crate::storage;

/// Rows per Arrow batch when reading and writing (bounds memory).
pub const BATCH_ROWS: usize = 8192;
/// Target size of a written Parquet file before the writer rolls to a new one.
pub const TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;
/// Key of this crate's entry in a Delta commit's `commitInfo`.
pub const COMMIT_INFO_KEY: &str = "tweetflow";

/// Turns a table location (local path or URL) into a URL; local paths are made absolute
/// (see [`storage::location_url`]).
pub fn table_url(location: &str) -> Result<Url> {
    storage::location_url(location)
}

/// A table builder for `location` with its storage options (see [`storage::options_for`]).
fn builder_for(location: &str) -> Result<DeltaTableBuilder> {
    let url = table_url(location)?;
    storage::check_credentials(location, &url)?;
    let options = storage::options_for(&url);
    let builder = DeltaTableBuilder::from_url(url).map_err(|e| StorageError::delta(location, e))?;
    Ok(if options.is_empty() {
        builder
    } else {
        builder.with_storage_options(options)
    })
}

/// The local directory of a location, when it is a local path or `file://` URL.
pub fn local_dir(location: &str) -> Option<std::path::PathBuf> {
    let url = table_url(location).ok()?;
    if url.scheme() == "file" {
        url.to_file_path().ok()
    } else {
        None
    }
}

/// Opens the table at `location`; `None` when there is no Delta table there.
pub async fn open_table(location: &str) -> Result<Option<DeltaTable>> {
    if let Some(dir) = local_dir(location)
        && !dir.join("_delta_log").is_dir()
    {
        return Ok(None);
    }
    let builder = builder_for(location)?;
    if local_dir(location).is_none() && !has_log(location).await? {
        return Ok(None);
    }
    match builder.load().await {
        Ok(table) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(storage::classify(location, e)),
    }
}

/// Whether an object-store location holds any `_delta_log/` object (one listing request).
/// Checked before loading, since loading a location without a log logs a kernel error.
async fn has_log(location: &str) -> Result<bool> {
    let table = builder_for(location)?
        .build()
        .map_err(|e| storage::classify(location, e))?;
    let store = table.object_store();
    let mut listing = store.list(Some(&Path::from("_delta_log")));
    match listing.try_next().await {
        Ok(first) => Ok(first.is_some()),
        Err(e) => Err(storage::classify_store(location, e)),
    }
}

/// Opens the table at `location`, creating it with `schema` and `config` when missing.
pub async fn open_or_create(
    location: &str,
    schema: &StructType,
    config: &[(&str, &str)],
) -> Result<DeltaTable> {
    if let Some(table) = open_table(location).await? {
        return Ok(table);
    }
    storage::check_safe_commits(location)?;
    if let Some(dir) = local_dir(location) {
        std::fs::create_dir_all(&dir)
            .map_err(|e| StorageError::io(format!("creating `{}`", dir.display()), e))?;
    }
    // Built without loading: there is no log yet (loading would log a kernel error).
    let table = builder_for(location)?
        .build()
        .map_err(|e| storage::classify(location, e))?;
    let created = table
        .create()
        .with_columns(schema.fields().cloned())
        .with_configuration(
            config
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string()))),
        )
        // A creation that loses the race for version 0 must not be rebased as a second
        // creation commit on top of the winner's.
        .with_commit_properties(CommitProperties::default().with_max_retries(0))
        .await;
    match created {
        Ok(table) => Ok(table),
        // Someone else created it in the meantime: use theirs.
        Err(e) => match open_table(location).await? {
            Some(table) => Ok(table),
            None => Err(storage::classify(location, e)),
        },
    }
}

/// Whether the table at `location` is at version `expected` (-1: there is no table). Any
/// error reading it counts as "no".
pub async fn is_at_version(location: &str, expected: i64) -> bool {
    match open_table(location).await {
        Ok(Some(t)) => version(&t) == expected,
        Ok(None) => expected < 0,
        Err(_) => false,
    }
}

/// The latest version of the table at `location`; `None` when there is no table or it
/// cannot be read.
pub async fn latest_version(location: &str) -> Option<i64> {
    match open_table(location).await {
        Ok(Some(t)) => Some(version(&t)),
        _ => None,
    }
}

/// Reloads `table` to its latest version.
pub async fn refresh(table: &mut DeltaTable, location: &str) -> Result<()> {
    table
        .update_state()
        .await
        .map_err(|e| StorageError::delta(location, e))
}

/// The version of `table` (-1 when it has no commit yet).
pub fn version(table: &DeltaTable) -> i64 {
    table.version().map_or(-1, |v| v as i64)
}

/// The application transaction version recorded for `app_id` in `table`.
pub async fn app_version(table: &DeltaTable, location: &str, app_id: &str) -> Result<Option<i64>> {
    let snapshot = table
        .snapshot()
        .map_err(|e| StorageError::delta(location, e))?;
    snapshot
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(|e| StorageError::delta(location, e))
}

/// What a commit of this crate records besides its actions.
pub struct CommitRequest {
    /// Data and metadata actions.
    pub actions: Vec<Action>,
    /// The operation shown in the table history.
    pub operation: DeltaOperation,
    /// The application transaction to record, if any.
    pub txn: Option<Transaction>,
    /// Stored under `commitInfo.tweetflow`.
    pub info: Value,
}

/// Commits `request` on top of the loaded version of `table`, refusing to rebase on a newer
/// version (a concurrent writer makes this a retryable conflict). Returns the new version.
///
/// When the running attempt has expectations on this table (see [`crate::expect`]), the
/// commit records their counts and quarantine files, and the quarantine files are committed
/// to the quarantine table right after it.
pub async fn commit(table: &mut DeltaTable, location: &str, request: CommitRequest) -> Result<i64> {
    let mut info = request.info;
    let expect = crate::expect::pending_for(location);
    if let Some((recorded, _)) = &expect
        && let Some(map) = info.as_object_mut()
    {
        map.insert("expectations".into(), recorded.clone());
    }
    let result = commit_plain(
        table,
        location,
        CommitRequest {
            actions: request.actions,
            operation: request.operation,
            txn: request.txn,
            info,
        },
    )
    .await;
    match result {
        Ok(v) => {
            if let Some((_, outbox)) = expect {
                crate::expect::committed(location)?;
                if let Some((quarantine, adds)) = outbox {
                    crate::expect::commit_outbox(table, &quarantine, v, adds).await?;
                }
            }
            Ok(v)
        }
        Err(e) => Err(e),
    }
}

/// [`commit`] without the expectations' bookkeeping (for the quarantine commits it makes).
pub(crate) async fn commit_plain(
    table: &mut DeltaTable,
    location: &str,
    request: CommitRequest,
) -> Result<i64> {
    storage::check_safe_commits(location)?;
    let mut props = CommitProperties::default()
        .with_max_retries(0)
        .with_metadata([(COMMIT_INFO_KEY.to_string(), request.info)]);
    if let Some(txn) = request.txn {
        props = props.with_application_transaction(txn);
    }
    let snapshot = table
        .snapshot()
        .map_err(|e| StorageError::delta(location, e))?;
    let result = CommitBuilder::from(props)
        .with_actions(request.actions)
        .build(Some(snapshot), table.log_store(), request.operation)
        .await;
    match result {
        Ok(finalized) => {
            let v = finalized.version() as i64;
            refresh(table, location).await?;
            Ok(v)
        }
        Err(DeltaTableError::VersionAlreadyExists(v)) => Err(StorageError::Conflict {
            table: location.to_string(),
            message: format!("version {v} already exists"),
        }),
        Err(DeltaTableError::Transaction { source }) => Err(StorageError::Conflict {
            table: location.to_string(),
            message: source.to_string(),
        }),
        Err(e) => Err(StorageError::delta(location, e)),
    }
}

/// The Arrow schema of the table's current Delta schema.
pub fn arrow_schema(table: &DeltaTable, location: &str) -> Result<SchemaRef> {
    let snapshot = table
        .snapshot()
        .map_err(|e| StorageError::delta(location, e))?;
    let schema: ArrowSchema = snapshot
        .schema()
        .as_ref()
        .try_into_arrow()
        .map_err(|e| StorageError::format("converting schema", e))?;
    Ok(Arc::new(schema))
}

/// The Delta schema of a table.
pub fn delta_schema(table: &DeltaTable, location: &str) -> Result<StructType> {
    let snapshot = table
        .snapshot()
        .map_err(|e| StorageError::delta(location, e))?;
    Ok(snapshot.schema().as_ref().clone())
}

/// Builds a Delta schema from `(name, type)` pairs, every column nullable.
pub fn schema_of(fields: &[(&str, deltalake::kernel::DataType)]) -> Result<StructType> {
    StructType::try_new(
        fields
            .iter()
            .map(|(n, t)| StructField::new(*n, t.clone(), true)),
    )
    .map_err(|e| StorageError::format("building a table schema", DeltaTableError::from(e)))
}

/// Writer properties: Snappy, bounded row groups.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(64 * 1024))
        .build()
}

/// A streaming Parquet writer for `table` with the given Arrow schema.
pub fn writer_for(
    table: &DeltaTable,
    location: &str,
    schema: SchemaRef,
) -> Result<RecordBatchWriter> {
    let options = storage::options_for(table.table_url());
    let options = (!options.is_empty()).then_some(options);
    let writer = RecordBatchWriter::try_new(table.table_url().as_str(), schema, None, options)
        .map_err(|e| StorageError::delta(location, e))?
        .with_writer_properties(writer_properties())
        .with_target_file_size(TARGET_FILE_SIZE);
    Ok(writer)
}

/// Active data files of the loaded version: `(object store path, size, record count)`.
pub fn active_files(table: &DeltaTable, location: &str) -> Result<Vec<(Path, i64, Option<usize>)>> {
    let snapshot = table
        .snapshot()
        .map_err(|e| StorageError::delta(location, e))?;
    Ok(snapshot
        .log_data()
        .iter()
        .map(|f| (f.object_store_path(), f.size(), f.num_records()))
        .collect())
}

/// `remove` actions for every active file of the loaded version.
pub fn remove_all(table: &DeltaTable, location: &str, data_change: bool) -> Result<Vec<Action>> {
    let snapshot = table
        .snapshot()
        .map_err(|e| StorageError::delta(location, e))?;
    Ok(snapshot
        .log_data()
        .iter()
        .map(|f| Action::Remove(f.remove_action(data_change)))
        .collect())
}

/// The actions of commit `version`.
pub async fn commit_actions(
    table: &DeltaTable,
    location: &str,
    version: i64,
) -> Result<Vec<Action>> {
    let bytes = table
        .log_store()
        .read_commit_entry(version as u64)
        .await
        .map_err(|e| StorageError::delta(location, e))?
        .ok_or_else(|| StorageError::MissingCommit {
            table: location.to_string(),
            version,
        })?;
    deltalake::logstore::get_actions(version as u64, &bytes)
        .map_err(|e| StorageError::delta(location, e))
}

/// The object store path of an `add` action's file.
pub fn add_path(add: &Add) -> Result<Path> {
    Ok(Path::from(add.path.as_str()))
}

/// Streams the record batches of one data file of `table`, reading only `columns` (all when
/// empty) in batches of [`BATCH_ROWS`].
#[allow(deprecated)]
pub async fn read_file(
    table: &DeltaTable,
    path: &Path,
    columns: &[&str],
) -> Result<ParquetRecordBatchStream<ParquetObjectReader>> {
    let store: Arc<dyn ObjectStore> = table.object_store();
    let meta = store
        .head(path)
        .await
        .map_err(|e| StorageError::delta(path.to_string(), e.into()))?;
    let reader = ParquetObjectReader::new(store, path.clone()).with_file_size(meta.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| StorageError::format(format!("reading `{path}`"), e))?;
    let builder = if columns.is_empty() {
        builder
    } else {
        let schema = builder.parquet_schema();
        let indices: Vec<usize> = (0..schema.num_columns())
            .filter(|i| columns.contains(&schema.column(*i).name()))
            .collect();
        let mask = ProjectionMask::leaves(schema, indices);
        builder.with_projection(mask)
    };
    builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| StorageError::format(format!("reading `{path}`"), e))
}

/// Reads every batch of a file into memory (small files only: optimize bins, tests).
pub async fn read_file_all(table: &DeltaTable, path: &Path) -> Result<Vec<RecordBatch>> {
    let stream = read_file(table, path, &[]).await?;
    stream
        .try_collect()
        .await
        .map_err(|e| StorageError::format(format!("reading `{path}`"), e))
}

/// The `commitInfo.tweetflow` entries of the table's history, oldest first, with their version.
pub async fn history_infos(table: &DeltaTable, location: &str) -> Result<Vec<(i64, Value)>> {
    let mut out = Vec::new();
    let latest = version(table);
    for v in 0..=latest {
        let actions = match commit_actions(table, location, v).await {
            Ok(a) => a,
            // Expired or checkpointed-away commits hold nothing we can use.
            Err(StorageError::MissingCommit { .. }) => continue,
            Err(e) => return Err(e),
        };
        for action in actions {
            if let Action::CommitInfo(info) = action
                && let Some(value) = info.info.get(COMMIT_INFO_KEY)
            {
                out.push((v, value.clone()));
            }
        }
    }
    Ok(out)
}

/// Common table properties for the tables this crate writes: keep the log (the ingest task
/// reads its commit history to know which files it took).
pub const KEEP_LOG: (&str, &str) = ("delta.enableExpiredLogCleanup", "false");

/// Rows recorded in a table's active files (from the file statistics).
pub fn row_count(table: &DeltaTable, location: &str) -> Result<Option<u64>> {
    let mut total = 0u64;
    for (_, _, n) in active_files(table, location)? {
        match n {
            Some(n) => total += n as u64,
            None => return Ok(None),
        }
    }
    Ok(Some(total))
}
