//! The reliability suite: faults and load injected into real `tweetflow` processes (the
//! binary under test runs as a child), reported as one table of figures.
//!
//! | scenario | module |
//! |---|---|
//! | `kill -9` of the engine during the main pipeline, then `--resume` | [`kill_engine`] |
//! | the scheduler daemon killed and restarted on a busy machine | [`scheduler`] |
//! | many runs of the main pipeline at once on the same tables | [`concurrent`] |
//! | disk full while writing a table and while writing the run store | [`disk_full`] |
//! | MLflow down, slow, answering 500 or 429 | [`mlflow_faults`] |
//! | the daemon killed during a run (resumed by its restart); a manual run's engine killed (`runs recover`) | [`interrupted`] |
//!
//! Every scenario compares the tables with an uninterrupted run of the same pipeline
//! ([`tables`]). [`Config::short`] is the form `cargo test` runs; [`Config::long`] the one
//! `make reliability` runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

pub mod concurrent;
pub mod disk_full;
pub mod fault_server;
pub mod interrupted;
pub mod kill_engine;
pub mod load;
pub mod mlflow_faults;
pub mod report;
pub mod runner;
pub mod scheduler;
pub mod tables;

pub use report::{Row, render};
pub use runner::Tweetflow;

/// Errors that stop the suite itself (not faults it measures).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A file or process operation of the suite failed.
    #[error("{what}: {source}")]
    Io {
        /// What the suite was doing.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The uninterrupted reference run failed, so nothing can be compared.
    #[error("the uninterrupted reference run failed: {0}")]
    Reference(String),
}

impl SuiteError {
    /// Maps an I/O error to [`SuiteError::Io`] doing `what`.
    pub fn io(what: &str) -> impl FnOnce(std::io::Error) -> SuiteError + '_ {
        move |source| SuiteError::Io {
            what: what.to_string(),
            source,
        }
    }
}

/// How much of each fault and load to inject.
#[derive(Clone, Debug)]
pub struct Config {
    /// `kill -9` of the engine during the main pipeline, each followed by `--resume`.
    pub engine_kills: usize,
    /// How long the scheduler daemon runs.
    pub scheduler_for: Duration,
    /// How many times the daemon is killed and restarted meanwhile.
    pub scheduler_kills: usize,
    /// When the daemon's memory is first measured (after its last restart).
    pub memory_after: Duration,
    /// Threads keeping the CPUs busy during the scheduler scenario.
    pub cpu_burners: usize,
    /// Runs of the main pipeline started at once.
    pub concurrent_runs: usize,
    /// Disk-full injections per place (table, run store).
    pub disk_full_each: usize,
    /// How long the slow MLflow server takes to answer each request.
    pub mlflow_delay: Duration,
    /// `MLFLOW_HTTP_REQUEST_TIMEOUT` for the MLflow faults (`None`: the client's default).
    pub mlflow_timeout: Option<Duration>,
    /// `MLFLOW_HTTP_REQUEST_MAX_RETRIES` for the MLflow faults (`None`: the client's default).
    pub mlflow_retries: Option<u32>,
    /// Kills of the scheduler daemon during a run, each resumed by the restarted daemon.
    pub daemon_resume_kills: usize,
    /// Kills of a manual run's engine, each followed by `runs recover`.
    pub manual_kills: usize,
    /// Seed of the random moments (kill times, restart delays).
    pub seed: u64,
    /// Only the scenarios whose names contain one of these (all when empty).
    pub only: Vec<String>,
}

impl Config {
    /// The short form (about two minutes), run by `cargo test`.
    pub fn short(seed: u64) -> Self {
        Config {
            engine_kills: 3,
            scheduler_for: Duration::from_secs(25),
            scheduler_kills: 2,
            memory_after: Duration::from_secs(5),
            cpu_burners: 1,
            concurrent_runs: 8,
            disk_full_each: 1,
            mlflow_delay: Duration::from_secs(5),
            mlflow_timeout: Some(Duration::from_secs(2)),
            mlflow_retries: Some(0),
            daemon_resume_kills: 2,
            manual_kills: 2,
            seed,
            only: Vec::new(),
        }
    }

    /// The long form (`make reliability`, about twenty minutes).
    pub fn long(seed: u64) -> Self {
        Config {
            engine_kills: 50,
            scheduler_for: Duration::from_secs(600),
            scheduler_kills: 20,
            memory_after: Duration::from_secs(60),
            cpu_burners: std::thread::available_parallelism().map_or(2, |n| n.get()),
            concurrent_runs: 16,
            disk_full_each: 3,
            mlflow_delay: Duration::from_secs(5),
            mlflow_timeout: None,
            mlflow_retries: None,
            daemon_resume_kills: 20,
            manual_kills: 20,
            seed,
            only: Vec::new(),
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| scenario.contains(o.as_str()))
    }
}

/// What every scenario shares: the binary, the reference tables, randomness, a runtime.
pub struct Ctx {
    /// The binary under test.
    pub tf: Tweetflow,
    /// The counts.
    pub config: Config,
    /// The tables of an uninterrupted run of the main pipeline.
    pub reference: tables::Snapshot,
    /// How long that run took.
    pub reference_time: Duration,
    /// Random moments, from the config's seed.
    pub rng: std::sync::Mutex<StdRng>,
    /// For reading tables and serving faults.
    pub rt: tokio::runtime::Runtime,
}

impl Ctx {
    /// Reads the tables under `root`.
    pub fn snapshot(&self, root: &std::path::Path) -> tables::Snapshot {
        self.rt.block_on(tables::snapshot(root))
    }

    /// A random duration in `[lo, hi]`.
    pub fn random_between(&self, lo: Duration, hi: Duration) -> Duration {
        use rand::Rng;
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let (lo, hi) = (
            lo.as_millis() as u64,
            hi.as_millis().max(lo.as_millis()) as u64,
        );
        Duration::from_millis(rng.random_range(lo..=hi))
    }
}

/// `http://127.0.0.1:<port>` where nothing listens (a port bound and released).
pub fn closed_port_url() -> String {
    format!(
        "http://127.0.0.1:{}",
        tweetflow_test_support::mlflow_server::free_port()
    )
}

/// Runs the reference run, then every scenario the config selects, printing progress on
/// stderr; returns the rows in the table's order.
pub fn run_suite(tf: &Tweetflow, config: Config) -> Result<Vec<Row>, SuiteError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(SuiteError::io("start a runtime"))?;
    let sb = runner::Sandbox::new(tf)?;
    let start = Instant::now();
    let out = sb.run_main("reference")?;
    let reference_time = start.elapsed();
    if !out.succeeded() {
        return Err(SuiteError::Reference(out.describe()));
    }
    let reference = rt.block_on(tables::snapshot(&sb.data()));
    if !reference.errors.is_empty() || reference.rows() == 0 {
        return Err(SuiteError::Reference(format!(
            "tables unreadable or empty: {:?}",
            reference.errors
        )));
    }
    eprintln!(
        "reference run: {} rows in {} tables, {:.1} s (seed {})",
        reference.rows(),
        tables::TABLES.len(),
        reference_time.as_secs_f64(),
        config.seed
    );
    let ctx = Ctx {
        tf: tf.clone(),
        rng: std::sync::Mutex::new(StdRng::seed_from_u64(config.seed)),
        config,
        reference,
        reference_time,
        rt,
    };
    type Scenario = fn(&Ctx) -> Result<Vec<Row>, SuiteError>;
    let scenarios: [(&str, Scenario); 6] = [
        ("kill-engine", kill_engine::run),
        ("scheduler", scheduler::run),
        ("concurrent", concurrent::run),
        ("disk-full", disk_full::run),
        ("mlflow", mlflow_faults::run),
        ("interrupted", interrupted::run),
    ];
    let mut rows = Vec::new();
    for (name, scenario) in scenarios {
        if !ctx.config.wants(name) {
            continue;
        }
        let t = Instant::now();
        eprintln!("{name}: running");
        let got = scenario(&ctx)?;
        for r in &got {
            eprintln!(
                "{name}: {} — {}/{} survived, {} lost, {} duplicated ({:.0} s)",
                r.fault,
                r.survived,
                r.injected,
                r.lost,
                r.duplicated,
                t.elapsed().as_secs_f64()
            );
        }
        rows.extend(got);
    }
    Ok(rows)
}

/// The `tweetflow` binary next to this one (`target/<profile>/tweetflow`).
pub fn sibling_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("tweetflow"), dir.join("../tweetflow")]
        .into_iter()
        .find(|p| p.is_file())
}
