//! Who may act: the token, the cookie that carries it for a browser, and the checks against
//! cross-site requests and DNS rebinding.
//!
//! The token is given as `--token` / `TWEETFLOW_UI_TOKEN`, or made up at start and printed.
//! A browser presents it once as `?token=` in a URL; the server answers with an `HttpOnly`,
//! `SameSite=Strict` cookie. A script sends it in the `X-Tweetflow-Token` header. An action
//! (`POST`) also needs a same-origin request: its `Origin` (or `Sec-Fetch-Site`) must be this
//! server. When the server listens on a loopback address, requests must name it in `Host`, so
//! a page of another site cannot reach it through a rebound DNS name.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use axum::http::header::{COOKIE, HOST, ORIGIN};

/// The cookie that carries the token for a browser.
pub const TOKEN_COOKIE: &str = "tweetflow_ui_token";
/// The header that carries the token for a script.
pub const TOKEN_HEADER: &str = "x-tweetflow-token";

/// A fresh random token (128 bits, hex).
pub fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Compares two tokens in time independent of where they differ.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token, or a wrong one.
    #[error(
        "this action needs the token printed when `tweetflow ui` started (open the printed URL, or send the X-Tweetflow-Token header)"
    )]
    NoToken,
    /// The request came from another site.
    #[error("cross-site request refused: {0}")]
    CrossSite(String),
    /// The `Host` header names another server.
    #[error("unexpected Host header `{0}`")]
    BadHost(String),
}

/// The checks of one server.
#[derive(Clone, Debug)]
pub struct Guard {
    token: String,
    /// `Host` values accepted; `None` accepts any (non-loopback listen, token required).
    hosts: Option<Vec<String>>,
}

impl Guard {
    /// The guard of a server listening on `addr` with `token`.
    pub fn new(token: String, addr: SocketAddr) -> Self {
        let port = addr.port();
        let hosts = addr.ip().is_loopback().then(|| {
            vec![
                addr.to_string(),
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ]
        });
        Guard { token, hosts }
    }

    /// The token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Checks the `Host` header of any request.
    pub fn check_host(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(hosts) = &self.hosts else {
            return Ok(());
        };
        let host = header(headers, HOST.as_str()).unwrap_or_default();
        if hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            Ok(())
        } else {
            Err(Refusal::BadHost(host.to_string()))
        }
    }

    /// Whether `candidate` is the token.
    pub fn is_token(&self, candidate: &str) -> bool {
        tokens_equal(candidate, &self.token)
    }

    /// Whether the request carries the token (header or cookie).
    pub fn has_token(&self, headers: &HeaderMap) -> bool {
        self.header_token(headers) || self.cookie_token(headers)
    }

    /// Whether the request carries the token as `Authorization: Bearer TOKEN` (what a
    /// Prometheus scrape sends with `authorization: {credentials: TOKEN}`).
    pub fn has_bearer_token(&self, headers: &HeaderMap) -> bool {
        header(headers, "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| self.is_token(t.trim()))
    }

    fn header_token(&self, headers: &HeaderMap) -> bool {
        header(headers, TOKEN_HEADER).is_some_and(|t| self.is_token(t))
    }

    fn cookie_token(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| k == TOKEN_COOKIE && self.is_token(v))
    }

    /// Checks an action: the token (header, cookie or the form's `token` field) and that the
    /// request comes from this server's own pages.
    pub fn check_action(
        &self,
        headers: &HeaderMap,
        form_token: Option<&str>,
    ) -> Result<(), Refusal> {
        self.check_host(headers)?;
        let by_header = self.header_token(headers);
        let by_form = form_token.is_some_and(|t| self.is_token(t));
        let by_cookie = self.cookie_token(headers);
        if !(by_header || by_form || by_cookie) {
            return Err(Refusal::NoToken);
        }
        let host = header(headers, HOST.as_str()).unwrap_or_default();
        match (
            header(headers, ORIGIN.as_str()),
            header(headers, "sec-fetch-site"),
        ) {
            (Some(origin), _) => {
                let same = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    .is_some_and(|o| o.eq_ignore_ascii_case(host));
                if same {
                    Ok(())
                } else {
                    Err(Refusal::CrossSite(format!("Origin {origin}")))
                }
            }
            (None, Some(site)) if site == "same-origin" || site == "none" => Ok(()),
            (None, Some(site)) => Err(Refusal::CrossSite(format!("Sec-Fetch-Site {site}"))),
            // No browser headers: a script; a cookie alone is not enough then.
            (None, None) if by_header || by_form => Ok(()),
            (None, None) => Err(Refusal::CrossSite("no Origin header".into())),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn actions_need_the_token_and_the_same_origin() {
        let guard = Guard::new("secret".into(), "127.0.0.1:8080".parse().unwrap());
        let host = ("host", "127.0.0.1:8080");
        let cookie = ("cookie", "a=b; tweetflow_ui_token=secret");
        let same = ("origin", "http://127.0.0.1:8080");
        assert_eq!(
            guard.check_action(&headers(&[host, same]), None),
            Err(Refusal::NoToken)
        );
        assert_eq!(
            guard.check_action(&headers(&[host, same]), Some("wrong")),
            Err(Refusal::NoToken)
        );
        assert!(
            guard
                .check_action(&headers(&[host, same, cookie]), None)
                .is_ok()
        );
        assert!(
            guard
                .check_action(&headers(&[host, ("x-tweetflow-token", "secret")]), None)
                .is_ok()
        );
        assert!(matches!(
            guard.check_action(
                &headers(&[host, cookie, ("origin", "http://evil.example")]),
                None
            ),
            Err(Refusal::CrossSite(_))
        ));
        assert!(matches!(
            guard.check_action(&headers(&[host, cookie]), None),
            Err(Refusal::CrossSite(_))
        ));
        assert!(matches!(
            guard.check_action(
                &headers(&[("host", "evil.example:8080"), cookie, same]),
                None
            ),
            Err(Refusal::BadHost(_))
        ));
        assert!(
            guard
                .check_host(&headers(&[("host", "localhost:8080")]))
                .is_ok()
        );
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 32);
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
    }
}
