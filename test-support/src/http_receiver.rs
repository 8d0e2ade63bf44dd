//! A local HTTP server that records every request it receives (webhook and Slack posts in
//! the alert tests) and answers as told: `200 ok` by default, or, request by request, a
//! given status or a late answer (to play a channel that is down, failing or slow).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// This status, with the body `error` (or `ok` for 2xx).
    Status(u16),
    /// `200 ok`, after this long (past the client's timeout: a slow channel).
    Late(Duration),
}

/// A request the receiver got.
#[derive(Clone, Debug)]
pub struct Request {
    /// `POST`, ...
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: SystemTime,
}

impl Request {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A running receiver on 127.0.0.1 (its thread lives as long as the test process).
#[derive(Clone)]
pub struct HttpReceiver {
    /// Its port.
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
}

impl HttpReceiver {
    /// Starts a receiver.
    pub fn start() -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().expect("local addr").port();
        let receiver = HttpReceiver {
            port,
            requests: Arc::default(),
            replies: Arc::default(),
        };
        let shared = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(stream));
            }
        });
        receiver
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers the next requests with `replies`, in order (then `200 ok` again).
    pub fn reply_next(&self, replies: impl IntoIterator<Item = Reply>) {
        self.replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(replies);
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits up to `limit` for at least `n` requests.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Request> {
        crate::watched::wait_until(limit, Duration::from_millis(20), || {
            let r = self.requests();
            (r.len() >= n).then_some(r)
        })
        .unwrap_or_else(|| self.requests())
    }

    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(read_half);
        let mut writer = stream;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Request {
                method,
                path,
                headers,
                body,
                at: SystemTime::now(),
            });
        let reply = self
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let status = match reply {
            Some(Reply::Status(s)) => s,
            Some(Reply::Late(d)) => {
                std::thread::sleep(d);
                200
            }
            None => 200,
        };
        let text = if (200..300).contains(&status) {
            "ok"
        } else {
            "error"
        };
        let answer = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
        let _ = writer.write_all(answer.as_bytes());
        let _ = writer.flush();
    }
}
