//! `tweetflow bench infer`: the infer task, with its defaults (one session per core) and with
//! `threads:` (one session), timed against the bare model loops of one session and of one
//! session per core on the same texts (what `tweetflow bench infer` prints).

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

use crate::bare_loop::{BareLoopBench, bench_bare_loop, bench_bare_sessions};
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
    /// ONNX Runtime intra-op threads of the one-session floor and of the task's
    /// `threads:` side (`0` = the number of cores). The task's default side and its floor
    /// use the sessions [`InferParams::sessions`] gives.
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

/// One round of [`bench_infer`]: the two floors and the two task settings, back to back.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct InferBenchRound {
    /// Whether the tasks ran before the floors in this round (and the default task after
    /// the one-session task).
    pub task_first: bool,
    /// Seconds of the bare loop of one session with `threads` threads (session runs only).
    pub bare_secs: f64,
    /// Seconds of the bare loops of `sessions` sessions of 1 thread side by side (the
    /// slowest one's session runs).
    pub sessions_bare_secs: f64,
    /// Seconds of the whole task with its defaults (no `threads:`: `sessions` sessions).
    pub task_secs: f64,
    /// Seconds of the whole task with `threads: <threads>` (one session).
    pub one_session_task_secs: f64,
    /// Tweets per second of the one-session floor.
    pub bare_tweets_per_sec: f64,
    /// Tweets per second of the `sessions`-session floor.
    pub sessions_bare_tweets_per_sec: f64,
    /// Tweets per second of the task with its defaults.
    pub task_tweets_per_sec: f64,
    /// Tweets per second of the task with `threads: <threads>`.
    pub one_session_task_tweets_per_sec: f64,
    /// `task_tweets_per_sec / sessions_bare_tweets_per_sec`: the default task against the
    /// floor it aims at.
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
    /// ONNX Runtime threads of the one-session floor and task.
    pub threads: usize,
    /// Sessions of the task's default (and of the many-session floor), 1 thread each.
    pub sessions: usize,
    /// Seconds to load one classifier (median over the rounds; not part of the floors'
    /// time, part of the tasks').
    pub load_secs: f64,
    /// Every round, in order.
    pub rounds: Vec<InferBenchRound>,
    /// Median tweets per second of the bare loop of one session with `threads` threads
    /// ([`bench_bare_loop`]).
    pub bare_tweets_per_sec: f64,
    /// Median tweets per second of `sessions` bare loops of 1 thread side by side
    /// ([`bench_bare_sessions`]): the floor of the default task.
    pub sessions_bare_tweets_per_sec: f64,
    /// Median tweets per second of the task with its defaults (model load, silver read,
    /// tokenization, inference, gold write and commit).
    pub task_tweets_per_sec: f64,
    /// Median tweets per second of the task with `threads: <threads>` (one session).
    pub one_session_task_tweets_per_sec: f64,
    /// Median silver rows per second of the task with its defaults.
    pub task_rows_per_sec: f64,
    /// Median over the rounds of the default task's throughput over the `sessions`-session
    /// floor's (1.0 = no overhead). Each ratio compares runs made seconds apart, so a machine
    /// whose speed drifts over minutes moves both.
    pub task_vs_bare: f64,
    /// Best default-task throughput over the best `sessions`-session floor (each side's
    /// least disturbed round).
    pub best_task_vs_bare: f64,
    /// Gold rows written per task run.
    pub gold_rows: u64,
    /// Peak resident memory in MiB while the task ran with its defaults (largest over the
    /// rounds), from a reset of the peak before the run (`VmHWM`).
    pub task_peak_rss_mib: f64,
    /// The same for the task with `threads: <threads>`.
    pub one_session_task_peak_rss_mib: f64,
    /// Peak resident memory of the process in MiB (`VmHWM`).
    pub peak_rss_mib: f64,
    /// The silver table used.
    pub silver: String,
    /// The work folder.
    pub work_dir: String,
}

impl std::fmt::Display for InferBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, t) = (self.sessions, self.threads);
        writeln!(
            f,
            "input            {} silver rows, {} distinct texts (batch {}; default: {n} sessions x 1 thread; one session: {t} threads)",
            self.silver_rows, self.distinct_texts, self.batch_size
        )?;
        writeln!(f, "model load       {:8.2} s (one session)", self.load_secs)?;
        for (i, r) in self.rounds.iter().enumerate() {
            writeln!(
                f,
                "round {:<2}         floor 1x{t} {:6.2} s {:>6.0}/s   floor {n}x1 {:6.2} s {:>6.0}/s   task default {:6.2} s {:>6.0}/s   task threads: {t} {:6.2} s {:>6.0}/s   default/floor {n}x1 {:.3}{}",
                i + 1,
                r.bare_secs,
                r.bare_tweets_per_sec,
                r.sessions_bare_secs,
                r.sessions_bare_tweets_per_sec,
                r.task_secs,
                r.task_tweets_per_sec,
                r.one_session_task_secs,
                r.one_session_task_tweets_per_sec,
                r.task_vs_bare,
                if r.task_first { "  (tasks first)" } else { "" }
            )?;
        }
        writeln!(
            f,
            "floor 1 session x {t} threads   {:>8.0} tweets/s  (median; model only)",
            self.bare_tweets_per_sec
        )?;
        writeln!(
            f,
            "floor {n} sessions x 1 thread   {:>8.0} tweets/s  (median; model only)",
            self.sessions_bare_tweets_per_sec
        )?;
        writeln!(
            f,
            "infer default ({n} sessions)    {:>8.0} tweets/s  {:>8.0} rows/s  (median; {:.0} % of the {n}-session floor)  peak RSS {:.1} MiB",
            self.task_tweets_per_sec,
            self.task_rows_per_sec,
            100.0 * self.task_vs_bare,
            self.task_peak_rss_mib
        )?;
        writeln!(
            f,
            "infer threads: {t} (1 session)   {:>8.0} tweets/s  (median)  peak RSS {:.1} MiB",
            self.one_session_task_tweets_per_sec, self.one_session_task_peak_rss_mib
        )?;
        writeln!(
            f,
            "default / floor  {:8.3}  (median of the rounds' ratios; best task / best floor {:.3})",
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

/// Times the infer task against the bare model loops on the same texts.
///
/// With a CSV input, the tweets are replayed, ingested and cleaned into a silver table in the
/// work folder first (not timed). Then each round times, on the distinct `cleaned_text`
/// values of silver, (a) the bare loop of one session with `threads` threads
/// ([`bench_bare_loop`]) and (b) as many bare loops of 1 thread side by side as the task's
/// default has sessions ([`bench_bare_sessions`]), both tokenized and padded before the clock
/// starts (the floors), then the whole [`infer`] task from silver into a fresh gold table
/// (c) with its defaults and (d) with `threads: <threads>` (one session), the floors and the
/// tasks in alternating order, so that every side sees the machine in the same state. Only
/// one side's sessions are alive at a time. This is what `tweetflow bench infer` prints.
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
    let model = opts.model_dir.display().to_string();
    let defaults = InferParams::new(silver.clone(), String::new(), model.clone());
    let sessions = defaults.sessions(None).0;
    let n_distinct = distinct.len();
    let options = ClassifierOptions {
        threads,
        labels: None,
    };
    let mut load_secs = Vec::new();
    let mut rounds = Vec::new();
    let mut gold_rows = 0;
    let mut task_rows_per_sec = Vec::new();
    let (mut task_rss, mut one_rss) = (0.0_f64, 0.0_f64);
    for round in 0..opts.rounds.max(1) {
        let task_first = round % 2 == 1;
        let gold = |name: &str| work.join(format!("{name}-{round}")).display().to_string();
        let mut default = InferParams::new(silver.clone(), gold("gold"), model.clone());
        default.batch_size = batch_size;
        let mut one = default.clone();
        one.table = gold("gold-one-session");
        one.threads = Some(threads);
        let mut r = InferBenchRound {
            task_first,
            ..Default::default()
        };
        for side in 0..4 {
            let side = if task_first { 3 - side } else { side };
            match side {
                0 => {
                    let (load, bare) =
                        bare_loop(&opts.model_dir, &options, &distinct, batch_size).await?;
                    load_secs.push(load);
                    (r.bare_secs, r.bare_tweets_per_sec) = (bare.seconds, bare.tweets_per_sec);
                }
                1 => {
                    let bare =
                        sessions_loop(&opts.model_dir, &distinct, batch_size, sessions).await?;
                    (r.sessions_bare_secs, r.sessions_bare_tweets_per_sec) =
                        (bare.seconds, bare.tweets_per_sec);
                }
                2 => {
                    crate::rss::reset_peak_rss();
                    let (secs, rows) = task_run(&default).await?;
                    task_rss = task_rss.max(crate::rss::peak_rss_mib().unwrap_or(0.0));
                    gold_rows = rows;
                    task_rows_per_sec.push(rows as f64 / secs);
                    (r.task_secs, r.task_tweets_per_sec) = (secs, n_distinct as f64 / secs);
                }
                _ => {
                    crate::rss::reset_peak_rss();
                    let (secs, _) = task_run(&one).await?;
                    one_rss = one_rss.max(crate::rss::peak_rss_mib().unwrap_or(0.0));
                    (r.one_session_task_secs, r.one_session_task_tweets_per_sec) =
                        (secs, n_distinct as f64 / secs);
                }
            }
        }
        r.task_vs_bare = r.task_tweets_per_sec / r.sessions_bare_tweets_per_sec;
        rounds.push(r);
    }
    let med = |f: fn(&InferBenchRound) -> f64| median(rounds.iter().map(f).collect());
    Ok(InferBenchReport {
        silver_rows,
        distinct_texts: n_distinct as u64,
        batch_size,
        threads,
        sessions,
        load_secs: median(load_secs),
        bare_tweets_per_sec: med(|r| r.bare_tweets_per_sec),
        sessions_bare_tweets_per_sec: med(|r| r.sessions_bare_tweets_per_sec),
        task_tweets_per_sec: med(|r| r.task_tweets_per_sec),
        one_session_task_tweets_per_sec: med(|r| r.one_session_task_tweets_per_sec),
        task_rows_per_sec: median(task_rows_per_sec),
        task_vs_bare: med(|r| r.task_vs_bare),
        best_task_vs_bare: best(&rounds, |r| r.task_tweets_per_sec)
            / best(&rounds, |r| r.sessions_bare_tweets_per_sec),
        rounds,
        gold_rows,
        task_peak_rss_mib: task_rss,
        one_session_task_peak_rss_mib: one_rss,
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
    let two_sessions = sessions_loop(model_dir, texts, batch_size, 2).await?;
    Ok((one_session.tweets_per_sec, two_sessions.tweets_per_sec))
}

/// (b) `count` bare loops of 1 thread side by side on parts of the texts
/// ([`bench_bare_sessions`]), with sessions of their own that are dropped before the next
/// side runs.
async fn sessions_loop(
    model_dir: &Path,
    texts: &Arc<Vec<String>>,
    batch_size: usize,
    count: usize,
) -> InferResult<BareLoopBench> {
    let one = ClassifierOptions {
        threads: 1,
        labels: None,
    };
    let mut sessions = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        sessions.push(load_classifier(model_dir, one.clone()).await?);
    }
    let texts = texts.clone();
    let r = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        bench_bare_sessions(&mut sessions, &refs, batch_size)
    })
    .await
    .map_err(InferError::Worker)?;
    Ok(r?)
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
