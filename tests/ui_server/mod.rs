//! Starts `tweetflow ui` (the real binary) on a free port over a temporary run store and a
//! folder of fixture pipelines, for the web UI's tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The token the tests' servers use.
pub const TOKEN: &str = "test-token-0123456789";

/// The fixture pipelines: name and YAML.
pub const PIPELINES: &[(&str, &str)] = &[
    (
        "quick.yaml",
        "name: quick\ndescription: three no-op tasks\nparams:\n  n: 3\n  label: hello\n  fast: true\ntasks:\n  a:\n    type: noop\n  b:\n    type: noop\n    depends_on: [a]\n  c:\n    type: noop\n    depends_on: [a]\n",
    ),
    (
        "flaky.yaml",
        "name: flaky\ntasks:\n  prepare:\n    type: noop\n  fails:\n    type: command\n    depends_on: [prepare]\n    retries: { max_attempts: 2, initial_delay: 50ms, max_delay: 50ms, jitter: false }\n    with:\n      argv: [sh, -c, \"echo the disk is on fire >&2; exit 3\"]\n  after:\n    type: noop\n    depends_on: [fails]\n",
    ),
    (
        "slow.yaml",
        "name: slow\nparams:\n  seconds: 30\ntasks:\n  first:\n    type: noop\n  sleep:\n    type: command\n    depends_on: [first]\n    with:\n      argv: [sh, -c, \"echo sleeping; sleep ${params.seconds}; echo woke\"]\n",
    ),
    (
        "nightly.yaml",
        "name: nightly\nschedule:\n  cron: \"30 2 * * *\"\n  timezone: Europe/Paris\ntasks:\n  only:\n    type: noop\n",
    ),
    (
        "broken.yaml",
        "name: broken\ntasks:\n  a:\n    type: nope\n    depends_on: [zz]\n",
    ),
];

/// The `tweetflow` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tweetflow"))
}

/// A running `tweetflow ui`.
pub struct UiServer {
    child: Child,
    _stdout: BufReader<std::process::ChildStdout>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The run store.
    pub runs_dir: PathBuf,
    /// The pipelines folder.
    pub pipelines_dir: PathBuf,
    /// Keeps the folders alive.
    pub dir: tempfile::TempDir,
}

impl UiServer {
    /// Writes the fixture pipelines (and the repository's `tweet_sentiment.yaml`) and starts
    /// the server.
    pub fn start() -> UiServer {
        let dir = tempfile::tempdir().unwrap();
        let pipelines_dir = dir.path().join("pipelines");
        std::fs::create_dir_all(&pipelines_dir).unwrap();
        for (name, text) in PIPELINES {
            std::fs::write(pipelines_dir.join(name), text).unwrap();
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(
            repo.join("pipelines/tweet_sentiment.yaml"),
            pipelines_dir.join("tweet_sentiment.yaml"),
        )
        .unwrap();
        let runs_dir = dir.path().join("runs");
        Self::start_in(dir, pipelines_dir, runs_dir)
    }

    fn start_in(dir: tempfile::TempDir, pipelines_dir: PathBuf, runs_dir: PathBuf) -> UiServer {
        let mut child = Command::new(bin())
            .current_dir(dir.path())
            .arg("--runs-dir")
            .arg(&runs_dir)
            .args(["ui", "--listen", "127.0.0.1:0", "--token", TOKEN])
            .arg(&pipelines_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        let base = first
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "{first}");
        UiServer {
            child,
            _stdout: stdout,
            base,
            runs_dir,
            pipelines_dir,
            dir,
        }
    }

    /// `tweetflow run` of a fixture pipeline with the same run store; returns the run id.
    pub fn run_cli(&self, pipeline: &str, params: &[&str]) -> String {
        let mut cmd = Command::new(bin());
        cmd.current_dir(self.dir.path())
            .arg("--runs-dir")
            .arg(&self.runs_dir)
            .args(["run", "--json"])
            .arg(self.pipelines_dir.join(format!("{pipeline}.yaml")));
        for p in params {
            cmd.args(["--param", p]);
        }
        let out = cmd.stderr(Stdio::null()).output().unwrap();
        let record: Value = serde_json::from_slice(&out.stdout).unwrap();
        record["run_id"].as_str().unwrap().to_string()
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `GET path` as JSON.
    pub fn json(&self, path: &str) -> Value {
        let response = client()
            .get(self.url(path))
            .header("Accept", "application/json")
            .send()
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().unwrap()
    }

    /// Waits until run `id` is no longer running; returns its page's JSON.
    pub fn wait_finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let run = self.json(&format!("/runs/{id}"));
            if run["summary"]["status"] != "running" && !run["executing"].as_bool().unwrap() {
                return run;
            }
            assert!(Instant::now() < deadline, "run {id} did not finish");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that does not follow redirects.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}
