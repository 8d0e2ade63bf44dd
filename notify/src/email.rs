//! `email:`: the alert as a plain-text and HTML mail, sent over SMTP (`smtp://` with
//! STARTTLS or plain, `smtps://`; AUTH PLAIN or LOGIN).

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::alert::{Alert, html_escape};
use crate::delivery::SendError;
use crate::section::{EmailChannel, SmtpTls};

/// The HTML part of the mail.
fn html(alert: &Alert) -> String {
    let mut rows = format!(
        "<tr><th align=left>Pipeline</th><td>{}</td></tr><tr><th align=left>Run</th><td>{}</td></tr><tr><th align=left>Status</th><td>{}</td></tr><tr><th align=left>Started</th><td>{}</td></tr>",
        html_escape(&alert.pipeline),
        html_escape(&alert.run_id),
        html_escape(&alert.status),
        alert.started_at.to_rfc3339()
    );
    if let Some(end) = alert.ended_at {
        rows.push_str(&format!(
            "<tr><th align=left>Ended</th><td>{}</td></tr>",
            end.to_rfc3339()
        ));
    }
    let mut tasks = String::new();
    for t in &alert.failed_tasks {
        tasks.push_str(&format!(
            "<li><b>{}</b> ({} attempts): <code>{}</code></li>",
            html_escape(&t.task),
            t.attempts,
            html_escape(&t.error)
        ));
    }
    if !tasks.is_empty() {
        tasks = format!("<p>Failed:</p><ul>{tasks}</ul>");
    }
    let link = alert
        .url
        .as_ref()
        .map(|u| format!("<p><a href=\"{0}\">{0}</a></p>", html_escape(u)))
        .unwrap_or_default();
    format!(
        "<html><body><h3>{}</h3><p>{}</p><table>{rows}</table>{tasks}{link}</body></html>",
        html_escape(&alert.title()),
        html_escape(&alert.summary)
    )
}

/// The mail for `alert`.
pub fn message(channel: &EmailChannel, alert: &Alert, key: &str) -> Result<Message, SendError> {
    let from: Mailbox = channel
        .from
        .parse()
        .map_err(|e| SendError::fatal(format!("`from`: {e}")))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(alert.title())
        .header(DeliveryHeader(key.to_string()));
    for to in &channel.to {
        builder = builder.to(to
            .parse()
            .map_err(|e| SendError::fatal(format!("`to` {to}: {e}")))?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(alert.text(), html(alert)))
        .map_err(|e| SendError::fatal(e.to_string()))
}

/// The `X-Tweetflow-Delivery` header of mails.
#[derive(Clone)]
struct DeliveryHeader(String);

impl header::Header for DeliveryHeader {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("X-Tweetflow-Delivery")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(DeliveryHeader(s.to_string()))
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// Sends the mail for `alert`; the server's answer (`250 ...`).
pub async fn send(
    channel: &EmailChannel,
    alert: &Alert,
    key: &str,
    timeout: Duration,
) -> Result<String, SendError> {
    let mail = message(channel, alert, key)?;
    let (host, port, tls) = channel
        .endpoint()
        .map_err(|e| SendError::fatal(e.to_string()))?;
    let tls = match tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls | SmtpTls::Tls => {
            let params = TlsParameters::new(host.clone())
                .map_err(|e| SendError::fatal(format!("TLS: {e}")))?;
            if tls == SmtpTls::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
        .port(port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some(user) = &channel.username {
        builder = builder
            .credentials(Credentials::new(
                user.clone(),
                channel.password.clone().unwrap_or_default(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    let transport = builder.build();
    match tokio::time::timeout(timeout, transport.send(mail)).await {
        Err(_) => Err(SendError::retryable(format!(
            "no answer from {host}:{port} within {}",
            tweetflow_engine::format_duration(timeout)
        ))),
        Ok(Ok(response)) => Ok(format!(
            "{} {}",
            response.code(),
            response.message().collect::<Vec<_>>().join(" ")
        )),
        Ok(Err(e)) => {
            // Permanent (5xx) answers will not pass on another try; the rest may.
            let retryable = !e.is_permanent();
            let text = match e.status() {
                Some(code) => format!("{host}:{port} answered {code}: {e}"),
                None => format!("{host}:{port}: {e}"),
            };
            Err(SendError {
                message: text,
                retryable,
            })
        }
    }
}
