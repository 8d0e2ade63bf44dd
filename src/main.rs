//! `tweetflow`: validate, run, inspect and benchmark pipelines.

mod alloc;
mod cli;
mod commands;
mod console;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Exit codes: 0 success, 1 a task failed, 2 invalid pipeline or usage, 130 cancelled.
pub mod exit {
    /// Everything succeeded.
    pub const OK: u8 = 0;
    /// A task failed.
    pub const FAILED: u8 = 1;
    /// The pipeline is invalid, or the command line is wrong.
    pub const INVALID: u8 = 2;
    /// The run was cancelled (Ctrl-C, SIGTERM).
    pub const CANCELLED: u8 = 130;
}

/// The full log stream on stderr for `-v`, `RUST_LOG` and every command but `run` and
/// `schedule --once`; for those two, the console's task lines and bars, with only warnings and
/// errors from the stream (and, for `schedule --once`, the scheduler's lines: what fired and
/// why).
fn init_logging(cli: &cli::Cli) {
    use tweetflow_engine::logging::{DEFAULT_FILTER, init_with};
    let explicit = cli.verbose > 0 || std::env::var_os("RUST_LOG").is_some();
    let once = matches!(cli.command, cli::Command::Schedule { once: true, .. });
    let console = (matches!(cli.command, cli::Command::Run(_)) || once)
        && !explicit
        && matches!(cli.log_format, cli::LogFormatArg::Text);
    let scheduler_lines = if once {
        format!(",{}=info", tweetflow_engine::scheduler::SCHEDULER_TARGET)
    } else {
        String::new()
    };
    let quiet_outcomes = format!(
        "warn{scheduler_lines},{}=off",
        tweetflow_engine::OUTCOME_TARGET
    );
    let stderr_default = match cli.verbose {
        _ if console => quiet_outcomes.as_str(),
        0 | 1 => DEFAULT_FILTER,
        _ => "warn,tweetflow=debug",
    };
    let extra = console.then(|| {
        use tracing_subscriber::Layer as _;
        Box::new(console::install().with_filter(console::filter()))
            as tweetflow_engine::logging::ExtraLayer
    });
    init_with(cli.log_format.into(), stderr_default, extra);
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if std::env::var_os("TWEETFLOW_BIN").is_none()
        && let Ok(exe) = std::env::current_exe()
    {
        // Pipelines call this binary back as ${env.TWEETFLOW_BIN} (e.g. `model register`).
        // SAFETY: single-threaded here: the runtime is not started yet.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("TWEETFLOW_BIN", exe);
        }
    }
    if matches!(cli.command, cli::Command::Bench { .. }) && std::env::var_os("RUST_LOG").is_none() {
        // Benchmarks measure the engine, not the terminal.
        // SAFETY: single-threaded here: the runtime is not started yet.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("RUST_LOG", "warn");
        }
    }
    // Credentials in the environment (tokens, passwords, cloud keys) are never written.
    tweetflow_engine::secrets::register_sensitive_env();
    if matches!(cli.command, cli::Command::Task { .. }) {
        // A worker's log lines are JSON on stdout; the engine copies them into the run's log.
        tweetflow_engine::logging::init_worker();
    } else {
        init_logging(&cli);
    }
    route_panics_to_the_log();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let outcome = runtime.block_on(commands::dispatch(cli));
    // The spans of the last run still queued for export go out now (a few seconds at most).
    tweetflow_engine::telemetry::shutdown();
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("error: {}", tweetflow_engine::secrets::mask(&message));
            ExitCode::from(exit::FAILED)
        }
    }
}

/// Panics are reported as one log line naming where they happened, with secrets masked like
/// every other line, instead of the default message on stderr (which would bypass masking).
/// A panic inside a library's worker task (e.g. an object-store upload on a full disk) is
/// caught there and reported by the run as an error anyway. With `RUST_BACKTRACE` set, the
/// default report (and its backtrace) is kept.
fn route_panics_to_the_log() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        tracing::error!(
            target: "tweetflow::panic",
            %location,
            thread,
            "internal error (panic): {}",
            tweetflow_engine::secrets::mask(&message)
        );
    }));
}
