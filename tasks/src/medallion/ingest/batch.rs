//! Bounded Arrow batches of bronze and quarantine rows.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, BinaryBuilder, Int64Builder, StringBuilder};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;

use crate::medallion::tables::{assemble, timestamps};
use crate::table_error::Result;
use tweetflow_delta::table::BATCH_ROWS;

/// Accumulates bronze rows into bounded Arrow batches.
pub(super) struct BronzeBatch {
    pub(super) date: StringBuilder,
    pub(super) user: StringBuilder,
    pub(super) text: StringBuilder,
    pub(super) sentiment: StringBuilder,
    pub(super) source_file: StringBuilder,
    pub(super) line: Int64Builder,
    pub(super) rescued: StringBuilder,
    pub(super) extras: Vec<(String, StringBuilder)>,
    pub(super) rows: usize,
}

impl BronzeBatch {
    pub(super) fn new() -> Self {
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

pub(super) struct QuarantineBatch {
    pub(super) raw_line: StringBuilder,
    pub(super) raw_bytes: BinaryBuilder,
    pub(super) source_file: StringBuilder,
    pub(super) line: Int64Builder,
    pub(super) reason: StringBuilder,
    pub(super) rows: usize,
}

impl QuarantineBatch {
    pub(super) fn new() -> Self {
        QuarantineBatch {
            raw_line: StringBuilder::new(),
            raw_bytes: BinaryBuilder::new(),
            source_file: StringBuilder::new(),
            line: Int64Builder::new(),
            reason: StringBuilder::new(),
            rows: 0,
        }
    }

    pub(super) fn push(&mut self, raw: &[u8], file: &str, line: i64, reason: &str) {
        self.raw_line.append_value(String::from_utf8_lossy(raw));
        self.raw_bytes.append_value(raw);
        self.source_file.append_value(file);
        self.line.append_value(line);
        self.reason.append_value(reason);
        self.rows += 1;
    }

    pub(super) fn finish(&mut self, schema: &SchemaRef, now_micros: i64) -> Result<RecordBatch> {
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
