//! The `ray` executor: one Ray job per attempt, found again by its submission id.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{info, warn};
use tweetflow_engine::Executor;
use tweetflow_engine::executor::{
    ATTEMPT_ENV, RemoteAttempt, find_result_line, is_result_line, kind_of_exit_code,
    replay_log_lines,
};
use tweetflow_engine::task::{ErrorKind, TaskError, TaskOutput};

use crate::auth::find_token;
use crate::client::{JobInfo, JobStatus, JobsClient, RayError, Submission};
use crate::config::RayConfig;

/// How long the cluster may stay unreachable while a job runs before the attempt fails
/// (retryable); the job is found again by its id on the next attempt or `--resume`.
const UNREACHABLE_LIMIT: Duration = Duration::from_secs(60);
/// How long a stop request may take to show as a terminal status.
const STOP_WAIT: Duration = Duration::from_secs(20);
/// Most jobs tried under one attempt's submission id (the first and its resubmissions).
const MAX_SUBMISSIONS: u32 = 100;
/// Largest encoded attempt sent in [`ATTEMPT_ENV`]: Linux caps one environment string at
/// 128 KiB (`MAX_ARG_STRLEN`), and Ray keeps the runtime environment in its job table.
pub const MAX_INLINE_ATTEMPT: usize = 100 * 1024;
/// Set in each job's environment: the worker is on a Ray node (the ONNX Runtime search
/// then starts with the node's Python, see `tweetflow_model::runtime`).
const WORKER_ENV: &str = "TWEETFLOW_WORKER";
/// Set in each job's environment from `onnxruntime:` of the settings.
const ORT_ENV: &str = "TWEETFLOW_ONNXRUNTIME";

/// Runs attempts as Ray jobs (see the crate documentation).
pub struct RayExecutor;

impl Executor for RayExecutor {
    type Config = RayConfig;
    const NAME: &'static str = "ray";
    const DESCRIPTION: &'static str = "Each attempt is a Ray job (Ray Jobs REST API) running `tweetflow task exec` on the cluster";

    async fn run(
        &self,
        config: RayConfig,
        attempt: RemoteAttempt,
    ) -> Result<TaskOutput, TaskError> {
        let client = JobsClient::new(&config.address, find_token(config.auth_token.as_deref()))
            .map_err(task_error)?;
        let job = attach_or_submit(&client, &config, &attempt).await?;
        attempt.jobs.report(&job.id);
        let info = match wait(&client, &config, &attempt, &job.id).await? {
            Waited::Ended(info) => info,
            Waited::Stopped => return Err(TaskError::cancelled()),
        };
        let collected = Instant::now();
        let logs = match client.logs(&job.id).await {
            Ok(logs) => {
                replay_log_lines(&entrypoint_lines(&logs));
                Some(logs)
            }
            Err(e) => {
                warn!(job = %job.id, error = %e, "cannot copy the job's logs");
                None
            }
        };
        let end_to_collected_ms = info
            .end_time
            .map(|end| (now_ms() - end).max(0) + collected.elapsed().as_millis() as i64);
        let submit_to_start_ms = match (job.submitted_ms, info.start_time) {
            (Some(s), Some(start)) => Some((start - s).max(0)),
            _ => None,
        };
        info!(job = %job.id, status = ?info.status, node = info.driver_node_id.as_deref().unwrap_or("?"),
            submit_to_start_ms, end_to_collected_ms, "Ray job ended");
        outcome(&job, &info, logs.as_deref())
    }

    /// Nodes see none of the engine's files, except the folders listed as shared.
    fn shared_paths(&self, config: &RayConfig) -> Option<Vec<String>> {
        Some(config.shared_paths.clone())
    }
}

/// The job an attempt runs as.
struct Job {
    id: String,
    /// When this process submitted it (ms since the epoch); `None` when re-attached.
    submitted_ms: Option<i64>,
}

/// A Ray error as the attempt's error: a refused token is the pipeline's configuration,
/// anything else may pass.
fn task_error(e: RayError) -> TaskError {
    match e {
        RayError::Unauthorized { .. } => TaskError {
            kind: ErrorKind::Config,
            message: e.to_string(),
            param: None,
            source: None,
        },
        other => TaskError::retryable(other.to_string()),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The job of the attempt's submission id when it is pending, running or succeeded
/// (`--resume` re-attaches to it); otherwise a new job, under the id with `-2`, `-3`...
/// appended when earlier ones failed or were stopped.
async fn attach_or_submit(
    client: &JobsClient,
    config: &RayConfig,
    attempt: &RemoteAttempt,
) -> Result<Job, TaskError> {
    for n in 1..=MAX_SUBMISSIONS {
        let id = if n == 1 {
            attempt.submission_id.clone()
        } else {
            format!("{}-{n}", attempt.submission_id)
        };
        match client.job(&id).await.map_err(task_error)? {
            Some(info) if matches!(info.status, JobStatus::Failed | JobStatus::Stopped) => continue,
            Some(info) => {
                info!(job = %id, status = ?info.status, "re-attached to the Ray job submitted earlier");
                return Ok(Job {
                    id,
                    submitted_ms: None,
                });
            }
            None => {
                let submission = submission(config, attempt, &id)?;
                let submitted_ms = now_ms();
                client.submit(&submission).await.map_err(task_error)?;
                info!(job = %id, address = %client.address(), "submitted to Ray");
                return Ok(Job {
                    id,
                    submitted_ms: Some(submitted_ms),
                });
            }
        }
    }
    Err(TaskError::fatal(format!(
        "{MAX_SUBMISSIONS} Ray jobs of `{}` already ended without success",
        attempt.submission_id
    )))
}

/// The trace export settings a Ray job's worker gets from the engine's environment.
const TRACE_ENV: &[&str] = &[
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "TWEETFLOW_TRACE",
];

/// The job of an attempt: `tweetflow task exec` with no file, the attempt in
/// [`ATTEMPT_ENV`] of the runtime environment (the nodes need not see the engine's disk),
/// its result printed as the last line of the job's logs.
fn submission(
    config: &RayConfig,
    attempt: &RemoteAttempt,
    id: &str,
) -> Result<Submission, TaskError> {
    let program = config
        .tweetflow
        .clone()
        .or_else(|| attempt.exec_command.first().cloned())
        .unwrap_or_else(|| "tweetflow".into());
    let mut words = vec![program];
    words.extend(attempt.exec_command.iter().skip(1).cloned());
    if attempt.exec_command.len() <= 1 {
        words.extend(["task".to_string(), "exec".to_string()]);
    }
    let entrypoint = words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ");
    let inline = attempt
        .resolved
        .to_inline()
        .map_err(|e| TaskError::fatal(format!("cannot encode the attempt for Ray: {e}")))?;
    if inline.len() > MAX_INLINE_ATTEMPT {
        return Err(TaskError::fatal(format!(
            "the attempt is {} KiB encoded, more than the {} KiB a Ray job's environment variable can carry: \
             the task's params and its upstream outputs are too large (pass large values as object-store locations)",
            inline.len() / 1024,
            MAX_INLINE_ATTEMPT / 1024
        )));
    }
    let mut env = BTreeMap::from([
        (ATTEMPT_ENV.to_string(), inline),
        (WORKER_ENV.to_string(), "ray".to_string()),
    ]);
    if let Some(ort) = &config.onnxruntime {
        env.insert(ORT_ENV.to_string(), ort.clone());
    }
    // The worker exports its part of the trace where the engine does (not the headers: they
    // hold credentials, and Ray shows a job's runtime environment).
    for name in TRACE_ENV {
        if let Ok(value) = std::env::var(name)
            && !value.is_empty()
        {
            env.entry(name.to_string()).or_insert(value);
        }
    }
    let r = &attempt.resolved;
    let mut metadata = BTreeMap::from([
        ("tweetflow_run".to_string(), r.run_id.clone()),
        ("tweetflow_task".to_string(), r.task_id.clone()),
        ("tweetflow_attempt".to_string(), r.attempt.to_string()),
    ]);
    if let Some(shard) = r.shard {
        metadata.insert("tweetflow_shard".into(), shard.label());
    }
    Ok(Submission {
        entrypoint,
        submission_id: id.to_string(),
        entrypoint_num_cpus: config.num_cpus,
        entrypoint_memory: config.memory,
        entrypoint_resources: config.resources.clone(),
        runtime_env: Some(with_env_vars(config.runtime_env.clone(), env)),
        metadata,
    })
}

/// `runtime_env` with `vars` added to its `env_vars` (ours win over the pipeline's).
fn with_env_vars(runtime_env: Option<Value>, vars: BTreeMap<String, String>) -> Value {
    let mut env = match runtime_env {
        Some(Value::Object(o)) => o,
        _ => serde_json::Map::new(),
    };
    let mut env_vars = match env.remove("env_vars") {
        Some(Value::Object(o)) => o,
        _ => serde_json::Map::new(),
    };
    for (k, v) in vars {
        env_vars.insert(k, Value::String(v));
    }
    env.insert("env_vars".into(), Value::Object(env_vars));
    Value::Object(env)
}

/// `word` quoted for a POSIX shell.
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

enum Waited {
    Ended(JobInfo),
    Stopped,
}

/// Polls the job until it ends; on the attempt's cancellation, stops it first.
async fn wait(
    client: &JobsClient,
    config: &RayConfig,
    attempt: &RemoteAttempt,
    id: &str,
) -> Result<Waited, TaskError> {
    let poll = Duration::from_millis(config.poll_ms.max(10));
    let mut unreachable_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = attempt.cancel.cancelled() => {
                stop(client, id).await;
                return Ok(Waited::Stopped);
            }
        }
        match client.job(id).await {
            Ok(Some(info)) if info.status.is_terminal() => return Ok(Waited::Ended(info)),
            Ok(Some(_)) => unreachable_since = None,
            Ok(None) => {
                return Err(TaskError::retryable(format!(
                    "the Ray cluster at {} no longer knows job {id} (restarted?)",
                    client.address()
                )));
            }
            Err(e) if e.is_transient() => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > UNREACHABLE_LIMIT {
                    return Err(task_error(e));
                }
            }
            Err(e) => return Err(task_error(e)),
        }
    }
}

/// Stops the job and waits (a while) until Ray shows it ended.
async fn stop(client: &JobsClient, id: &str) {
    if let Err(e) = client.stop(id).await {
        warn!(job = %id, error = %e, "cannot stop the Ray job");
        return;
    }
    info!(job = %id, "stopping the Ray job");
    let started = Instant::now();
    while started.elapsed() < STOP_WAIT {
        if let Ok(Some(info)) = client.job(id).await
            && info.status.is_terminal()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The attempt's result: the result line `task exec` printed, else what the job's end says.
fn outcome(job: &Job, info: &JobInfo, logs: Option<&str>) -> Result<TaskOutput, TaskError> {
    if let Some(result) = logs.and_then(find_result_line) {
        return match result.into_result() {
            // The engine did not stop it (that path returns earlier): someone else did.
            Err(e) if e.kind == ErrorKind::Cancelled => Err(TaskError::retryable(format!(
                "Ray job {} was lost by the cluster (stopped from outside this run)",
                job.id
            ))),
            other => other,
        };
    }
    let ray_message = info
        .message
        .as_deref()
        .and_then(|m| m.lines().next())
        .unwrap_or("");
    let (kind, what) = match (
        info.status,
        info.driver_exit_code.and_then(kind_of_exit_code),
    ) {
        (JobStatus::Succeeded, _) => (
            ErrorKind::Retryable,
            match logs {
                Some(_) => "succeeded but printed no result line (is the `tweetflow` on the nodes the engine's build?)".to_string(),
                None => "succeeded but its logs, which carry the result, cannot be read".to_string(),
            },
        ),
        (_, Some(kind)) => (kind, format!("failed: {ray_message}")),
        _ => (
            ErrorKind::Retryable,
            format!("was lost by the cluster ({:?}: {ray_message})", info.status),
        ),
    };
    Err(TaskError::new(kind, format!("Ray job {} {what}", job.id)))
}

/// The entrypoint's own lines of a job's logs, without Ray's (its set-up lines, stamped
/// `YYYY-MM-DD HH:MM:SS,mmm<TAB>`, and its `Running entrypoint` line).
fn entrypoint_lines(logs: &str) -> String {
    let ray_line = |l: &str| {
        let b = l.as_bytes();
        l.starts_with("Running entrypoint for job ")
            || is_result_line(l)
            || (b.len() > 24
                && b[4] == b'-'
                && b[10] == b' '
                && b[19] == b','
                && b[23] == b'\t'
                && b[..4].iter().all(u8::is_ascii_digit))
    };
    logs.lines()
        .filter(|l| !ray_line(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_quote("/usr/bin/tweetflow"), "/usr/bin/tweetflow");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_jobs_env_vars_join_the_pipelines_runtime_env() {
        let env = with_env_vars(
            Some(
                serde_json::json!({"env_vars": {"A": "1", "TWEETFLOW_WORKER": "x"}, "pip": ["x"]}),
            ),
            BTreeMap::from([("TWEETFLOW_WORKER".to_string(), "ray".to_string())]),
        );
        assert_eq!(
            env,
            serde_json::json!({"pip": ["x"], "env_vars": {"A": "1", "TWEETFLOW_WORKER": "ray"}})
        );
        assert_eq!(
            with_env_vars(None, BTreeMap::new()),
            serde_json::json!({"env_vars": {}})
        );
    }

    #[test]
    fn rays_setup_lines_are_not_copied() {
        let logs = "2026-11-30 14:34:24,426\tINFO job_manager.py:581 -- Runtime env is setting up.\n{\"a\":1}\nRunning entrypoint for job x: tweetflow task exec f\n@@tweetflow-result@@ {}\n";
        assert_eq!(entrypoint_lines(logs), "{\"a\":1}\n");
    }
}
