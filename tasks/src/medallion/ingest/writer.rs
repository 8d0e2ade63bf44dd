//! [`BatchWriter`]: streams one batch of landing files into bronze and quarantine Parquet.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use deltalake::DeltaTable;
use deltalake::arrow::array::{ArrayRef, StringBuilder};
use deltalake::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use serde_json::value::RawValue;

use super::batch::{BronzeBatch, QuarantineBatch};
use super::lines::{BoundedLines, Line, decoded, is_corrupt_data, is_gzip};
use super::params::{IngestParams, RESCUED, SchemaEvolution, quarantine_schema};
use crate::medallion::tables::{assemble, timestamps};
use crate::table_error::{Result, TableTaskError};
use tweetflow_delta::expect::{self, TargetWriter};
use tweetflow_delta::folder::Folder;
use tweetflow_delta::table::{self, BATCH_ROWS};
use tweetflow_tweet::{Parsed, collides, json_kind, parse_line, raw_string};

/// The state of one batch being written.
pub(super) struct BatchWriter<'a> {
    pub(super) params: &'a IngestParams,
    pub(super) bronze_loc: String,
    pub(super) schema: SchemaRef,
    pub(super) evolved: bool,
    pub(super) writer: Option<TargetWriter>,
    pub(super) bronze: BronzeBatch,
    pub(super) quarantine: QuarantineBatch,
    pub(super) q_writer: Option<(DeltaTable, RecordBatchWriter)>,
    pub(super) now_micros: i64,
    pub(super) rows: u64,
    pub(super) quarantined: u64,
    pub(super) write_bronze: bool,
}

impl<'a> BatchWriter<'a> {
    /// A writer for one batch into bronze at `bronze_loc` with `schema`; with `write_bronze`
    /// false only the quarantine rows are kept (rebuilding a batch's missing quarantine).
    pub(super) fn new(
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

    pub(super) async fn flush_bronze(&mut self, table: &DeltaTable) -> Result<()> {
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
            self.writer = Some(
                Box::pin(expect::target_writer(
                    table,
                    &self.bronze_loc,
                    self.schema.clone(),
                    &self.params.quarantine_location(),
                ))
                .await?,
            );
        }
        let mode = if self.evolved {
            WriteMode::MergeSchema
        } else {
            WriteMode::Default
        };
        if let Some(writer) = self.writer.as_mut() {
            writer.write_with_mode(batch, mode).await?;
        }
        Ok(())
    }

    pub(super) async fn flush_quarantine(&mut self) -> Result<()> {
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
                .map_err(|e| TableTaskError::delta(&loc, e))?;
        }
        Ok(())
    }

    /// Reads one landing file, routing each line to bronze or quarantine (lines over
    /// `max_record_bytes` and the undecodable rest of a corrupt gzip file included).
    pub(super) async fn read_file(
        &mut self,
        table: &DeltaTable,
        name: &str,
        folder: &Folder,
    ) -> Result<()> {
        let reader = decoded(name, folder.reader(name).await?);
        let mut lines = BoundedLines::new(reader, self.params.max_record_bytes);
        let mut line_no: i64 = 0;
        loop {
            let line = match lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) if is_gzip(name) && is_corrupt_data(e.kind()) => {
                    let reason = format!("corrupt gzip: {e}; the rest of the file is not read");
                    self.quarantine_line(&[], name, line_no + 1, &reason)
                        .await?;
                    break;
                }
                Err(e) => {
                    return Err(TableTaskError::io(
                        format!("reading `{name}` in `{}`", folder.location()),
                        e,
                    ));
                }
            };
            line_no += 1;
            let line = match line {
                Line::Record(bytes) => bytes,
                Line::TooLong { prefix, len } => {
                    let reason = format!(
                        "max_record_bytes: the record has {len} bytes, more than {} (first {} bytes kept)",
                        self.params.max_record_bytes,
                        prefix.len()
                    );
                    self.quarantine_line(prefix, name, line_no, &reason).await?;
                    continue;
                }
            };
            match parse_line(line) {
                Parsed::Skip => {}
                Parsed::Bad(reason) => {
                    self.quarantine_line(line, name, line_no, &reason).await?;
                }
                Parsed::Row { values, extras } => {
                    let collision = (self.params.schema_evolution == SchemaEvolution::AddColumns)
                        .then(|| extras.iter().find(|(k, _)| collides(k)))
                        .flatten();
                    if let Some((key, _)) = collision {
                        let reason = format!(
                            "field `{key}` cannot become a column: it collides with a bronze column"
                        );
                        self.quarantine_line(line, name, line_no, &reason).await?;
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

    /// Adds one quarantine row, flushing the quarantine batch when it is full.
    async fn quarantine_line(
        &mut self,
        raw: &[u8],
        name: &str,
        line: i64,
        reason: &str,
    ) -> Result<()> {
        self.quarantine.push(raw, name, line, reason);
        self.quarantined += 1;
        if self.quarantine.rows >= BATCH_ROWS {
            self.flush_quarantine().await?;
        }
        Ok(())
    }

    pub(super) fn push_row(
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
                    return Err(TableTaskError::Data(format!(
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
