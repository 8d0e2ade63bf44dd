//! Delivery: each alert is sent to each channel in the background, retried with backoff a
//! bounded number of times, and recorded in the run's `notify.json` (channel, event,
//! attempts, the answer or the error). A delivery already recorded as delivered is never
//! sent again, so a resumed run or a restarted daemon sends each alert once per run, event
//! and channel; the idempotency key (`X-Tweetflow-Delivery`) lets a receiver drop the copy
//! of a delivery whose record was cut short by a crash.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use tweetflow_engine::secrets::mask;

use crate::alert::{Alert, first_line};
use crate::section::{Channel, ChannelKind};

/// The file of a run's deliveries.
pub const FILE: &str = "notify.json";

/// Why one try of a delivery failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// What went wrong (secrets masked when recorded).
    pub message: String,
    /// Whether another try may pass (a server down, slow, or answering 5xx / 429).
    pub retryable: bool,
}

impl SendError {
    /// A failure that may pass on another try.
    pub fn retryable(message: impl Into<String>) -> Self {
        SendError {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure another try will not fix (a bad address, a 4xx answer).
    pub fn fatal(message: impl Into<String>) -> Self {
        SendError {
            message: message.into(),
            retryable: false,
        }
    }
}

/// An HTTP client with `timeout` per request.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, SendError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("tweetflow/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SendError::fatal(format!("HTTP client: {e}")))
}

/// The outcome of an HTTP post: `HTTP 200 ok` for a 2xx answer, an error otherwise.
pub(crate) async fn http_answer(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<String, SendError> {
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            // Never the URL: it may be a credential (a Slack webhook).
            let e = e.without_url();
            let what = if e.is_timeout() {
                "no answer in time"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            // The innermost cause says most (`Connection refused`).
            let mut cause: &dyn std::error::Error = &e;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            return Err(SendError::retryable(format!("{what}: {cause}")));
        }
    };
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let answer = format!("HTTP {} {}", status.as_u16(), first_line(&body));
    let answer = answer.trim_end().to_string();
    if status.is_success() {
        Ok(answer)
    } else {
        let retryable =
            status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408;
        Err(SendError {
            message: answer,
            retryable,
        })
    }
}

/// The state of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Being tried (or the process died while it was).
    Sending,
    /// The channel accepted it.
    Delivered,
    /// Every try failed, or the channel refused it.
    Failed,
}

impl DeliveryStatus {
    /// The status as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// One alert sent to one channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The idempotency key: `<run id>:<event>:<channel>` (the event with its task and
    /// attempt for `retry`), sent as `X-Tweetflow-Delivery`.
    pub key: String,
    /// The channel's name.
    pub channel: String,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    /// The event.
    pub event: String,
    /// Its state.
    pub status: DeliveryStatus,
    /// Tries made.
    pub attempts: u32,
    /// What the channel answered to the last try that reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Why the last try failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the first try started.
    pub first_at: DateTime<Utc>,
    /// When the last try ended.
    pub last_at: DateTime<Utc>,
}

/// A run's deliveries (`runs/<id>/notify.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryLog {
    /// Every delivery, in the order they began.
    #[serde(default)]
    pub deliveries: Vec<Delivery>,
    /// The final states the run reached, oldest first (a resumed run may end more than
    /// once), so `recovered` sees a run that failed before it was resumed.
    #[serde(default)]
    pub ended: Vec<String>,
}

/// One writer at a time per process (a run is executed by one process: its lock).
static WRITE: Mutex<()> = Mutex::new(());

impl DeliveryLog {
    /// The deliveries of the run in `run_dir` (empty when none was made).
    pub fn read(run_dir: &Path) -> DeliveryLog {
        std::fs::read(run_dir.join(FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Changes the log of `run_dir` with `change`, atomically.
    pub fn update<T>(run_dir: &Path, change: impl FnOnce(&mut DeliveryLog) -> T) -> T {
        let _guard = WRITE.lock().unwrap_or_else(|e| e.into_inner());
        let mut log = DeliveryLog::read(run_dir);
        let out = change(&mut log);
        match serde_json::to_vec_pretty(&log) {
            Ok(bytes) => {
                // Answers and errors were masked when recorded; mask the whole once more.
                let bytes = tweetflow_engine::secrets::mask_bytes(&bytes).into_owned();
                if let Err(e) = tweetflow_engine::store::write_atomic(&run_dir.join(FILE), &bytes) {
                    warn!(error = %e, "cannot record the alert deliveries");
                }
            }
            Err(e) => warn!(error = %e, "cannot record the alert deliveries"),
        }
        out
    }

    /// The delivery with `key`.
    pub fn get(&self, key: &str) -> Option<&Delivery> {
        self.deliveries.iter().find(|d| d.key == key)
    }

    fn upsert(&mut self, delivery: Delivery) {
        match self.deliveries.iter_mut().find(|d| d.key == delivery.key) {
            Some(d) => *d = delivery,
            None => self.deliveries.push(delivery),
        }
    }
}

/// Sends `alert` to `channel` once: through one try.
pub async fn send_once(channel: &Channel, alert: &Alert, key: &str) -> Result<String, SendError> {
    let result = match &channel.kind {
        ChannelKind::Webhook(w) => crate::webhook::send(w, alert, key, channel.timeout).await,
        ChannelKind::Slack(s) => crate::slack::send(s, alert, key, channel.timeout).await,
        ChannelKind::Email(e) => crate::email::send(e, alert, key, channel.timeout).await,
    };
    result
        .map(|a| mask(&a).into_owned())
        .map_err(|e| SendError {
            message: mask(&e.message).into_owned(),
            retryable: e.retryable,
        })
}

/// The wait before try `n + 1` (n ≥ 1): 500 ms doubled each time, at most 30 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << (n - 1).min(6))).min(Duration::from_secs(30))
}

/// A delivery to make: an alert, a channel, and where to record it.
#[derive(Clone, Debug)]
pub struct Job {
    /// The run's directory (`None`: not recorded, e.g. `notify test`).
    pub run_dir: Option<PathBuf>,
    /// The channel.
    pub channel: Channel,
    /// The event key (`failed`, `retry:infer:1`, `interrupted:0`).
    pub event_key: String,
    /// The alert.
    pub alert: Alert,
}

impl Job {
    /// The idempotency key.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.alert.run_id, self.event_key, self.channel.name
        )
    }
}

/// Makes the delivery of `job`, with retries; `None` when it was already delivered.
pub async fn deliver(job: Job) -> Option<Delivery> {
    let key = job.key();
    if let Some(dir) = &job.run_dir
        && DeliveryLog::read(dir)
            .get(&key)
            .is_some_and(|d| d.status == DeliveryStatus::Delivered)
    {
        info!(key = %key, "alert already delivered");
        return None;
    }
    let now = Utc::now();
    let previous = job
        .run_dir
        .as_deref()
        .and_then(|dir| DeliveryLog::read(dir).get(&key).cloned());
    let mut delivery = Delivery {
        key: key.clone(),
        channel: job.channel.name.clone(),
        kind: job.channel.kind.as_str().to_string(),
        event: job.alert.event.clone(),
        status: DeliveryStatus::Sending,
        attempts: previous.as_ref().map_or(0, |d| d.attempts),
        answer: None,
        error: None,
        first_at: previous.as_ref().map_or(now, |d| d.first_at),
        last_at: now,
    };
    for n in 1..=job.channel.attempts {
        delivery.attempts += 1;
        delivery.status = DeliveryStatus::Sending;
        record(&job, &delivery);
        let outcome = send_once(&job.channel, &job.alert, &key).await;
        delivery.last_at = Utc::now();
        match outcome {
            Ok(answer) => {
                info!(channel = %delivery.channel, event = %delivery.event, answer = %answer, "alert delivered");
                delivery.status = DeliveryStatus::Delivered;
                delivery.answer = Some(answer);
                delivery.error = None;
                record(&job, &delivery);
                tweetflow_engine::metrics::alert_sent(&delivery.kind, "sent");
                return Some(delivery);
            }
            Err(e) => {
                warn!(channel = %delivery.channel, event = %delivery.event, attempt = n, error = %e.message, retryable = e.retryable, "alert not delivered");
                if e.message.starts_with("HTTP ") {
                    delivery.answer = Some(e.message.clone());
                }
                delivery.error = Some(e.message.clone());
                if !e.retryable || n == job.channel.attempts {
                    break;
                }
                record(&job, &delivery);
                tokio::time::sleep(backoff(n)).await;
            }
        }
    }
    delivery.status = DeliveryStatus::Failed;
    record(&job, &delivery);
    tweetflow_engine::metrics::alert_sent(&delivery.kind, "failed");
    Some(delivery)
}

fn record(job: &Job, delivery: &Delivery) {
    if let Some(dir) = &job.run_dir {
        let delivery = delivery.clone();
        DeliveryLog::update(dir, |log| log.upsert(delivery));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(20), Duration::from_secs(30));
    }
}
