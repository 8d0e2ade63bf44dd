//! The [`Client`]: HTTP plumbing, authentication, timeouts, retries and error mapping.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{Auth, ClientConfig};
use crate::error::{Error, ErrorCode, Result};

/// Path of the REST API under the tracking URI.
const API_PREFIX: &str = "api/2.0/mlflow/";
/// Path of the artifact proxy under the tracking URI.
const ARTIFACTS_PREFIX: &str = "api/2.0/mlflow-artifacts/artifacts";

/// An async client of one MLflow tracking server.
///
/// Cheap to clone (the connection pool and the per-run records are shared). Every call is
/// retried on connection errors, timeouts, HTTP 429 and 5xx with exponential backoff
/// (see [`ClientConfig`]); other errors come back at once.
///
/// Retries re-send the same request: logging calls are idempotent in MLflow (a metric point or
/// a param sent twice is stored once), but a `runs/create` whose answer was lost creates a
/// second run; experiments and registered models are created race-free by
/// [`Client::get_or_create_experiment`] and [`Client::get_or_create_registered_model`].
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    http: reqwest::Client,
    base: Url,
    /// Params logged through this client, per run: MLflow params are immutable.
    pub(crate) params: Mutex<HashMap<String, HashMap<String, String>>>,
    /// Artifact root of each run seen (`mlflow-artifacts:/...`).
    pub(crate) artifact_roots: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("tracking_uri", &self.inner.config.tracking_uri)
            .field("auth", &self.inner.config.auth)
            .finish_non_exhaustive()
    }
}

/// The body of a request, kept so that it can be re-sent on retry.
#[derive(Clone)]
pub(crate) enum Body {
    None,
    Json(Vec<u8>),
    Bytes(bytes::Bytes),
}

impl Client {
    /// A client for the given configuration.
    pub fn new(config: ClientConfig) -> Result<Client> {
        config.validate()?;
        let mut base = Url::parse(config.tracking_uri.trim())
            .map_err(|e| Error::Config(format!("tracking URI {:?}: {e}", config.tracking_uri)))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("tweetflow-mlflow/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                http,
                base,
                params: Mutex::new(HashMap::new()),
                artifact_roots: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A client configured from the `MLFLOW_*` environment variables
    /// (see [`ClientConfig::from_env`]).
    pub fn from_env() -> Result<Client> {
        Client::new(ClientConfig::from_env()?)
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The tracking server's base URL (with a trailing `/`).
    pub fn tracking_uri(&self) -> &Url {
        &self.inner.base
    }

    /// `GET /health`: `Ok(())` when the server answers `OK`. Not retried.
    pub async fn health(&self) -> Result<()> {
        let url = self.url("health")?;
        let endpoint = "health";
        let resp = self
            .authed(self.inner.http.get(url))
            .timeout(self.inner.config.request_timeout)
            .send()
            .await
            .map_err(|e| self.map_reqwest(endpoint, self.inner.config.request_timeout, e))?;
        let status = resp.status();
        let ct = content_type(&resp);
        let body = resp
            .text()
            .await
            .map_err(|e| self.map_reqwest(endpoint, self.inner.config.request_timeout, e))?;
        if status.is_success() && body.trim() == "OK" {
            Ok(())
        } else {
            Err(unexpected(endpoint, status, ct, body.as_bytes()))
        }
    }

    // ---- plumbing used by the other modules ----

    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        self.inner
            .base
            .join(path)
            .map_err(|e| Error::Config(format!("cannot build a URL for {path:?}: {e}")))
    }

    /// URL of the artifact proxy for a relative artifact path (segments percent-encoded).
    pub(crate) fn artifact_url(&self, path: &str) -> Result<Url> {
        let mut url = self.url(ARTIFACTS_PREFIX)?;
        {
            let mut segs = url
                .path_segments_mut()
                .map_err(|_| Error::Config("the tracking URI cannot be a base URL".into()))?;
            for seg in path.split('/').filter(|s| !s.is_empty()) {
                segs.push(seg);
            }
        }
        Ok(url)
    }

    /// URL of the artifact listing endpoint.
    pub(crate) fn artifact_list_url(&self, path: &str) -> Result<Url> {
        let mut url = self.url(ARTIFACTS_PREFIX)?;
        if !path.is_empty() {
            url.query_pairs_mut().append_pair("path", path);
        }
        Ok(url)
    }

    fn authed(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.inner.config.auth {
            Auth::None => rb,
            Auth::Basic { username, password } => rb.basic_auth(username, Some(password)),
            Auth::Bearer(token) => rb.bearer_auth(token),
        }
    }

    pub(crate) fn map_reqwest(
        &self,
        endpoint: &str,
        timeout: Duration,
        e: reqwest::Error,
    ) -> Error {
        if e.is_timeout() {
            Error::Timeout {
                endpoint: endpoint.to_string(),
                timeout,
            }
        } else {
            Error::Transport {
                endpoint: endpoint.to_string(),
                source: e,
            }
        }
    }

    /// Runs `attempt` until it succeeds, fails with a non-retryable error, or the retries are
    /// spent. Sleeps `backoff_initial * 2^n` (capped, ±25 % jitter) between attempts.
    pub(crate) async fn with_retries<T, F, Fut>(&self, endpoint: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let cfg = &self.inner.config;
        let mut retry = 0u32;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && retry < cfg.max_retries => {
                    let base = cfg.backoff(retry);
                    let jitter = rand::rng().random_range(0.75..1.25);
                    let delay = base.mul_f64(jitter);
                    tracing::warn!(endpoint, retry = retry + 1, max_retries = cfg.max_retries, ?delay, error = %e, "MLflow request failed, retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one request (with retries) and returns the successful response, whose body has
    /// not been read. Error statuses are turned into [`Error`]s.
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        url: Url,
        endpoint: &str,
        body: Body,
        timeout: Duration,
    ) -> Result<Response> {
        self.with_retries(endpoint, || {
            self.send_checked_once(method.clone(), url.clone(), endpoint, body.clone(), timeout)
        })
        .await
    }

    /// One attempt of [`Client::send_raw`], without retries.
    pub(crate) async fn send_checked_once(
        &self,
        method: Method,
        url: Url,
        endpoint: &str,
        body: Body,
        timeout: Duration,
    ) -> Result<Response> {
        let resp = self.send_once(method, url, endpoint, body, timeout).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let ct = content_type(&resp);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.map_reqwest(endpoint, timeout, e))?;
        Err(error_from_answer(endpoint, status, ct, &bytes))
    }

    /// Calls a JSON endpoint of the REST API (`api/2.0/mlflow/<endpoint>`) with retries.
    pub(crate) async fn call<B, T>(
        &self,
        method: Method,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<T>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let mut url = self.url(&format!("{API_PREFIX}{endpoint}"))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter());
        }
        let body = match body {
            Some(b) => Body::Json(
                serde_json::to_vec(b)
                    .map_err(|e| Error::InvalidInput(format!("cannot encode the request: {e}")))?,
            ),
            None => Body::None,
        };
        self.call_url(method, url, endpoint, body).await
    }

    pub(crate) async fn call_url<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        endpoint: &str,
        body: Body,
    ) -> Result<T> {
        let timeout = self.inner.config.request_timeout;
        self.with_retries(endpoint, || {
            let method = method.clone();
            let url = url.clone();
            let body = body.clone();
            async move {
                let resp = self.send_once(method, url, endpoint, body, timeout).await?;
                let status = resp.status();
                let ct = content_type(&resp);
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| self.map_reqwest(endpoint, timeout, e))?;
                if !status.is_success() {
                    return Err(error_from_answer(endpoint, status, ct, &bytes));
                }
                decode_json(endpoint, status, ct, &bytes)
            }
        })
        .await
    }

    async fn send_once(
        &self,
        method: Method,
        url: Url,
        endpoint: &str,
        body: Body,
        timeout: Duration,
    ) -> Result<Response> {
        tracing::debug!(%method, endpoint, "MLflow request");
        let mut rb = self
            .authed(self.inner.http.request(method, url))
            .timeout(timeout);
        rb = match body {
            Body::None => rb,
            Body::Json(bytes) => rb
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(bytes),
            Body::Bytes(b) => rb
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                )
                .body(b),
        };
        rb.send()
            .await
            .map_err(|e| self.map_reqwest(endpoint, timeout, e))
    }

    pub(crate) fn lock_params(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, String>>> {
        self.inner.params.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lock_roots(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.inner
            .artifact_roots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

fn content_type(resp: &Response) -> Option<String> {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn snippet(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    let mut out: String = s.chars().take(300).collect();
    if s.chars().count() > 300 {
        out.push_str("...");
    }
    out
}

fn unexpected(endpoint: &str, status: StatusCode, ct: Option<String>, bytes: &[u8]) -> Error {
    Error::UnexpectedResponse {
        endpoint: endpoint.to_string(),
        status: status.as_u16(),
        content_type: ct,
        snippet: snippet(bytes),
    }
}

fn looks_like_html(ct: &Option<String>, bytes: &[u8]) -> bool {
    ct.as_deref().is_some_and(|c| c.starts_with("text/html"))
        || bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
}

/// Turns a non-2xx answer into an [`Error`]: `Api` when it carries an `error_code` (or is a
/// 401/403), else `UnexpectedResponse`.
pub(crate) fn error_from_answer(
    endpoint: &str,
    status: StatusCode,
    ct: Option<String>,
    bytes: &[u8],
) -> Error {
    #[derive(serde::Deserialize)]
    struct ApiError {
        error_code: Option<String>,
        #[serde(default)]
        message: String,
    }
    if !looks_like_html(&ct, bytes)
        && let Ok(ApiError {
            error_code: Some(code),
            message,
        }) = serde_json::from_slice::<ApiError>(bytes)
    {
        return Error::Api {
            code: ErrorCode::parse(&code),
            message,
            status: status.as_u16(),
            endpoint: endpoint.to_string(),
        };
    }
    // Authentication failures from an auth proxy or MLflow's basic-auth app, without an
    // `error_code`: typed anyway, with the answer as the message.
    let code = match status {
        StatusCode::UNAUTHORIZED => Some(ErrorCode::Unauthenticated),
        StatusCode::FORBIDDEN => Some(ErrorCode::PermissionDenied),
        _ => None,
    };
    if let Some(code) = code {
        return Error::Api {
            code,
            message: snippet(bytes),
            status: status.as_u16(),
            endpoint: endpoint.to_string(),
        };
    }
    unexpected(endpoint, status, ct, bytes)
}

fn decode_json<T: DeserializeOwned>(
    endpoint: &str,
    status: StatusCode,
    ct: Option<String>,
    bytes: &[u8],
) -> Result<T> {
    if looks_like_html(&ct, bytes) {
        return Err(unexpected(endpoint, status, ct, bytes));
    }
    let bytes: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|source| Error::Decode {
        endpoint: endpoint.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_answers() {
        let e = error_from_answer(
            "x",
            StatusCode::NOT_FOUND,
            Some("application/json".into()),
            br#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"nope"}"#,
        );
        assert!(e.is_not_found() && !e.is_retryable());
        let e = error_from_answer(
            "x",
            StatusCode::NOT_FOUND,
            Some("text/html".into()),
            b"<!doctype html><p>",
        );
        assert!(
            matches!(e, Error::UnexpectedResponse { status: 404, .. }),
            "{e}"
        );
        let e = error_from_answer("x", StatusCode::BAD_GATEWAY, None, b"bad gateway");
        assert!(e.is_retryable());
        let v: serde_json::Value = decode_json("x", StatusCode::OK, None, b"").unwrap();
        assert_eq!(v, serde_json::json!({}));
        assert!(decode_json::<serde_json::Value>("x", StatusCode::OK, None, b"  <html>").is_err());
    }

    #[test]
    fn urls() {
        let c = Client::new(ClientConfig::new("http://127.0.0.1:5000/prefix")).unwrap();
        assert_eq!(
            c.url("api/2.0/mlflow/runs/get").unwrap().as_str(),
            "http://127.0.0.1:5000/prefix/api/2.0/mlflow/runs/get"
        );
        assert_eq!(
            c.artifact_url("1/abc/artifacts/a b/c.txt")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:5000/prefix/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/a%20b/c.txt"
        );
    }
}
