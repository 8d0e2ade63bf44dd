//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A small, fast DAG engine: YAML pipelines of registered Rust tasks.
#[derive(Debug, Parser)]
#[command(name = "tweetflow", version, about)]
pub struct Cli {
    /// Format of the logs on stderr (filter them with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
    /// Print the full log stream on stderr (`-v`: info, `-vv`: debug) instead of `run`'s
    /// one line per task; `RUST_LOG` does the same with any filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Where runs are recorded.
    #[arg(
        long,
        global = true,
        env = "TWEETFLOW_RUNS_DIR",
        default_value = "runs"
    )]
    pub runs_dir: PathBuf,
    /// The web UI's address, for links to run pages in alerts (`notify:`).
    #[arg(long, global = true, env = "TWEETFLOW_UI_URL")]
    pub ui_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for tweetflow_engine::logging::LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Text => Self::Text,
            LogFormatArg::Json => Self::Json,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline (or resume a run).
    Run(RunArgs),
    /// Check pipeline files and report every problem (exit 2 if any).
    Validate {
        /// Pipeline files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the registered task types with their params and defaults.
    Tasks {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the pipeline format (for editors).
    Schema,
    /// Draw a pipeline's DAG.
    Graph {
        /// The pipeline file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Run pipelines on their cron schedules and when their trigger tables get new versions
    /// (a long-running daemon), or print next fire times and watched tables.
    Schedule {
        /// Pipeline files, or directories whose scheduled or triggered `*.yaml` pipelines are
        /// all run.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print the next N fire times of each pipeline (in its zone and UTC), and the tables
        /// it watches with the version consumed, and exit.
        #[arg(long, value_name = "N")]
        next: Option<usize>,
        /// Start the triggered runs due now (tables with unconsumed versions), wait for them
        /// and exit; cron schedules are not run.
        #[arg(long, conflicts_with = "next")]
        once: bool,
        /// On SIGTERM/SIGINT: how long active runs may take to finish before they are cancelled.
        #[arg(long, default_value = "30s", value_parser = parse_duration_arg)]
        grace: std::time::Duration,
        /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; port 0 picks
        /// a free one, printed at start).
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Turn a Sentiment140 CSV into landing JSON-lines files (simulates the tweet stream).
    Replay(ReplayArgs),
    /// Register and inspect sentiment models in the MLflow model registry.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Inspect and maintain Delta tables.
    Table {
        #[command(subcommand)]
        command: TableCommand,
    },
    /// Alerts of a pipeline's `notify:` section.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Inspect recorded runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Serve a web page of the pipelines, schedules and runs (start, cancel and resume runs).
    Ui(UiArgs),
    /// Run task attempts outside the engine (what executors start on workers).
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// Measure the engine.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

/// Arguments of `tweetflow run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline file (not needed with --resume).
    #[arg(required_unless_present = "resume")]
    pub file: Option<PathBuf>,
    /// Override a param: NAME=VALUE (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Most tasks running at once (default: number of cores).
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// Cancel the run as soon as a task fails.
    #[arg(long)]
    pub fail_fast: bool,
    /// Neither read nor write the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Run TASK even if the cache has its result (repeatable).
    #[arg(long, value_name = "TASK")]
    pub refresh: Vec<String>,
    /// Resume run RUN_ID: only tasks that did not succeed run again.
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["file", "params"])]
    pub resume: Option<String>,
    /// Print the run record as JSON instead of the summary table.
    #[arg(long)]
    pub json: bool,
    /// Streaming mode: run again as micro-batches when new files land or each interval.
    #[arg(long, conflicts_with = "resume")]
    pub watch: bool,
    /// With --watch: longest wait between batches.
    #[arg(long, default_value = "5s", value_parser = parse_duration_arg, requires = "watch")]
    pub interval: std::time::Duration,
    /// With --watch: stop after this long without new data.
    #[arg(long, value_parser = parse_duration_arg, requires = "watch")]
    pub until_idle: Option<std::time::Duration>,
    /// With --watch: another directory whose new files start a batch (repeatable).
    #[arg(long, requires = "watch")]
    pub watch_path: Vec<PathBuf>,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, tweetflow_engine::DurationError> {
    tweetflow_engine::parse_duration(text)
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

/// Arguments of `tweetflow ui`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Pipeline files, or directories of them (default: `pipelines`).
    pub paths: Vec<PathBuf>,
    /// Address to listen on (a non-loopback address needs --token).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Token that actions (start, cancel, resume) need (default: a random one, printed).
    #[arg(long, env = "TWEETFLOW_UI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `tweetflow graph` formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    /// Levels of tasks.
    Text,
    /// Graphviz dot.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// `tweetflow task` subcommands.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run one resolved task attempt (written by the engine) and write its result; log lines
    /// go to stdout as JSON. Exit 0 success, 10 retryable, 11 fatal, 12 configuration error,
    /// 13 timeout, 130 cancelled.
    Exec {
        /// The resolved attempt (`attempt.json` under the run's `exec/` directory); without
        /// it, the attempt is read from `$TWEETFLOW_ATTEMPT` (sent by an executor whose
        /// workers share no disk with the engine).
        file: Option<PathBuf>,
        /// Where to write the attempt's output or error (JSON, written atomically); without
        /// it, one line starting `@@tweetflow-result@@ ` on stdout, after the log lines.
        #[arg(long)]
        result: Option<PathBuf>,
    },
}

/// `tweetflow runs` subcommands.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test message to each channel of a pipeline's `notify:` and print what each
    /// answered (exit 1 if one failed).
    Test {
        /// The pipeline file.
        file: PathBuf,
    },
}

/// `runs` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Show only the newest N runs (0: all of them).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Ask the process executing a run to cancel it.
    Cancel {
        /// The run id.
        run_id: String,
    },
    /// Remove the runs the retention policies let go, and cache entries whose run is gone.
    ///
    /// A pipeline's policy is the `retention:` of its newest run, else the default from
    /// TWEETFLOW_RETENTION_KEEP_LAST / _MAX_AGE / _KEEP_FAILED; without either nothing of the
    /// pipeline is removed. Running runs, runs holding the newest cached output of a task, the
    /// scheduler's last fired run and, with keep_failed, failed runs are always kept.
    Prune {
        /// Only the runs of this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// Print what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resume every interrupted run (its engine died), or mark it failed with --fail.
    ///
    /// Runs are taken one at a time, oldest first; each resume re-runs only what did not
    /// succeed, as `run --resume` does. A run named that is not interrupted is left as it is.
    Recover {
        /// Only these runs (default: every interrupted run).
        run_ids: Vec<String>,
        /// Only the runs of this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// Print what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Mark the runs failed (reason `engine died`) instead of resuming them.
        #[arg(long)]
        fail: bool,
    },
    /// Show one run.
    Show {
        /// The run id.
        run_id: String,
        /// Print the run record as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `tweetflow replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The Sentiment140 CSV (`.csv` or `.csv.gz`).
    #[arg(long, default_value = "datasets/sentiment140/training.csv.gz")]
    pub csv: String,
    /// The landing folder.
    #[arg(long, default_value = "data/landing")]
    pub landing: String,
    /// Tweets per file.
    #[arg(long, default_value_t = 1000)]
    pub tweets_per_file: usize,
    /// At most this many tweets.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Shuffle with this seed before `--limit`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Wait between files, e.g. `500ms`.
    #[arg(long)]
    pub delay: Option<String>,
}

/// `tweetflow model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Upload a model directory (model.onnx, tokenizer.json, config.json, manifest.json) to
    /// MLflow (`MLFLOW_TRACKING_URI`), create a model version and optionally set an alias.
    Register {
        /// The model directory.
        dir: PathBuf,
        /// Registered model name.
        #[arg(long)]
        name: String,
        /// Alias to point at the new version (e.g. production).
        #[arg(long)]
        alias: Option<String>,
        /// Register only if the registry has no version with this alias yet.
        #[arg(long, conflicts_with = "if_changed")]
        if_missing: bool,
        /// Register only if the alias does not already point at a version of this very
        /// directory (same manifest SHA-256): a retrained model is registered, a rerun is not.
        #[arg(long, requires = "alias")]
        if_changed: bool,
        /// The MLflow run that built the model (default: `MLFLOW_RUN_ID`, which a pipeline's
        /// `command` tasks get): the files go into its artifacts and the version's source is
        /// `runs:/<run>/model`. Without it, a run of the `tweetflow-models` experiment holds them.
        #[arg(long, env = "MLFLOW_RUN_ID")]
        run_id: Option<String>,
    },
    /// Resolve a model URI (`models:/NAME@ALIAS`, `/VERSION`, `/latest`, `/Stage`) or a
    /// directory, download it into the local cache and check it loads.
    Resolve {
        /// The URI or directory.
        uri: String,
        /// Local cache of downloaded versions.
        #[arg(long, default_value = "data/model-cache")]
        cache_dir: PathBuf,
    },
}

/// `tweetflow table` subcommands.
#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Schema, version, row count, file count and history.
    Show {
        /// Table location.
        table: String,
        /// History entries to print.
        #[arg(long, default_value_t = 10)]
        history: usize,
    },
    /// Compact small files (optionally sorting by a column).
    Optimize {
        /// Table location.
        table: String,
        /// Target file size in MB.
        #[arg(long, default_value_t = 32)]
        target_size_mb: u64,
        /// Sort rows by this column inside compacted files.
        #[arg(long)]
        zorder_by: Option<String>,
    },
    /// Delete files no longer referenced and older than the retention.
    Vacuum {
        /// Table location.
        table: String,
        /// Retention (at least 7 days), e.g. `168h`.
        #[arg(long, default_value = "168h")]
        retention: String,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete tables and their progress records.
    Reset {
        /// Table locations.
        #[arg(required = true)]
        tables: Vec<String>,
        /// Really delete.
        #[arg(long)]
        confirm: bool,
    },
}

/// `tweetflow bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Run generated DAGs of no-op tasks and print tasks/s, overhead per task and memory.
    Engine {
        /// Tasks per DAG.
        #[arg(long, default_value_t = 10_000)]
        tasks: usize,
        /// Instead: the overhead per task with the OTLP trace export on vs off, alternating in
        /// one process (needs OTEL_EXPORTER_OTLP_ENDPOINT).
        #[arg(long)]
        trace_export: bool,
    },
    /// Replay the shared training tweets through ingest and clean; tweets/s, peak memory and
    /// the ratio to a plain Parquet writer.
    Medallion {
        /// The CSV to replay.
        #[arg(long, default_value = "datasets/sentiment140/training.csv.gz")]
        csv: std::path::PathBuf,
        /// Repeat the tweets with new ids to about 1.6 million.
        #[arg(long)]
        full: bool,
        /// Also run on object storage under this root (e.g. `s3://bucket/bench`; endpoint and
        /// credentials from the `AWS_*` variables) and print it beside the local figures.
        #[arg(long)]
        root: Option<String>,
    },
    /// Bare ONNX Runtime loops (one session of N threads; N sessions of 1 thread side by
    /// side) vs the whole infer task (read silver, tokenize, infer, write gold) with its
    /// defaults and with `threads: N`, on the same tweets: tweets/s and ratios.
    Infer {
        /// A Sentiment140 CSV (replayed, ingested and cleaned first, untimed) or a silver table.
        #[arg(long, default_value = "datasets/sentiment140/training.csv.gz")]
        input: std::path::PathBuf,
        /// The model directory.
        #[arg(long, default_value = "data/model/tweet-sentiment")]
        model: std::path::PathBuf,
        /// Texts per batch.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// At most this many tweets.
        #[arg(long)]
        limit: Option<usize>,
        /// Rounds of (floors, tasks), alternating their order; medians are reported. On a
        /// machine whose speed drifts, many short rounds (e.g. `--limit 6000`) measure best.
        #[arg(long, default_value_t = tweetflow_bench::infer::DEFAULT_BENCH_ROUNDS)]
        rounds: usize,
        /// Instead: run the infer task split into each of these shard counts (e.g. `1,2`)
        /// through the engine, beside the bare floors of 1 session × 2 threads and 2 sessions
        /// × 1 thread.
        #[arg(long, value_delimiter = ',')]
        shards: Vec<u32>,
        /// With --shards: `local` (one `tweetflow task exec` process per shard) or `ray`.
        #[arg(long, default_value = "local", requires = "shards")]
        executor: String,
        /// With --executor ray: the Ray dashboard's address.
        #[arg(long, env = "RAY_ADDRESS", default_value = "http://127.0.0.1:8265")]
        ray_address: String,
    },
    /// Table triggers: Delta commit -> triggered run start (median, p95) on local disk and
    /// optionally object storage, requests per poll, and one daemon watching many tables.
    Trigger {
        /// Commits timed per location.
        #[arg(long, default_value_t = 50)]
        commits: usize,
        /// The pipelines' `poll`.
        #[arg(long, default_value = "500ms", value_parser = parse_duration_arg)]
        poll: std::time::Duration,
        /// Tables one daemon watches in the many-tables part (0 skips it).
        #[arg(long, default_value_t = 100)]
        tables: usize,
        /// Also time commits under this root (e.g. `s3://bucket/bench`; endpoint and
        /// credentials from the `AWS_*` variables).
        #[arg(long)]
        root: Option<String>,
    },
    /// Log 10,000 metric points to the MLflow server (`MLFLOW_TRACKING_URI`), batched.
    Mlflow {
        /// Metric points.
        #[arg(long, default_value_t = 10_000)]
        points: usize,
    },
}
