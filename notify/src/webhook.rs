//! `webhook:`: the alert as JSON, posted to a URL and signed like GitHub signs webhooks
//! (`X-Tweetflow-Signature: sha256=<hex HMAC-SHA256 of the body>`).

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::alert::Alert;
use crate::delivery::SendError;
use crate::section::WebhookChannel;

/// The header holding the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Tweetflow-Signature";
/// The header holding the delivery's idempotency key (the same on every retry).
pub const DELIVERY_HEADER: &str = "X-Tweetflow-Delivery";
/// The header naming the event.
pub const EVENT_HEADER: &str = "X-Tweetflow-Event";

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts `alert`; the answer's status line.
pub async fn send(
    channel: &WebhookChannel,
    alert: &Alert,
    key: &str,
    timeout: Duration,
) -> Result<String, SendError> {
    let body = serde_json::to_vec(alert).map_err(|e| SendError::fatal(e.to_string()))?;
    let mut request = crate::delivery::http_client(timeout)?
        .post(&channel.url)
        .header("Content-Type", "application/json")
        .header(DELIVERY_HEADER, key)
        .header(EVENT_HEADER, alert.event.as_str());
    for (name, value) in &channel.headers {
        request = request.header(name, value);
    }
    if let Some(secret) = &channel.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, &body));
    }
    crate::delivery::http_answer(request.body(body).send().await).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of GitHub's webhook documentation.
    #[test]
    fn signatures_match_githubs_example() {
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
