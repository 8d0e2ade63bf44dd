//! `tweetflow bench engine`: generated DAGs of no-op tasks, timed end to end with the real
//! run store, against a bare tokio spawn-and-join of the same number of futures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tweetflow_engine::spec::{CachePolicy, RetryPolicy};
use tweetflow_engine::{Engine, Pipeline, Registry, RunOptions, RunStatus, TaskSpec};

/// Shapes of generated DAGs.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Every task independent.
    Wide,
    /// One chain.
    Deep,
    /// Layers of 100 tasks, each depending on one task of the layer before.
    Layered,
}

fn generate(n: usize, shape: Shape) -> Pipeline {
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
            }
        })
        .collect();
    Pipeline {
        name: format!("bench_{shape:?}").to_lowercase(),
        description: None,
        params: Default::default(),
        tasks,
        spec_hash: String::new(),
        schedule: None,
        sections: Default::default(),
    }
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
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

/// Runs the benchmark and prints its table.
pub async fn engine(registry: Arc<Registry>, n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let engine = Engine::new(registry, dir.path());
    let bare = bare_tokio(n).await;
    println!("engine benchmark: {n} no-op tasks per DAG, run store on disk, max_parallel = cores");
    println!(
        "{:<8} {:>10} {:>12} {:>14} {:>16} {:>14}",
        "shape", "wall", "tasks/s", "overhead/task", "vs bare tokio", "peak heap"
    );
    for shape in [Shape::Wide, Shape::Deep, Shape::Layered] {
        let pipeline = generate(n, shape);
        let base = crate::alloc::live_bytes();
        crate::alloc::reset_peak();
        let start = Instant::now();
        let record = engine
            .run(pipeline, "bench", "", RunOptions::default())
            .await?;
        let wall = start.elapsed();
        let peak = crate::alloc::peak_bytes().saturating_sub(base);
        anyhow::ensure!(
            record.status == RunStatus::Succeeded,
            "bench run {shape:?} did not succeed"
        );
        let per_task = wall.as_secs_f64() / n as f64;
        println!(
            "{:<8} {:>9.3}s {:>12.0} {:>11.1} µs {:>15.1}x {:>10.1} MiB",
            format!("{shape:?}").to_lowercase(),
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            per_task * 1e6,
            wall.as_secs_f64() / bare.as_secs_f64().max(1e-9),
            peak as f64 / (1024.0 * 1024.0),
        );
    }
    // Peak heap during runs of two sizes: equal bytes per task mean linear growth.
    println!("\npeak heap per task during a run (wide DAGs):");
    let mut per_task = Vec::new();
    for size in [(n / 10).max(1), n] {
        let base = crate::alloc::live_bytes();
        crate::alloc::reset_peak();
        let record = engine
            .run(
                generate(size, Shape::Wide),
                "bench",
                "",
                RunOptions::default(),
            )
            .await?;
        anyhow::ensure!(
            record.status == RunStatus::Succeeded,
            "memory run did not succeed"
        );
        let bytes = crate::alloc::peak_bytes().saturating_sub(base) as f64 / size as f64;
        per_task.push(bytes);
        println!("  {size:>7} tasks: {:>8.2} KiB/task", bytes / 1024.0);
    }
    if let [small, large] = per_task[..] {
        println!(
            "  ratio large/small per task: {:.2} (1.0 = linear)",
            large / small.max(1.0)
        );
    }
    println!(
        "\npeak RSS: {} MiB; bare tokio spawn+join of {n} futures: {:.1} µs/task",
        rss_kib("VmHWM:") / 1024,
        bare.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
