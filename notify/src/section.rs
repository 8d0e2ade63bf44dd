//! The `notify:` and `sla:` pipeline sections: who is told about which run events, and when
//! a run is late.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tweetflow_engine::Section;
use tweetflow_engine::SectionProblem;
use tweetflow_engine::parse_duration;

/// A run event that can be alerted on.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    // The run ended failed.
    Failed,
    // The run ended succeeded.
    Succeeded,
    // An attempt failed and will be retried.
    Retry,
    // The run is still going past `sla.max_duration` or `sla.deadline`.
    SlaMissed,
    // The engine executing the run died.
    Interrupted,
    // The first success after one or more failed runs of the pipeline.
    Recovered,
}

impl AlertEvent {
    /// The event as written in `on:` and in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Failed => "failed",
            AlertEvent::Succeeded => "succeeded",
            AlertEvent::Retry => "retry",
            AlertEvent::SlaMissed => "sla_missed",
            AlertEvent::Interrupted => "interrupted",
            AlertEvent::Recovered => "recovered",
        }
    }
}

/// The `notify:` section: a list of channels, each with the events it is told about.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct NotifySection(pub Vec<Rule>);

impl Section for NotifySection {
    const NAME: &'static str = "notify";
    const DESCRIPTION: &'static str = "Alerts: who is told (webhook, Slack, mail) when a run fails, succeeds, retries, runs late, dies or recovers.";
    const EXAMPLE: &'static str =
        "notify: [ { on: [failed], slack: { webhook_url: \"${secret.SLACK_WEBHOOK}\" } } ]";
    const SECRET_FIELDS: &'static [&'static str] = &[
        "/*/webhook/url",
        "/*/webhook/secret",
        "/*/webhook/headers/*",
        "/*/slack/webhook_url",
        "/*/email/password",
        "/*/email/smtp",
    ];
    const IN_DEFAULTS: bool = true;

    fn problems(value: &Value) -> Vec<SectionProblem> {
        let mut out = Vec::new();
        let Some(entries) = value.as_array() else {
            return out;
        };
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for entry in entries {
            if let Some(kind) = entry_kind(entry) {
                *count.entry(kind).or_default() += 1;
            }
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, entry) in entries.iter().enumerate() {
            entry_problems(entry, &format!("/{i}"), &mut out);
            let Some(kind) = entry_kind(entry) else {
                continue;
            };
            let n = seen.entry(kind).or_default();
            *n += 1;
            let name = match entry.get("name").and_then(Value::as_str) {
                Some(name) => name.to_string(),
                None if count[kind] > 1 => format!("{kind}-{n}"),
                None => kind.to_string(),
            };
            if let Some(first) = names.insert(name.clone(), i) {
                out.push(
                    SectionProblem::new(
                        format!("/{i}/name"),
                        format!("channel name `{name}` is used twice (also by entry {first})"),
                    )
                    .with_hint("give each entry its own `name:`"),
                );
            }
        }
        out
    }
}

/// One entry of `notify:`: a channel and the events it is told about.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The events that are sent to this channel.
    pub on: Vec<AlertEvent>,
    /// The channel's name in delivery records (default: its kind, e.g. `slack`, numbered
    /// when a kind is used more than once: `webhook-2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Posts a JSON document to a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookChannel>,
    /// Posts to a Slack incoming webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackChannel>,
    /// Sends a mail over SMTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailChannel>,
    /// Most tries of one delivery (default 5), with exponential backoff between them.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Longest wait for one try (default `10s`).
    #[serde(default = "default_timeout")]
    pub timeout: String,
}

fn default_attempts() -> u32 {
    5
}

fn default_timeout() -> String {
    "10s".into()
}

/// `webhook:`: a JSON POST, signed with HMAC-SHA256 when `secret` is given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    /// The URL posted to (a secret: kept out of every record).
    pub url: String,
    /// Key of the `X-Tweetflow-Signature: sha256=<hex>` header (HMAC-SHA256 of the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Extra headers sent with each post.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// `slack:`: a message posted to a Slack incoming webhook.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackChannel {
    /// The incoming webhook's URL (a credential: kept out of every record).
    pub webhook_url: String,
}

/// How an SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    // Plain text (a relay on the same host or network only).
    None,
    // STARTTLS, required (the default for `smtp://`).
    Starttls,
    // TLS from the first byte (the default for `smtps://`).
    Tls,
}

/// `email:`: a plain-text and HTML mail sent over SMTP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChannel {
    /// The server: `smtp://host[:port]` (default port 587) or `smtps://host[:port]` (465).
    pub smtp: String,
    /// The sender address.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// User name for AUTH PLAIN / LOGIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password for AUTH (a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `none`, `starttls` or `tls` (default: `tls` for `smtps://`, else `starttls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SmtpTls>,
}

/// A configured channel, with its name and delivery settings.
#[derive(Clone, Debug)]
pub struct Channel {
    /// Its name in delivery records.
    pub name: String,
    /// The events it wants.
    pub on: Vec<AlertEvent>,
    /// Where it sends.
    pub kind: ChannelKind,
    /// Most tries of one delivery.
    pub attempts: u32,
    /// Longest wait for one try.
    pub timeout: Duration,
}

/// Where a channel sends.
#[derive(Clone, Debug)]
pub enum ChannelKind {
    /// A JSON POST.
    Webhook(WebhookChannel),
    /// A Slack incoming webhook.
    Slack(SlackChannel),
    /// A mail.
    Email(EmailChannel),
}

impl ChannelKind {
    /// `webhook`, `slack` or `email`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Slack(_) => "slack",
            ChannelKind::Email(_) => "email",
        }
    }

    /// The credentials of the channel (URLs, keys, passwords), to be masked wherever text
    /// is written.
    pub fn credentials(&self) -> Vec<&str> {
        match self {
            ChannelKind::Webhook(w) => {
                let mut out = vec![w.url.as_str()];
                out.extend(w.secret.as_deref());
                out.extend(w.headers.values().map(String::as_str));
                out
            }
            ChannelKind::Slack(s) => vec![s.webhook_url.as_str()],
            ChannelKind::Email(e) => e.password.as_deref().into_iter().collect(),
        }
    }
}

impl NotifySection {
    /// The channels, named (entries without a channel are left out; validation rules them
    /// out).
    pub fn channels(&self) -> Vec<Channel> {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for rule in &self.0 {
            if let Some(kind) = rule.kind() {
                *count.entry(kind.as_str()).or_default() += 1;
            }
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut out = Vec::new();
        for rule in &self.0 {
            let Some(kind) = rule.kind() else { continue };
            let n = seen.entry(kind.as_str()).or_default();
            *n += 1;
            let name = rule.name.clone().unwrap_or_else(|| {
                if count[kind.as_str()] > 1 {
                    format!("{}-{n}", kind.as_str())
                } else {
                    kind.as_str().to_string()
                }
            });
            out.push(Channel {
                name,
                on: rule.on.clone(),
                kind,
                attempts: rule.attempts.max(1),
                timeout: parse_duration(&rule.timeout).unwrap_or(Duration::from_secs(10)),
            });
        }
        out
    }
}

impl Rule {
    /// The rule's channel (the first given; validation allows one).
    fn kind(&self) -> Option<ChannelKind> {
        if let Some(w) = &self.webhook {
            return Some(ChannelKind::Webhook(w.clone()));
        }
        if let Some(s) = &self.slack {
            return Some(ChannelKind::Slack(s.clone()));
        }
        self.email.clone().map(ChannelKind::Email)
    }
}

/// The channel kind an entry gives first, if any.
fn entry_kind(entry: &Value) -> Option<&'static str> {
    ["webhook", "slack", "email"]
        .into_iter()
        .find(|k| entry.get(*k).is_some())
}

fn str_at<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

fn entry_problems(entry: &Value, at: &str, out: &mut Vec<SectionProblem>) {
    if !entry.is_object() {
        return; // the schema check reports it
    }
    let given = ["webhook", "slack", "email"]
        .iter()
        .filter(|k| entry.get(**k).is_some())
        .count();
    if given != 1 {
        let message = if given == 0 {
            "the entry has no channel"
        } else {
            "the entry has more than one channel"
        };
        out.push(
            SectionProblem::new(at, message)
                .with_hint("give exactly one of `webhook:`, `slack:` or `email:` per entry"),
        );
    }
    if entry
        .get("on")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        out.push(
            SectionProblem::new(format!("{at}/on"), "no event is chosen").with_hint(
                "list events: failed, succeeded, retry, sla_missed, interrupted, recovered",
            ),
        );
    }
    if entry.get("attempts").and_then(Value::as_u64) == Some(0) {
        out.push(
            SectionProblem::new(format!("{at}/attempts"), "`attempts` must be at least 1")
                .with_hint("1 sends once, without retry"),
        );
    }
    if let Some(t) = str_at(entry, "timeout")
        && let Err(e) = parse_duration(t)
    {
        out.push(
            SectionProblem::new(format!("{at}/timeout"), format!("invalid duration: {e}"))
                .with_hint(DURATION_HINT),
        );
    }
    if let Some(url) = entry.get("webhook").and_then(|w| str_at(w, "url")) {
        http_url_problem(url, &format!("{at}/webhook/url"), out);
    }
    if let Some(url) = entry.get("slack").and_then(|s| str_at(s, "webhook_url")) {
        http_url_problem(url, &format!("{at}/slack/webhook_url"), out);
    }
    if let Some(email) = entry.get("email").filter(|e| e.is_object()) {
        email_problems(email, &format!("{at}/email"), out);
    }
}

const DURATION_HINT: &str = "write durations like `30s`, `20m`, `1h` or `1h30m`";

/// A URL as written, for messages: with its path (which, for a Slack webhook, is the
/// credential) left out.
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")),
        Err(_) => "the value".into(),
    }
}

fn http_url_problem(url: &str, at: &str, out: &mut Vec<SectionProblem>) {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        Ok(u) => out.push(
            SectionProblem::new(
                at,
                format!("`{}` is not an http(s) URL with a host", shown_url(url)),
            )
            .with_hint(format!(
                "write `https://host/path`; found the scheme `{}`",
                u.scheme()
            )),
        ),
        Err(e) => out.push(
            SectionProblem::new(at, format!("not a URL: {e}"))
                .with_hint("write `https://host/path`"),
        ),
    }
}

fn address_problem(text: &str, at: String, out: &mut Vec<SectionProblem>) {
    if let Err(e) = lettre::Address::from_str(text) {
        out.push(
            SectionProblem::new(at, format!("`{text}` is not a mail address: {e}"))
                .with_hint("write `name@example.com`"),
        );
    }
}

fn email_problems(email: &Value, at: &str, out: &mut Vec<SectionProblem>) {
    if let Some(smtp) = str_at(email, "smtp")
        && let Err(message) = smtp_endpoint(smtp)
    {
        out.push(
            SectionProblem::new(format!("{at}/smtp"), message)
                .with_hint("write `smtp://mail.example.com:587` or `smtps://mail.example.com`"),
        );
    }
    if let Some(from) = str_at(email, "from") {
        address_problem(from, format!("{at}/from"), out);
    }
    match email.get("to") {
        Some(Value::Array(to)) if to.is_empty() => out.push(
            SectionProblem::new(format!("{at}/to"), "no recipient")
                .with_hint("list addresses: `to: [oncall@example.com]`"),
        ),
        Some(Value::Array(to)) => {
            for (i, t) in to.iter().enumerate() {
                if let Some(t) = t.as_str() {
                    address_problem(t, format!("{at}/to/{i}"), out);
                }
            }
        }
        Some(Value::String(t)) => address_problem(t, format!("{at}/to"), out),
        _ => {}
    }
    if email.get("password").is_some() && email.get("username").is_none() {
        out.push(
            SectionProblem::new(format!("{at}/password"), "a password without `username`")
                .with_hint("add `username:` for AUTH"),
        );
    }
}

/// An `smtp` URL that names no usable server.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EndpointError(pub String);

impl EmailChannel {
    /// The server's host, port and security.
    pub fn endpoint(&self) -> Result<(String, u16, SmtpTls), EndpointError> {
        let (host, port, implicit_tls) = smtp_endpoint(&self.smtp).map_err(EndpointError)?;
        let tls = self.tls.unwrap_or(if implicit_tls {
            SmtpTls::Tls
        } else {
            SmtpTls::Starttls
        });
        Ok((host, port, tls))
    }
}

/// Host, port and whether TLS is implicit (`smtps://`), from an SMTP URL.
fn smtp_endpoint(text: &str) -> Result<(String, u16, bool), String> {
    let url = url::Url::parse(text).map_err(|e| format!("`smtp` is not a URL: {e}"))?;
    let implicit_tls = match url.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => {
            return Err(format!(
                "`smtp` has the scheme `{other}`, not smtp or smtps"
            ));
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "the `smtp` URL has no host".to_string())?;
    let port = url.port().unwrap_or(if implicit_tls { 465 } else { 587 });
    Ok((host.to_string(), port, implicit_tls))
}

/// The `sla:` section: when a run is late.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaSection {
    /// A run still going this long after it started (or was resumed) is late, e.g. `20m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    /// A scheduled run not finished by this time (`HH:MM`, in the schedule's time zone) of
    /// the day it was scheduled for is late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
}

impl Section for SlaSection {
    const NAME: &'static str = "sla";
    const DESCRIPTION: &'static str =
        "When a run is late: `notify:` channels with `sla_missed` are told, once per run.";
    const EXAMPLE: &'static str = "sla: { max_duration: 20m, deadline: \"07:00\" }";

    fn problems(value: &Value) -> Vec<SectionProblem> {
        let mut out = Vec::new();
        if !value.is_object() {
            return out;
        }
        let max_duration = str_at(value, "max_duration");
        let deadline = str_at(value, "deadline");
        if let Some(d) = max_duration
            && let Err(e) = parse_duration(d)
        {
            out.push(
                SectionProblem::new("/max_duration", format!("invalid duration: {e}"))
                    .with_hint(DURATION_HINT),
            );
        }
        if let Some(d) = deadline
            && parse_deadline(d).is_none()
        {
            out.push(
                SectionProblem::new("/deadline", format!("`{d}` is not a time of day"))
                    .with_hint("write `HH:MM` (24-hour clock), e.g. `07:00`"),
            );
        }
        if value.get("max_duration").is_none() && value.get("deadline").is_none() {
            out.push(
                SectionProblem::new("", "the section sets no limit")
                    .with_hint("give `max_duration: 20m` or `deadline: \"07:00\"`"),
            );
        }
        out
    }
}

impl SlaSection {
    /// `max_duration`, parsed.
    pub fn max_duration(&self) -> Option<Duration> {
        self.max_duration
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
    }

    /// `deadline`, parsed.
    pub fn deadline(&self) -> Option<chrono::NaiveTime> {
        self.deadline.as_deref().and_then(parse_deadline)
    }
}

fn parse_deadline(text: &str) -> Option<chrono::NaiveTime> {
    chrono::NaiveTime::parse_from_str(text, "%H:%M").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_of_secret_fields_match_list_entries() {
        use tweetflow_engine::pointer_matches;
        assert!(pointer_matches(
            "/*/slack/webhook_url",
            "/3/slack/webhook_url"
        ));
        assert!(!pointer_matches("/*/slack/webhook_url", "/3/slack"));
        assert!(pointer_matches(
            "/*/webhook/headers/*",
            "/0/webhook/headers/X-Token"
        ));
    }

    #[test]
    fn smtp_urls_give_host_port_and_security() {
        assert_eq!(
            smtp_endpoint("smtp://mail.internal").unwrap(),
            ("mail.internal".into(), 587, false)
        );
        assert_eq!(
            smtp_endpoint("smtps://mail.internal:2465").unwrap(),
            ("mail.internal".into(), 2465, true)
        );
        assert!(smtp_endpoint("smtp://").is_err());
        assert!(smtp_endpoint("http://mail").is_err());
    }

    #[test]
    fn channels_are_named_by_kind_and_numbered_when_repeated() {
        let rule = |w: bool| Rule {
            on: vec![AlertEvent::Failed],
            webhook: w.then(|| WebhookChannel {
                url: "http://a".into(),
                ..Default::default()
            }),
            slack: (!w).then(|| SlackChannel {
                webhook_url: "http://s".into(),
            }),
            attempts: 5,
            timeout: "10s".into(),
            ..Default::default()
        };
        let names: Vec<String> = NotifySection(vec![rule(true), rule(false), rule(true)])
            .channels()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["webhook-1", "slack", "webhook-2"]);
    }
}
