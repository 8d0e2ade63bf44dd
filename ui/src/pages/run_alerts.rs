//! The alerts a run sent (`notify.json` of the run, written by the alerts observer), as
//! shown on the run page.

use serde::Serialize;
use serde_json::Value as Json;

/// One alert sent to one channel.
#[derive(Debug, Serialize)]
pub struct AlertDelivery {
    /// The event (`failed`, `retry`, `sla_missed`, ...).
    pub event: String,
    /// The channel's name.
    pub channel: String,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    /// `delivered`, `failed` or `sending`.
    pub status: String,
    /// Tries made.
    pub attempts: u64,
    /// The channel's answer, or why it failed.
    pub answer: String,
    /// When the last try ended.
    pub at: String,
}

/// The deliveries recorded in the run directory `dir` (none when the run sent no alert).
pub fn deliveries(dir: &std::path::Path) -> Vec<AlertDelivery> {
    let Some(value) = std::fs::read(dir.join("notify.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
    else {
        return Vec::new();
    };
    let text = |d: &Json, k: &str| d[k].as_str().unwrap_or("").to_string();
    value["deliveries"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|d| AlertDelivery {
                    event: text(d, "event"),
                    channel: text(d, "channel"),
                    kind: text(d, "kind"),
                    status: text(d, "status"),
                    attempts: d["attempts"].as_u64().unwrap_or(0),
                    answer: d["error"]
                        .as_str()
                        .or(d["answer"].as_str())
                        .unwrap_or("")
                        .to_string(),
                    at: text(d, "last_at"),
                })
                .collect()
        })
        .unwrap_or_default()
}
