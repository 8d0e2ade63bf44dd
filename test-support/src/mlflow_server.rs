//! A real MLflow server for tests: one per process, started on first use from the project's
//! venv (`TWEETFLOW_VENV`, else `<workspace>/.venv`), on a free port with a SQLite store in a
//! temporary directory, and killed (with its directory) when the process exits, even by
//! `kill -9` (a watchdog shell notices the parent is gone).
//!
//! [`client`] and [`client_config`] give an MLflow client of that server with fast retries.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use tweetflow_mlflow::{Client, ClientConfig};

use crate::fixtures::venv;

/// A running MLflow server.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static PGID: AtomicI32 = AtomicI32::new(0);
static DIR: OnceLock<PathBuf> = OnceLock::new();

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

extern "C" fn stop_server() {
    let pgid = PGID.swap(0, Ordering::SeqCst);
    if pgid > 0 {
        // SAFETY: plain kill(2) calls on the process group we created.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            // SAFETY: signal 0 only checks for existence.
            if unsafe { libc::kill(-pgid, 0) } != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    if let Some(d) = DIR.get() {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn health(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.") && buf.contains(" 200 ") && buf.trim_end().ends_with("OK")
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
    let _ = DIR.set(dir.clone());
    // SAFETY: registering a plain extern "C" function.
    unsafe {
        libc::atexit(stop_server);
    }
    // A freshly migrated database from an earlier run (same mlflow version) saves the schema
    // migrations at startup; the server still checks it is at the head revision.
    let template = template_db(&venv);
    if let Some(t) = template.as_ref().filter(|t| t.exists()) {
        let _ = std::fs::copy(t, dir.join("mlflow.db"));
    }
    let port = free_port();
    // A watchdog shell in its own process group runs the server and kills the group when the
    // test process goes away, even if it is killed without running atexit handlers.
    let script = r#"
        "$0" server --host 127.0.0.1 --port "$1" --backend-store-uri "sqlite:///$2/mlflow.db" \
            --artifacts-destination "$2/artifacts" --workers 1 >"$2/server.log" 2>&1 &
        while kill -0 "$3" 2>/dev/null; do sleep 1; done
        trap '' TERM
        kill -TERM 0
        sleep 3
        rm -rf "$2"
        kill -KILL 0
    "#;
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg(&mlflow)
            .arg(port.to_string())
            .arg(&dir)
            .arg(std::process::id().to_string())
            .current_dir(&dir)
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start bash: {e}"))?
    };
    PGID.store(child.id() as i32, Ordering::SeqCst);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(90) {
        if health(port) {
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
        std::thread::sleep(Duration::from_millis(200));
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
