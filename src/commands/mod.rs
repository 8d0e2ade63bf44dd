//! What each subcommand does: dispatch here, one module per command.

mod bench;
mod graph;
mod model;
mod replay;
mod run;
mod runs;
mod schedule;
mod table;
mod tasks;
mod text_table;
mod validate;

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tweetflow_engine::spec::process_env;
use tweetflow_engine::{Engine, LoadOptions, Registry, load_file};

use crate::cli::{Cli, Command};
use crate::exit;

/// Runs the command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let registry = Arc::new(tweetflow_tasks::default_registry());
    match cli.command {
        Command::Run(args) => run::run(&registry, &cli.runs_dir, args).await,
        Command::Validate { files } => Ok(validate::validate(&registry, &files)),
        Command::Tasks { json } => tasks::tasks(&registry, json),
        Command::Schema => tasks::schema(&registry),
        Command::Graph { file, format } => graph::graph(&registry, &file, format),
        Command::Runs { command } => runs::runs(&cli.runs_dir, command),
        Command::Schedule { paths, next, grace } => {
            schedule::schedule(&registry, &cli.runs_dir, &paths, next, grace).await
        }
        Command::Bench { command } => {
            bench::bench(registry, command).await?;
            Ok(exit::OK)
        }
        Command::Replay(args) => replay::replay(args).await,
        Command::Model { command } => model::model(command).await,
        Command::Table { command } => table::table(command).await,
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
