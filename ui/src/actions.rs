//! Starting and resuming runs by calling the `tweetflow` binary (`tweetflow run FILE
//! --param ...`, `tweetflow run --resume ID`), so they take the command line's path: the
//! overlap policy, the locks, the observers. The child runs in its own process group: stopping
//! the UI does not stop its runs. Cancelling writes the store's cancel request, as
//! `tweetflow runs cancel` does.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tweetflow_engine::RunStore;

/// How long a start waits to learn the new run's id.
const START_WAIT: Duration = Duration::from_secs(15);
/// Lines of the child's stderr kept to explain a refusal.
const STDERR_TAIL: usize = 20;

/// How to call the binary.
#[derive(Clone, Debug)]
pub struct Launcher {
    /// The `tweetflow` binary.
    pub exe: PathBuf,
    /// The run store, passed as `--runs-dir`.
    pub runs_dir: PathBuf,
}

/// What came of an action.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The run started (or resumed); it may still be running.
    Started {
        /// Its id.
        run_id: String,
    },
    /// The command ended without starting a run (overlap policy, invalid params, locked run).
    NotStarted {
        /// The command's exit code.
        exit_code: Option<i32>,
        /// What it said.
        message: String,
    },
    /// The command is still waiting (e.g. queued behind an active run by the overlap policy).
    Waiting {
        /// What is known.
        message: String,
    },
    /// A cancel request was written.
    CancelRequested {
        /// The run.
        run_id: String,
    },
}

impl Launcher {
    /// Starts a run of `file` named `pipeline` with param overrides.
    pub async fn start(
        &self,
        store: &RunStore,
        file: &Path,
        pipeline: &str,
        params: &[(String, String)],
    ) -> std::io::Result<Outcome> {
        let mut cmd = self.command();
        cmd.arg("run").arg(file);
        for (k, v) in params {
            cmd.arg("--param").arg(format!("{k}={v}"));
        }
        self.launch(cmd, store, pipeline).await
    }

    /// Resumes run `run_id` of `pipeline`.
    pub async fn resume(
        &self,
        store: &RunStore,
        pipeline: &str,
        run_id: &str,
    ) -> std::io::Result<Outcome> {
        let mut cmd = self.command();
        cmd.arg("run").arg("--resume").arg(run_id);
        self.launch(cmd, store, pipeline).await
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--runs-dir")
            .arg(&self.runs_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        cmd
    }

    async fn launch(
        &self,
        mut cmd: Command,
        store: &RunStore,
        pipeline: &str,
    ) -> std::io::Result<Outcome> {
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or_default();
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let stdout_id = Arc::new(Mutex::new(None::<String>));
        if let Some(err) = child.stderr.take() {
            tokio::spawn(keep_tail(err, stderr.clone()));
        }
        if let Some(out) = child.stdout.take() {
            tokio::spawn(find_run_id(out, stdout_id.clone()));
        }
        let (exit_tx, mut exit_rx) = watch::channel(None::<Option<i32>>);
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|s| s.code());
            let _ = exit_tx.send(Some(code));
        });
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            if let Some(id) = active_run_of(store, pipeline, pid) {
                return Ok(Outcome::Started { run_id: id });
            }
            let exited = *exit_rx.borrow();
            if let Some(code) = exited {
                // Give the stdout reader a moment to see the summary's first line.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let id = lock(&stdout_id).clone();
                let said = lock(&stderr).iter().cloned().collect::<Vec<_>>().join("\n");
                return Ok(match id {
                    Some(run_id) => Outcome::Started { run_id },
                    None => Outcome::NotStarted {
                        exit_code: code,
                        message: said,
                    },
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Outcome::Waiting {
                    message: format!(
                        "the run has not started after {}s (queued behind an active run?); process {pid}",
                        START_WAIT.as_secs()
                    ),
                });
            }
            tokio::select! {
                _ = exit_rx.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The run of `pipeline` executed by process `pid`, from the store's active markers.
fn active_run_of(store: &RunStore, pipeline: &str, pid: u32) -> Option<String> {
    let dir = store.root().join(".active").join(pipeline);
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| std::fs::read_to_string(e.path()).is_ok_and(|s| s.trim() == pid.to_string()))
        .map(|e| e.file_name().to_string_lossy().to_string())
}

async fn keep_tail(stream: impl AsyncRead + Unpin, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut t = lock(&tail);
        if t.len() == STDERR_TAIL {
            t.pop_front();
        }
        t.push_back(strip_ansi(&line));
    }
}

/// The summary `tweetflow run` prints ends with the run: its first line is
/// `run <id> of <pipeline>: <status> in <duration>`.
async fn find_run_id(stream: impl AsyncRead + Unpin, id: Arc<Mutex<Option<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.strip_prefix("run ")
            && let Some((run_id, _)) = rest.split_once(" of ")
            && tweetflow_engine::store::is_run_id(run_id)
        {
            *lock(&id) = Some(run_id.to_string());
        }
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Asks the process executing `run_id` to cancel it.
pub fn cancel(store: &RunStore, run_id: &str) -> Result<Outcome, tweetflow_engine::EngineError> {
    store.request_cancel(run_id)?;
    Ok(Outcome::CancelRequested {
        run_id: run_id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn colours_are_removed_from_the_child_output() {
        assert_eq!(strip_ansi("\u{1b}[31merror\u{1b}[0m: x"), "error: x");
    }
}
