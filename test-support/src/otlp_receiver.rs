//! A local OTLP/HTTP trace receiver for tests (`python/otlp_receiver.py`, run with the
//! project's venv, which has `opentelemetry-proto`): decodes each `POST /v1/traces` with the
//! real protobuf definitions and keeps every span, one JSON object a line. One per call of
//! [`OtlpReceiver::start`], in its own process group under the [`crate::watched`] watchdog.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixtures::venv;
use crate::watched::{free_port, http, spawn_watched, stop_group, wait_until};

const SCRIPT: &str = include_str!("../python/otlp_receiver.py");

/// A running receiver.
pub struct OtlpReceiver {
    /// `http://127.0.0.1:<port>`: the value of `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    pgid: i32,
    scratch: PathBuf,
    spans: PathBuf,
}

impl OtlpReceiver {
    /// Starts a receiver on a free port; panics (failing the test) with the reason when it
    /// cannot start.
    pub fn start() -> OtlpReceiver {
        let python = venv().join("bin").join("python");
        assert!(
            python.exists(),
            "the trace tests need the project's venv ({}): run scripts/setup-venv.sh",
            python.display()
        );
        let port = free_port();
        let scratch =
            std::env::temp_dir().join(format!("tweetflow-otlp-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&scratch).expect("create the receiver's directory");
        let script = scratch.join("otlp_receiver.py");
        std::fs::write(&script, SCRIPT).expect("write the receiver script");
        let spans = scratch.join("spans.jsonl");
        let log = scratch.join("receiver.log");
        let port_arg = port.to_string();
        let pgid = spawn_watched(
            &python,
            &[script.as_os_str(), port_arg.as_ref(), spans.as_os_str()],
            &log,
            Some(&scratch),
            |_| {},
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = Instant::now();
        if wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
            http(port, "GET", "/", "")
        })
        .is_none()
        {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the OTLP receiver did not answer within 30 s; log:\n{text}");
        }
        eprintln!(
            "OTLP receiver on port {port} ready in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        OtlpReceiver {
            endpoint: format!("http://127.0.0.1:{port}"),
            pgid,
            scratch,
            spans,
        }
    }

    /// Every span received so far (see the script for the fields).
    pub fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.spans)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `ready` holds for the spans received (polling every 100 ms) or `limit`
    /// passes; the spans then.
    pub fn wait_for(&self, limit: Duration, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let t = Instant::now();
        loop {
            let spans = self.spans();
            if ready(&spans) || t.elapsed() > limit {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        stop_group(self.pgid);
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
