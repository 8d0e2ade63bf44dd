//! `slack:`: the alert as a Slack incoming-webhook message (`text` for notifications and
//! `blocks`: title, pipeline, run, status, failed tasks and their errors, link).

use std::time::Duration;

use serde_json::{Value, json};

use crate::alert::Alert;
use crate::delivery::SendError;
use crate::section::SlackChannel;

/// Escapes text for Slack's mrkdwn.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The message posted for `alert`.
pub fn message(alert: &Alert) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": alert.title()}}),
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Pipeline*\n{}", escape(&alert.pipeline))},
            {"type": "mrkdwn", "text": format!("*Run*\n{}", escape(&alert.run_id))},
            {"type": "mrkdwn", "text": format!("*Status*\n{}", escape(&alert.status))},
            {"type": "mrkdwn", "text": format!("*Event*\n{}", escape(&alert.event))},
        ]}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&alert.summary)}}),
    ];
    for t in &alert.failed_tasks {
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
                "*{}* ({} attempt{}): `{}`",
                escape(&t.task),
                t.attempts,
                if t.attempts == 1 { "" } else { "s" },
                escape(&t.error)
            )}}),
        );
    }
    if let Some(url) = &alert.url {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("<{url}|Open the run>")}}));
    }
    json!({"text": format!("{}: {}", alert.title(), alert.summary), "blocks": blocks})
}

/// Posts `alert`; the answer's status line and body (Slack answers `ok`).
pub async fn send(
    channel: &SlackChannel,
    alert: &Alert,
    key: &str,
    timeout: Duration,
) -> Result<String, SendError> {
    let request = crate::delivery::http_client(timeout)?
        .post(&channel.webhook_url)
        .header(crate::webhook::DELIVERY_HEADER, key)
        .json(&message(alert));
    crate::delivery::http_answer(request.send().await).await
}
