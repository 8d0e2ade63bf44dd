//! Table triggers: how long from a Delta commit to the start of the run it triggers (median
//! and p95), object-store requests per poll, and a daemon watching many tables.
//!
//! Everything runs in this process: the scheduler with the Delta table watcher, the
//! pipelines (one `noop` task each), and the commits (one row per commit). A commit is timed
//! from the moment it returns to the run record's creation time; the next commit waits until
//! the run is settled, so each commit starts its own run.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use deltalake::arrow::array::Int64Array;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{Action, DataType, PrimitiveType};
use deltalake::writer::DeltaWriter;
use tokio_util::sync::CancellationToken;
use tweetflow_delta::table;
use tweetflow_engine::scheduler::{Scheduled, Scheduler, SystemClock};
use tweetflow_engine::{
    BoxFuture, Engine, LoadOptions, Registry, RunStore, TableVersions, TableWatcher, WatchError,
};
use tweetflow_tasks::DeltaWatcher;

use crate::BenchError;

/// Appends one row (`v` = `value`) to the table at `location` as one commit, creating the
/// table (version 0, no rows) first when it is missing; the new version.
pub async fn append_row(location: &str, value: i64) -> Result<i64, BenchError> {
    let schema = table::schema_of(&[("v", DataType::Primitive(PrimitiveType::Long))])?;
    let mut t = table::open_or_create(location, &schema, &[]).await?;
    let arrow = table::arrow_schema(&t, location)?;
    let batch = RecordBatch::try_new(arrow.clone(), vec![Arc::new(Int64Array::from(vec![value]))])
        .map_err(|e| tweetflow_delta::StorageError::format(location, e))?;
    let mut writer = table::writer_for(&t, location, arrow)?;
    writer
        .write(batch)
        .await
        .map_err(|e| tweetflow_delta::StorageError::delta(location, e))?;
    let adds = writer
        .flush()
        .await
        .map_err(|e| tweetflow_delta::StorageError::delta(location, e))?;
    Ok(table::commit(
        &mut t,
        location,
        table::CommitRequest {
            actions: adds.into_iter().map(Action::Add).collect(),
            operation: tweetflow_delta::commit::append_op(),
            txn: None,
            info: serde_json::Value::Null,
        },
    )
    .await?)
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct TriggerBenchOptions {
    /// Commits timed per location.
    pub commits: usize,
    /// The pipelines' `poll`.
    pub poll: Duration,
    /// Tables watched by one daemon in the many-tables part (0: skip it).
    pub tables: usize,
    /// Also time commits under this object-store root (e.g. `s3://bucket/bench`).
    pub remote_root: Option<String>,
}

/// Latency figures of one location.
#[derive(Clone, Debug)]
pub struct Latency {
    /// Where the table was.
    pub location: String,
    /// Commit → run start, per commit, in milliseconds (sorted).
    pub millis: Vec<f64>,
    /// Table listings made while idle, and the object-store requests they cost.
    pub idle_listings: u64,
    /// Object-store requests counted during those listings (0 on local disk).
    pub idle_requests: u64,
}

impl Latency {
    fn quantile(&self, q: f64) -> f64 {
        if self.millis.is_empty() {
            return f64::NAN;
        }
        let i = ((self.millis.len() - 1) as f64 * q).round() as usize;
        self.millis[i]
    }
}

/// The many-tables part.
#[derive(Clone, Debug)]
pub struct ManyTables {
    /// Tables (one pipeline each).
    pub tables: usize,
    /// Listings per second while idle.
    pub listings_per_s: f64,
    /// CPU of this process while idle, in percent of one core.
    pub idle_cpu_percent: f64,
    /// Commit → run start on one of them, median, milliseconds.
    pub median_ms: f64,
}

/// The report `tweetflow bench trigger` prints.
#[derive(Clone, Debug)]
pub struct TriggerBenchReport {
    /// The poll interval used.
    pub poll: Duration,
    /// One entry per location.
    pub latencies: Vec<Latency>,
    /// The many-tables part, when run.
    pub many: Option<ManyTables>,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: Option<f64>,
}

impl fmt::Display for TriggerBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "table triggers, poll {} ms: commit -> run start",
            self.poll.as_millis()
        )?;
        for l in &self.latencies {
            let per_poll = if l.idle_listings == 0 {
                f64::NAN
            } else {
                l.idle_requests as f64 / l.idle_listings as f64
            };
            writeln!(
                f,
                "  {:<40} {} commits: median {:.0} ms, p95 {:.0} ms, max {:.0} ms; idle: {} listings, {:.2} object-store requests per listing",
                l.location,
                l.millis.len(),
                l.quantile(0.5),
                l.quantile(0.95),
                l.millis.last().copied().unwrap_or(f64::NAN),
                l.idle_listings,
                per_poll
            )?;
        }
        if let Some(m) = &self.many {
            writeln!(
                f,
                "  one daemon, {} tables: {:.1} listings/s idle, {:.1}% of a core idle, commit -> run start median {:.0} ms",
                m.tables, m.listings_per_s, m.idle_cpu_percent, m.median_ms
            )?;
        }
        if let Some(rss) = self.peak_rss_mib {
            writeln!(f, "  peak RSS {rss:.1} MiB")?;
        }
        Ok(())
    }
}

/// Counts the listings made through the Delta watcher.
#[derive(Default)]
struct Counting {
    inner: DeltaWatcher,
    listings: AtomicU64,
}

impl TableWatcher for Counting {
    fn versions<'a>(
        &'a self,
        location: &'a str,
        after: Option<i64>,
    ) -> BoxFuture<'a, Result<TableVersions, WatchError>> {
        self.listings.fetch_add(1, Ordering::Relaxed);
        self.inner.versions(location, after)
    }
}

/// Runs the benchmark.
pub async fn bench_trigger(
    registry: Arc<Registry>,
    options: &TriggerBenchOptions,
) -> Result<TriggerBenchReport, BenchError> {
    let scratch = tempfile::tempdir().map_err(BenchError::TempDir)?;
    let mut latencies = Vec::new();
    let local = scratch.path().join("lake").display().to_string();
    latencies.push(latency(&registry, options, scratch.path(), &local, "local").await?);
    if let Some(root) = &options.remote_root {
        let root = format!(
            "{}/trigger-{}",
            root.trim_end_matches('/'),
            std::process::id()
        );
        latencies.push(latency(&registry, options, scratch.path(), &root, "remote").await?);
    }
    let many = if options.tables > 0 {
        Some(many_tables(&registry, options, scratch.path()).await?)
    } else {
        None
    };
    Ok(TriggerBenchReport {
        poll: options.poll,
        latencies,
        many,
        peak_rss_mib: crate::peak_rss_mib(),
    })
}

fn pipelines(
    registry: &Registry,
    tables: &[String],
    poll: Duration,
) -> Result<Vec<Scheduled>, BenchError> {
    let options = LoadOptions {
        registry,
        param_overrides: &[],
        env: &|_| None,
    };
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let text = format!(
                "name: bench_trigger_{i}\ntrigger:\n  tables: {{ t: \"{t}\" }}\n  poll: {}ms\ntasks:\n  run:\n    type: noop\n",
                poll.as_millis()
            );
            let pipeline = tweetflow_engine::load_str("bench.yaml", &text, &options)
                .map_err(|d| BenchError::Pipeline(d.to_string()))?;
            Ok(Scheduled {
                pipeline,
                file: "bench.yaml".into(),
                text,
            })
        })
        .collect()
}

struct Daemon {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), tweetflow_engine::scheduler::SchedulerError>>,
    watcher: Arc<Counting>,
    store: RunStore,
}

impl Daemon {
    fn start(registry: &Arc<Registry>, runs: &Path, pipelines: Vec<Scheduled>) -> Daemon {
        let engine = Engine::new(registry.clone(), runs);
        let store = engine.store().clone();
        let watcher = Arc::new(Counting::default());
        let scheduler =
            Scheduler::new(engine, Arc::new(SystemClock)).with_table_watcher(watcher.clone());
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            scheduler
                .run(pipelines, token, Duration::from_secs(10))
                .await
        });
        Daemon {
            stop,
            handle,
            watcher,
            store,
        }
    }

    fn consumed(&self, pipeline: &str) -> Option<i64> {
        let state = self.store.trigger_state(pipeline).ok()?;
        if state.pending.is_some() {
            return None;
        }
        state.tables.get("t").and_then(|c| c.consumed)
    }

    async fn until_consumed(&self, pipeline: &str, version: i64) -> Result<(), BenchError> {
        let start = Instant::now();
        while self.consumed(pipeline).is_none_or(|c| c < version) {
            if start.elapsed() > Duration::from_secs(120) {
                return Err(BenchError::Timeout(format!(
                    "{pipeline} consumed version {version}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Commits one row to `table` and waits for the run it starts; commit → run start, ms.
    async fn time_commit(&self, pipeline: &str, table: &str, n: i64) -> Result<f64, BenchError> {
        let version = append_row(table, n).await?;
        let committed = Utc::now();
        let start = Instant::now();
        // The run's decision: pending, or already settled into the history.
        let covers = |f: &tweetflow_engine::store::TriggerFire| {
            f.ranges
                .get("t")
                .is_some_and(|r| r.from <= version && r.to >= version)
        };
        let run_id = loop {
            if let Ok(state) = self.store.trigger_state(pipeline)
                && let Some(f) = state
                    .pending
                    .iter()
                    .chain(state.history.iter().rev())
                    .find(|f| covers(f))
            {
                break f.run_id.clone();
            }
            if start.elapsed() > Duration::from_secs(120) {
                return Err(BenchError::Timeout(format!("a run for version {version}")));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let created = loop {
            if let Ok(record) = self.store.load(&run_id) {
                break record.created_at;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        self.until_consumed(pipeline, version).await?;
        Ok((created - committed).num_microseconds().unwrap_or(0) as f64 / 1000.0)
    }

    async fn stop(self) -> Result<(), BenchError> {
        self.stop.cancel();
        match self.handle.await {
            Ok(result) => Ok(result?),
            Err(e) => Err(BenchError::Timeout(format!("the scheduler to stop ({e})"))),
        }
    }
}

async fn latency(
    registry: &Arc<Registry>,
    options: &TriggerBenchOptions,
    scratch: &Path,
    root: &str,
    label: &str,
) -> Result<Latency, BenchError> {
    let table = format!("{root}/gold");
    let first = append_row(&table, -1).await?;
    let runs = scratch.join(format!("runs-{label}"));
    let daemon = Daemon::start(
        registry,
        &runs,
        pipelines(registry, std::slice::from_ref(&table), options.poll)?,
    );
    daemon.until_consumed("bench_trigger_0", first).await?;
    let mut millis = Vec::with_capacity(options.commits);
    for n in 0..options.commits {
        millis.push(
            daemon
                .time_commit("bench_trigger_0", &table, n as i64)
                .await?,
        );
    }
    millis.sort_by(f64::total_cmp);
    // Idle: what polling costs with nothing new.
    let listings = daemon.watcher.listings.load(Ordering::Relaxed);
    let requests = tweetflow_delta::counting::requests();
    tokio::time::sleep(options.poll * 10).await;
    let idle_listings = daemon.watcher.listings.load(Ordering::Relaxed) - listings;
    let idle_requests = tweetflow_delta::counting::requests() - requests;
    daemon.stop().await?;
    Ok(Latency {
        location: table,
        millis,
        idle_listings,
        idle_requests,
    })
}

/// CPU seconds of this process (user + system), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

async fn many_tables(
    registry: &Arc<Registry>,
    options: &TriggerBenchOptions,
    scratch: &Path,
) -> Result<ManyTables, BenchError> {
    let tables: Vec<String> = (0..options.tables)
        .map(|i| scratch.join(format!("many/t{i}")).display().to_string())
        .collect();
    let mut firsts = BTreeMap::new();
    for t in &tables {
        firsts.insert(t.clone(), append_row(t, -1).await?);
    }
    let daemon = Daemon::start(
        registry,
        &scratch.join("runs-many"),
        pipelines(registry, &tables, options.poll)?,
    );
    for (i, t) in tables.iter().enumerate() {
        daemon
            .until_consumed(&format!("bench_trigger_{i}"), firsts[t])
            .await?;
    }
    let listings = daemon.watcher.listings.load(Ordering::Relaxed);
    let cpu = cpu_seconds();
    let wall = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let secs = wall.elapsed().as_secs_f64();
    let listings_per_s = (daemon.watcher.listings.load(Ordering::Relaxed) - listings) as f64 / secs;
    let idle_cpu_percent = (cpu_seconds() - cpu) / secs * 100.0;
    let mut millis = Vec::new();
    for n in 0..10usize {
        let i = (n * 37) % tables.len();
        millis.push(
            daemon
                .time_commit(&format!("bench_trigger_{i}"), &tables[i], n as i64)
                .await?,
        );
    }
    millis.sort_by(f64::total_cmp);
    daemon.stop().await?;
    Ok(ManyTables {
        tables: tables.len(),
        listings_per_s,
        idle_cpu_percent,
        median_ms: millis[millis.len() / 2],
    })
}
