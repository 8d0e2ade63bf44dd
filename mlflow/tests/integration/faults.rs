//! Fault injection through a small HTTP proxy in front of the real server.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tweetflow_mlflow::{Auth, Client, ClientConfig, Error, ErrorCode};

use crate::common::{client, free_port, server, unique};

/// What the proxy does with one request.
#[derive(Clone, Debug)]
pub enum Action {
    /// Pass it to the real server.
    Forward,
    /// Answer with this status and body (JSON) without asking the server.
    Respond(u16, &'static str),
    /// Wait, then pass it on.
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
}

/// An HTTP/1.1 proxy that applies scripted actions, one per request (then `default`), and
/// serves one request per connection.
pub struct FaultProxy {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    pub async fn start(script: Vec<Action>, default: Action) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, script, default)
    }

    pub fn serve(listener: TcpListener, script: Vec<Action>, default: Action) -> FaultProxy {
        let addr = listener.local_addr().unwrap();
        let upstream: SocketAddr = server().url.trim_start_matches("http://").parse().unwrap();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let hits = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (h, hd) = (hits.clone(), heads.clone());
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let action = script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or_else(|| default.clone());
                let (h, hd) = (h.clone(), hd.clone());
                tokio::spawn(async move {
                    let _ = handle(conn, upstream, action, h, hd).await;
                });
            }
        });
        FaultProxy {
            url: format!("http://{addr}"),
            hits,
            heads,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn read_request(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    Ok(buf)
}

async fn handle(
    mut conn: TcpStream,
    upstream: SocketAddr,
    action: Action,
    hits: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let req = read_request(&mut conn).await?;
    hits.fetch_add(1, Ordering::SeqCst);
    let head_end = req
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(req.len());
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&req[..head_end]).into_owned());
    let forward = match action {
        Action::Forward => true,
        Action::Delay(d) => {
            tokio::time::sleep(d).await;
            true
        }
        Action::Drop => return Ok(()),
        Action::Respond(status, body) => {
            let resp = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(resp.as_bytes()).await?;
            conn.shutdown().await?;
            return Ok(());
        }
    };
    if forward {
        // One request per connection: ask the server to close after answering.
        let mut out = req[..head_end].to_vec();
        out.extend_from_slice(b"\r\nConnection: close");
        out.extend_from_slice(&req[head_end..]);
        let mut up = TcpStream::connect(upstream).await?;
        up.write_all(&out).await?;
        let mut resp = Vec::new();
        up.read_to_end(&mut resp).await?;
        conn.write_all(&resp).await?;
        conn.shutdown().await?;
    }
    Ok(())
}

fn fast(url: &str, retries: u32) -> Client {
    Client::new(
        ClientConfig::new(url)
            .with_retries(retries, Duration::from_millis(40))
            .with_request_timeout(Duration::from_secs(5)),
    )
    .unwrap()
}

#[tokio::test]
async fn server_down_is_retried_then_reported() {
    let port = free_port();
    let c = fast(&format!("http://127.0.0.1:{port}"), 3);
    let t = Instant::now();
    let e = c.get_experiment("0").await.unwrap_err();
    // 3 retries after 40, 80, 160 ms (±25 %).
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn server_coming_up_late_is_waited_for() {
    let port = free_port();
    let c = fast(&format!("http://127.0.0.1:{port}"), 6);
    server();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        FaultProxy::serve(l, vec![], Action::Forward)
    });
    let e = c.get_experiment("0").await.unwrap();
    assert_eq!(e.experiment_id, "0");
    assert!(late.await.unwrap().hits() >= 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let p = FaultProxy::start(
        vec![
            Action::Respond(
                500,
                r#"{"error_code":"INTERNAL_ERROR","message":"injected"}"#,
            ),
            Action::Respond(503, "<html>busy</html>"),
            Action::Respond(
                429,
                r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}"#,
            ),
            Action::Drop,
        ],
        Action::Forward,
    )
    .await;
    let c = fast(&p.url, 5);
    let name = unique("faults");
    let exp = c.get_or_create_experiment(&name).await.unwrap();
    assert_eq!(exp.name, name);
    assert!(p.hits() >= 5, "{}", p.hits());

    // Retries spent: the last error comes back.
    let p = FaultProxy::start(
        vec![],
        Action::Respond(
            502,
            r#"{"error_code":"TEMPORARILY_UNAVAILABLE","message":"down"}"#,
        ),
    )
    .await;
    let e = fast(&p.url, 2).get_experiment("0").await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::TemporarilyUnavailable));
    assert_eq!(p.hits(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let p = FaultProxy::start(
        vec![],
        Action::Respond(
            400,
            r#"{"error_code":"INVALID_PARAMETER_VALUE","message":"bad"}"#,
        ),
    )
    .await;
    let e = fast(&p.url, 5).get_experiment("0").await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::InvalidParameterValue));
    assert_eq!(e.status(), Some(400));
    assert!(!e.is_retryable());
    assert_eq!(p.hits(), 1);
    let p = FaultProxy::start(
        vec![],
        Action::Respond(
            404,
            r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"no"}"#,
        ),
    )
    .await;
    assert!(
        fast(&p.url, 5)
            .get_run("x")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(p.hits(), 1);
    // 401/403 without an error_code (an auth proxy, MLflow's basic-auth app) are typed too.
    let p = FaultProxy::start(vec![], Action::Respond(401, "You are not authenticated.")).await;
    let e = fast(&p.url, 5).get_experiment("0").await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::Unauthenticated), "{e}");
    assert_eq!(p.hits(), 1);
    let p = FaultProxy::start(vec![], Action::Respond(403, "Invalid Host header")).await;
    let e = fast(&p.url, 5).get_experiment("0").await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::PermissionDenied), "{e}");
    assert!(e.to_string().contains("Invalid Host header"), "{e}");
}

#[tokio::test]
async fn slow_answers_time_out() {
    let p = FaultProxy::start(vec![], Action::Delay(Duration::from_secs(3))).await;
    let c = Client::new(
        ClientConfig::new(&p.url)
            .with_retries(1, Duration::from_millis(20))
            .with_request_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let t = Instant::now();
    let e = c.get_experiment("0").await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.is_retryable());
    assert_eq!(p.hits(), 2, "timeouts are retried");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // A slow answer within the timeout is fine.
    let p = FaultProxy::start(
        vec![Action::Delay(Duration::from_millis(200))],
        Action::Forward,
    )
    .await;
    let c = Client::new(
        ClientConfig::new(&p.url)
            .with_retries(0, Duration::from_millis(20))
            .with_request_timeout(Duration::from_secs(5)),
    )
    .unwrap();
    assert_eq!(c.get_experiment("0").await.unwrap().experiment_id, "0");
}

#[tokio::test]
async fn auth_headers_are_sent() {
    let p = FaultProxy::start(vec![], Action::Forward).await;
    let basic = Client::new(ClientConfig::new(&p.url).with_auth(Auth::Basic {
        username: "u".into(),
        password: "p".into(),
    }))
    .unwrap();
    basic.get_experiment("0").await.unwrap();
    let bearer =
        Client::new(ClientConfig::new(&p.url).with_auth(Auth::Bearer("tok".into()))).unwrap();
    bearer.get_experiment("0").await.unwrap();
    let heads = p.heads.lock().unwrap().join("\n").to_ascii_lowercase();
    assert!(heads.contains("authorization: basic dtpw"), "{heads}");
    assert!(heads.contains("authorization: bearer tok"), "{heads}");
    // And through the real server without a proxy, the plain client still works.
    client().health().await.unwrap();
}
