//! `tweetflow bench medallion`: throughput and memory of replay → ingest → clean.
//!
//! Replays the training tweets (or, with `full`, about 1.6 million tweets made by repeating
//! them 30 times; every copy lands in its own files, so its tweet ids are new) into a fresh
//! work folder, then times `ingest` (landing → bronze) and `clean` (bronze → silver), and, as
//! the I/O floor, the same landing → Parquet work done with a plain Arrow/Parquet writer
//! (JSON parsed into the same bronze columns, one Parquet file, no Delta log, no checks).
//! Peak RSS is the process's `VmHWM` from `/proc/self/status`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use deltalake::arrow::array::{ArrayRef, Int64Builder, StringBuilder};
use deltalake::arrow::datatypes::{DataType as ArrowType, Field, Schema};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::parquet::arrow::ArrowWriter;
use serde::Serialize;
use tweetflow_tasks::medallion::clean::{CleanParams, clean};
use tweetflow_tasks::medallion::ingest::{IngestParams, ingest};
use tweetflow_tasks::medallion::replay::{LandedTweet, ReplayParams, replay};
use tweetflow_tasks::{TableResult as Result, TableTaskError};

use tweetflow_delta::WriteControl;
use tweetflow_delta::table::{BATCH_ROWS, writer_properties};

/// How many times `full` repeats the training tweets (53,936 × 30 ≈ 1.6 million).
pub const FULL_REPEAT: u32 = 30;

/// Options of [`bench_medallion`].
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The Sentiment140 CSV to replay (e.g. `datasets/sentiment140/training.csv.gz`).
    pub csv: PathBuf,
    /// Where to put landing files and tables (default: a new folder in the temp dir, removed
    /// afterwards).
    pub work_dir: Option<PathBuf>,
    /// Repeat the tweets [`FULL_REPEAT`] times (≈ 1.6 million tweets).
    pub full: bool,
    /// Tweets per landing file (default 1000).
    pub tweets_per_file: usize,
    /// Files per ingest commit (default 1000).
    pub max_files_per_batch: usize,
    /// Keep the work folder.
    pub keep: bool,
    /// Also run replay → ingest → clean under this object-store root (`s3://bucket/prefix`,
    /// credentials and endpoint from the `AWS_*` variables) and report it beside the local
    /// figures.
    pub root: Option<String>,
}

impl BenchOptions {
    /// Defaults for the CSV at `csv`.
    pub fn new(csv: impl Into<PathBuf>) -> Self {
        BenchOptions {
            csv: csv.into(),
            work_dir: None,
            full: false,
            tweets_per_file: 1000,
            max_files_per_batch: 1000,
            keep: false,
            root: None,
        }
    }
}

/// Measurements of one bench run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BenchReport {
    /// Tweets replayed.
    pub tweets: u64,
    /// Landing files.
    pub files: u64,
    /// Silver rows written.
    pub silver_rows: u64,
    /// Tweets with at least one mention.
    pub tweets_with_mentions: u64,
    /// Seconds to replay (not part of the goal).
    pub replay_secs: f64,
    /// Seconds to ingest.
    pub ingest_secs: f64,
    /// Seconds to clean.
    pub clean_secs: f64,
    /// Seconds for the plain Parquet floor.
    pub floor_secs: f64,
    /// Tweets per second through ingest.
    pub ingest_tweets_per_sec: f64,
    /// Tweets per second through clean.
    pub clean_tweets_per_sec: f64,
    /// Tweets per second through ingest + clean.
    pub pipeline_tweets_per_sec: f64,
    /// Tweets per second of the floor.
    pub floor_tweets_per_sec: f64,
    /// Ingest time over floor time.
    pub ingest_vs_floor: f64,
    /// Peak resident memory of the process in MiB (`VmHWM`).
    pub peak_rss_mib: f64,
    /// The work folder.
    pub work_dir: String,
    /// The same run on object storage, when a root was given.
    pub object_store: Option<ObjectStoreReport>,
}

/// The replay → ingest → clean run under an object-store root.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ObjectStoreReport {
    /// Where the landing objects and tables went.
    pub root: String,
    /// Seconds to ingest.
    pub ingest_secs: f64,
    /// Seconds to clean.
    pub clean_secs: f64,
    /// Tweets per second through ingest + clean.
    pub pipeline_tweets_per_sec: f64,
    /// Object-store requests made by ingest + clean.
    pub requests: u64,
    /// Delta commits made by ingest + clean (bronze, silver and their quarantines).
    pub commits: u64,
    /// `requests / commits`.
    pub requests_per_commit: f64,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "tweets           {} in {} files ({} with mentions, {} silver rows)",
            self.tweets, self.files, self.tweets_with_mentions, self.silver_rows
        )?;
        writeln!(f, "replay           {:8.2} s", self.replay_secs)?;
        writeln!(
            f,
            "ingest           {:8.2} s  {:>10.0} tweets/s",
            self.ingest_secs, self.ingest_tweets_per_sec
        )?;
        writeln!(
            f,
            "clean            {:8.2} s  {:>10.0} tweets/s",
            self.clean_secs, self.clean_tweets_per_sec
        )?;
        writeln!(
            f,
            "ingest+clean     {:8.2} s  {:>10.0} tweets/s",
            self.ingest_secs + self.clean_secs,
            self.pipeline_tweets_per_sec
        )?;
        writeln!(
            f,
            "parquet floor    {:8.2} s  {:>10.0} tweets/s",
            self.floor_secs, self.floor_tweets_per_sec
        )?;
        writeln!(f, "ingest / floor   {:8.2}x", self.ingest_vs_floor)?;
        if let Some(o) = &self.object_store {
            writeln!(
                f,
                "ingest+clean     {:8.2} s  {:>10.0} tweets/s  on {} (local disk: {:.0} tweets/s)",
                o.ingest_secs + o.clean_secs,
                o.pipeline_tweets_per_sec,
                o.root,
                self.pipeline_tweets_per_sec
            )?;
            writeln!(
                f,
                "object store     {} requests for {} commits: {:.1} requests per commit",
                o.requests, o.commits, o.requests_per_commit
            )?;
        }
        writeln!(f, "peak RSS         {:8.1} MiB", self.peak_rss_mib)
    }
}

/// Peak resident set size of this process in MiB, from `/proc/self/status` (`VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Writes the landing files as one plain Parquet file (the I/O floor); returns rows written.
pub fn parquet_floor(landing: &std::path::Path, out: &std::path::Path) -> Result<u64> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("date", ArrowType::Utf8, true),
        Field::new("user", ArrowType::Utf8, true),
        Field::new("text", ArrowType::Utf8, true),
        Field::new("sentiment", ArrowType::Utf8, true),
        Field::new("source_file", ArrowType::Utf8, true),
        Field::new("line", ArrowType::Int64, true),
    ]));
    let file = std::fs::File::create(out)
        .map_err(|e| TableTaskError::io(format!("creating `{}`", out.display()), e))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(writer_properties()))
        .map_err(|e| TableTaskError::format("parquet floor", e))?;
    let mut names: Vec<_> = std::fs::read_dir(landing)
        .map_err(|e| TableTaskError::io("listing landing", e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    names.sort();
    let mut rows = 0u64;
    let mut cols: [StringBuilder; 5] = Default::default();
    let mut line_b = Int64Builder::new();
    let mut pending = 0usize;
    let flush = |cols: &mut [StringBuilder; 5],
                 line_b: &mut Int64Builder,
                 writer: &mut ArrowWriter<std::fs::File>|
     -> Result<()> {
        let mut arrays: Vec<ArrayRef> = cols
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        arrays.push(Arc::new(line_b.finish()));
        let batch = RecordBatch::try_new(schema.clone(), arrays)
            .map_err(|e| TableTaskError::format("parquet floor", e))?;
        writer
            .write(&batch)
            .map_err(|e| TableTaskError::format("parquet floor", e))
    };
    for path in names {
        let text =
            std::fs::read_to_string(&path).map_err(|e| TableTaskError::io("reading landing", e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            let Ok(t) = serde_json::from_str::<LandedTweet>(line) else {
                continue;
            };
            cols[0].append_value(&t.date);
            cols[1].append_value(&t.user);
            cols[2].append_value(&t.text);
            cols[3].append_value(&t.sentiment);
            cols[4].append_value(&name);
            line_b.append_value(i as i64 + 1);
            pending += 1;
            rows += 1;
            if pending >= BATCH_ROWS {
                flush(&mut cols, &mut line_b, &mut writer)?;
                pending = 0;
            }
        }
    }
    if pending > 0 {
        flush(&mut cols, &mut line_b, &mut writer)?;
    }
    writer
        .close()
        .map_err(|e| TableTaskError::format("parquet floor", e))?;
    Ok(rows)
}

/// Runs the medallion bench (see the module docs) and returns its measurements.
pub async fn bench_medallion(options: &BenchOptions) -> Result<BenchReport> {
    let (work, remove) = match &options.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("tweetflow-bench-{}", std::process::id())),
            !options.keep,
        ),
    };
    std::fs::create_dir_all(&work)
        .map_err(|e| TableTaskError::io(format!("creating `{}`", work.display()), e))?;
    let landing = work.join("landing");
    let bronze = work.join("bronze");
    let silver = work.join("silver");
    for d in [&landing, &bronze, &silver] {
        if d.exists() {
            return Err(TableTaskError::Refused(format!(
                "`{}` exists; use an empty work folder",
                d.display()
            )));
        }
    }
    let opts = WriteControl::default();
    let s = |p: &PathBuf| p.display().to_string();

    let mut rp = ReplayParams::new(s(&options.csv), s(&landing));
    rp.tweets_per_file = options.tweets_per_file;
    rp.repeat = if options.full { FULL_REPEAT } else { 1 };
    let t0 = Instant::now();
    let r = replay(&rp, &opts).await?;
    let replay_secs = t0.elapsed().as_secs_f64();

    // Replay renames each file into place: no file is still being written.
    let mut ip = IngestParams::new(s(&landing), s(&bronze)).with_settle_time("0s");
    ip.max_files_per_batch = options.max_files_per_batch;
    let t0 = Instant::now();
    let i = ingest(&ip, &opts).await?;
    let ingest_secs = t0.elapsed().as_secs_f64();

    let cp = CleanParams::new(s(&bronze), s(&silver));
    let t0 = Instant::now();
    let c = clean(&cp, &opts).await?;
    let clean_secs = t0.elapsed().as_secs_f64();

    let floor_file = work.join("floor.parquet");
    let t0 = Instant::now();
    let landing2 = landing.clone();
    let floor_file2 = floor_file.clone();
    tokio::task::spawn_blocking(move || parquet_floor(&landing2, &floor_file2))
        .await
        .map_err(|e| TableTaskError::Data(format!("floor: {e}")))??;
    let floor_secs = t0.elapsed().as_secs_f64();

    let tweets = i.rows as f64;
    let rate = |secs: f64| if secs > 0.0 { tweets / secs } else { 0.0 };
    let report = BenchReport {
        tweets: r.tweets,
        files: r.files,
        silver_rows: c.rows,
        tweets_with_mentions: c.tweets_with_mentions,
        replay_secs,
        ingest_secs,
        clean_secs,
        floor_secs,
        ingest_tweets_per_sec: rate(ingest_secs),
        clean_tweets_per_sec: rate(clean_secs),
        pipeline_tweets_per_sec: rate(ingest_secs + clean_secs),
        floor_tweets_per_sec: rate(floor_secs),
        ingest_vs_floor: if floor_secs > 0.0 {
            ingest_secs / floor_secs
        } else {
            0.0
        },
        peak_rss_mib: peak_rss_mib().unwrap_or(0.0),
        work_dir: work.display().to_string(),
        object_store: None,
    };
    let mut report = report;
    if let Some(root) = &options.root {
        report.object_store = Some(bench_object_store(options, root).await?);
    }
    if remove {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(report)
}

/// Replay → ingest → clean under a fresh prefix of the object-store `root`, timed, with the
/// object-store requests of ingest + clean.
async fn bench_object_store(options: &BenchOptions, root: &str) -> Result<ObjectStoreReport> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let base = format!("{}/bench-{stamp}", root.trim_end_matches('/'));
    let at = |name: &str| format!("{base}/{name}");
    let opts = WriteControl::default();
    let mut rp = ReplayParams::new(options.csv.display().to_string(), at("landing"));
    rp.tweets_per_file = options.tweets_per_file;
    rp.repeat = if options.full { FULL_REPEAT } else { 1 };
    replay(&rp, &opts).await?;
    let before = tweetflow_delta::counting::requests();
    let mut ip = IngestParams::new(at("landing"), at("bronze")).with_settle_time("0s");
    ip.max_files_per_batch = options.max_files_per_batch;
    let t0 = Instant::now();
    let i = ingest(&ip, &opts).await?;
    let ingest_secs = t0.elapsed().as_secs_f64();
    let cp = CleanParams::new(at("bronze"), at("silver"));
    let t0 = Instant::now();
    let c = clean(&cp, &opts).await?;
    let clean_secs = t0.elapsed().as_secs_f64();
    let requests = tweetflow_delta::counting::requests() - before;
    let versions = |v: i64| (v + 1).max(0) as u64;
    let commits = versions(i.table_version)
        + versions(i.quarantine_version)
        + versions(c.table_version)
        + tweetflow_delta::table::latest_version(&cp.quarantine_location())
            .await
            .map_or(0, versions);
    let secs = ingest_secs + clean_secs;
    Ok(ObjectStoreReport {
        root: base,
        ingest_secs,
        clean_secs,
        pipeline_tweets_per_sec: if secs > 0.0 {
            i.rows as f64 / secs
        } else {
            0.0
        },
        requests,
        commits,
        requests_per_commit: if commits > 0 {
            requests as f64 / commits as f64
        } else {
            0.0
        },
    })
}
