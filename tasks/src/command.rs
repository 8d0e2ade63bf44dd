//! `command`: runs a program with arguments, environment and working directory.
//!
//! - The program is started directly (no shell); use `argv: [sh, -c, "..."]` for one.
//! - It runs in its own process group. When the attempt ends for any reason (exit, timeout,
//!   cancellation) the whole group is killed, so no child or grandchild keeps running
//!   behind the engine's back. If the engine itself dies (`kill -9`), the kernel kills the
//!   direct child (`PR_SET_PDEATHSIG`); the program and its children carry the run id
//!   (`TWEETFLOW_RUN_ID`), by which a resume finds and kills whatever is left before it
//!   starts the task again (see `tweetflow_engine::orphans`).
//! - Each line of stdout and stderr becomes a tracing event (target `tweetflow::command`,
//!   field `stream`), so it lands in the run's `log.jsonl`.
//! - A non-zero exit or a death by signal is a retryable failure; a program that cannot be
//!   started (not found, bad working directory) is a configuration error.
//! - Outputs: `exit_code`, `stdout_tail` (last 4 KiB). The fingerprint (what dependents' cache
//!   keys see) is the contents of the declared `outputs` files, or the whole stdout when none
//!   are declared: a rerun that writes the same bytes does not invalidate its dependents.
//! - When the pipeline run is an MLflow run, the program gets `MLFLOW_RUN_ID` (and
//!   `MLFLOW_TRACKING_URI` unless set), as MLflow's own clients expect, so what it logs or
//!   registers belongs to that run.
//! - When traces are exported (`OTEL_EXPORTER_OTLP_ENDPOINT`), the program gets `TRACEPARENT`,
//!   the W3C trace context of its attempt, so what it traces joins the run's trace.
//! - Cache: the contents of the declared `inputs` (files or directories) are part of the
//!   cache key, so a cached result never outlives an edit of the code it ran.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use crate::mlflow_link::MlflowRunLink;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tracing::{Instrument, info};
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};

/// The `command` task type.
pub struct CommandTask;

/// Params of `command`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandParams {
    /// The program and its arguments, e.g. `[sh, -c, "echo hi"]`.
    pub argv: Vec<String>,
    /// Environment variables added to the engine's environment (default: none).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the engine's working directory).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Files the command creates. A cached result is reused only while all of them exist;
    /// their contents are the task's fingerprint, which dependents' cache keys include
    /// (default: none; the fingerprint is then the stdout).
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Files or directories the command reads (its script, its code): their contents are part
    /// of the cache key, so editing one reruns the task instead of reusing a stale result
    /// (directories are hashed recursively, skipping hidden entries and `__pycache__`;
    /// default: none).
    #[serde(default)]
    pub inputs: Vec<String>,
}

const STDOUT_TAIL: usize = 4096;
const STDERR_TAIL: usize = 2048;

/// `MLFLOW_RUN_ID` (and `MLFLOW_TRACKING_URI` when the environment has none) of the
/// pipeline run's MLflow run, if it has one.
/// `TRACEPARENT` (W3C trace context) of the attempt's span when traces are exported, so a
/// program that speaks OpenTelemetry continues the run's trace.
fn traceparent_env(ctx: &TaskContext) -> Option<(&'static str, String)> {
    use tweetflow_engine::telemetry::context;
    context::traceparent(&ctx.span).map(|t| (context::TRACEPARENT_ENV, t))
}

fn mlflow_env(ctx: &TaskContext) -> Vec<(&'static str, String)> {
    let Some(link) = ctx.link::<MlflowRunLink>() else {
        return Vec::new();
    };
    let mut env = vec![("MLFLOW_RUN_ID", link.run_id)];
    if std::env::var("MLFLOW_TRACKING_URI").is_ok_and(|v| !v.trim().is_empty()) {
        return env;
    }
    env.push(("MLFLOW_TRACKING_URI", link.tracking_uri));
    env
}

impl Task for CommandTask {
    type Params = CommandParams;
    const TYPE: &'static str = "command";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Runs a program with args, env and working dir; non-zero exit is a retryable failure";
    /// Each shard's program gets `TWEETFLOW_SHARD` (0-based) and `TWEETFLOW_SHARDS`.
    const SHARDABLE: bool = true;

    async fn run(&self, ctx: &TaskContext, params: CommandParams) -> Result<TaskOutput, TaskError> {
        let Some((program, args)) = params.argv.split_first() else {
            return Err(TaskError::config("argv", "must name a program"));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .envs(mlflow_env(ctx))
            .envs(traceparent_env(ctx))
            .envs(&params.env)
            .envs(ctx.shard.iter().flat_map(|s| {
                [
                    ("TWEETFLOW_SHARD", s.index.to_string()),
                    ("TWEETFLOW_SHARDS", s.count.to_string()),
                ]
            }))
            .env(tweetflow_engine::RUN_ID_ENV, &ctx.run_id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
        // which is async-signal-safe. It asks the kernel to SIGKILL the child if the engine
        // dies (even by `kill -9`), so no orphan keeps working on the run's behalf.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        if let Some(cwd) = &params.cwd {
            if !std::path::Path::new(cwd).is_dir() {
                return Err(TaskError::config(
                    "cwd",
                    format!("`{cwd}` is not a directory"),
                ));
            }
            cmd.current_dir(cwd);
        }
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                TaskError::config("argv", format!("cannot start `{program}`: {e}"))
            }
            _ => TaskError::retryable(format!("cannot start `{program}`: {e}")),
        })?;
        let group = ProcessGroup(child.id().map(|pid| pid as i32));
        info!(pid = group.0, program = %program, "process started");

        let stdout = child
            .stdout
            .take()
            .map(|s| tokio::spawn(pump(s, "stdout", STDOUT_TAIL).in_current_span()));
        let stderr = child
            .stderr
            .take()
            .map(|s| tokio::spawn(pump(s, "stderr", STDERR_TAIL).in_current_span()));
        let status = child
            .wait()
            .await
            .map_err(|e| TaskError::retryable(format!("waiting for `{program}`: {e}")))?;
        // Whatever the program left behind in its group goes with it (and closes its pipes).
        group.kill(libc::SIGKILL);
        let (out_hash, out_tail) = join_pump(stdout).await;
        let (_, err_tail) = join_pump(stderr).await;

        if !status.success() {
            use std::os::unix::process::ExitStatusExt;
            let why = match (status.code(), status.signal()) {
                (Some(code), _) => format!("`{program}` exited with code {code}"),
                (None, Some(sig)) => format!("`{program}` was killed by signal {sig}"),
                _ => format!("`{program}` failed"),
            };
            let tail = err_tail.trim_end();
            let message = if tail.is_empty() {
                why
            } else {
                format!("{why}; stderr ends with:\n{tail}")
            };
            return Err(TaskError::retryable(message));
        }
        // With declared outputs, the fingerprint is their contents: a rerun that rewrites the
        // same bytes leaves dependents' cache entries valid. Without, it is the stdout.
        let fingerprint = if params.outputs.is_empty() {
            out_hash
        } else {
            let paths: Vec<PathBuf> = params.outputs.iter().map(PathBuf::from).collect();
            if let Some(missing) = paths.iter().find(|p| !p.exists()) {
                return Err(TaskError::fatal(format!(
                    "declared output `{}` was not created",
                    missing.display()
                )));
            }
            tokio::task::spawn_blocking(move || tweetflow_engine::cache::hash_inputs(&paths))
                .await
                .map_err(|e| TaskError::fatal(format!("hashing the outputs: {e}")))?
        };
        Ok(TaskOutput::new()
            .with("exit_code", status.code().unwrap_or_default())
            .with("stdout_tail", out_tail)
            .with_fingerprint(fingerprint))
    }

    async fn output_still_valid(&self, params: &CommandParams, _output: &TaskOutput) -> bool {
        params.outputs.iter().all(|p| PathBuf::from(p).exists())
    }

    fn cache_inputs(&self, params: &CommandParams) -> Vec<PathBuf> {
        params.inputs.iter().map(PathBuf::from).collect()
    }
}

/// Kills its process group when dropped (the attempt was cancelled or timed out).
struct ProcessGroup(Option<i32>);

impl ProcessGroup {
    fn kill(&self, signal: i32) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals the process group; it has no memory
            // effects. The group was created for this child by `process_group(0)`.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill(libc::SIGKILL);
    }
}

/// Logs each line of a stream; returns the hash of the whole stream and its last `tail` bytes.
async fn pump(stream: impl AsyncRead + Unpin, name: &'static str, tail: usize) -> (String, String) {
    let mut reader = BufReader::new(stream);
    let mut hasher = blake3::Hasher::new();
    let mut last = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                hasher.update(&line);
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                info!(target: "tweetflow::command", stream = name, "{text}");
                last.push_str(text);
                last.push('\n');
                if last.len() > 2 * tail {
                    let mut cut = last.len() - tail;
                    while !last.is_char_boundary(cut) {
                        cut += 1;
                    }
                    last.drain(..cut);
                }
            }
        }
    }
    if last.len() > tail {
        let mut cut = last.len() - tail;
        while !last.is_char_boundary(cut) {
            cut += 1;
        }
        last.drain(..cut);
    }
    (hasher.finalize().to_hex().to_string(), last)
}

async fn join_pump(handle: Option<tokio::task::JoinHandle<(String, String)>>) -> (String, String) {
    match handle {
        Some(h) => h.await.unwrap_or_default(),
        None => Default::default(),
    }
}
