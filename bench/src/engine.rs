//! `tweetflow bench engine`: generated DAGs of no-op tasks, timed end to end with the real
//! run store, against a bare tokio spawn-and-join of the same number of futures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tweetflow_engine::spec::{CachePolicy, RetryPolicy};
use tweetflow_engine::{Engine, Pipeline, Registry, RunOptions, RunStatus, TaskSpec};

use crate::error::BenchError;
use crate::heap::HeapCounter;
use crate::rss::peak_rss_mib;

/// Shapes of generated DAGs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Every task independent.
    Wide,
    /// One chain.
    Deep,
    /// Layers of 100 tasks, each depending on one task of the layer before.
    Layered,
}

impl Shape {
    /// The shape's name in lower case.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Wide => "wide",
            Shape::Deep => "deep",
            Shape::Layered => "layered",
        }
    }
}

/// A pipeline of `n` no-op tasks in the given shape.
pub fn generate(n: usize, shape: Shape) -> Pipeline {
    let tasks = (0..n)
        .map(|i| {
            let depends_on = match shape {
                Shape::Wide => vec![],
                Shape::Deep if i > 0 => vec![format!("t{}", i - 1)],
                Shape::Layered if i >= 100 => vec![format!("t{}", i - 100)],
                _ => vec![],
            };
            TaskSpec {
                id: format!("t{i}"),
                task_type: "noop".into(),
                with: serde_json::json!({}),
                depends_on,
                retries: RetryPolicy::default(),
                timeout: None,
                cache: CachePolicy::default(),
                description: None,
                executor: Default::default(),
                shards: 1,
                expect: Default::default(),
            }
        })
        .collect();
    Pipeline {
        name: format!("bench_{}", shape.name()),
        description: None,
        params: Default::default(),
        tasks,
        spec_hash: String::new(),
        schedule: None,
        trigger: None,
        trigger_slots: Vec::new(),
        secrets: Vec::new(),
        retention: None,
        sections: Default::default(),
    }
}

/// One timed run of a generated DAG.
#[derive(Clone, Debug, Serialize)]
pub struct ShapeRun {
    /// The DAG's shape.
    pub shape: Shape,
    /// Wall time of the run.
    pub wall: Duration,
    /// Peak heap above the live bytes before the run.
    pub peak_heap_bytes: usize,
}

/// Peak heap per task during a run of `tasks` independent tasks.
#[derive(Clone, Debug, Serialize)]
pub struct HeapPerTask {
    /// Tasks in the DAG.
    pub tasks: usize,
    /// Peak heap above the live bytes before the run, divided by `tasks`.
    pub bytes_per_task: f64,
}

/// Measurements of [`bench_engine`]; its `Display` is the table `tweetflow bench engine`
/// prints.
#[derive(Clone, Debug, Serialize)]
pub struct EngineBenchReport {
    /// Tasks per DAG.
    pub tasks: usize,
    /// Wall time of a bare tokio spawn-and-join of `tasks` futures.
    pub bare: Duration,
    /// One run per shape.
    pub runs: Vec<ShapeRun>,
    /// Wide DAGs of a tenth of `tasks` and of `tasks`: equal bytes per task mean linear growth.
    pub heap_per_task: Vec<HeapPerTask>,
    /// Peak resident memory of the process in MiB (`VmHWM`).
    pub peak_rss_mib: f64,
}

impl std::fmt::Display for EngineBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.tasks;
        writeln!(
            f,
            "engine benchmark: {n} no-op tasks per DAG, run store on disk, max_parallel = cores"
        )?;
        writeln!(
            f,
            "{:<8} {:>10} {:>12} {:>14} {:>16} {:>14}",
            "shape", "wall", "tasks/s", "overhead/task", "vs bare tokio", "peak heap"
        )?;
        for run in &self.runs {
            let wall = run.wall.as_secs_f64();
            writeln!(
                f,
                "{:<8} {:>9.3}s {:>12.0} {:>11.1} µs {:>15.1}x {:>10.1} MiB",
                run.shape.name(),
                wall,
                n as f64 / wall,
                wall / n as f64 * 1e6,
                wall / self.bare.as_secs_f64().max(1e-9),
                run.peak_heap_bytes as f64 / (1024.0 * 1024.0),
            )?;
        }
        writeln!(f, "\npeak heap per task during a run (wide DAGs):")?;
        for h in &self.heap_per_task {
            writeln!(
                f,
                "  {:>7} tasks: {:>8.2} KiB/task",
                h.tasks,
                h.bytes_per_task / 1024.0
            )?;
        }
        if let [small, large] = &self.heap_per_task[..] {
            writeln!(
                f,
                "  ratio large/small per task: {:.2} (1.0 = linear)",
                large.bytes_per_task / small.bytes_per_task.max(1.0)
            )?;
        }
        write!(
            f,
            "\npeak RSS: {} MiB; bare tokio spawn+join of {n} futures: {:.1} µs/task",
            self.peak_rss_mib as u64,
            self.bare.as_secs_f64() * 1e6 / n as f64
        )
    }
}

async fn bare_tokio(n: usize) -> Duration {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        set.spawn(async move { i });
    }
    while set.join_next().await.is_some() {}
    start.elapsed()
}

/// Runs one DAG; returns its wall time and peak heap above the live bytes before it.
pub(crate) async fn timed_run(
    engine: &Engine,
    pipeline: Pipeline,
    heap: &dyn HeapCounter,
) -> Result<(Duration, usize), BenchError> {
    let name = pipeline.name.clone();
    let base = heap.live_bytes();
    heap.reset_peak();
    let start = Instant::now();
    let record = engine
        .run(pipeline, "bench", "", RunOptions::default())
        .await?;
    let wall = start.elapsed();
    let peak = heap.peak_bytes().saturating_sub(base);
    if record.status != RunStatus::Succeeded {
        return Err(BenchError::RunFailed { pipeline: name });
    }
    Ok((wall, peak))
}

/// Runs DAGs of `n` no-op tasks of every [`Shape`] with the tasks of `registry` (which must
/// hold `noop`) and a run store in a temporary folder; heap figures come from `heap`.
pub async fn bench_engine(
    registry: Arc<Registry>,
    n: usize,
    heap: &dyn HeapCounter,
) -> Result<EngineBenchReport, BenchError> {
    let dir = tempfile::tempdir().map_err(BenchError::TempDir)?;
    let engine = Engine::new(registry, dir.path());
    let bare = bare_tokio(n).await;
    let mut runs = Vec::new();
    for shape in [Shape::Wide, Shape::Deep, Shape::Layered] {
        let (wall, peak_heap_bytes) = timed_run(&engine, generate(n, shape), heap).await?;
        runs.push(ShapeRun {
            shape,
            wall,
            peak_heap_bytes,
        });
    }
    let mut heap_per_task = Vec::new();
    for size in [(n / 10).max(1), n] {
        let (_, peak) = timed_run(&engine, generate(size, Shape::Wide), heap).await?;
        heap_per_task.push(HeapPerTask {
            tasks: size,
            bytes_per_task: peak as f64 / size as f64,
        });
    }
    Ok(EngineBenchReport {
        tasks: n,
        bare,
        runs,
        heap_per_task,
        peak_rss_mib: peak_rss_mib().unwrap_or(0.0),
    })
}
