//! Ingest parameters, the summary of a run, and the bronze and quarantine schemas.

use deltalake::kernel::{DataType, StructType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use tweetflow_delta::table;

use crate::medallion::tables::default_quarantine;

pub use tweetflow_tweet::{META_COLUMNS, REQUIRED, RESCUED, SENTIMENTS};

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

pub(super) fn default_max_files() -> usize {
    1000
}

/// The default `settle_time`: files modified more recently than this are still being written.
pub const DEFAULT_SETTLE_TIME: &str = "5s";
/// The default `skip_names`: hidden and temporary names of common writers (`.name`, `_name`
/// as Spark and Hadoop skip them, `*.tmp`, `*.temp`, `*.partial`, `*.part`, `*.crdownload`,
/// Hadoop's `*._COPYING_`, editor backups `*~`).
pub const DEFAULT_SKIP_NAMES: [&str; 9] = [
    ".*",
    "_*",
    "*.tmp",
    "*.temp",
    "*.partial",
    "*.part",
    "*.crdownload",
    "*_COPYING_*",
    "*~",
];
/// The default `max_record_bytes` (1 MiB).
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1024 * 1024;

fn default_settle_time() -> String {
    DEFAULT_SETTLE_TIME.to_string()
}

fn default_skip_names() -> Vec<String> {
    DEFAULT_SKIP_NAMES.iter().map(|s| s.to_string()).collect()
}

fn default_max_record_bytes() -> u64 {
    DEFAULT_MAX_RECORD_BYTES
}

/// Params of `ingest`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestParams {
    /// Landing folder of JSON-lines files, plain or gzip-compressed (`.gz`): a local path or an
    /// object-store prefix. Missing folder = error; empty = no-op.
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
    /// Landing files modified more recently than this (a duration such as `5s`, `1m`; default
    /// `5s`) are still being written: they are left for a later run. `0s` takes every file at
    /// once (writers that write under a hidden or temporary name, then rename).
    #[serde(default = "default_settle_time")]
    pub settle_time: String,
    /// Landing file names never read: patterns where `*` matches any run of characters
    /// (default: `.*`, `_*`, `*.tmp`, `*.temp`, `*.partial`, `*.part`, `*.crdownload`,
    /// `*_COPYING_*`, `*~`). An empty list reads every name.
    #[serde(default = "default_skip_names")]
    pub skip_names: Vec<String>,
    /// Records (lines) longer than this many bytes go to the quarantine with the reason
    /// `max_record_bytes` (default 1 MiB, 1048576); only their first bytes are kept there.
    #[serde(default = "default_max_record_bytes")]
    #[schemars(range(min = 1))]
    pub max_record_bytes: u64,
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
            settle_time: default_settle_time(),
            skip_names: default_skip_names(),
            max_record_bytes: default_max_record_bytes(),
        }
    }

    /// The same params with `settle_time` set (e.g. `0s` for writers that rename into place).
    pub fn with_settle_time(mut self, settle_time: impl Into<String>) -> Self {
        self.settle_time = settle_time.into();
        self
    }

    /// The quarantine table location.
    pub fn quarantine_location(&self) -> String {
        self.quarantine
            .clone()
            .unwrap_or_else(|| default_quarantine(&self.table))
    }
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
    /// The bronze table.
    pub table: String,
    /// Bronze table version after the run (-1: no table, nothing ever landed).
    pub table_version: i64,
    /// The quarantine table.
    pub quarantine: String,
    /// Quarantine table version (-1: none).
    pub quarantine_version: i64,
    /// Landing files left for a later run: modified within `settle_time`.
    pub settling: u64,
    /// Landing files never read because their name matches `skip_names`.
    pub skipped_names: u64,
    /// Taken landing files found changed since, reported by this run (see `changed`).
    pub changed: u64,
    /// What the run left and why, in words, one item per reason (e.g. `4 files waiting:
    /// modified in the last 5s (settle_time)`, `2 skipped by name (skip_names)`, `1 changed
    /// after ingest`); empty when it left nothing. The output key
    /// [`tweetflow_engine::LEFT_OUTPUT`]: the console line, `runs show` and the run page show it.
    pub left: Vec<String>,
}

impl IngestSummary {
    /// The [`IngestSummary::left`] items of these counts (`settle_time`: the param as given).
    pub fn left_in_words(&self, settle_time: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.settling > 0 {
            let files = if self.settling == 1 { "file" } else { "files" };
            out.push(format!(
                "{} {files} waiting: modified in the last {settle_time} (settle_time)",
                self.settling
            ));
        }
        if self.skipped_names > 0 {
            out.push(format!(
                "{} skipped by name (skip_names)",
                self.skipped_names
            ));
        }
        if self.changed > 0 {
            out.push(format!("{} changed after ingest", self.changed));
        }
        out
    }
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
