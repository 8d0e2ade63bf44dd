//! Helpers for integration tests that drive the real `tweetflow` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The tasks of the checked-in main pipeline, `pipelines/tweet_sentiment.yaml`.
pub const MAIN_TASKS: [&str; 9] = [
    "replay",
    "ingest",
    "clean",
    "infer",
    "aggregate",
    "mention_scores",
    "profile",
    "log_metrics",
    "report",
];

/// A scratch directory holding pipelines, the working directory of runs, and a run store.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn runs(&self) -> PathBuf {
        self.path().join("runs")
    }

    /// Ids of the runs recorded in the sandbox's run store, oldest first.
    pub fn run_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.runs())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Writes a file under the sandbox and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent folder");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// A `tweetflow` command running in the sandbox with its own run store.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tweetflow"));
        cmd.args(args)
            .current_dir(self.path())
            .env("TWEETFLOW_RUNS_DIR", self.runs())
            .env("RUST_LOG", "warn");
        // The ONNX Runtime library comes from the project's venv.
        if std::env::var_os("TWEETFLOW_VENV").is_none() {
            cmd.env("TWEETFLOW_VENV", tweetflow_test_support::venv());
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run tweetflow")
    }

    /// Runs `tweetflow run ... --json` and returns (exit code, run record).
    pub fn run_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.push("--json");
        let out = self.run(&all);
        let record = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "run record is not JSON ({e}); stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), record)
    }

    /// Runs the checked-in main pipeline (`pipelines/tweet_sentiment.yaml`) on small inputs:
    /// the first `limit` test tweets, `model`, tables under `root`, logging to the MLflow
    /// server at `mlflow_url`; `env` adds variables. Asserts that every task succeeded and
    /// returns the run record.
    pub fn run_main_pipeline(
        &self,
        root: &str,
        model: &str,
        limit: usize,
        mlflow_url: &str,
        env: &[(String, String)],
    ) -> Value {
        let main = tweetflow_test_support::repo_root().join("pipelines/tweet_sentiment.yaml");
        let params = [
            format!("csv={}", tweetflow_test_support::test_csv().display()),
            format!("model={model}"),
            format!("root={root}"),
            format!("replay_limit={limit}"),
        ];
        let mut args = vec!["run", main.to_str().expect("a UTF-8 path"), "--json"];
        for p in &params {
            args.extend(["--param", p.as_str()]);
        }
        let out = self
            .cmd(&args)
            .env("MLFLOW_TRACKING_URI", mlflow_url)
            .envs(env.iter().cloned())
            .output()
            .expect("run tweetflow");
        let record: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "run record is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(
            out.status.code(),
            Some(0),
            "{record:#}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for id in MAIN_TASKS {
            assert_eq!(
                status(&record, id),
                "succeeded",
                "{id}: {:#}",
                task(&record, id)
            );
        }
        record
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tweetflow")
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

pub fn task<'a>(record: &'a Value, id: &str) -> &'a Value {
    &record["tasks"][id]
}

pub fn status<'a>(record: &'a Value, id: &str) -> &'a str {
    task(record, id)["status"].as_str().unwrap_or("?")
}

pub fn attempts(record: &Value, id: &str) -> usize {
    task(record, id)["attempts"].as_array().map_or(0, Vec::len)
}

/// (start, end) of the task's last attempt, as RFC 3339 timestamps parsed to chrono.
pub fn window(
    record: &Value,
    id: &str,
) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let a = task(record, id)["attempts"]
        .as_array()
        .and_then(|a| a.last())
        .expect("an attempt");
    let parse = |v: &Value| v.as_str().expect("timestamp").parse().expect("RFC 3339");
    (parse(&a["started_at"]), parse(&a["ended_at"]))
}

/// Whether process `pid` is still alive (a zombie counts as dead).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .map(|rest| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Runs `script` with the project's venv Python, `args` after it and `env` added; asserts that
/// it succeeded and returns its standard output.
pub fn venv_python<A: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: &[A],
    env: &[(String, String)],
) -> String {
    let out = Command::new(tweetflow_test_support::venv().join("bin/python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .envs(env.iter().cloned())
        .output()
        .expect("the venv's python (scripts/setup-venv.sh)");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The rows of the Delta table at `location` as sorted `value|value|...` lines of `columns`,
/// read by the Python `deltalake` package (another Delta reader).
pub fn python_delta_rows(location: &str, columns: &[&str]) -> Vec<String> {
    let script = "import os, sys, deltalake\n\
         t = deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table()\n\
         cols = [t.column(c).to_pylist() for c in sys.argv[2:]]\n\
         for r in sorted('|'.join(str(v) for v in row) for row in zip(*cols)): print(r)\n\
         sys.stdout.flush(); os._exit(0)\n";
    let mut args = vec![location];
    args.extend_from_slice(columns);
    venv_python(script, &args, &[])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The sorted rows of the bronze and silver tables under `root` in the sandbox.
pub fn medallion_rows(sb: &Sandbox, root: &str) -> Vec<Vec<Vec<String>>> {
    use tweetflow_test_support::tables::rows_of;
    let at = |name: &str| sb.path().join(root).join(name).display().to_string();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        vec![
            rows_of(
                &at("bronze"),
                &["source_file", "line", "date", "user", "text", "sentiment"],
            )
            .await,
            rows_of(
                &at("silver"),
                &[
                    "tweet_id",
                    "timestamp",
                    "user",
                    "mention",
                    "cleaned_text",
                    "sentiment",
                ],
            )
            .await,
        ]
    })
}
