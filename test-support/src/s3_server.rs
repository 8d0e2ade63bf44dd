//! A real S3 API server for tests (`moto_server` from the project's venv): one per process,
//! started on first use on a free port, and killed when the process exits, even by `kill -9`
//! (see [`crate::watched`]), like [`crate::mlflow_server`].
//!
//! [`S3Server::options`] are the storage options of that server (endpoint, any non-empty
//! credentials, plain HTTP, the etag conditional put); [`S3Server::env`] the same as the
//! standard `AWS_*` environment variables for child processes. [`bucket`] creates a fresh
//! bucket and returns its name.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::fixtures::venv;
use crate::watched::{free_port, http, spawn_watched, wait_until};

/// The access key id the tests use (the server accepts any).
pub const ACCESS_KEY_ID: &str = "tweetflow-test";
/// The secret access key the tests use (the server accepts any).
pub const SECRET_ACCESS_KEY: &str = "tweetflow-test-secret-7f3a";
/// The region the tests use.
pub const REGION: &str = "us-east-1";

/// A running S3 API server.
pub struct S3Server {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The TCP port.
    pub port: u16,
}

static SERVER: OnceLock<Result<S3Server, String>> = OnceLock::new();
static BUCKETS: AtomicU32 = AtomicU32::new(0);

fn start() -> Result<S3Server, String> {
    let moto = venv().join("bin").join("moto_server");
    if !moto.exists() {
        return Err(format!(
            "the object storage tests need a real S3 API server, but {} does not exist. \
             Create the venv with `scripts/setup-venv.sh test` (moto[server], requirements-s3.txt).",
            moto.display()
        ));
    }
    let port = free_port();
    let log = std::env::temp_dir().join(format!("tweetflow-s3-test-{}.log", std::process::id()));
    let port_arg = port.to_string();
    spawn_watched(
        &moto,
        &[
            "-H".as_ref(),
            "127.0.0.1".as_ref(),
            "-p".as_ref(),
            port_arg.as_ref(),
        ],
        &log,
        None,
        |_| {},
    )
    .map_err(|e| format!("cannot start bash: {e}"))?;
    let t = Instant::now();
    if wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        http(port, "GET", "/", "")
    })
    .is_some()
    {
        eprintln!(
            "S3 test server on port {port} ready in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let _ = std::fs::remove_file(&log);
        return Ok(S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        });
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    Err(format!(
        "the S3 test server did not answer within 60 s; log:\n{text}"
    ))
}

/// The shared server; panics (failing the test) with the reason when it cannot be started.
pub fn server() -> &'static S3Server {
    match SERVER.get_or_init(start) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

impl S3Server {
    /// Storage options for this server, as `storage:` sections and `deltalake` take them.
    pub fn options(&self) -> Vec<(String, String)> {
        vec![
            ("aws_endpoint_url".into(), self.endpoint.clone()),
            ("aws_access_key_id".into(), ACCESS_KEY_ID.into()),
            ("aws_secret_access_key".into(), SECRET_ACCESS_KEY.into()),
            ("aws_region".into(), REGION.into()),
            ("aws_allow_http".into(), "true".into()),
            ("aws_conditional_put".into(), "etag".into()),
        ]
    }

    /// The standard `AWS_*` environment variables for this server (for child processes).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_ACCESS_KEY.into()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// Creates bucket `name` (no error when it exists).
    pub fn create_bucket(&self, name: &str) {
        let answer = http(self.port, "PUT", &format!("/{name}"), "")
            .unwrap_or_else(|| panic!("the S3 test server did not answer creating `{name}`"));
        assert!(
            answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
            "creating bucket `{name}`: {answer}"
        );
    }
}

/// Creates a fresh bucket on the shared server (named after `prefix`, the process and a
/// counter) and returns its name.
pub fn bucket(prefix: &str) -> String {
    let n = BUCKETS.fetch_add(1, Ordering::SeqCst);
    let name = format!(
        "{}-{}-{n}",
        prefix.to_ascii_lowercase().replace('_', "-"),
        std::process::id()
    );
    server().create_bucket(&name);
    name
}
