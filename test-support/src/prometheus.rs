//! A real Prometheus server for tests (Debian's `prometheus`, installed by
//! `scripts/setup-prometheus.sh`): one per call of [`Prometheus::start`], scraping the given
//! targets every second, in its own process group under the [`crate::watched`] watchdog,
//! with its storage in a scratch directory removed when it stops. [`Prometheus::query`] asks
//! its HTTP API (`/api/v1/query`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::watched::{free_port, http, spawn_watched, wait_until};

/// One scrape job: its name, `host:port` target, and the bearer token it presents (if any).
pub struct ScrapeJob {
    /// The `job` label of its series.
    pub name: String,
    /// `127.0.0.1:<port>`.
    pub target: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer: Option<String>,
}

/// A running Prometheus server.
pub struct Prometheus {
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    pgid: i32,
    scratch: PathBuf,
}

/// The `prometheus` binary: `PROMETHEUS_BIN`, else the one on `PATH` or in /usr/bin.
fn binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("PROMETHEUS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "the metrics tests need a real Prometheus server, but `prometheus` is not installed: \
             run scripts/setup-prometheus.sh (make setup does)"
                .to_string()
        })
}

/// A Prometheus query that failed, with the API's answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

impl Prometheus {
    /// Starts a server scraping `jobs` every second; panics (failing the test) with the reason
    /// when it cannot start.
    pub fn start(jobs: &[ScrapeJob]) -> Prometheus {
        match Self::try_start(jobs) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn try_start(jobs: &[ScrapeJob]) -> Result<Prometheus, String> {
        let bin = binary()?;
        let scratch = std::env::temp_dir().join(format!(
            "tweetflow-prometheus-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for job in jobs {
            config.push_str(&format!("  - job_name: {}\n", job.name));
            if let Some(token) = &job.bearer {
                config.push_str(&format!(
                    "    authorization:\n      credentials: \"{token}\"\n"
                ));
            }
            config.push_str(&format!(
                "    static_configs:\n      - targets: [\"{}\"]\n",
                job.target
            ));
        }
        let config_path = scratch.join("prometheus.yml");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let port = free_port();
        let log = scratch.join("prometheus.log");
        let args = [
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", scratch.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let pgid =
            spawn_watched(&bin, &args, &log, Some(&scratch), |_| {}).map_err(|e| e.to_string())?;
        let t = Instant::now();
        if wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
            http(port, "GET", "/-/ready", "")
                .filter(|a| a.starts_with("HTTP/1.1 200") || a.starts_with("HTTP/1.0 200"))
        })
        .is_some()
        {
            eprintln!(
                "Prometheus on port {port} ready in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            return Ok(Prometheus {
                port,
                pgid,
                scratch,
            });
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        Err(format!(
            "Prometheus did not get ready within 60 s; log:\n{text}"
        ))
    }

    /// The result vector of the instant query `promql` (`data.result`), or the error the API
    /// gave.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, QueryError> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let answer = http(self.port, "GET", &path, "")
            .ok_or_else(|| QueryError("Prometheus did not answer".into()))?;
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let json: Value = serde_json::from_str(body)
            .map_err(|e| QueryError(format!("not JSON ({e}): {answer}")))?;
        if json["status"] != "success" {
            return Err(QueryError(format!("query `{promql}` failed: {json}")));
        }
        Ok(json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The value of the single series `promql` gives, once it has one.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).ok()?;
        let [series] = result.as_slice() else {
            return None;
        };
        series["value"][1].as_str()?.parse().ok()
    }

    /// Polls `promql` every 200 ms until its single value satisfies `ok` or `limit` passes;
    /// the last value seen.
    pub fn wait_for_value(
        &self,
        promql: &str,
        limit: Duration,
        ok: impl Fn(f64) -> bool,
    ) -> Result<f64, String> {
        let mut last = None;
        let found = wait_until(limit, Duration::from_millis(200), || {
            let v = self.value(promql);
            last = v;
            v.filter(|v| ok(*v))
        });
        found.ok_or_else(|| {
            format!(
                "`{promql}` did not reach the expected value within {limit:?} (last: {last:?}; targets: {})",
                self.targets()
            )
        })
    }

    /// The scrape targets' health, for failure messages.
    pub fn targets(&self) -> String {
        http(self.port, "GET", "/api/v1/targets", "")
            .and_then(|a| a.split_once("\r\n\r\n").map(|(_, b)| b.to_string()))
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        crate::watched::stop_group(self.pgid);
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Percent-encodes a query string value (everything but unreserved characters).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
