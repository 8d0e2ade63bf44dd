//! `tweetflow-reliability`: runs the reliability suite against a `tweetflow` binary and prints
//! one table; exits 1 when a row failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tweetflow_reliability::{Config, Tweetflow, render, run_suite, sibling_binary};

/// Faults and load injected into real tweetflow processes, as one table of figures.
#[derive(Parser)]
#[command(name = "tweetflow-reliability")]
struct Args {
    /// The short form (about two minutes; what `cargo test` runs) instead of the long one.
    #[arg(long)]
    short: bool,
    /// The tweetflow binary (default: the one next to this binary).
    #[arg(long, env = "TWEETFLOW_BIN")]
    tweetflow: Option<PathBuf>,
    /// Seed of the random moments (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Run only the scenarios whose names contain this (kill-engine, scheduler, concurrent,
    /// disk-full, mlflow, interrupted; repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// Override: engine kills.
    #[arg(long)]
    engine_kills: Option<usize>,
    /// Override: seconds the scheduler daemon runs.
    #[arg(long)]
    scheduler_secs: Option<u64>,
    /// Override: scheduler daemon kills.
    #[arg(long)]
    scheduler_kills: Option<usize>,
    /// Override: runs started at once.
    #[arg(long)]
    concurrent: Option<usize>,
    /// Override: daemon kills during a run (each resumed by the restarted daemon).
    #[arg(long)]
    daemon_resume_kills: Option<usize>,
    /// Override: kills of a manual run's engine (each followed by `runs recover`).
    #[arg(long)]
    manual_kills: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut config = if args.short {
        Config::short(seed)
    } else {
        Config::long(seed)
    };
    config.only = args.only;
    if let Some(n) = args.engine_kills {
        config.engine_kills = n;
    }
    if let Some(s) = args.scheduler_secs {
        config.scheduler_for = Duration::from_secs(s);
        config.memory_after = config.memory_after.min(Duration::from_secs(s / 5));
    }
    if let Some(n) = args.scheduler_kills {
        config.scheduler_kills = n;
    }
    if let Some(n) = args.concurrent {
        config.concurrent_runs = n;
    }
    if let Some(n) = args.daemon_resume_kills {
        config.daemon_resume_kills = n;
    }
    if let Some(n) = args.manual_kills {
        config.manual_kills = n;
    }
    let Some(bin) = args.tweetflow.or_else(sibling_binary) else {
        eprintln!(
            "no tweetflow binary: build it (cargo build --bin tweetflow) or pass --tweetflow"
        );
        return ExitCode::from(2);
    };
    match run_suite(&Tweetflow { bin }, config) {
        Ok(rows) => {
            print!("{}", render(&rows));
            if rows.iter().all(|r| r.passed()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
