//! The local executor's child processes: one `tweetflow task exec` per shard on the engine's
//! machine. Each carries the run id in its environment and dies with the engine (see
//! [`crate::orphans`]).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tracing::Instrument;

use super::log_lines::replay_line;
use super::plugin::RemoteAttempt;
use super::resolved::{kind_of_exit_code, read_result};
use crate::task::{TaskError, TaskOutput};

/// How long a stopped child gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the attempt as a child process in its own process group, copying its log lines into
/// the current span as they come; on [`RemoteAttempt::cancel`] the whole group is stopped.
#[allow(unsafe_code)] // pre_exec is unsafe: see the SAFETY note below
pub async fn run_process(attempt: &RemoteAttempt) -> Result<TaskOutput, TaskError> {
    let Some((program, args)) = attempt.exec_command.split_first() else {
        return Err(TaskError::fatal("no command runs `tweetflow task exec`"));
    };
    let result_path = attempt.dir.join("result.json");
    let _ = std::fs::remove_file(&result_path);
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .arg(&attempt.file)
        .arg("--result")
        .arg(&result_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env(crate::orphans::RUN_ID_ENV, &attempt.resolved.run_id)
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe: the kernel kills the worker if the engine dies, so it
    // does not keep writing behind a resume (see `crate::orphans`).
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    if let Some(cwd) = attempt.resolved.cwd.as_ref().filter(|d| d.is_dir()) {
        cmd.current_dir(cwd);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| TaskError::fatal(format!("cannot start `{program}`: {e}")))?;
    let pid = child.id();
    let span = tracing::Span::current();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(copy_lines(out).instrument(span.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(copy_lines(err).instrument(span)));
    }
    let status = tokio::select! {
        status = child.wait() => status,
        _ = attempt.cancel.cancelled() => {
            if let Some(pid) = pid {
                signal_group(pid, libc::SIGTERM);
                if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                    signal_group(pid, libc::SIGKILL);
                }
            }
            let _ = child.wait().await;
            return Err(TaskError::cancelled());
        }
    };
    for r in readers {
        let _ = r.await;
    }
    let status =
        status.map_err(|e| TaskError::retryable(format!("waiting for the worker: {e}")))?;
    if let Some(result) = read_result(&result_path) {
        return match result.into_result() {
            // Not stopped by the engine (that path returns earlier): by someone else.
            Err(e) if e.kind == crate::task::ErrorKind::Cancelled => Err(TaskError::retryable(
                "the worker process was stopped from outside the engine",
            )),
            other => other,
        };
    }
    let code = status.code().unwrap_or(-1);
    let kind = kind_of_exit_code(code).unwrap_or(crate::task::ErrorKind::Retryable);
    Err(TaskError::new(
        kind,
        format!("the worker process ended ({status}) without writing its result"),
    ))
}

async fn copy_lines(stream: impl tokio::io::AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        replay_line(&line);
    }
}

#[allow(unsafe_code)] // kill(2) has no safe wrapper in the standard library
fn signal_group(pid: u32, signal: i32) {
    // SAFETY: kill(2) on the process group the child leads.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-(pid as i32), signal);
    }
}
