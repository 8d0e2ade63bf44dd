//! Real `tweetflow` processes in scratch directories: the main pipeline on small data, runs
//! resumed, run records read back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tweetflow_test_support::{repo_root, test_csv, tiny_model, venv};

use crate::SuiteError;

/// How many test tweets the main pipeline replays (small data: a run takes seconds).
pub const TWEETS: usize = 500;

/// The `tweetflow` binary under test.
#[derive(Clone, Debug)]
pub struct Tweetflow {
    /// Path of the binary.
    pub bin: PathBuf,
}

/// A scratch directory: the working directory of runs, with the run store in `runs/` (or
/// elsewhere), the tables under `data/`, and `tweet_sentiment.yaml`: the shipped main
/// pipeline without its `mlflow:` section (MLflow has a scenario of its own).
pub struct Sandbox {
    dir: tempfile::TempDir,
    runs: PathBuf,
    tf: Tweetflow,
}

/// Why `tweetflow runs list --json` gave no list of runs.
#[derive(Debug, thiserror::Error)]
pub enum RunsListError {
    /// The binary could not be started.
    #[error("runs list: {0}")]
    Spawn(#[source] std::io::Error),
    /// It exited with a failure.
    #[error("runs list exited {code:?}: {stderr}")]
    Failed {
        /// Its exit code (`None`: killed by a signal).
        code: Option<i32>,
        /// The start of its standard error.
        stderr: String,
    },
    /// Its output is not a JSON list of runs.
    #[error("runs list is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
}

/// What a finished `tweetflow run … --json` gave.
#[derive(Debug)]
pub struct RunOutcome {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// The run record printed on stdout, if it parsed.
    pub record: Option<Value>,
    /// Standard error.
    pub stderr: String,
}

impl RunOutcome {
    /// Exit 0 and a record with status `succeeded`.
    pub fn succeeded(&self) -> bool {
        self.code == Some(0) && self.status() == "succeeded"
    }

    /// The run status in the record (`?` without a record).
    pub fn status(&self) -> &str {
        self.record
            .as_ref()
            .and_then(|r| r["status"].as_str())
            .unwrap_or("?")
    }

    /// A short description for notes: status, exit code and the last line of stderr.
    pub fn describe(&self) -> String {
        let last = self
            .stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        format!(
            "status {} exit {:?}: {}",
            self.status(),
            self.code,
            shorten(last, 400)
        )
    }
}

/// The shipped main pipeline, `pipelines/tweet_sentiment.yaml`.
pub fn shipped_pipeline() -> PathBuf {
    repo_root().join("pipelines/tweet_sentiment.yaml")
}

/// The text of [`shipped_pipeline`].
pub fn shipped_text() -> Result<String, SuiteError> {
    std::fs::read_to_string(shipped_pipeline()).map_err(SuiteError::io("read the main pipeline"))
}

/// A pipeline's text without its top-level `mlflow:` section.
pub fn without_mlflow(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let top = !line.starts_with(' ') && !line.is_empty();
        if top {
            skipping = line.starts_with("mlflow:");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `s` cut to `max` characters.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

impl Sandbox {
    /// A new scratch directory for runs of `tf`.
    pub fn new(tf: &Tweetflow) -> Result<Self, SuiteError> {
        let dir = tempfile::Builder::new()
            .prefix("tweetflow-reliability-")
            .tempdir()
            .map_err(SuiteError::io("create a scratch directory"))?;
        let runs = dir.path().join("runs");
        std::fs::write(
            dir.path().join("tweet_sentiment.yaml"),
            without_mlflow(&shipped_text()?),
        )
        .map_err(SuiteError::io("write the pipeline"))?;
        Ok(Sandbox {
            dir,
            runs,
            tf: tf.clone(),
        })
    }

    /// The scratch directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The run store.
    pub fn runs(&self) -> &Path {
        &self.runs
    }

    /// Puts the run store at `runs` instead of `<sandbox>/runs`.
    pub fn set_runs(&mut self, runs: PathBuf) {
        self.runs = runs;
    }

    /// Where the tables are (the pipeline's `root` param).
    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    /// A `tweetflow` command in the sandbox, with no MLflow server configured unless the
    /// caller sets `MLFLOW_TRACKING_URI`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.tf.bin);
        cmd.args(args)
            .current_dir(self.path())
            .env("TWEETFLOW_RUNS_DIR", &self.runs)
            .env("RUST_LOG", "warn")
            .env_remove("MLFLOW_TRACKING_URI")
            .stdin(Stdio::null());
        if std::env::var_os("TWEETFLOW_VENV").is_none() {
            cmd.env("TWEETFLOW_VENV", venv());
        }
        cmd
    }

    /// The arguments of `tweetflow run` of the main pipeline (`pipeline`, else the sandbox's
    /// copy without MLflow) on [`TWEETS`] test tweets and the tiny model.
    pub fn main_run_args(&self, pipeline: Option<&Path>) -> Vec<String> {
        let file = pipeline
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.path().join("tweet_sentiment.yaml"));
        vec![
            "run".into(),
            file.display().to_string(),
            "--param".into(),
            format!("csv={}", test_csv().display()),
            "--param".into(),
            format!("model={}", tiny_model().display()),
            "--param".into(),
            format!("root={}", self.data().display()),
            "--param".into(),
            format!("replay_limit={TWEETS}"),
            "--json".into(),
        ]
    }

    /// Starts `args` with stdout and stderr in files of the sandbox (named after `tag`).
    pub fn spawn(&self, mut cmd: Command, tag: &str) -> Result<Child, SuiteError> {
        let out = self.log_file(&format!("{tag}.out"))?;
        let err = self.log_file(&format!("{tag}.err"))?;
        cmd.stdout(out)
            .stderr(err)
            .spawn()
            .map_err(SuiteError::io("start tweetflow"))
    }

    fn log_file(&self, name: &str) -> Result<std::fs::File, SuiteError> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join(name))
            .map_err(SuiteError::io("open a log file"))
    }

    /// Waits for a child started with [`Sandbox::spawn`] under `tag` and reads its outcome.
    pub fn finish(&self, mut child: Child, tag: &str) -> Result<RunOutcome, SuiteError> {
        let status = child.wait().map_err(SuiteError::io("wait for tweetflow"))?;
        let stdout = std::fs::read(self.path().join(format!("{tag}.out"))).unwrap_or_default();
        let stderr = std::fs::read(self.path().join(format!("{tag}.err"))).unwrap_or_default();
        Ok(RunOutcome {
            code: status.code(),
            record: serde_json::from_slice(&stdout).ok(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Runs `cmd` to the end (see [`Sandbox::spawn`]).
    pub fn run(&self, cmd: Command, tag: &str) -> Result<RunOutcome, SuiteError> {
        let child = self.spawn(cmd, tag)?;
        self.finish(child, tag)
    }

    /// Runs the main pipeline once (see [`Sandbox::main_run_args`]).
    pub fn run_main(&self, tag: &str) -> Result<RunOutcome, SuiteError> {
        let args = self.main_run_args(None);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(self.cmd(&args), tag)
    }

    /// `tweetflow run --resume ID --json`.
    pub fn resume(&self, run_id: &str, tag: &str) -> Result<RunOutcome, SuiteError> {
        self.run(self.cmd(&["run", "--resume", run_id, "--json"]), tag)
    }

    /// Ids of the runs in the run store, oldest first.
    pub fn run_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.runs)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// The run record `runs/<id>/run.json`, if it exists and parses.
    pub fn record(&self, run_id: &str) -> Option<Value> {
        let bytes = std::fs::read(self.runs.join(run_id).join("run.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// `tweetflow runs list --json` over the whole store: the runs, or why it did not parse.
    pub fn runs_list(&self) -> Result<Vec<Value>, RunsListError> {
        let out = self
            .cmd(&["runs", "list", "--json", "--limit", "0"])
            .output()
            .map_err(RunsListError::Spawn)?;
        if !out.status.success() {
            return Err(RunsListError::Failed {
                code: out.status.code(),
                stderr: shorten(String::from_utf8_lossy(&out.stderr).trim(), 200),
            });
        }
        serde_json::from_slice(&out.stdout).map_err(RunsListError::NotJson)
    }

    /// Resumes the sandbox's last run, or runs the main pipeline again when no run was
    /// recorded (the process died before its first record).
    pub fn resume_or_rerun(&self, tag: &str) -> Result<RunOutcome, SuiteError> {
        match self.run_ids().last() {
            Some(id) if self.record(id).is_some() => self.resume(id, tag),
            _ => self.run_main(tag),
        }
    }
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a process this suite started.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Waits up to `limit` for `child` to exit; whether it did.
pub fn wait_exit(child: &mut Child, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mlflow_section_is_left_out_and_nothing_else() {
        let text =
            "name: x\nmlflow:\n  experiment: e\n  tracking_uri: u\ntasks:\n  a: { type: noop }\n";
        assert_eq!(
            super::without_mlflow(text),
            "name: x\ntasks:\n  a: { type: noop }\n"
        );
    }
}
