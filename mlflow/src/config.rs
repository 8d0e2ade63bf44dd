//! Client configuration, read from the environment variables MLflow users already know.

use std::time::Duration;

use crate::error::{Error, Result};

/// Default tracking URI when `MLFLOW_TRACKING_URI` is not set: the local server started by
/// `scripts/mlflow-server.sh start`.
pub const DEFAULT_TRACKING_URI: &str = "http://127.0.0.1:5000";
/// Default timeout of one API request (connect + answer): 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default timeout of one artifact transfer (upload or download of one file): 10 min.
pub const DEFAULT_ARTIFACT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default connect timeout: 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of retries after the first attempt: 5 (so at most 6 attempts).
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// Default delay before the first retry: 200 ms, doubled at each retry.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(200);
/// Default cap of the delay between two retries: 10 s.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How the client authenticates to the tracking server.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No authentication header.
    #[default]
    None,
    /// HTTP basic auth (`MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>` (`MLFLOW_TRACKING_TOKEN`).
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Settings of a [`Client`](crate::Client).
///
/// | field | default | environment |
/// |---|---|---|
/// | `tracking_uri` | [`DEFAULT_TRACKING_URI`] | `MLFLOW_TRACKING_URI` |
/// | `experiment_name` | none (experiment `Default`, id `0`) | `MLFLOW_EXPERIMENT_NAME` |
/// | `auth` | none | `MLFLOW_TRACKING_USERNAME` + `MLFLOW_TRACKING_PASSWORD`, or `MLFLOW_TRACKING_TOKEN` |
/// | `request_timeout` | 30 s | `MLFLOW_HTTP_REQUEST_TIMEOUT` (seconds) |
/// | `artifact_timeout` | 600 s | - |
/// | `connect_timeout` | 10 s | - |
/// | `max_retries` | 5 | `MLFLOW_HTTP_REQUEST_MAX_RETRIES` |
/// | `backoff_initial` | 200 ms, doubled per retry, ±25 % jitter | `MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR` (seconds) |
/// | `backoff_max` | 10 s | - |
/// | `allow_non_finite_metrics` | `false` | - |
///
/// Non-finite metric values (NaN, ±inf) are refused by default with
/// [`Error::InvalidInput`]: they usually mean a diverged training and MLflow's UI plots them
/// poorly. With `allow_non_finite_metrics = true` they are sent the way MLflow does it, as the
/// strings `"NaN"`, `"Infinity"` and `"-Infinity"`; note that the server (sqlite/SQL backend)
/// stores NaN as NaN but replaces ±inf with ±`f64::MAX`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL of the tracking server (`http://` or `https://`), without `/api/...`.
    pub tracking_uri: String,
    /// Experiment to use when the caller does not name one.
    pub experiment_name: Option<String>,
    /// Authentication.
    pub auth: Auth,
    /// Timeout of one API request attempt.
    pub request_timeout: Duration,
    /// Timeout of one artifact file transfer attempt.
    pub artifact_timeout: Duration,
    /// Timeout for establishing a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Retries after the first attempt, for retryable errors only ([`Error::is_retryable`]).
    pub max_retries: u32,
    /// Delay before the first retry; doubled at each further retry.
    pub backoff_initial: Duration,
    /// Upper bound of the delay between retries.
    pub backoff_max: Duration,
    /// Send NaN / ±inf metric values (as MLflow's strings) instead of refusing them.
    pub allow_non_finite_metrics: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            tracking_uri: DEFAULT_TRACKING_URI.to_string(),
            experiment_name: None,
            auth: Auth::None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            artifact_timeout: DEFAULT_ARTIFACT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            allow_non_finite_metrics: false,
        }
    }
}

impl ClientConfig {
    /// Defaults with the given tracking URI.
    pub fn new(tracking_uri: impl Into<String>) -> Self {
        ClientConfig {
            tracking_uri: tracking_uri.into(),
            ..Default::default()
        }
    }

    /// Reads the `MLFLOW_*` environment variables (see the table on [`ClientConfig`]).
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`ClientConfig::from_env`] with a custom variable lookup (used by tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut cfg = ClientConfig::default();
        if let Some(uri) = get("MLFLOW_TRACKING_URI") {
            cfg.tracking_uri = uri.trim().to_string();
        }
        cfg.experiment_name = get("MLFLOW_EXPERIMENT_NAME");
        match (
            get("MLFLOW_TRACKING_USERNAME"),
            get("MLFLOW_TRACKING_PASSWORD"),
            get("MLFLOW_TRACKING_TOKEN"),
        ) {
            (Some(username), Some(password), _) => cfg.auth = Auth::Basic { username, password },
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(Error::Config(
                    "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD must be set together"
                        .into(),
                ));
            }
            (None, None, Some(token)) => cfg.auth = Auth::Bearer(token),
            (None, None, None) => {}
        }
        let secs = |name: &str| -> Result<Option<f64>> {
            match get(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                    _ => Err(Error::Config(format!(
                        "{name}={v:?} is not a number of seconds"
                    ))),
                },
            }
        };
        if let Some(t) = secs("MLFLOW_HTTP_REQUEST_TIMEOUT")? {
            cfg.request_timeout = Duration::from_secs_f64(t);
        }
        if let Some(b) = secs("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")? {
            cfg.backoff_initial = Duration::from_secs_f64(b);
        }
        if let Some(v) = get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") {
            cfg.max_retries = v.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "MLFLOW_HTTP_REQUEST_MAX_RETRIES={v:?} is not a count"
                ))
            })?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the tracking URI: only `http://` and `https://` servers are supported.
    pub fn validate(&self) -> Result<()> {
        let uri = self.tracking_uri.trim();
        let url = reqwest::Url::parse(uri)
            .map_err(|e| Error::Config(format!("tracking URI {uri:?} is not a URL: {e}")))?;
        match url.scheme() {
            "http" | "https" => Ok(()),
            other => Err(Error::Config(format!(
                "tracking URI {uri:?}: scheme {other:?} is not supported; this client talks to an MLflow \
                 tracking server over http(s) (start one with scripts/mlflow-server.sh start)"
            ))),
        }
    }

    /// Sets the request timeout.
    pub fn with_request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Sets the number of retries and the initial backoff.
    pub fn with_retries(mut self, max_retries: u32, backoff_initial: Duration) -> Self {
        self.max_retries = max_retries;
        self.backoff_initial = backoff_initial;
        self
    }

    /// Sets the authentication.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the default experiment name.
    pub fn with_experiment_name(mut self, name: impl Into<String>) -> Self {
        self.experiment_name = Some(name.into());
        self
    }

    /// Delay before retry number `retry` (0-based), without jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(30));
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<ClientConfig> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClientConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn env_defaults_and_auth() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.tracking_uri, DEFAULT_TRACKING_URI);
        assert_eq!(c.auth, Auth::None);
        let c = cfg(&[
            ("MLFLOW_TRACKING_URI", "http://h:1"),
            ("MLFLOW_EXPERIMENT_NAME", "e"),
            ("MLFLOW_TRACKING_USERNAME", "u"),
            ("MLFLOW_TRACKING_PASSWORD", "p"),
            ("MLFLOW_HTTP_REQUEST_TIMEOUT", "2.5"),
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"),
        ])
        .unwrap();
        assert_eq!(c.tracking_uri, "http://h:1");
        assert_eq!(c.experiment_name.as_deref(), Some("e"));
        assert_eq!(
            c.auth,
            Auth::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        assert_eq!(c.request_timeout, Duration::from_millis(2500));
        assert_eq!(c.max_retries, 1);
        assert!(!format!("{:?}", c.auth).contains('p'));
        let c = cfg(&[("MLFLOW_TRACKING_TOKEN", "t")]).unwrap();
        assert_eq!(c.auth, Auth::Bearer("t".into()));
        assert!(cfg(&[("MLFLOW_TRACKING_USERNAME", "u")]).is_err());
        assert!(cfg(&[("MLFLOW_TRACKING_URI", "file:///tmp/mlruns")]).is_err());
        assert!(cfg(&[("MLFLOW_HTTP_REQUEST_TIMEOUT", "soon")]).is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let c = ClientConfig::default();
        assert_eq!(c.backoff(0), Duration::from_millis(200));
        assert_eq!(c.backoff(1), Duration::from_millis(400));
        assert_eq!(c.backoff(3), Duration::from_millis(1600));
        assert_eq!(c.backoff(40), DEFAULT_BACKOFF_MAX);
    }
}
