//! What each subcommand does: dispatch here, one module per command.

mod bench;
mod bench_shards;
mod graph;
mod metrics_server;
mod model;
mod notify;
mod replay;
mod run;
mod runs;
mod runs_recover;
mod schedule;
mod table;
mod task_exec;
mod tasks;
mod text_table;
mod ui;
mod validate;

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tweetflow_engine::process_env;
use tweetflow_engine::{Engine, LoadOptions, Registry, load_file};

use crate::cli::{Cli, Command};
use crate::exit;

/// Runs the command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let mut registry = tweetflow_tasks::default_registry();
    tweetflow_ray::register(&mut registry);
    let registry = Arc::new(registry);
    let _ = UI_URL.set(cli.ui_url.clone());
    match cli.command {
        Command::Run(args) => run::run(&registry, &cli.runs_dir, args).await,
        Command::Validate { files } => Ok(validate::validate(&registry, &files)),
        Command::Tasks { json } => tasks::tasks(&registry, json),
        Command::Schema => tasks::schema(&registry),
        Command::Graph { file, format } => graph::graph(&registry, &file, format),
        Command::Notify { command } => {
            notify::notify(&registry, command, cli.ui_url.as_deref()).await
        }
        Command::Runs { command } => runs::runs(&registry, &cli.runs_dir, command).await,
        Command::Ui(args) => ui::ui(registry, &cli.runs_dir, args).await,
        Command::Schedule {
            paths,
            next,
            once,
            grace,
            metrics_listen,
        } => {
            schedule::schedule(
                &registry,
                &cli.runs_dir,
                &paths,
                next,
                once,
                grace,
                metrics_listen,
            )
            .await
        }
        Command::Task { command } => task_exec::task(&registry, command).await,
        Command::Bench { command } => {
            bench::bench(registry, command).await?;
            Ok(exit::OK)
        }
        Command::Replay(args) => replay::replay(args).await,
        Command::Model { command } => model::model(command).await,
        Command::Table { command } => table::table(command).await,
    }
}

/// The web UI's address (`--ui-url`, `TWEETFLOW_UI_URL`), for links in alerts.
static UI_URL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The engine with the run observers the build ships (MLflow, alerts), running attempts
/// outside its process with this binary's `task exec`.
pub(crate) fn new_engine(registry: &Arc<Registry>, runs_dir: &Path) -> Engine {
    let ui_url = UI_URL
        .get()
        .cloned()
        .flatten()
        .or_else(tweetflow_notify::Notify::ui_url_from_env);
    let engine = Engine::new(registry.clone(), runs_dir)
        .with_observer(Arc::new(tweetflow_tasks::observers::MlflowRuns::default()))
        .with_observer(Arc::new(tweetflow_notify::Notify::new(ui_url)));
    match std::env::current_exe() {
        Ok(exe) => engine.with_exec_command(vec![
            exe.display().to_string(),
            "task".into(),
            "exec".into(),
        ]),
        Err(_) => engine,
    }
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
    spawn_signal_handler_with(token, true)
}

/// Cancels `token` on Ctrl-C or SIGTERM, printing nothing (stdout and stderr are a worker's
/// log).
pub(crate) fn spawn_signal_handler_quiet(token: CancellationToken) {
    spawn_signal_handler_with(token, false)
}

fn spawn_signal_handler_with(token: CancellationToken, announce: bool) {
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
        if announce {
            eprintln!("cancelling: stopping running tasks and saving the run");
        }
        token.cancel();
    });
}
