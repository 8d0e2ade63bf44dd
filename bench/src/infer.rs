//! `tweetflow bench infer`: the infer task timed against the bare model loop on the same texts (what
//! `tweetflow bench infer` prints).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType as ArrowType;
use futures::StreamExt;
use serde::Serialize;
use tweetflow_delta::WriteControl;
use tweetflow_delta::table;
use tweetflow_model::{Classifier, ClassifierOptions};

use crate::bare_loop::{BareLoopBench, bench_bare_loop};
use tweetflow_tasks::TableTaskError;
use tweetflow_tasks::infer::{DEFAULT_BATCH_SIZE, InferError, InferParams, InferResult, infer};

/// Options of [`bench_infer`].
#[derive(Clone, Debug)]
pub struct InferBenchOptions {
    /// A Sentiment140 CSV (`.csv` or `.csv.gz`: replayed, ingested and cleaned into a silver
    /// table first, untimed) or an existing silver Delta table.
    pub input: PathBuf,
    /// The model directory.
    pub model_dir: PathBuf,
    /// Texts per model batch (`0` = 32).
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads (`0` = the number of cores).
    pub threads: usize,
    /// Tweets replayed from a CSV input (default: all).
    pub limit: Option<usize>,
    /// Rounds; each times the bare loop and the task once, in alternating order (`0` = 1).
    pub rounds: usize,
    /// Where the landing files and tables go (default: a new temporary folder, removed
    /// afterwards unless `keep`).
    pub work_dir: Option<PathBuf>,
    /// Keep the work folder.
    pub keep: bool,
}

/// Default [`InferBenchOptions::rounds`].
pub const DEFAULT_BENCH_ROUNDS: usize = 9;

impl InferBenchOptions {
    /// Batch 32, one thread per core, every tweet, nine rounds, a temporary work folder.
    pub fn new(input: impl Into<PathBuf>, model_dir: impl Into<PathBuf>) -> Self {
        InferBenchOptions {
            input: input.into(),
            model_dir: model_dir.into(),
            batch_size: DEFAULT_BATCH_SIZE,
            threads: 0,
            limit: None,
            rounds: DEFAULT_BENCH_ROUNDS,
            work_dir: None,
            keep: false,
        }
    }
}

/// One round of [`bench_infer`]: the bare loop and the task, back to back.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct InferBenchRound {
    /// Whether the task ran before the bare loop in this round.
    pub task_first: bool,
    /// Seconds of the bare loop (session runs only).
    pub bare_secs: f64,
    /// Seconds of the whole task.
    pub task_secs: f64,
    /// Bare-loop tweets per second.
    pub bare_tweets_per_sec: f64,
    /// Task tweets per second.
    pub task_tweets_per_sec: f64,
    /// `task_tweets_per_sec / bare_tweets_per_sec`.
    pub task_vs_bare: f64,
}

/// Measurements of [`bench_infer`]. Throughputs count distinct texts (tweets; the mention
/// rows of one tweet share a text) per second; the headline numbers are medians over the
/// rounds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InferBenchReport {
    /// Silver rows (tweet × mention) read by the task.
    pub silver_rows: u64,
    /// Distinct texts classified.
    pub distinct_texts: u64,
    /// Texts per model batch.
    pub batch_size: usize,
    /// ONNX Runtime threads.
    pub threads: usize,
    /// Seconds to load the classifier (median over the rounds; not part of the bare loop's
    /// time, part of the task's).
    pub load_secs: f64,
    /// Every round, in order.
    pub rounds: Vec<InferBenchRound>,
    /// Median tweets per second of the bare loop ([`bench_bare_loop`]), the
    /// floor.
    pub bare_tweets_per_sec: f64,
    /// Median tweets per second of the task (model load, silver read, tokenization,
    /// inference, gold write and commit).
    pub task_tweets_per_sec: f64,
    /// Median silver rows per second of the task.
    pub task_rows_per_sec: f64,
    /// Median over the rounds of task throughput over bare-loop throughput (1.0 = no
    /// overhead). Each ratio compares two runs made seconds apart, so a machine whose speed
    /// drifts over minutes moves both.
    pub task_vs_bare: f64,
    /// Best task throughput over best bare-loop throughput (each side's least disturbed
    /// round).
    pub best_task_vs_bare: f64,
    /// Gold rows written per task run.
    pub gold_rows: u64,
    /// Peak resident memory of the process in MiB (`VmHWM`).
    pub peak_rss_mib: f64,
    /// The silver table used.
    pub silver: String,
    /// The work folder.
    pub work_dir: String,
}

impl std::fmt::Display for InferBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "input            {} silver rows, {} distinct texts (batch {}, {} threads)",
            self.silver_rows, self.distinct_texts, self.batch_size, self.threads
        )?;
        writeln!(f, "model load       {:8.2} s", self.load_secs)?;
        for (i, r) in self.rounds.iter().enumerate() {
            writeln!(
                f,
                "round {:<2}         bare {:8.2} s {:>7.0} tweets/s   task {:8.2} s {:>7.0} tweets/s   task/bare {:.3}{}",
                i + 1,
                r.bare_secs,
                r.bare_tweets_per_sec,
                r.task_secs,
                r.task_tweets_per_sec,
                r.task_vs_bare,
                if r.task_first { "  (task first)" } else { "" }
            )?;
        }
        writeln!(
            f,
            "bare loop        {:>10.0} tweets/s  (median; model only: the floor)",
            self.bare_tweets_per_sec
        )?;
        writeln!(
            f,
            "infer task       {:>10.0} tweets/s  {:>10.0} rows/s  (median)",
            self.task_tweets_per_sec, self.task_rows_per_sec
        )?;
        writeln!(
            f,
            "task / bare      {:8.3}  (median of the rounds' ratios; best task / best bare {:.3})",
            self.task_vs_bare, self.best_task_vs_bare
        )?;
        writeln!(f, "gold rows        {}", self.gold_rows)?;
        writeln!(f, "peak RSS         {:8.1} MiB", self.peak_rss_mib)?;
        write!(f, "silver           {}", self.silver)
    }
}

fn best(rounds: &[InferBenchRound], f: impl Fn(&InferBenchRound) -> f64) -> f64 {
    rounds.iter().map(f).fold(0.0, f64::max)
}

fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Reads every `cleaned_text` of a silver table's active files (bench only: in memory).
async fn silver_texts(location: &str) -> InferResult<Vec<String>> {
    let t = table::open_table(location)
        .await?
        .ok_or_else(|| TableTaskError::MissingInput {
            what: "silver table",
            location: location.to_string(),
        })?;
    let mut out = Vec::new();
    for (path, _, _) in table::active_files(&t, location)? {
        let mut stream = table::read_file(&t, &path, &["cleaned_text"]).await?;
        while let Some(batch) = stream.next().await {
            let batch =
                batch.map_err(|e| TableTaskError::format(format!("reading `{path}`"), e))?;
            let col = batch.column_by_name("cleaned_text").ok_or_else(|| {
                TableTaskError::Data("silver data lacks the column `cleaned_text`".into())
            })?;
            let col = cast(col, &ArrowType::Utf8)
                .map_err(|e| TableTaskError::format("column `cleaned_text`", e))?;
            let col = col.as_string::<i32>();
            for i in 0..col.len() {
                if !col.is_null(i) {
                    out.push(col.value(i).to_string());
                }
            }
        }
    }
    Ok(out)
}

/// A silver table ready for infer benchmarks, and its distinct texts.
pub struct PreparedSilver {
    /// The work folder.
    pub work: PathBuf,
    /// The silver table.
    pub silver: String,
    /// Silver rows (tweet × mention).
    pub silver_rows: u64,
    /// The distinct `cleaned_text` values (the texts the model runs on).
    pub distinct: Arc<Vec<String>>,
    _tmp: Option<TempDir>,
}

/// The silver table of `opts.input` (replayed, ingested and cleaned from a CSV into the work
/// folder first, untimed) and its distinct texts.
pub async fn prepare_silver(opts: &InferBenchOptions) -> InferResult<PreparedSilver> {
    let (work, tmp) = match &opts.work_dir {
        Some(d) => (d.clone(), None),
        None => {
            let tmp = tempfile_dir()?;
            (tmp.clone(), Some(TempDir(tmp, opts.keep)))
        }
    };
    std::fs::create_dir_all(&work)
        .map_err(|e| TableTaskError::io(format!("creating `{}`", work.display()), e))?;
    let input = opts.input.display().to_string();
    let silver = if opts.input.join("_delta_log").is_dir() {
        input
    } else {
        let p = |n: &str| work.join(n).display().to_string();
        let mut rp = tweetflow_tasks::medallion::replay::ReplayParams::new(input, p("landing"));
        rp.limit = opts.limit;
        let ro = WriteControl::default();
        tweetflow_tasks::medallion::replay::replay(&rp, &ro).await?;
        tweetflow_tasks::medallion::ingest::ingest(
            &tweetflow_tasks::medallion::ingest::IngestParams::new(p("landing"), p("bronze"))
                .with_settle_time("0s"),
            &ro,
        )
        .await?;
        tweetflow_tasks::medallion::clean::clean(
            &tweetflow_tasks::medallion::clean::CleanParams::new(p("bronze"), p("silver")),
            &ro,
        )
        .await?;
        p("silver")
    };

    let texts = silver_texts(&silver).await?;
    let silver_rows = texts.len() as u64;
    let mut seen = HashSet::new();
    let distinct: Arc<Vec<String>> = Arc::new(
        texts
            .into_iter()
            .filter_map(|t| {
                let k = tweetflow_model::dedup_key(&t).to_string();
                seen.insert(k.clone()).then_some(k)
            })
            .collect(),
    );
    drop(seen);
    Ok(PreparedSilver {
        work,
        silver,
        silver_rows,
        distinct,
        _tmp: tmp,
    })
}

/// Times the infer task against the bare model loop on the same texts.
///
/// With a CSV input, the tweets are replayed, ingested and cleaned into a silver table in the
/// work folder first (not timed). Then each round times (a) the distinct `cleaned_text`
/// values of silver through [`bench_bare_loop`] (tokenized and padded
/// before the clock starts: the floor) and (b) the whole [`infer`] task from silver into a
/// fresh gold table, in alternating order, so that both see the machine in the same state.
/// This is what `tweetflow bench infer` prints.
pub async fn bench_infer(opts: &InferBenchOptions) -> InferResult<InferBenchReport> {
    let prepared = prepare_silver(opts).await?;
    let work = prepared.work.clone();
    let silver = prepared.silver.clone();
    let silver_rows = prepared.silver_rows;
    let distinct = prepared.distinct.clone();
    let batch_size = if opts.batch_size == 0 {
        DEFAULT_BATCH_SIZE
    } else {
        opts.batch_size
    };
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let n_distinct = distinct.len();
    let options = ClassifierOptions {
        threads,
        labels: None,
    };
    let mut load_secs = Vec::new();

    let mut rounds = Vec::new();
    let mut gold_rows = 0;
    let mut task_rows_per_sec = Vec::new();
    for round in 0..opts.rounds.max(1) {
        let task_first = round % 2 == 1;
        let gold = work.join(format!("gold-{round}")).display().to_string();
        let mut params =
            InferParams::new(silver.clone(), gold, opts.model_dir.display().to_string());
        params.batch_size = batch_size;
        params.threads = Some(threads);
        let bare_side = || bare_loop(&opts.model_dir, &options, &distinct, batch_size);
        let ((load, bare), (task_secs, rows)) = if task_first {
            let task = task_run(&params).await?;
            (bare_side().await?, task)
        } else {
            let bare = bare_side().await?;
            (bare, task_run(&params).await?)
        };
        load_secs.push(load);
        gold_rows = rows;
        task_rows_per_sec.push(rows as f64 / task_secs);
        let task_tps = n_distinct as f64 / task_secs;
        rounds.push(InferBenchRound {
            task_first,
            bare_secs: bare.seconds,
            task_secs,
            bare_tweets_per_sec: bare.tweets_per_sec,
            task_tweets_per_sec: task_tps,
            task_vs_bare: task_tps / bare.tweets_per_sec,
        });
    }
    Ok(InferBenchReport {
        silver_rows,
        distinct_texts: n_distinct as u64,
        batch_size,
        threads,
        load_secs: median(load_secs),
        bare_tweets_per_sec: median(rounds.iter().map(|r| r.bare_tweets_per_sec).collect()),
        task_tweets_per_sec: median(rounds.iter().map(|r| r.task_tweets_per_sec).collect()),
        task_rows_per_sec: median(task_rows_per_sec),
        task_vs_bare: median(rounds.iter().map(|r| r.task_vs_bare).collect()),
        best_task_vs_bare: best(&rounds, |r| r.task_tweets_per_sec)
            / best(&rounds, |r| r.bare_tweets_per_sec),
        rounds,
        gold_rows,
        peak_rss_mib: crate::rss::peak_rss_mib().unwrap_or(0.0),
        silver,
        work_dir: work.display().to_string(),
    })
}

/// The bare-loop floors of 2 cores on `texts`: one session with 2 threads, and 2 sessions
/// with 1 thread each running side by side on halves of the texts (tweets per second of
/// each; the pair counts its texts over the slower half's time).
pub async fn bare_floors(
    model_dir: &Path,
    texts: &Arc<Vec<String>>,
    batch_size: usize,
) -> InferResult<(f64, f64)> {
    let two = ClassifierOptions {
        threads: 2,
        labels: None,
    };
    let (_, one_session) = bare_loop(model_dir, &two, texts, batch_size).await?;
    let one = ClassifierOptions {
        threads: 1,
        labels: None,
    };
    let half = texts.len() / 2;
    let a = Arc::new(texts[..half].to_vec());
    let b = Arc::new(texts[half..].to_vec());
    let (ra, rb) = tokio::join!(
        bare_loop(model_dir, &one, &a, batch_size),
        bare_loop(model_dir, &one, &b, batch_size)
    );
    let secs = ra?.1.seconds.max(rb?.1.seconds).max(1e-9);
    Ok((one_session.tweets_per_sec, texts.len() as f64 / secs))
}

/// Loads the classifier in a blocking thread.
async fn load_classifier(dir: &Path, options: ClassifierOptions) -> InferResult<Classifier> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || Classifier::load(&dir, options))
        .await
        .map_err(InferError::Worker)?
        .map_err(InferError::from)
}

/// (a) The bare loop on the distinct texts, with a session of its own that is dropped before
/// the task runs (one live session at a time, as in a run): the load's seconds and the loop.
async fn bare_loop(
    model_dir: &Path,
    options: &ClassifierOptions,
    texts: &Arc<Vec<String>>,
    batch_size: usize,
) -> InferResult<(f64, BareLoopBench)> {
    let t = Instant::now();
    let c = load_classifier(model_dir, options.clone()).await?;
    let load = t.elapsed().as_secs_f64();
    let texts = texts.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut c = c;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        bench_bare_loop(&mut c, &refs, batch_size)
    })
    .await
    .map_err(InferError::Worker)?;
    Ok((load, r?))
}

/// (b) The whole task, into a fresh gold table: its seconds and the gold rows written.
async fn task_run(params: &InferParams) -> InferResult<(f64, u64)> {
    let t = Instant::now();
    let s = infer(params, &WriteControl::default()).await?;
    Ok((t.elapsed().as_secs_f64().max(1e-9), s.rows))
}

#[allow(clippy::result_large_err)]
fn tempfile_dir() -> InferResult<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "tweetflow-bench-infer-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| TableTaskError::io(format!("creating `{}`", dir.display()), e))?;
    Ok(dir)
}

/// Removes the work folder on drop unless it is kept.
struct TempDir(PathBuf, bool);

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
