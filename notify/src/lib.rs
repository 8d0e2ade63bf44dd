//! # tweetflow-notify
//!
//! Alerts: a pipeline's `notify:` section lists channels (a signed JSON `webhook`, a
//! `slack` incoming webhook, an `email` over SMTP), each with the run events it is told
//! about: `failed`, `succeeded`, `retry`, `sla_missed` (with the `sla:` section),
//! `interrupted` and `recovered`. The engine knows none of this: [`Notify`] is a run
//! observer and the sections are plugin sections.
//!
//! ```text
//!  engine ──run_started──▶ Notify ──sla timer──────────────┐
//!         ──attempt_retrying──▶ (retry)                    ├─▶ delivery (background, retried,
//!         ──run_finished──▶ (failed/succeeded/recovered)   │    recorded in notify.json,
//!  detector ─run_interrupted─▶ (interrupted)  ─────────────┘    once per run/event/channel)
//!                                                             webhook │ slack │ email
//! ```
//!
//! Channel URLs, HMAC keys and SMTP passwords are secrets: kept out of the plan, the run
//! record, logs and errors. Crate apart from the task plugins so that its SMTP and HTTP
//! clients and its tests do not pull in the data stack.

pub mod alert;
pub mod delivery;
pub mod email;
pub mod observer;
pub mod section;
pub mod slack;
pub mod webhook;

pub use alert::Alert;
pub use delivery::{Delivery, DeliveryLog, DeliveryStatus};
pub use observer::Notify;
pub use section::{AlertEvent, NotifySection, SlaSection};

use tweetflow_engine::{Pipeline, Registry};

/// Registers the `notify:` and `sla:` sections.
pub fn register_sections(registry: &mut Registry) {
    registry
        .register_section::<NotifySection>()
        .register_section::<SlaSection>();
}

/// What one channel answered to a test message.
#[derive(Clone, Debug)]
pub struct TestOutcome {
    /// The channel's name.
    pub channel: String,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    /// The answer, or why it failed (secrets masked).
    pub result: Result<String, String>,
}

/// Sends a test message to each channel of `pipeline` (one try each, nothing recorded):
/// `tweetflow notify test`.
pub async fn send_test(pipeline: &Pipeline, ui_url: Option<&str>) -> Vec<TestOutcome> {
    let mut out = Vec::new();
    for channel in observer::channels(pipeline) {
        for value in channel.kind.credentials() {
            tweetflow_engine::secrets::register(value);
        }
        let now = chrono::Utc::now();
        let run_id = format!("test-{}", now.format("%Y%m%dT%H%M%SZ"));
        let alert = Alert {
            event: "test".into(),
            pipeline: pipeline.name.clone(),
            run_id: run_id.clone(),
            status: "test".into(),
            started_at: now,
            ended_at: Some(now),
            failed_tasks: Vec::new(),
            url: ui_url.map(|u| alert::run_url(u, &run_id)),
            summary: format!(
                "{}: a test message from `tweetflow notify test` to channel `{}`",
                pipeline.name, channel.name
            ),
        };
        let key = format!("{run_id}:test:{}", channel.name);
        let result = delivery::send_once(&channel, &alert, &key)
            .await
            .map_err(|e| e.message);
        out.push(TestOutcome {
            channel: channel.name.clone(),
            kind: channel.kind.as_str().to_string(),
            result,
        });
    }
    out
}
