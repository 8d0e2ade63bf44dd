//! `clean`: bronze to silver, one row per (tweet, @mention), exactly once.
//!
//! The silver table records, as its application transaction (`tweetflow-clean`), the bronze
//! version it has consumed. A run reads the bronze commits after that version up to the
//! latest one, takes the files they added with `dataChange = true` (an `optimize`
//! rewrite is not new data), and streams them in bounded batches. Silver and its quarantine
//! table are committed with the same application version; a crash between the two commits is
//! repaired by the next run (the quarantine commit goes first and rows of bronze versions the
//! quarantine table already covers are not quarantined again).
//!
//! **Shards.** With `shards: N`, shard `i` cleans the bronze rows whose `tweet_id` hashes to
//! `i` (see [`crate::shards`], the same hash as `infer`'s): every shard reads the same new
//! bronze commits and keeps its part, and commits silver and its quarantine table with its own
//! application transaction, `tweetflow-clean/shard-<i>-of-<N>`. Silver records the shard
//! count and where each shard set started, so a new `N` applies from the next new bronze
//! data; it is refused while the previous set is uneven, in silver or in the quarantine table.
//!
//! Silver columns: `tweet_id` (see [`tweetflow_tweet::tweet_id`]: a hash of the landing file name
//! and line number), `timestamp` (UTC), `user`, `mention` (lowercased, without `@`; one row per
//! distinct mention of a tweet, in order of first appearance), `cleaned_text` (see
//! [`super::text`]) and `sentiment`. Tweets without mentions produce no row; they are counted
//! in the output (`tweets_without_mentions`). A tweet whose date does not parse (or whose
//! date, text or sentiment is null) goes to the quarantine table with the reason.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, Int64Builder, StringArray, StringBuilder,
    TimestampMicrosecondBuilder,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType as ArrowType, Int64Type, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{Action, DataType, StructType, Transaction};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tweetflow_engine::{ProgressReporter, Task, TaskContext, TaskError, TaskOutput};

use super::table_shape;
use super::tables::{assemble, default_quarantine};
use crate::shards::{self, Consumer};
use crate::table_error::{Result, TableTaskError};
use tweetflow_delta::WriteControl;
use tweetflow_delta::commit::{Replans, append_op};
use tweetflow_delta::expect::{self, TargetWriter};
use tweetflow_delta::incremental;
use tweetflow_delta::table::{self, BATCH_ROWS, CommitRequest};
use tweetflow_engine::task::Shard;
use tweetflow_tweet::{clean_text, parse_tweet_date, tweet_id};

/// Application id of clean commits (silver and its quarantine table).
pub const APP_ID: &str = "tweetflow-clean";
/// Where clean shards record their progress in silver (and in its quarantine table).
pub const SILVER: Consumer = Consumer {
    app: APP_ID,
    task: "clean",
    target: "silver",
    source: "bronze",
};
/// Bronze columns clean reads.
pub const BRONZE_COLUMNS: [&str; 6] = ["date", "user", "text", "sentiment", "source_file", "line"];

/// Params of `clean`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanParams {
    /// Bronze Delta table (written by `ingest`).
    pub input: String,
    /// Silver Delta table.
    pub table: String,
    /// Quarantine Delta table for tweets that cannot be cleaned; default: table + `_quarantine`.
    #[serde(default)]
    pub quarantine: Option<String>,
}

impl CleanParams {
    /// Params with the default quarantine location.
    pub fn new(input: impl Into<String>, table: impl Into<String>) -> Self {
        CleanParams {
            input: input.into(),
            table: table.into(),
            quarantine: None,
        }
    }

    /// The quarantine table location.
    pub fn quarantine_location(&self) -> String {
        self.quarantine
            .clone()
            .unwrap_or_else(|| default_quarantine(&self.table))
    }
}

/// What a clean run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CleanSummary {
    /// Silver rows written (one per tweet and distinct mention).
    pub rows: u64,
    /// Bronze tweets read.
    pub tweets: u64,
    /// Tweets with at least one mention.
    pub tweets_with_mentions: u64,
    /// Tweets without mentions (no silver row).
    pub tweets_without_mentions: u64,
    /// Tweets quarantined.
    pub quarantined: u64,
    /// Bronze version consumed so far.
    pub bronze_version: i64,
    /// The silver table.
    pub table: String,
    /// Silver table version after the run.
    pub table_version: i64,
    /// The quarantine table.
    pub quarantine: String,
}

/// The silver schema.
pub fn silver_schema() -> tweetflow_delta::Result<StructType> {
    table::schema_of(&[
        ("tweet_id", DataType::STRING),
        ("timestamp", DataType::TIMESTAMP),
        ("user", DataType::STRING),
        ("mention", DataType::STRING),
        ("cleaned_text", DataType::STRING),
        ("sentiment", DataType::STRING),
    ])
}

/// The bronze columns clean reads.
fn bronze_input_columns() -> tweetflow_delta::Result<StructType> {
    table::schema_of(&[
        ("date", DataType::STRING),
        ("user", DataType::STRING),
        ("text", DataType::STRING),
        ("sentiment", DataType::STRING),
        ("source_file", DataType::STRING),
        ("line", DataType::LONG),
    ])
}

/// The schema of clean's quarantine table.
pub fn quarantine_schema() -> tweetflow_delta::Result<StructType> {
    table::schema_of(&[
        ("tweet_id", DataType::STRING),
        ("source_file", DataType::STRING),
        ("line", DataType::LONG),
        ("date", DataType::STRING),
        ("user", DataType::STRING),
        ("text", DataType::STRING),
        ("sentiment", DataType::STRING),
        ("reason", DataType::STRING),
        ("bronze_version", DataType::LONG),
        ("processing_time", DataType::TIMESTAMP),
    ])
}

struct SilverRows {
    tweet_id: StringBuilder,
    timestamp: TimestampMicrosecondBuilder,
    user: StringBuilder,
    mention: StringBuilder,
    cleaned_text: StringBuilder,
    sentiment: StringBuilder,
    rows: usize,
}

impl SilverRows {
    fn new() -> Self {
        SilverRows {
            tweet_id: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16),
            timestamp: TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
            user: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16),
            mention: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 12),
            cleaned_text: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 100),
            sentiment: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8),
            rows: 0,
        }
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let rows = self.rows;
        let mut m: HashMap<&str, ArrayRef> = HashMap::new();
        m.insert("tweet_id", Arc::new(self.tweet_id.finish()));
        m.insert("timestamp", Arc::new(self.timestamp.finish()));
        m.insert("user", Arc::new(self.user.finish()));
        m.insert("mention", Arc::new(self.mention.finish()));
        m.insert("cleaned_text", Arc::new(self.cleaned_text.finish()));
        m.insert("sentiment", Arc::new(self.sentiment.finish()));
        self.rows = 0;
        assemble(schema, m, rows)
    }
}

struct QuarantineRows {
    tweet_id: StringBuilder,
    source_file: StringBuilder,
    line: Int64Builder,
    date: StringBuilder,
    user: StringBuilder,
    text: StringBuilder,
    sentiment: StringBuilder,
    reason: StringBuilder,
    bronze_version: Int64Builder,
    rows: usize,
}

impl QuarantineRows {
    fn new() -> Self {
        QuarantineRows {
            tweet_id: StringBuilder::new(),
            source_file: StringBuilder::new(),
            line: Int64Builder::new(),
            date: StringBuilder::new(),
            user: StringBuilder::new(),
            text: StringBuilder::new(),
            sentiment: StringBuilder::new(),
            reason: StringBuilder::new(),
            bronze_version: Int64Builder::new(),
            rows: 0,
        }
    }

    fn finish(&mut self, schema: &SchemaRef, now: i64) -> Result<RecordBatch> {
        let rows = self.rows;
        let mut m: HashMap<&str, ArrayRef> = HashMap::new();
        m.insert("tweet_id", Arc::new(self.tweet_id.finish()));
        m.insert("source_file", Arc::new(self.source_file.finish()));
        m.insert("line", Arc::new(self.line.finish()));
        m.insert("date", Arc::new(self.date.finish()));
        m.insert("user", Arc::new(self.user.finish()));
        m.insert("text", Arc::new(self.text.finish()));
        m.insert("sentiment", Arc::new(self.sentiment.finish()));
        m.insert("reason", Arc::new(self.reason.finish()));
        m.insert("bronze_version", Arc::new(self.bronze_version.finish()));
        m.insert(
            "processing_time",
            Arc::new(
                deltalake::arrow::array::TimestampMicrosecondArray::from(vec![now; rows])
                    .with_timezone("UTC"),
            ),
        );
        self.rows = 0;
        assemble(schema, m, rows)
    }
}

fn string_column(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| TableTaskError::Data(format!("bronze data lacks the column `{name}`")))?;
    let col = if col.data_type() == &ArrowType::Utf8 {
        col.clone()
    } else {
        cast(col, &ArrowType::Utf8)
            .map_err(|e| TableTaskError::format(format!("column `{name}`"), e))?
    };
    Ok(col.as_string::<i32>().clone())
}

fn line_column(batch: &RecordBatch) -> Result<Int64Array> {
    let col = batch
        .column_by_name("line")
        .ok_or_else(|| TableTaskError::Data("bronze data lacks the column `line`".into()))?;
    let col =
        cast(col, &ArrowType::Int64).map_err(|e| TableTaskError::format("column `line`", e))?;
    Ok(col.as_primitive::<Int64Type>().clone())
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    if a.is_null(i) { None } else { Some(a.value(i)) }
}

/// The streaming state of one clean run.
struct Cleaner {
    silver: SilverRows,
    silver_schema: SchemaRef,
    silver_writer: TargetWriter,
    quarantine: QuarantineRows,
    q_schema: SchemaRef,
    q_writer: RecordBatchWriter,
    q_loc: String,
    q_done: i64,
    now: i64,
    summary: CleanSummary,
    mentions_seen: Vec<String>,
    shard: Option<Shard>,
}

impl Cleaner {
    async fn process(&mut self, batch: &RecordBatch, bronze_version: i64) -> Result<()> {
        let date = string_column(batch, "date")?;
        let user = string_column(batch, "user")?;
        let text = string_column(batch, "text")?;
        let sentiment = string_column(batch, "sentiment")?;
        let source_file = string_column(batch, "source_file")?;
        let line = line_column(batch)?;
        for i in 0..batch.num_rows() {
            let file = opt(&source_file, i).unwrap_or("");
            let line_no = if line.is_null(i) { 0 } else { line.value(i) };
            let id = tweet_id(file, line_no);
            if !shards::takes(&id, self.shard) {
                continue;
            }
            self.summary.tweets += 1;
            let verdict = match (opt(&date, i), opt(&text, i), opt(&sentiment, i)) {
                (None, _, _) => Err("missing date".to_string()),
                (_, None, _) => Err("missing text".to_string()),
                (_, _, None) => Err("missing sentiment".to_string()),
                (Some(d), Some(t), Some(s)) => parse_tweet_date(d)
                    .map(|ts| (ts, t, s))
                    .map_err(|e| e.to_string()),
            };
            match verdict {
                Err(reason) => {
                    self.summary.quarantined += 1;
                    if bronze_version <= self.q_done {
                        continue;
                    }
                    let q = &mut self.quarantine;
                    q.tweet_id.append_value(&id);
                    q.source_file.append_option(opt(&source_file, i));
                    q.line
                        .append_option((!line.is_null(i)).then(|| line.value(i)));
                    q.date.append_option(opt(&date, i));
                    q.user.append_option(opt(&user, i));
                    q.text.append_option(opt(&text, i));
                    q.sentiment.append_option(opt(&sentiment, i));
                    q.reason.append_value(reason);
                    q.bronze_version.append_value(bronze_version);
                    q.rows += 1;
                    if q.rows >= BATCH_ROWS {
                        let b = q.finish(&self.q_schema, self.now)?;
                        self.q_writer
                            .write(b)
                            .await
                            .map_err(|e| TableTaskError::delta(&self.q_loc, e))?;
                    }
                }
                Ok((ts, t, s)) => {
                    let (cleaned, mentions) = clean_text(t);
                    if mentions.is_empty() {
                        self.summary.tweets_without_mentions += 1;
                        continue;
                    }
                    self.summary.tweets_with_mentions += 1;
                    self.mentions_seen.clear();
                    let micros = ts.timestamp_micros();
                    for m in mentions {
                        if self.mentions_seen.contains(&m) {
                            continue;
                        }
                        let r = &mut self.silver;
                        r.tweet_id.append_value(&id);
                        r.timestamp.append_value(micros);
                        r.user.append_option(opt(&user, i));
                        r.mention.append_value(&m);
                        r.cleaned_text.append_value(&cleaned);
                        r.sentiment.append_value(s);
                        r.rows += 1;
                        self.summary.rows += 1;
                        self.mentions_seen.push(m);
                    }
                    if self.silver.rows >= BATCH_ROWS {
                        self.flush_silver().await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn flush_silver(&mut self) -> Result<()> {
        if self.silver.rows == 0 {
            return Ok(());
        }
        let b = self.silver.finish(&self.silver_schema)?;
        Ok(self.silver_writer.write(b).await?)
    }

    async fn flush_quarantine(&mut self) -> Result<()> {
        if self.quarantine.rows == 0 {
            return Ok(());
        }
        let b = self.quarantine.finish(&self.q_schema, self.now)?;
        self.q_writer
            .write(b)
            .await
            .map_err(|e| TableTaskError::delta(&self.q_loc, e))
    }
}

/// Runs `clean` once: all bronze versions not yet consumed.
///
/// When another run commits to silver or its quarantine table meanwhile, the work is planned
/// again from the logs (see [`Replans`]).
pub async fn clean(params: &CleanParams, ctl: &WriteControl) -> Result<CleanSummary> {
    clean_shard(params, ctl, None).await
}

/// [`clean`] for shard `shard` of the task (see the module documentation); `None`: every row.
pub async fn clean_shard(
    params: &CleanParams,
    ctl: &WriteControl,
    shard: Option<Shard>,
) -> Result<CleanSummary> {
    let mut replans = Replans::new("clean");
    loop {
        match clean_attempt(params, ctl, shard).await {
            Err(err) if replans.again(&err) => continue,
            other => {
                return other.map(|s| CleanSummary {
                    table: params.table.clone(),
                    quarantine: params.quarantine_location(),
                    ..s
                });
            }
        }
    }
}

async fn clean_attempt(
    params: &CleanParams,
    ctl: &WriteControl,
    shard: Option<Shard>,
) -> Result<CleanSummary> {
    let bronze_loc = params.input.clone();
    let silver_loc = params.table.clone();
    let q_loc = params.quarantine_location();
    let bronze =
        table::open_table(&bronze_loc)
            .await?
            .ok_or_else(|| TableTaskError::MissingInput {
                what: "bronze table (run ingest on a non-empty landing folder first)",
                location: bronze_loc.clone(),
            })?;
    let hi = table::version(&bronze);
    table_shape::require_columns(
        &bronze,
        &bronze_loc,
        "input",
        "a bronze table",
        &table_shape::columns_of(&bronze_input_columns()?, &[]),
    )?;
    let mut silver = table::open_or_create(&silver_loc, &silver_schema()?, &[]).await?;
    let silver_columns = table_shape::columns_of(&silver_schema()?, &[]);
    table_shape::require_columns(
        &silver,
        &silver_loc,
        "table",
        "a silver table",
        &silver_columns,
    )?;
    let planned = SILVER.progress(&silver, &silver_loc, shard).await?;
    let lo = planned.consumed.unwrap_or(-1);
    let mut summary = CleanSummary {
        bronze_version: lo,
        table_version: table::version(&silver),
        ..Default::default()
    };
    if lo > hi {
        return Err(TableTaskError::Data(format!(
            "silver `{silver_loc}` has consumed bronze version {lo} but bronze `{bronze_loc}` is at version {hi}: \
             bronze was reset; reset the silver table too"
        )));
    }
    if lo == hi {
        summary.bronze_version = hi;
        return Ok(summary);
    }
    let mut quarantine = table::open_or_create(&q_loc, &quarantine_schema()?, &[]).await?;
    let q_columns = table_shape::columns_of(&quarantine_schema()?, &[]);
    table_shape::require_columns(
        &quarantine,
        &q_loc,
        "quarantine",
        "a clean quarantine table",
        &q_columns,
    )?;
    let app = SILVER.app_id(shard);
    let q_recorded = table::app_version(&quarantine, &q_loc, &app).await?;
    let q_done = q_recorded.unwrap_or(-1);
    let q_set = quarantine_set_actions(&quarantine, &q_loc, shard, lo).await?;
    let silver_schema = table::arrow_schema(&silver, &silver_loc)?;
    let q_schema = table::arrow_schema(&quarantine, &q_loc)?;
    let mut c = Cleaner {
        silver: SilverRows::new(),
        silver_writer: expect::target_writer(&silver, &silver_loc, silver_schema.clone(), &q_loc)
            .await?,
        silver_schema,
        quarantine: QuarantineRows::new(),
        q_writer: table::writer_for(&quarantine, &q_loc, q_schema.clone())?,
        q_schema,
        q_loc: q_loc.clone(),
        q_done,
        now: Utc::now().timestamp_micros(),
        summary: CleanSummary::default(),
        mentions_seen: Vec::new(),
        shard,
    };
    let new_files = incremental::new_files(&bronze, &bronze_loc, lo, hi).await?;
    let mut progress = ProgressReporter::new("bronze files", Some(new_files.len() as u64));
    for file in new_files {
        let path = table::add_path(&file.add)?;
        let mut stream = table::read_file(&bronze, &path, &BRONZE_COLUMNS).await?;
        while let Some(batch) = stream.next().await {
            ctl.check_cancel()?;
            let batch =
                batch.map_err(|e| TableTaskError::format(format!("reading `{path}`"), e))?;
            c.process(&batch, file.version).await?;
        }
        progress.add(1);
    }
    c.flush_silver().await?;
    c.flush_quarantine().await?;
    let silver_adds = c.silver_writer.flush().await?;
    let q_adds = c
        .q_writer
        .flush()
        .await
        .map_err(|e| TableTaskError::delta(&q_loc, e))?;
    ctl.failpoint("clean.after_write")?;
    let mut summary = c.summary;
    summary.bronze_version = hi;

    let label = shards::split(shard).map(|s| s.label());
    // Quarantine first (its rows are filtered by the version it already covers).
    if !q_adds.is_empty() {
        let info = json!({"app": APP_ID, "kind": "quarantine", "bronze_from": lo + 1, "bronze_to": hi, "shard": label});
        SILVER
            .commit(&mut quarantine, &q_loc, shard, q_recorded, || {
                CommitRequest {
                    actions: q_adds
                        .iter()
                        .cloned()
                        .map(Action::Add)
                        .chain(q_set.iter().cloned())
                        .collect(),
                    operation: append_op(),
                    txn: Some(Transaction::new(app.clone(), hi)),
                    info: info.clone(),
                }
            })
            .await?;
    }
    ctl.failpoint("clean.after_quarantine_commit")?;

    // Exactly-once check, in the commit path: silver must still record what the shard (or
    // the unsharded task) recorded when it planned.
    let set_actions = SILVER.set_actions(shard, &planned);
    let info = json!({
        "app": APP_ID, "kind": "clean", "bronze_from": lo + 1, "bronze_to": hi,
        "rows": summary.rows, "tweets": summary.tweets,
        "tweets_without_mentions": summary.tweets_without_mentions, "quarantined": summary.quarantined,
        "shard": label,
    });
    let version = SILVER
        .commit(&mut silver, &silver_loc, shard, planned.recorded, || {
            CommitRequest {
                actions: silver_adds
                    .iter()
                    .cloned()
                    .map(Action::Add)
                    .chain(set_actions.iter().cloned())
                    .collect(),
                operation: append_op(),
                txn: Some(Transaction::new(app.clone(), hi)),
                info: info.clone(),
            }
        })
        .await?;
    ctl.failpoint("clean.after_commit")?;
    summary.table_version = version;
    tracing::info!(silver = %params.table, bronze_to = hi, rows = summary.rows, version, "clean committed");
    Ok(summary)
}

/// Checks that the quarantine table can take this shard's rows of the bronze versions after
/// `consumed`, and returns the transaction recording its shard count there.
///
/// A shard of a set stopped between its quarantine and its silver commit leaves the
/// quarantine table ahead of silver: a re-run of that shard skips the rows it already put
/// there (its own transaction says how far), but a set with another shard count would write
/// them again. So the quarantine table records the shard count of its latest commit, and a
/// run with another count is refused while a shard of that set is ahead of where this run
/// starts.
async fn quarantine_set_actions(
    quarantine: &deltalake::DeltaTable,
    location: &str,
    shard: Option<Shard>,
    consumed: i64,
) -> Result<Vec<Action>> {
    let count = shard.map_or(1, |s| s.count.max(1));
    let recorded = table::app_version(quarantine, location, &SILVER.count_app_id()).await?;
    let previous = recorded.map_or(1, |c| c.max(1) as u32);
    if previous != count {
        for (index, app) in SILVER.members(previous).enumerate() {
            if let Some(v) = table::app_version(quarantine, location, &app).await?
                && v > consumed
            {
                return Err(TableTaskError::Data(format!(
                    "the quarantine table `{location}` holds bronze version {v} from shard {index} of {previous}, \
                     which silver records only up to {consumed}: run clean with `shards: {previous}` once more, then change the shard count"
                )));
            }
        }
    }
    Ok(if count > 1 || recorded.is_some() {
        vec![Action::Txn(Transaction::new(
            SILVER.count_app_id(),
            i64::from(count),
        ))]
    } else {
        Vec::new()
    })
}

/// The `clean` task.
pub struct CleanTask;

impl Task for CleanTask {
    type Params = CleanParams;
    const TYPE: &'static str = "clean";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "Clean new bronze tweets into a silver Delta table: one row per @mention, UTC timestamps, exactly once";

    /// Shards split the new bronze rows by a hash of `tweet_id` (see the module documentation).
    const SHARDABLE: bool = true;
    const WRITES_TABLE: bool = true;

    fn output_columns(&self, _params: &CleanParams) -> Option<Vec<(String, String)>> {
        silver_schema().ok().map(|s| crate::expect::columns_of(&s))
    }

    fn locations(&self, p: &CleanParams) -> Vec<(&'static str, String)> {
        let mut out = vec![("input", p.input.clone()), ("table", p.table.clone())];
        out.extend(p.quarantine.clone().map(|q| ("quarantine", q)));
        out
    }

    async fn run(
        &self,
        ctx: &TaskContext,
        params: CleanParams,
    ) -> std::result::Result<TaskOutput, TaskError> {
        let qloc = params.quarantine_location();
        crate::run_store_guard::refuse_run_store(
            ctx,
            &[("table", &params.table), ("quarantine", &qloc)],
        )?;
        let s = clean_shard(&params, &super::write_control(ctx), ctx.shard)
            .await
            .map_err(|e| {
                e.naming(&[
                    ("input", &params.input),
                    ("table", &params.table),
                    ("quarantine", &qloc),
                ])
            })?;
        super::table_output(&s, &s.table, s.table_version)
    }

    /// Valid while silver is at the version the output names and bronze has no newer version.
    async fn output_still_valid(&self, params: &CleanParams, output: &TaskOutput) -> bool {
        let consumed = output.get("bronze_version").and_then(|v| v.as_i64());
        consumed.is_some()
            && consumed == table::latest_version(&params.input).await
            && super::output_table_still_valid(&params.table, output).await
    }
}

impl crate::expect::WritesTable for CleanTask {
    fn tables(params: &CleanParams) -> (String, String) {
        (params.table.clone(), params.quarantine_location())
    }
}
