//! A client of the Ray Jobs REST API (`/api/jobs/`), the Ray dashboard's HTTP interface.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::TokenSearch;

/// Why a Ray Jobs request failed.
#[derive(Debug, thiserror::Error)]
pub enum RayError {
    /// No answer from the address (connection refused, timeout).
    #[error("the Ray cluster at {address} is unreachable: {source}")]
    Unreachable {
        /// The dashboard address.
        address: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The API answered with an error status.
    #[error("Ray at {address} answered {status} to {what}: {body}")]
    Status {
        /// The dashboard address.
        address: String,
        /// What was asked.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// The cluster refused the request's token (HTTP 401 or 403): a configuration error.
    #[error(
        "Ray at {address} refused {what} ({status}: {body}): the cluster wants a valid token; {looked}. Set `auth_token: ${{secret.RAY_TOKEN}}` in the executor settings, or RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH, to the cluster's token"
    )]
    Unauthorized {
        /// The dashboard address.
        address: String,
        /// What was asked.
        what: String,
        /// 401 or 403.
        status: u16,
        /// The start of the answer.
        body: String,
        /// Where the token was looked for ([`crate::auth::TokenSearch::describe`]).
        looked: String,
    },
    /// The answer was not the expected JSON.
    #[error("Ray at {address} answered {what} with unexpected JSON: {source}")]
    Json {
        /// The dashboard address.
        address: String,
        /// What was asked.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

impl RayError {
    /// Whether asking again later may succeed (the cluster is down or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            RayError::Unreachable { .. } => true,
            RayError::Status { status, .. } => *status >= 500,
            RayError::Json { .. } | RayError::Unauthorized { .. } => false,
        }
    }
}

/// The state of a Ray job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    /// Waiting for resources or its runtime environment.
    Pending,
    /// The entrypoint runs.
    Running,
    /// Stopped by a request.
    Stopped,
    /// The entrypoint exited with 0.
    Succeeded,
    /// The entrypoint failed or the job was lost.
    Failed,
}

impl JobStatus {
    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Stopped | JobStatus::Succeeded | JobStatus::Failed
        )
    }
}

/// What `GET /api/jobs/{id}` says about a job.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct JobInfo {
    /// The submission id.
    pub submission_id: Option<String>,
    /// Its state.
    pub status: JobStatus,
    /// Ray's explanation of the state.
    #[serde(default)]
    pub message: Option<String>,
    /// When the job started, in ms since the epoch.
    #[serde(default)]
    pub start_time: Option<i64>,
    /// When it ended, in ms since the epoch.
    #[serde(default)]
    pub end_time: Option<i64>,
    /// The entrypoint's exit code, when it exited.
    #[serde(default)]
    pub driver_exit_code: Option<i32>,
    /// The node that ran the entrypoint.
    #[serde(default)]
    pub driver_node_id: Option<String>,
    /// The labels given at submission.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A job submission (`POST /api/jobs/`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Submission {
    /// The shell command the job runs.
    pub entrypoint: String,
    /// The job's id, chosen by the submitter.
    pub submission_id: String,
    /// CPUs reserved for the entrypoint.
    pub entrypoint_num_cpus: f64,
    /// Memory reserved for the entrypoint, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_memory: Option<u64>,
    /// Custom resources reserved for the entrypoint.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub entrypoint_resources: BTreeMap<String, f64>,
    /// The runtime environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_env: Option<Value>,
    /// Labels shown by Ray.
    pub metadata: BTreeMap<String, String>,
}

/// A client of one Ray cluster's Jobs API.
#[derive(Clone, Debug)]
pub struct JobsClient {
    address: String,
    http: reqwest::Client,
    auth: TokenSearch,
}

impl JobsClient {
    /// A client of the dashboard at `address` (e.g. `http://127.0.0.1:8265`) that sends the
    /// token `auth` found (if any) as `Authorization: Bearer` on every request.
    pub fn new(address: &str, auth: TokenSearch) -> Result<Self, RayError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| RayError::Unreachable {
                address: address.to_string(),
                source,
            })?;
        Ok(JobsClient {
            address: address.trim_end_matches('/').to_string(),
            http,
            auth,
        })
    }

    /// The dashboard address.
    pub fn address(&self) -> &str {
        &self.address
    }

    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<String>, RayError> {
        let request = match &self.auth.token {
            Some(token) => request.header(reqwest::header::AUTHORIZATION, token.header()),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|source| self.unreachable(source))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|source| self.unreachable(source))?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let short = || {
            tweetflow_engine::secrets::mask(
                &body.lines().rev().take(3).collect::<Vec<_>>().join(" | "),
            )
            .into_owned()
        };
        if matches!(status.as_u16(), 401 | 403) {
            return Err(RayError::Unauthorized {
                address: self.address.clone(),
                what: what.to_string(),
                status: status.as_u16(),
                body: short(),
                looked: self.auth.describe(),
            });
        }
        if !status.is_success() {
            return Err(RayError::Status {
                address: self.address.clone(),
                what: what.to_string(),
                status: status.as_u16(),
                body: short(),
            });
        }
        Ok(Some(body))
    }

    fn unreachable(&self, source: reqwest::Error) -> RayError {
        RayError::Unreachable {
            address: self.address.clone(),
            source,
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, what: &str, body: &str) -> Result<T, RayError> {
        serde_json::from_str(body).map_err(|source| RayError::Json {
            address: self.address.clone(),
            what: what.to_string(),
            source,
        })
    }

    /// Submits a job.
    pub async fn submit(&self, submission: &Submission) -> Result<(), RayError> {
        let url = format!("{}/api/jobs/", self.address);
        let what = format!("the submission of {}", submission.submission_id);
        match self
            .send(&what, self.http.post(url).json(submission))
            .await?
        {
            Some(_) => Ok(()),
            None => Err(RayError::Status {
                address: self.address.clone(),
                what,
                status: 404,
                body: "no Jobs API here (is this the dashboard's address?)".into(),
            }),
        }
    }

    /// The job `id`; `None` when Ray knows no such job.
    pub async fn job(&self, id: &str) -> Result<Option<JobInfo>, RayError> {
        let url = format!("{}/api/jobs/{id}", self.address);
        let what = format!("the status of {id}");
        match self.send(&what, self.http.get(url)).await? {
            Some(body) => self.parse(&what, &body).map(Some),
            None => Ok(None),
        }
    }

    /// Every job the cluster knows.
    pub async fn jobs(&self) -> Result<Vec<JobInfo>, RayError> {
        let url = format!("{}/api/jobs/", self.address);
        let body = self
            .send("the job list", self.http.get(url))
            .await?
            .unwrap_or_else(|| "[]".into());
        self.parse("the job list", &body)
    }

    /// The job's logs (its entrypoint's stdout and stderr, with Ray's own lines).
    pub async fn logs(&self, id: &str) -> Result<String, RayError> {
        #[derive(Deserialize)]
        struct Logs {
            logs: String,
        }
        let url = format!("{}/api/jobs/{id}/logs", self.address);
        let what = format!("the logs of {id}");
        match self.send(&what, self.http.get(url)).await? {
            Some(body) => Ok(self.parse::<Logs>(&what, &body)?.logs),
            None => Ok(String::new()),
        }
    }

    /// Asks Ray to stop the job (SIGTERM, then SIGKILL after Ray's grace period).
    pub async fn stop(&self, id: &str) -> Result<(), RayError> {
        let url = format!("{}/api/jobs/{id}/stop", self.address);
        self.send(&format!("stopping {id}"), self.http.post(url))
            .await
            .map(|_| ())
    }
}
