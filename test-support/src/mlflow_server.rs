//! A real MLflow server for tests: one per process, started on first use from the project's
//! venv (`TWEETFLOW_VENV`, else `<workspace>/.venv`), on a free port with a SQLite store in a
//! temporary directory, and killed (with its directory) when the process exits, even by
//! `kill -9` (see [`crate::watched`]).
//!
//! [`client`] and [`client_config`] give an MLflow client of that server with fast retries.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tweetflow_mlflow::{Client, ClientConfig};

use crate::fixtures::venv;
use crate::watched::{http, spawn_watched, wait_until};

/// A running MLflow server.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

pub use crate::watched::free_port;

fn health(port: u16) -> bool {
    http(port, "GET", "/health", "")
        .is_some_and(|answer| answer.contains(" 200 ") && answer.trim_end().ends_with("OK"))
}

fn start() -> Result<Server, String> {
    let venv = venv();
    let mlflow = venv.join("bin").join("mlflow");
    if !mlflow.exists() {
        return Err(format!(
            "the MLflow integration tests need a real server, but {} does not exist. \
             Create the venv with scripts/setup-venv.sh (or point TWEETFLOW_VENV at a venv with mlflow installed).",
            mlflow.display()
        ));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "tweetflow-mlflow-test-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // A freshly migrated database from an earlier run (same mlflow version) saves the schema
    // migrations at startup; the server still checks it is at the head revision.
    let template = template_db(&venv);
    if let Some(t) = template.as_ref().filter(|t| t.exists()) {
        let _ = std::fs::copy(t, dir.join("mlflow.db"));
    }
    let port = free_port();
    let port_arg = port.to_string();
    let store = format!("sqlite:///{}/mlflow.db", dir.display());
    let artifacts = dir.join("artifacts");
    let args: [&OsStr; 10] = [
        "server".as_ref(),
        "--host".as_ref(),
        "127.0.0.1".as_ref(),
        "--port".as_ref(),
        port_arg.as_ref(),
        "--backend-store-uri".as_ref(),
        store.as_ref(),
        "--artifacts-destination".as_ref(),
        artifacts.as_os_str(),
        "--workers=1".as_ref(),
    ];
    spawn_watched(&mlflow, &args, &dir.join("server.log"), Some(&dir), |c| {
        c.current_dir(&dir)
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false");
    })
    .map_err(|e| format!("cannot start bash: {e}"))?;
    let t = Instant::now();
    if wait_until(Duration::from_secs(90), Duration::from_millis(200), || {
        health(port).then_some(())
    })
    .is_some()
    {
        eprintln!(
            "MLflow test server on port {port} ready in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        if let Some(t) = template.filter(|t| !t.exists()) {
            let tmp = t.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::copy(dir.join("mlflow.db"), &tmp).is_ok() {
                let _ = std::fs::rename(&tmp, &t);
            }
        }
        return Ok(Server {
            url: format!("http://127.0.0.1:{port}"),
        });
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let tail: Vec<&str> = log
        .lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(format!(
        "the MLflow server did not answer /health within 90 s; log tail:\n{}",
        tail.join("\n")
    ))
}

/// Where the migrated empty database of this mlflow version is cached.
fn template_db(venv: &std::path::Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    for py in lib.flatten() {
        for e in std::fs::read_dir(py.path().join("site-packages"))
            .ok()?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(v) = name
                .strip_prefix("mlflow-")
                .and_then(|r| r.strip_suffix(".dist-info"))
            {
                return Some(std::env::temp_dir().join(format!("tweetflow-mlflow-{v}-empty.db")));
            }
        }
    }
    None
}

/// The shared server; panics (failing the test) with the reason when it cannot be started.
pub fn server() -> &'static Server {
    match SERVER.get_or_init(start) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// A client config for the shared server, with fast retries (3, 50 ms apart).
pub fn client_config() -> ClientConfig {
    ClientConfig::new(server().url.clone()).with_retries(3, Duration::from_millis(50))
}

/// A client of the shared server (see [`client_config`]).
pub fn client() -> Client {
    Client::new(client_config()).expect("an MLflow client of the test server")
}

/// A plain client (default retries) of the server at `url`.
pub fn client_at(url: &str) -> Client {
    Client::new(ClientConfig::new(url)).expect("an MLflow client")
}
