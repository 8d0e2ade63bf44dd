//! A fault-injecting HTTP server in front of the real MLflow test server: it answers every
//! request with an error status, or passes it on after a delay. One request per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with each request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `Retry-After: 1` for 429) without asking MLflow.
    Status(u16),
    /// Wait, then pass the request to MLflow at `upstream` (`host:port`) and its answer back.
    Slow {
        /// The wait before each request is passed on.
        delay: Duration,
        /// The real server.
        upstream: String,
    },
}

/// A running fault server; stops when dropped.
pub struct FaultServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Requests received.
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    /// Starts a server applying `fault` to every request, on `rt`.
    pub fn start(rt: &tokio::runtime::Runtime, fault: Fault) -> std::io::Result<FaultServer> {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let url = format!("http://{}", listener.local_addr()?);
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let task = rt.spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                h.fetch_add(1, Ordering::Relaxed);
                let fault = fault.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, fault).await;
                });
            }
        });
        Ok(FaultServer { url, hits, task })
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut conn: TcpStream, fault: Fault) -> std::io::Result<()> {
    let (head, body) = read_request(&mut conn).await?;
    match fault {
        Fault::Status(code) => {
            let text = format!(
                "{{\"error_code\": \"INTERNAL_ERROR\", \"message\": \"injected HTTP {code}\"}}"
            );
            let retry = if code == 429 {
                "Retry-After: 1\r\n"
            } else {
                ""
            };
            let answer = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n{text}",
                text.len()
            );
            conn.write_all(answer.as_bytes()).await?;
        }
        Fault::Slow { delay, upstream } => {
            tokio::time::sleep(delay).await;
            let mut up = TcpStream::connect(&upstream).await?;
            up.write_all(&close_connection(&head)).await?;
            up.write_all(&body).await?;
            let mut answer = Vec::new();
            up.read_to_end(&mut answer).await?;
            conn.write_all(&answer).await?;
        }
    }
    conn.shutdown().await
}

/// The request head with its `Connection` header replaced by `Connection: close`.
fn close_connection(head: &str) -> Vec<u8> {
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Reads one request: its head (up to the blank line) and its body (`Content-Length` bytes,
/// or up to the last chunk of a chunked body).
async fn read_request(conn: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut body = buf[end..].to_vec();
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = lower.contains("transfer-encoding: chunked");
    loop {
        let done = match length {
            Some(len) => body.len() >= len,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => true,
        };
        if done {
            break;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((head, body))
}
