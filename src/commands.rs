//! What each subcommand does.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tweetflow_engine::duration::human;
use tweetflow_engine::graph::{Format, draw};
use tweetflow_engine::schema::{param_docs, pipeline_schema};
use tweetflow_engine::spec::process_env;
use tweetflow_engine::{
    Engine, EngineError, LoadOptions, Registry, RunOptions, RunRecord, RunStatus, load_file,
};

use crate::cli::{BenchCommand, Cli, Command, GraphFormat, RunArgs, RunsCommand};
use crate::exit;
use crate::table;

/// Runs the command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let registry = Arc::new(tweetflow_tasks::default_registry());
    match cli.command {
        Command::Run(args) => run(&registry, &cli.runs_dir, args).await,
        Command::Validate { files } => Ok(validate(&registry, &files)),
        Command::Tasks { json } => tasks(&registry, json),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&pipeline_schema(&registry))?
            );
            Ok(exit::OK)
        }
        Command::Graph { file, format } => {
            let Some(pipeline) = load_or_report(&registry, &file, &[]) else {
                return Ok(exit::INVALID);
            };
            let format = match format {
                GraphFormat::Text => Format::Text,
                GraphFormat::Dot => Format::Dot,
                GraphFormat::Mermaid => Format::Mermaid,
            };
            print!("{}", draw(&pipeline, format));
            Ok(exit::OK)
        }
        Command::Runs { command } => runs(&cli.runs_dir, command),
        Command::Schedule { paths, next, grace } => {
            crate::schedule::schedule(&registry, &cli.runs_dir, &paths, next, grace).await
        }
        Command::Bench {
            command: BenchCommand::Engine { tasks },
        } => {
            crate::bench::engine(registry, tasks).await?;
            Ok(exit::OK)
        }
        Command::Bench {
            command: BenchCommand::Medallion { csv, full },
        } => {
            let mut options = tweetflow_delta::bench::BenchOptions::new(csv);
            options.full = full;
            println!(
                "{}",
                tweetflow_delta::bench::bench_medallion(&options).await?
            );
            Ok(exit::OK)
        }
        Command::Bench {
            command:
                BenchCommand::Infer {
                    input,
                    model,
                    batch_size,
                    limit,
                    rounds,
                },
        } => {
            let mut options = tweetflow_tasks::infer::InferBenchOptions::new(input, model);
            options.batch_size = batch_size;
            options.limit = limit;
            options.rounds = rounds;
            println!("{}", tweetflow_tasks::infer::bench_infer(&options).await?);
            Ok(exit::OK)
        }
        Command::Bench {
            command: BenchCommand::Mlflow { points },
        } => {
            let client = tweetflow_mlflow::Client::from_env()?;
            println!(
                "{}",
                tweetflow_mlflow::bench::log_metrics(&client, points).await?
            );
            Ok(exit::OK)
        }
        Command::Replay(args) => crate::tables::replay(args).await,
        Command::Model { command } => crate::models::model(command).await,
        Command::Table { command } => crate::tables::table(command).await,
    }
}

/// The engine with the run observers the build ships (MLflow).
pub(crate) fn new_engine(registry: &Arc<Registry>, runs_dir: &Path) -> Engine {
    Engine::new(registry.clone(), runs_dir).with_observer(Arc::new(
        tweetflow_tasks::observers::mlflow_runs::MlflowRuns::default(),
    ))
}

/// Loads a pipeline, printing its problems to stderr when it is invalid.
pub(crate) fn load_or_report(
    registry: &Registry,
    file: &Path,
    params: &[(String, String)],
) -> Option<tweetflow_engine::Pipeline> {
    let options = LoadOptions {
        registry,
        param_overrides: params,
        env: &process_env,
    };
    match load_file(file, &options) {
        Ok(p) => Some(p),
        Err(diagnostics) => {
            eprint!("{}", diagnostics.render());
            eprintln!(
                "{}: {} problem{}",
                file.display(),
                diagnostics.items.len(),
                if diagnostics.items.len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
            None
        }
    }
}

fn validate(registry: &Registry, files: &[std::path::PathBuf]) -> u8 {
    let mut ok = true;
    for file in files {
        match load_or_report(registry, file, &[]) {
            Some(p) => println!("{}: ok ({} tasks)", file.display(), p.tasks.len()),
            None => ok = false,
        }
    }
    if ok { exit::OK } else { exit::INVALID }
}

fn tasks(registry: &Registry, json: bool) -> anyhow::Result<u8> {
    if json {
        let list: Vec<_> = registry
            .iter()
            .map(|t| {
                serde_json::json!({
                    "type": t.type_name(),
                    "version": t.version(),
                    "description": t.description(),
                    "params": param_docs(&t.params_schema()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(exit::OK);
    }
    for t in registry.iter() {
        println!(
            "{} (version {})\n  {}",
            t.type_name(),
            t.version(),
            t.description()
        );
        let docs = param_docs(&t.params_schema());
        if docs.is_empty() {
            println!("  no params");
        }
        for p in docs {
            let default = match (&p.default, p.required) {
                (_, true) => "required".to_string(),
                (Some(d), _) => format!("default {d}"),
                (None, false) => "optional".to_string(),
            };
            println!(
                "  {:<14} {:<18} {:<16} {}",
                p.name, p.kind, default, p.description
            );
        }
        println!();
    }
    Ok(exit::OK)
}

async fn run(registry: &Arc<Registry>, runs_dir: &Path, args: RunArgs) -> anyhow::Result<u8> {
    let engine = new_engine(registry, runs_dir);
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    let options = RunOptions {
        max_parallel: args
            .max_parallel
            .unwrap_or(RunOptions::default().max_parallel),
        fail_fast: args.fail_fast,
        use_cache: !args.no_cache,
        refresh: args.refresh.iter().cloned().collect::<HashSet<_>>(),
        cancel,
        tags: BTreeMap::from([("trigger".to_string(), "manual".to_string())]),
        run_id: None,
    };
    let result = if let Some(run_id) = &args.resume {
        engine.resume(run_id, options).await
    } else {
        let Some(file) = &args.file else {
            anyhow::bail!("name a pipeline file or --resume RUN_ID")
        };
        let Some(pipeline) = load_or_report(registry, file, &args.params) else {
            return Ok(exit::INVALID);
        };
        if let Some(code) =
            crate::schedule::obey_overlap(engine.store(), &pipeline, &options.cancel).await
        {
            return Ok(code);
        }
        for id in &args.refresh {
            if pipeline.task(id).is_none() {
                eprintln!("error: --refresh {id}: the pipeline has no task `{id}`");
                return Ok(exit::INVALID);
            }
        }
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        if args.watch {
            return watch(
                &engine,
                &pipeline,
                &file.display().to_string(),
                &text,
                options,
                &args,
            )
            .await;
        }
        engine
            .run(pipeline, &file.display().to_string(), &text, options)
            .await
    };
    let record = match result {
        Ok(r) => r,
        Err(
            e @ (EngineError::RunNotFound { .. }
            | EngineError::Locked { .. }
            | EngineError::NotResumable { .. }),
        ) => {
            eprintln!("error: {e}");
            return Ok(exit::INVALID);
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        print!("{}", summary(&record));
        if let Some(link) = tweetflow_tasks::observers::mlflow_runs::MlflowRunLink::read(
            &engine.store().run_dir(&record.run_id),
        ) {
            println!("MLflow run: {}", link.url);
        }
    }
    Ok(match record.status {
        RunStatus::Succeeded => exit::OK,
        RunStatus::Cancelled => exit::CANCELLED,
        RunStatus::Failed | RunStatus::Running => exit::FAILED,
    })
}

async fn watch(
    engine: &Engine,
    pipeline: &tweetflow_engine::Pipeline,
    file: &str,
    text: &str,
    options: RunOptions,
    args: &RunArgs,
) -> anyhow::Result<u8> {
    let watch_options = tweetflow_engine::watch::WatchOptions {
        interval: args.interval,
        until_idle: args.until_idle,
        paths: args.watch_path.clone(),
    };
    let summary =
        tweetflow_engine::watch::watch(engine, pipeline, file, text, options, watch_options)
            .await?;
    let rows: Vec<Vec<String>> = summary
        .batches
        .iter()
        .enumerate()
        .map(|(i, r)| {
            vec![
                (i + 1).to_string(),
                r.run_id.clone(),
                r.status.as_str().to_string(),
                human(r.duration()),
            ]
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary.batches)?);
    } else {
        print!(
            "{}",
            table::render(&["BATCH", "RUN", "STATUS", "DURATION"], &rows)
        );
    }
    Ok(match summary.batches.last().map(|r| r.status) {
        _ if summary.cancelled => exit::CANCELLED,
        Some(RunStatus::Succeeded) | None => exit::OK,
        Some(_) => exit::FAILED,
    })
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub(crate) fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("cancelling: stopping running tasks and saving the run");
        token.cancel();
    });
}

/// The end-of-run table.
pub fn summary(record: &RunRecord) -> String {
    let rows: Vec<Vec<String>> = record
        .ordered_tasks()
        .map(|(id, t)| {
            vec![
                id.to_string(),
                t.status.as_str().to_string(),
                t.attempts.len().to_string(),
                t.duration().map(human).unwrap_or_else(|| "-".into()),
                if t.status == tweetflow_engine::TaskStatus::Cached {
                    "yes".into()
                } else {
                    "no".into()
                },
            ]
        })
        .collect();
    let mut out = format!(
        "run {} of {}: {} in {}\n",
        record.run_id,
        record.pipeline,
        record.status.as_str(),
        human(record.duration())
    );
    out.push_str(&table::render(
        &["TASK", "STATUS", "ATTEMPTS", "DURATION", "CACHED"],
        &rows,
    ));
    for (id, t) in record.ordered_tasks() {
        if let Some(e) = &t.error
            && !matches!(
                t.status,
                tweetflow_engine::TaskStatus::Cancelled
                    | tweetflow_engine::TaskStatus::UpstreamFailed
            )
        {
            out.push_str(&format!("\n{id} failed: {}\n", e.message));
        }
    }
    if record.status != RunStatus::Succeeded {
        out.push_str(&format!(
            "\nresume with: tweetflow run --resume {}\n",
            record.run_id
        ));
    }
    out
}

fn runs(runs_dir: &Path, command: RunsCommand) -> anyhow::Result<u8> {
    let store = tweetflow_engine::RunStore::new(runs_dir);
    match command {
        RunsCommand::List { json, limit } => {
            let records: Vec<RunRecord> = store
                .list_newest(limit)?
                .into_iter()
                .filter_map(|r| r.map_err(|e| eprintln!("warning: {e}")).ok())
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
                return Ok(exit::OK);
            }
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    let ok = r.tasks.values().filter(|t| t.status.is_success()).count();
                    vec![
                        r.run_id.clone(),
                        r.pipeline.clone(),
                        r.status.as_str().to_string(),
                        r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        human(r.duration()),
                        format!("{ok}/{}", r.tasks.len()),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &[
                        "RUN",
                        "PIPELINE",
                        "STATUS",
                        "STARTED (UTC)",
                        "DURATION",
                        "TASKS OK"
                    ],
                    &rows
                )
            );
            Ok(exit::OK)
        }
        RunsCommand::Cancel { run_id } => match store.request_cancel(&run_id) {
            Ok(()) => {
                println!("cancel requested for run {run_id}");
                Ok(exit::OK)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(exit::INVALID)
            }
        },
        RunsCommand::Show { run_id, json } => {
            let record = match store.load(&run_id) {
                Ok(r) => r,
                Err(e @ EngineError::RunNotFound { .. }) => {
                    eprintln!("error: {e}");
                    return Ok(exit::INVALID);
                }
                Err(e) => return Err(e.into()),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                print!("{}", summary(&record));
            }
            Ok(exit::OK)
        }
    }
}
