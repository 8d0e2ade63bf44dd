//! `tweetflow bench infer --shards 1,2 [--executor ray]`: the infer task split into shards,
//! run through the engine (local child processes or Ray jobs), beside the bare floors of
//! 2 cores.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::Value;
use tweetflow_bench::infer::{InferBenchOptions, bare_floors, prepare_silver};
use tweetflow_engine::process_env;
use tweetflow_engine::{LoadOptions, Registry, RunOptions, RunStatus, load_str};

use super::new_engine;

/// Runs the benchmark and prints its table. `ray`: the Ray dashboard's address, when the
/// shards run on Ray.
pub(crate) async fn bench_shards(
    registry: &Arc<Registry>,
    options: &InferBenchOptions,
    shards: &[u32],
    ray: Option<String>,
) -> anyhow::Result<()> {
    let prepared = prepare_silver(options).await?;
    let texts = prepared.distinct.len() as f64;
    let model = std::path::absolute(&options.model_dir)?;
    let batch = options.batch_size.max(1);
    let (one_session, two_sessions) = bare_floors(&model, &prepared.distinct, batch).await?;
    println!(
        "{} distinct texts, batch {batch}; bare floors: 1 session x 2 threads {one_session:.0} tweets/s, 2 sessions x 1 thread {two_sessions:.0} tweets/s",
        prepared.distinct.len()
    );
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let engine = new_engine(registry, &prepared.work.join("runs"));
    let executor = match &ray {
        // The benchmark's silver, gold and model are local: the nodes must share this
        // machine's disk (a local cluster).
        Some(address) => format!(
            "{{ ray: {{ address: \"{address}\", num_cpus: 1, poll_ms: 100, shared_paths: [\"{}\", \"{}\", \"{}\"] }} }}",
            prepared.work.display(),
            prepared.silver,
            model.display()
        ),
        None => "local".into(),
    };
    println!(
        "{:<24} {:>10} {:>14} {:>22}",
        "SETTING", "TWEETS/S", "VS 2-SESSION", "RAY SUBMIT>START / END>COLLECTED (MS)"
    );
    for &n in shards {
        let mut rates = Vec::new();
        let mut overheads = Vec::new();
        for round in 0..options.rounds.max(1) {
            let gold = prepared.work.join(format!("gold-{n}-{round}"));
            let threads = (cores / n.max(1) as usize).max(1);
            let text = format!(
                "name: bench_infer_shards\ntasks:\n  infer:\n    type: infer\n    shards: {n}\n    executor: {executor}\n    with: {{ input: \"{}\", table: \"{}\", model: \"{}\", batch_size: {batch}, threads: {threads} }}\n",
                prepared.silver,
                gold.display(),
                model.display()
            );
            let load = LoadOptions {
                registry,
                param_overrides: &[],
                env: &process_env,
            };
            let pipeline =
                load_str("bench", &text, &load).map_err(|d| anyhow::anyhow!("{}", d.render()))?;
            let started = Instant::now();
            let record = engine
                .run(pipeline, "bench", &text, RunOptions::default())
                .await?;
            let secs = started.elapsed().as_secs_f64();
            if record.status != RunStatus::Succeeded {
                anyhow::bail!(
                    "the run with {n} shards did not succeed: {:?}",
                    record.tasks.get("infer").and_then(|t| t.error.clone())
                );
            }
            rates.push(texts / secs);
            overheads.extend(ray_overheads(
                &engine.store().run_dir(&record.run_id).join("log.jsonl"),
            )?);
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        let setting = format!("{} shards={n}", if ray.is_some() { "ray" } else { "local" });
        let overhead = if overheads.is_empty() {
            "-".to_string()
        } else {
            let avg = |f: fn(&(f64, f64)) -> f64| {
                overheads.iter().map(f).sum::<f64>() / overheads.len() as f64
            };
            format!("{:.0} / {:.0}", avg(|o| o.0), avg(|o| o.1))
        };
        println!(
            "{setting:<24} {median:>10.0} {:>13.0}% {overhead:>22}",
            100.0 * median / two_sessions
        );
    }
    Ok(())
}

/// (submit-to-start, end-to-collected) in ms of each Ray job of a run, from its log.
fn ray_overheads(log: &std::path::Path) -> anyhow::Result<Vec<(f64, f64)>> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["fields"]["message"] == "Ray job ended")
        .filter_map(|e| {
            let f = &e["fields"];
            Some((
                f["submit_to_start_ms"].as_f64()?,
                f["end_to_collected_ms"].as_f64()?,
            ))
        })
        .collect())
}
