//! `tweetflow bench ...`: the benchmarks of the `tweetflow-bench` crate.

use std::sync::Arc;

use tweetflow_engine::Registry;

use crate::cli::BenchCommand;

/// Runs a benchmark and prints its report.
pub(crate) async fn bench(registry: Arc<Registry>, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Engine {
            tasks,
            trace_export: true,
        } => {
            let report = tweetflow_bench::trace_export::bench_trace_export(
                registry,
                tasks,
                &crate::ALLOCATOR,
            )
            .await?;
            println!("{report}");
        }
        BenchCommand::Engine { tasks, .. } => {
            let report = tweetflow_bench::bench_engine(registry, tasks, &crate::ALLOCATOR).await?;
            println!("{report}");
        }
        BenchCommand::Medallion { csv, full, root } => {
            let mut options = tweetflow_bench::medallion::BenchOptions::new(csv);
            options.full = full;
            options.root = root;
            println!(
                "{}",
                tweetflow_bench::medallion::bench_medallion(&options).await?
            );
        }
        BenchCommand::Infer {
            input,
            model,
            batch_size,
            limit,
            rounds,
            shards,
            executor,
            ray_address,
        } => {
            let mut options = tweetflow_bench::infer::InferBenchOptions::new(input, model);
            options.batch_size = batch_size;
            options.limit = limit;
            options.rounds = rounds;
            if shards.is_empty() {
                println!("{}", tweetflow_bench::infer::bench_infer(&options).await?);
            } else {
                let executor = (executor == "ray").then_some(ray_address);
                super::bench_shards::bench_shards(&registry, &options, &shards, executor).await?;
            }
        }
        BenchCommand::Trigger {
            commits,
            poll,
            tables,
            root,
        } => {
            let options = tweetflow_bench::trigger::TriggerBenchOptions {
                commits,
                poll,
                tables,
                remote_root: root,
            };
            println!(
                "{}",
                tweetflow_bench::trigger::bench_trigger(registry, &options).await?
            );
        }
        BenchCommand::Mlflow { points } => {
            let client = tweetflow_mlflow::Client::from_env()?;
            println!(
                "{}",
                tweetflow_bench::mlflow::log_metrics(&client, points).await?
            );
        }
    }
    Ok(())
}
