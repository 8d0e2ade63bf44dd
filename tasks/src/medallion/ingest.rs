//! `ingest`: landing JSON-lines files into the bronze Delta table, exactly once.
//!
//! Each landing file is a JSON-lines file of tweets `{"date", "user", "text", "sentiment"}`
//! (strings). The task lists the landing folder (regular files, sorted by name; names starting
//! with `.` or ending in `.tmp` are skipped), takes the files no earlier commit took, at most
//! `max_files_per_batch` per commit, and streams them in bounded Arrow batches into Parquet.
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
//! **Schema enforcement.** A line that is not UTF-8, not JSON, not an object, lacks a required
//! field (or has it `null`), has a non-string required field, or a `sentiment` other than
//! `positive`/`negative`/`neutral` (or, with `add_columns`, an unknown field whose name clashes
//! with a bronze column) goes to the quarantine table with its raw text (lossy),
//! raw bytes, file, line number and reason. Empty lines are skipped. Unknown fields follow
//! `schema_evolution`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use deltalake::DeltaTable;
use deltalake::arrow::array::{
    ArrayRef, BinaryBuilder, Int64Builder, StringBuilder, TimestampMicrosecondArray, new_null_array,
};
use deltalake::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::{Action, DataType, MetadataExt, StructType, Transaction};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use schemars::JsonSchema;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};

use super::error::{MedallionError, Result};
use tweetflow_delta::StorageError;
use tweetflow_delta::WriteControl;
use tweetflow_delta::commit::{Replans, append_op, commit_planned};
use tweetflow_delta::table::{self, BATCH_ROWS, CommitRequest};

/// Application id of ingest commits (bronze and its quarantine table).
pub const APP_ID: &str = "tweetflow-ingest";
/// The four landed fields, all required strings.
pub const REQUIRED: [&str; 4] = ["date", "user", "text", "sentiment"];
/// Bronze columns added by ingest.
pub const META_COLUMNS: [&str; 4] = ["source_file", "line", "processing_time", RESCUED];
/// The rescued-data column (`schema_evolution: rescue`).
pub const RESCUED: &str = "_rescued_data";
/// Accepted sentiment labels.
pub const SENTIMENTS: [&str; 3] = ["negative", "neutral", "positive"];

/// What to do with fields a landed object has besides the four required ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaEvolution {
    /// Keep them as a JSON object text in the `_rescued_data` column.
    #[default]
    Rescue,
    /// Add them as new string columns (schema merge; non-string values as JSON text).
    AddColumns,
    /// Fail the task (non-retryable), naming the file, line and field.
    Fail,
    /// Drop them.
    Ignore,
}

fn default_max_files() -> usize {
    1000
}

/// Params of `ingest`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestParams {
    /// Landing folder of JSON-lines files (local path). Missing folder = error; empty = no-op.
    pub source: String,
    /// Bronze Delta table location (path or URL).
    pub table: String,
    /// Quarantine Delta table location; default: the table location + `_quarantine`.
    #[serde(default)]
    pub quarantine: Option<String>,
    /// At most this many landing files per Delta commit (default 1000).
    #[serde(default = "default_max_files")]
    #[schemars(range(min = 1))]
    pub max_files_per_batch: usize,
    /// Unknown fields: `rescue` (default), `add_columns`, `fail` or `ignore`.
    #[serde(default)]
    pub schema_evolution: SchemaEvolution,
}

impl IngestParams {
    /// Params with defaults for `source` and `table`.
    pub fn new(source: impl Into<String>, table: impl Into<String>) -> Self {
        IngestParams {
            source: source.into(),
            table: table.into(),
            quarantine: None,
            max_files_per_batch: default_max_files(),
            schema_evolution: SchemaEvolution::default(),
        }
    }

    /// The quarantine table location.
    pub fn quarantine_location(&self) -> String {
        self.quarantine
            .clone()
            .unwrap_or_else(|| default_quarantine(&self.table))
    }
}

/// `TABLE` + `_quarantine` (keeping a trailing slash out of the way).
pub fn default_quarantine(table: &str) -> String {
    format!("{}_quarantine", table.trim_end_matches('/'))
}

/// What an ingest run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IngestSummary {
    /// Rows committed to bronze by this run.
    pub rows: u64,
    /// Landing files committed by this run.
    pub files: u64,
    /// Lines quarantined by this run.
    pub quarantined: u64,
    /// Bronze commits made by this run.
    pub batches: u64,
    /// Bronze table version after the run (-1: no table, nothing ever landed).
    pub table_version: i64,
    /// Quarantine table version (-1: none).
    pub quarantine_version: i64,
}

/// The bronze schema before any evolution.
pub fn bronze_schema(mode: SchemaEvolution) -> tweetflow_delta::Result<StructType> {
    let mut fields = vec![
        ("date", DataType::STRING),
        ("user", DataType::STRING),
        ("text", DataType::STRING),
        ("sentiment", DataType::STRING),
        ("source_file", DataType::STRING),
        ("line", DataType::LONG),
        ("processing_time", DataType::TIMESTAMP),
    ];
    if mode == SchemaEvolution::Rescue {
        fields.push((RESCUED, DataType::STRING));
    }
    table::schema_of(&fields)
}

/// The ingest quarantine schema.
pub fn quarantine_schema() -> tweetflow_delta::Result<StructType> {
    table::schema_of(&[
        ("raw_line", DataType::STRING),
        ("raw_bytes", DataType::BINARY),
        ("source_file", DataType::STRING),
        ("line", DataType::LONG),
        ("reason", DataType::STRING),
        ("processing_time", DataType::TIMESTAMP),
    ])
}

/// The landing files of `source`, sorted by name.
pub fn list_landing(source: &str) -> Result<Vec<(String, PathBuf)>> {
    let dir = FsPath::new(source);
    if !dir.is_dir() {
        return Err(MedallionError::MissingInput {
            what: "landing folder",
            location: source.to_string(),
        });
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| MedallionError::io(format!("listing `{source}`"), e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| MedallionError::io(format!("listing `{source}`"), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".tmp") {
            continue;
        }
        let ft = entry
            .file_type()
            .map_err(|e| MedallionError::io(format!("listing `{source}`"), e))?;
        if ft.is_file() {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Whether an unknown field would clash with a bronze column (Delta names are case-insensitive).
fn collides(key: &str) -> bool {
    REQUIRED
        .iter()
        .chain(META_COLUMNS.iter())
        .any(|c| c.eq_ignore_ascii_case(key))
}

/// One landed JSON object, borrowed from its line: `(key, raw value)` in order.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(4);
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    out.push((k, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "string",
        Some(b'n') => "null",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't') | Some(b'f') => "boolean",
        _ => "number",
    }
}

fn raw_string(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Key>(raw.get()).ok().map(|k| k.0)
}

/// How one line was judged.
enum Parsed<'a> {
    Row {
        values: [Cow<'a, str>; 4],
        extras: Vec<(Cow<'a, str>, &'a RawValue)>,
    },
    Bad(String),
    Skip,
}

fn parse_line(line: &[u8]) -> Parsed<'_> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Parsed::Bad("not valid UTF-8".into());
    };
    if text.trim().is_empty() {
        return Parsed::Skip;
    }
    let fields: Fields = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Parsed::Bad(format!("not a JSON object: {e}"));
        }
        Err(e) => return Parsed::Bad(format!("not valid JSON: {e}")),
    };
    let mut values: [Cow<str>; 4] = Default::default();
    for (i, name) in REQUIRED.iter().enumerate() {
        match fields.get(name) {
            None => return Parsed::Bad(format!("missing required field `{name}`")),
            Some(raw) => match json_kind(raw) {
                "string" => match raw_string(raw) {
                    Some(s) => values[i] = s,
                    None => return Parsed::Bad(format!("field `{name}`: bad string")),
                },
                "null" => return Parsed::Bad(format!("missing required field `{name}` (null)")),
                kind => {
                    return Parsed::Bad(format!(
                        "field `{name}` has the wrong type: expected string, found {kind}"
                    ));
                }
            },
        }
    }
    if !SENTIMENTS.contains(&values[3].as_ref()) {
        return Parsed::Bad(format!(
            "field `sentiment` has the invalid value `{}` (expected negative, neutral or positive)",
            values[3]
        ));
    }
    let mut extras: Vec<(Cow<str>, &RawValue)> = Vec::new();
    for (k, v) in fields.0 {
        if REQUIRED.contains(&k.as_ref()) {
            continue;
        }
        if let Some(existing) = extras.iter_mut().find(|(ek, _)| *ek == k) {
            existing.1 = v;
        } else {
            extras.push((k, v));
        }
    }
    Parsed::Row { values, extras }
}

/// Accumulates bronze rows into bounded Arrow batches.
struct BronzeBatch {
    date: StringBuilder,
    user: StringBuilder,
    text: StringBuilder,
    sentiment: StringBuilder,
    source_file: StringBuilder,
    line: Int64Builder,
    rescued: StringBuilder,
    extras: Vec<(String, StringBuilder)>,
    rows: usize,
}

impl BronzeBatch {
    fn new() -> Self {
        BronzeBatch {
            date: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 32),
            user: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16),
            text: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 100),
            sentiment: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8),
            source_file: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 24),
            line: Int64Builder::with_capacity(BATCH_ROWS),
            rescued: StringBuilder::new(),
            extras: Vec::new(),
            rows: 0,
        }
    }
}

struct QuarantineBatch {
    raw_line: StringBuilder,
    raw_bytes: BinaryBuilder,
    source_file: StringBuilder,
    line: Int64Builder,
    reason: StringBuilder,
    rows: usize,
}

impl QuarantineBatch {
    fn new() -> Self {
        QuarantineBatch {
            raw_line: StringBuilder::new(),
            raw_bytes: BinaryBuilder::new(),
            source_file: StringBuilder::new(),
            line: Int64Builder::new(),
            reason: StringBuilder::new(),
            rows: 0,
        }
    }

    fn push(&mut self, raw: &[u8], file: &str, line: i64, reason: &str) {
        self.raw_line.append_value(String::from_utf8_lossy(raw));
        self.raw_bytes.append_value(raw);
        self.source_file.append_value(file);
        self.line.append_value(line);
        self.reason.append_value(reason);
        self.rows += 1;
    }

    fn finish(&mut self, schema: &SchemaRef, now_micros: i64) -> Result<RecordBatch> {
        let rows = self.rows;
        let mut by_name: HashMap<&str, ArrayRef> = HashMap::new();
        by_name.insert("raw_line", Arc::new(self.raw_line.finish()));
        by_name.insert("raw_bytes", Arc::new(self.raw_bytes.finish()));
        by_name.insert("source_file", Arc::new(self.source_file.finish()));
        by_name.insert("line", Arc::new(self.line.finish()));
        by_name.insert("reason", Arc::new(self.reason.finish()));
        by_name.insert("processing_time", timestamps(now_micros, rows));
        self.rows = 0;
        assemble(schema, by_name, rows)
    }
}

fn timestamps(micros: i64, rows: usize) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![micros; rows]).with_timezone("UTC"))
}

/// Builds a batch with `schema`'s columns in order, null-filling the ones not given.
pub fn assemble(
    schema: &SchemaRef,
    mut by_name: HashMap<&str, ArrayRef>,
    rows: usize,
) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            by_name
                .remove(f.name().as_str())
                .unwrap_or_else(|| new_null_array(f.data_type(), rows))
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| MedallionError::format("building a batch", e))
}

/// The state of one batch being written.
struct BatchWriter<'a> {
    params: &'a IngestParams,
    bronze_loc: String,
    schema: SchemaRef,
    evolved: bool,
    writer: Option<RecordBatchWriter>,
    bronze: BronzeBatch,
    quarantine: QuarantineBatch,
    q_writer: Option<(DeltaTable, RecordBatchWriter)>,
    now_micros: i64,
    rows: u64,
    quarantined: u64,
    write_bronze: bool,
}

impl<'a> BatchWriter<'a> {
    /// A writer for one batch into bronze at `bronze_loc` with `schema`; with `write_bronze`
    /// false only the quarantine rows are kept (rebuilding a batch's missing quarantine).
    fn new(
        params: &'a IngestParams,
        bronze_loc: String,
        schema: SchemaRef,
        write_bronze: bool,
    ) -> Self {
        BatchWriter {
            params,
            bronze_loc,
            schema,
            evolved: false,
            writer: None,
            bronze: BronzeBatch::new(),
            quarantine: QuarantineBatch::new(),
            q_writer: None,
            now_micros: Utc::now().timestamp_micros(),
            rows: 0,
            quarantined: 0,
            write_bronze,
        }
    }

    async fn flush_bronze(&mut self, table: &DeltaTable) -> Result<()> {
        if self.bronze.rows == 0 {
            return Ok(());
        }
        let rows = self.bronze.rows;
        let b = &mut self.bronze;
        let mut by_name: HashMap<&str, ArrayRef> = HashMap::new();
        by_name.insert("date", Arc::new(b.date.finish()));
        by_name.insert("user", Arc::new(b.user.finish()));
        by_name.insert("text", Arc::new(b.text.finish()));
        by_name.insert("sentiment", Arc::new(b.sentiment.finish()));
        by_name.insert("source_file", Arc::new(b.source_file.finish()));
        by_name.insert("line", Arc::new(b.line.finish()));
        by_name.insert("processing_time", timestamps(self.now_micros, rows));
        let rescued = b.rescued.finish();
        if self.params.schema_evolution == SchemaEvolution::Rescue {
            by_name.insert(RESCUED, Arc::new(rescued));
        }
        let mut extras: Vec<(String, ArrayRef)> = Vec::new();
        for (name, builder) in b.extras.iter_mut() {
            extras.push((name.clone(), Arc::new(builder.finish())));
        }
        b.extras.clear();
        // Columns we produce that the table lacks evolve its schema.
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut grew = false;
        let mut produced: Vec<&str> = by_name.keys().copied().collect();
        produced.sort();
        for name in produced {
            if self.schema.field_with_name(name).is_err() {
                let dt = by_name
                    .get(name)
                    .map(|a| a.data_type().clone())
                    .unwrap_or(ArrowType::Utf8);
                fields.push(Field::new(name, dt, true));
                grew = true;
            }
        }
        for (name, _) in &extras {
            if self.schema.field_with_name(name).is_err()
                && !fields.iter().any(|f| f.name() == name)
            {
                fields.push(Field::new(name, ArrowType::Utf8, true));
                grew = true;
            }
        }
        if grew {
            self.schema = Arc::new(Schema::new(fields));
            self.evolved = true;
        }
        for (name, array) in &extras {
            by_name.insert(name.as_str(), array.clone());
        }
        let batch = assemble(&self.schema, by_name, rows)?;
        b.rows = 0;
        if self.writer.is_none() {
            self.writer = Some(table::writer_for(
                table,
                &self.bronze_loc,
                self.schema.clone(),
            )?);
        }
        let mode = if self.evolved {
            WriteMode::MergeSchema
        } else {
            WriteMode::Default
        };
        if let Some(writer) = self.writer.as_mut() {
            writer
                .write_with_mode(batch, mode)
                .await
                .map_err(|e| MedallionError::delta(&self.bronze_loc, e))?;
        }
        Ok(())
    }

    async fn flush_quarantine(&mut self) -> Result<()> {
        if self.quarantine.rows == 0 {
            return Ok(());
        }
        let loc = self.params.quarantine_location();
        if self.q_writer.is_none() {
            let qt = table::open_or_create(&loc, &quarantine_schema()?, &[table::KEEP_LOG]).await?;
            let schema = table::arrow_schema(&qt, &loc)?;
            let w = table::writer_for(&qt, &loc, schema)?;
            self.q_writer = Some((qt, w));
        }
        if let Some((_, w)) = self.q_writer.as_mut() {
            let schema = w.arrow_schema();
            let batch = self.quarantine.finish(&schema, self.now_micros)?;
            w.write(batch)
                .await
                .map_err(|e| MedallionError::delta(&loc, e))?;
        }
        Ok(())
    }

    /// Reads one landing file, routing each line to bronze or quarantine.
    async fn read_file(&mut self, table: &DeltaTable, name: &str, path: &FsPath) -> Result<()> {
        let file = std::fs::File::open(path)
            .map_err(|e| MedallionError::io(format!("opening `{}`", path.display()), e))?;
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
        let mut buf = Vec::with_capacity(1024);
        let mut line_no: i64 = 0;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| MedallionError::io(format!("reading `{}`", path.display()), e))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let mut line: &[u8] = &buf;
            if line.last() == Some(&b'\n') {
                line = &line[..line.len() - 1];
            }
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            match parse_line(line) {
                Parsed::Skip => {}
                Parsed::Bad(reason) => {
                    self.quarantine.push(line, name, line_no, &reason);
                    self.quarantined += 1;
                    if self.quarantine.rows >= BATCH_ROWS {
                        self.flush_quarantine().await?;
                    }
                }
                Parsed::Row { values, extras } => {
                    let collision = (self.params.schema_evolution == SchemaEvolution::AddColumns)
                        .then(|| extras.iter().find(|(k, _)| collides(k)))
                        .flatten();
                    if let Some((key, _)) = collision {
                        let reason = format!(
                            "field `{key}` cannot become a column: it collides with a bronze column"
                        );
                        self.quarantine.push(line, name, line_no, &reason);
                        self.quarantined += 1;
                        if self.quarantine.rows >= BATCH_ROWS {
                            self.flush_quarantine().await?;
                        }
                        continue;
                    }
                    if !self.write_bronze {
                        continue;
                    }
                    self.push_row(name, line_no, &values, &extras)?;
                    self.rows += 1;
                    if self.bronze.rows >= BATCH_ROWS {
                        self.flush_bronze(table).await?;
                    }
                }
            }
        }
        Ok(())
    }

    fn push_row(
        &mut self,
        name: &str,
        line_no: i64,
        values: &[Cow<str>; 4],
        extras: &[(Cow<str>, &RawValue)],
    ) -> Result<()> {
        let mode = self.params.schema_evolution;
        let b = &mut self.bronze;
        let mut extra_values: Vec<(&str, Cow<str>)> = Vec::new();
        let mut rescued: Option<String> = None;
        for (k, v) in extras {
            let key = k.as_ref();
            match mode {
                SchemaEvolution::Ignore => {}
                SchemaEvolution::Fail => {
                    return Err(MedallionError::Data(format!(
                        "landing file `{name}` line {line_no}: unknown field `{key}` (schema_evolution: fail)"
                    )));
                }
                SchemaEvolution::Rescue => {
                    let text = rescued.get_or_insert_with(|| String::from("{"));
                    if text.len() > 1 {
                        text.push(',');
                    }
                    text.push_str(&serde_json::to_string(key).unwrap_or_default());
                    text.push(':');
                    text.push_str(v.get());
                }
                SchemaEvolution::AddColumns => {
                    let value = match json_kind(v) {
                        "string" => raw_string(v).unwrap_or(Cow::Borrowed(v.get())),
                        "null" => continue,
                        _ => Cow::Borrowed(v.get()),
                    };
                    extra_values.push((key, value));
                }
            }
        }
        b.date.append_value(&values[0]);
        b.user.append_value(&values[1]);
        b.text.append_value(&values[2]);
        b.sentiment.append_value(&values[3]);
        b.source_file.append_value(name);
        b.line.append_value(line_no);
        match rescued {
            Some(mut text) => {
                text.push('}');
                b.rescued.append_value(text);
            }
            None => b.rescued.append_null(),
        }
        let rows_before = b.rows;
        for (key, _) in &extra_values {
            if !b.extras.iter().any(|(n, _)| n == key) {
                let mut builder = StringBuilder::new();
                for _ in 0..rows_before {
                    builder.append_null();
                }
                b.extras.push((key.to_string(), builder));
            }
        }
        for (col, builder) in b.extras.iter_mut() {
            match extra_values.iter().find(|(k, _)| k == col) {
                Some((_, v)) => builder.append_value(v),
                None => builder.append_null(),
            }
        }
        b.rows += 1;
        Ok(())
    }
}

/// What the bronze log says about earlier ingest batches.
struct Progress {
    batch: i64,
    files: BTreeSet<String>,
    /// batch number -> (files, quarantined lines)
    batches: BTreeMap<i64, (Vec<String>, u64)>,
}

async fn read_progress(table: &DeltaTable, location: &str) -> Result<Progress> {
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
    Ok(Progress {
        batch,
        files,
        batches,
    })
}

/// Which ingest batches the quarantine table already holds, read incrementally from its log
/// (`commitInfo.tweetflow.batches`). Batches of concurrent runs can reach the quarantine table
/// out of order, so this is a set, not a high-water mark.
#[derive(Debug)]
struct QuarantineLog {
    /// Last quarantine version read.
    seen: i64,
    /// Batches whose quarantine rows are committed.
    done: BTreeSet<i64>,
}

impl QuarantineLog {
    fn new() -> Self {
        QuarantineLog {
            seen: -1,
            done: BTreeSet::new(),
        }
    }

    /// Reads the quarantine commits after the last one seen.
    async fn update(&mut self, qt: &DeltaTable, loc: &str) -> Result<()> {
        let latest = table::version(qt);
        for v in (self.seen + 1)..=latest {
            let actions = match table::commit_actions(qt, loc, v).await {
                Ok(actions) => actions,
                // A commit file removed by log cleanup: nothing to learn from it.
                Err(StorageError::MissingCommit { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            for action in actions {
                let Action::CommitInfo(ci) = action else {
                    continue;
                };
                let Some(info) = ci.info.get(table::COMMIT_INFO_KEY) else {
                    continue;
                };
                if info.get("app").and_then(Value::as_str) != Some(APP_ID) {
                    continue;
                }
                let batches = info.get("batches").and_then(Value::as_array);
                self.done
                    .extend(batches.into_iter().flatten().filter_map(Value::as_i64));
            }
        }
        self.seen = self.seen.max(latest);
        Ok(())
    }
}

/// Commits the quarantine files of bronze batch `batch`, unless that batch's rows are already
/// there; the check and the commit use the same table version (a concurrent commit makes the
/// commit fail and the check run again).
async fn commit_quarantine(
    params: &IngestParams,
    q: Option<(DeltaTable, RecordBatchWriter)>,
    batch: i64,
    files: &[String],
    qlog: &mut QuarantineLog,
) -> Result<Option<i64>> {
    let Some((mut qt, mut w)) = q else {
        return Ok(None);
    };
    let loc = params.quarantine_location();
    let adds = w
        .flush()
        .await
        .map_err(|e| MedallionError::delta(&loc, e))?;
    let rows: u64 = adds
        .iter()
        .filter_map(|a| a.get_stats().ok().flatten().map(|s| s.num_records as u64))
        .sum();
    let actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    let mut replans = Replans::new("ingest quarantine");
    loop {
        table::refresh(&mut qt, &loc).await?;
        qlog.update(&qt, &loc).await?;
        if qlog.done.contains(&batch) {
            return Ok(Some(table::version(&qt)));
        }
        let request = CommitRequest {
            actions: actions.clone(),
            operation: append_op(),
            txn: None,
            info: json!({
                "app": APP_ID, "kind": "quarantine", "batches": [batch], "files": files, "rows": rows,
            }),
        };
        match table::commit(&mut qt, &loc, request).await {
            Ok(v) => {
                qlog.done.insert(batch);
                return Ok(Some(v));
            }
            Err(err) if replans.again(&err) => continue,
            Err(err) => return Err(err.into()),
        }
    }
}

/// Runs `ingest` to completion: every pending landing file, batch by batch.
///
/// When another writer commits to the table while a batch is being written, the batch is
/// dropped and planned again from the log (see [`Replans`]).
pub async fn ingest(params: &IngestParams, ctl: &WriteControl) -> Result<IngestSummary> {
    if params.max_files_per_batch == 0 {
        return Err(MedallionError::Param {
            param: "max_files_per_batch",
            message: "must be at least 1".into(),
        });
    }
    let mut summary = IngestSummary {
        table_version: -1,
        quarantine_version: -1,
        ..Default::default()
    };
    let mut replans = Replans::new("ingest");
    loop {
        match ingest_attempt(params, ctl, &mut summary).await {
            Err(err) if replans.again(&err) => continue,
            Err(err) => return Err(err),
            Ok(()) => return Ok(summary),
        }
    }
}

/// One pass of [`ingest`]; counts add up in `summary` across passes.
async fn ingest_attempt(
    params: &IngestParams,
    ctl: &WriteControl,
    summary: &mut IngestSummary,
) -> Result<()> {
    let loc = params.table.clone();
    let qloc = params.quarantine_location();
    // Fail early on a missing folder, before touching any table.
    list_landing(&params.source)?;
    let mut table = table::open_table(&loc).await?;

    // What earlier runs committed, read once from the log; kept up to date in memory after
    // each of this run's commits (the commit path re-checks the recorded batch number).
    let mut progress = match table.as_ref() {
        Some(t) => Some(read_progress(t, &loc).await?),
        None => None,
    };
    // Catch up quarantine rows of committed batches whose quarantine commit is missing.
    let mut qlog = QuarantineLog::new();
    if let (Some(t), Some(p)) = (table.as_ref(), progress.as_ref()) {
        catch_up_quarantine(params, t, p, &mut qlog, ctl).await?;
    }
    loop {
        ctl.check_cancel()?;
        let taken = progress.as_ref().map(|p| &p.files);
        let pending: Vec<(String, PathBuf)> = list_landing(&params.source)?
            .into_iter()
            .filter(|(name, _)| taken.is_none_or(|t| !t.contains(name)))
            .take(params.max_files_per_batch)
            .collect();
        if pending.is_empty() {
            break;
        }
        let batch_no = progress.as_ref().map_or(0, |p| p.batch) + 1;
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
        for (name, path) in &pending {
            ctl.check_cancel()?;
            w.read_file(&t, name, path).await?;
        }
        w.flush_bronze(&t).await?;
        w.flush_quarantine().await?;
        let adds = match w.writer.as_mut() {
            Some(writer) => writer
                .flush()
                .await
                .map_err(|e| MedallionError::delta(&loc, e))?,
            None => Vec::new(),
        };
        ctl.failpoint("ingest.after_write")?;

        let mut actions: Vec<Action> = Vec::new();
        if w.evolved {
            table::refresh(&mut t, &loc).await?;
            let new_schema: StructType = w
                .schema
                .as_ref()
                .try_into_kernel()
                .map_err(|e| MedallionError::format("evolving the schema", e))?;
            let snapshot = t.snapshot().map_err(|e| MedallionError::delta(&loc, e))?;
            let metadata = snapshot
                .metadata()
                .clone()
                .with_schema(&new_schema)
                .map_err(|e| MedallionError::format("evolving the schema", e))?;
            actions.push(Action::Metadata(metadata));
        }
        actions.extend(adds.into_iter().map(Action::Add));
        let files: Vec<String> = pending.iter().map(|(n, _)| n.clone()).collect();
        // Exactly-once check, in the commit path: the recorded batch must not have moved.
        let planned_after = (batch_no > 1).then_some(batch_no - 1);
        let version = commit_planned(
            &mut t,
            &loc,
            planned_after,
            CommitRequest {
                actions,
                operation: append_op(),
                txn: Some(Transaction::new(APP_ID, batch_no)),
                info: json!({
                    "app": APP_ID, "kind": "ingest", "batch": batch_no, "files": files,
                    "rows": w.rows, "quarantined": w.quarantined,
                }),
            },
        )
        .await?;
        ctl.failpoint("ingest.after_commit")?;
        let rows = w.rows;
        let quarantined = w.quarantined;
        let q = w.q_writer.take();
        if let Some(qv) = commit_quarantine(params, q, batch_no, &files, &mut qlog).await? {
            summary.quarantine_version = qv;
        }
        ctl.failpoint("ingest.after_quarantine_commit")?;
        summary.rows += rows;
        summary.quarantined += quarantined;
        summary.files += files.len() as u64;
        summary.batches += 1;
        summary.table_version = version;
        let p = progress.get_or_insert_with(|| Progress {
            batch: 0,
            files: BTreeSet::new(),
            batches: BTreeMap::new(),
        });
        p.batch = batch_no;
        p.files.extend(files.iter().cloned());
        p.batches.insert(batch_no, (files.clone(), quarantined));
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
    Ok(())
}

/// Rebuilds the quarantine rows of committed bronze batches whose quarantine commit is missing
/// (a crash between the two commits), one quarantine commit per batch.
async fn catch_up_quarantine(
    params: &IngestParams,
    bronze: &DeltaTable,
    progress: &Progress,
    qlog: &mut QuarantineLog,
    ctl: &WriteControl,
) -> Result<()> {
    let qloc = params.quarantine_location();
    if let Some(qt) = table::open_table(&qloc).await? {
        qlog.update(&qt, &qloc).await?;
    }
    let missing: Vec<(i64, Vec<String>)> = progress
        .batches
        .iter()
        .filter(|(b, (_, q))| *q > 0 && !qlog.done.contains(b))
        .map(|(b, (files, _))| (*b, files.clone()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let landing: HashMap<String, PathBuf> = list_landing(&params.source)?.into_iter().collect();
    for (b, files) in missing {
        let schema = table::arrow_schema(bronze, &params.table)?;
        let mut w = BatchWriter::new(params, params.table.clone(), schema, false);
        for name in &files {
            ctl.check_cancel()?;
            let path = landing.get(name).ok_or_else(|| {
                MedallionError::Data(format!(
                    "cannot rebuild the quarantine rows of batch {b}: landing file `{name}` is gone"
                ))
            })?;
            w.read_file(bronze, name, path).await?;
        }
        w.flush_quarantine().await?;
        let q = w.q_writer.take();
        commit_quarantine(params, q, b, &files, qlog).await?;
        tracing::info!(quarantine = %qloc, batch = b, "quarantine rows of a committed batch rebuilt");
    }
    Ok(())
}

/// How many landing files no bronze commit has taken yet.
pub async fn pending_files(params: &IngestParams) -> Result<usize> {
    let landing = list_landing(&params.source)?;
    let Some(t) = table::open_table(&params.table).await? else {
        return Ok(landing.len());
    };
    let progress = read_progress(&t, &params.table).await?;
    Ok(landing
        .iter()
        .filter(|(name, _)| !progress.files.contains(name))
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

    async fn run(
        &self,
        ctx: &TaskContext,
        params: IngestParams,
    ) -> std::result::Result<TaskOutput, TaskError> {
        let s = ingest(&params, &super::write_control(ctx)).await?;
        let url = table::table_url(&params.table).map_err(MedallionError::from)?;
        Ok(TaskOutput::new()
            .with("rows", s.rows)
            .with("files", s.files)
            .with("quarantined", s.quarantined)
            .with("batches", s.batches)
            .with("table", params.table.clone())
            .with("table_version", s.table_version)
            .with("quarantine", params.quarantine_location())
            .with("quarantine_version", s.quarantine_version)
            .with_fingerprint(format!("{url}@{}", s.table_version)))
    }

    /// The landing folder: new files there are new input.
    fn watch_paths(&self, params: &IngestParams) -> Vec<PathBuf> {
        vec![PathBuf::from(&params.source)]
    }

    /// Valid while the table is at the version the output names and no landing file is pending.
    async fn output_still_valid(&self, params: &IngestParams, output: &TaskOutput) -> bool {
        if !super::output_table_still_valid(&params.table, output).await {
            return false;
        }
        matches!(pending_files(params).await, Ok(0))
    }
}
