//! What an alert says: built from the run record, posted as JSON by `webhook`, and rendered
//! as text by `slack` and `email`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tweetflow_engine::secrets::mask;
use tweetflow_engine::{RunRecord, TaskStatus};

/// The alert, as the webhook posts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `failed`, `succeeded`, `retry`, `sla_missed`, `interrupted`, `recovered` or `test`.
    pub event: String,
    /// The pipeline.
    pub pipeline: String,
    /// The run.
    pub run_id: String,
    /// The run's status when the alert was made (`running` for `retry` and `sla_missed`).
    pub status: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended, if it did.
    pub ended_at: Option<DateTime<Utc>>,
    /// The failed tasks (for `retry`: the task whose attempt failed).
    pub failed_tasks: Vec<FailedTask>,
    /// The run's page in the web UI, when its address is known (`TWEETFLOW_UI_URL`,
    /// `--ui-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// One line on what happened.
    pub summary: String,
}

/// A task that failed (or, for `retry`, an attempt that failed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedTask {
    /// The task id (with `[shard]` when it is split into shards).
    pub task: String,
    /// The first line of its error.
    pub error: String,
    /// The attempts it made.
    pub attempts: u32,
}

/// The first line of `text`, secrets masked, at most 300 characters.
pub fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let line = mask(line).into_owned();
    if line.chars().count() > 300 {
        let cut: String = line.chars().take(299).collect();
        format!("{cut}…")
    } else {
        line
    }
}

impl Alert {
    /// An alert about `record` for `event`.
    pub fn from_record(event: &str, record: &RunRecord, ui_url: Option<&str>) -> Alert {
        let failed_tasks = record
            .ordered_tasks()
            .filter(|(_, t)| t.status == TaskStatus::Failed)
            .map(|(id, t)| FailedTask {
                task: id.to_string(),
                error: first_line(t.error.as_ref().map_or("", |e| e.message.as_str())),
                attempts: t.attempts.len() as u32,
            })
            .collect();
        let mut alert = Alert {
            event: event.to_string(),
            pipeline: record.pipeline.clone(),
            run_id: record.run_id.clone(),
            status: record.status.as_str().to_string(),
            started_at: record.created_at,
            ended_at: record.ended_at,
            failed_tasks,
            url: ui_url.map(|base| run_url(base, &record.run_id)),
            summary: String::new(),
        };
        alert.summary = alert.default_summary();
        alert
    }

    fn default_summary(&self) -> String {
        match self.failed_tasks.first() {
            Some(t) if self.failed_tasks.len() == 1 => format!(
                "{} {}: task `{}` failed after {} attempt{}: {}",
                self.pipeline,
                self.event,
                t.task,
                t.attempts,
                if t.attempts == 1 { "" } else { "s" },
                t.error
            ),
            Some(_) => format!(
                "{} {}: tasks {} failed",
                self.pipeline,
                self.event,
                self.failed_tasks
                    .iter()
                    .map(|t| format!("`{}`", t.task))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!("{} run {} {}", self.pipeline, self.run_id, self.event),
        }
    }

    /// The mail subject / message title, e.g. `[tweetflow] tweet_sentiment failed: infer`.
    pub fn title(&self) -> String {
        let tasks: Vec<&str> = self.failed_tasks.iter().map(|t| t.task.as_str()).collect();
        let event = self.event.replace('_', " ");
        if tasks.is_empty() {
            format!("[tweetflow] {} {event}", self.pipeline)
        } else {
            format!(
                "[tweetflow] {} {event}: {}",
                self.pipeline,
                tasks.join(", ")
            )
        }
    }

    /// The alert as plain text (mail body, Slack fallback).
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}\n\npipeline: {}\nrun: {}\nstatus: {}\nstarted: {}\n",
            self.summary,
            self.pipeline,
            self.run_id,
            self.status,
            self.started_at.to_rfc3339()
        );
        if let Some(end) = self.ended_at {
            out.push_str(&format!("ended: {}\n", end.to_rfc3339()));
        }
        for t in &self.failed_tasks {
            out.push_str(&format!(
                "failed: {} ({} attempt{}): {}\n",
                t.task,
                t.attempts,
                if t.attempts == 1 { "" } else { "s" },
                t.error
            ));
        }
        if let Some(url) = &self.url {
            out.push_str(&format!("\n{url}\n"));
        }
        out
    }
}

/// The run page under the UI's address.
pub fn run_url(base: &str, run_id: &str) -> String {
    format!("{}/runs/{run_id}", base.trim_end_matches('/'))
}

/// Escapes text for HTML.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_name_the_failed_tasks() {
        let mut a = Alert {
            event: "failed".into(),
            pipeline: "tweet_sentiment".into(),
            run_id: "r1".into(),
            status: "failed".into(),
            started_at: Utc::now(),
            ended_at: None,
            failed_tasks: vec![FailedTask {
                task: "infer".into(),
                error: "boom".into(),
                attempts: 3,
            }],
            url: None,
            summary: String::new(),
        };
        assert_eq!(a.title(), "[tweetflow] tweet_sentiment failed: infer");
        a.failed_tasks.clear();
        a.event = "sla_missed".into();
        assert_eq!(a.title(), "[tweetflow] tweet_sentiment sla missed");
    }

    #[test]
    fn first_lines_are_short() {
        assert_eq!(first_line("a\nb"), "a");
        assert_eq!(first_line(&"x".repeat(400)).chars().count(), 300);
    }
}
