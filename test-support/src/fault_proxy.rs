//! A TCP proxy in front of a real server that injects the faults object stores are known
//! for, at the start of every `every`-th connection: an `HTTP 503 Slow Down` answer (S3's
//! throttling), an `HTTP 500`, or a connection reset (RST) before any answer. Every other
//! connection is passed through byte for byte. [`FaultProxy::injected`] counts the faults,
//! so a test can check that they happened.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A running proxy.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`, to use in place of the upstream's endpoint.
    pub endpoint: String,
    injected: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Proxies 127.0.0.1:`upstream` on a free port; connection `n` (from 1) gets a fault when
    /// `n % every == 0`, cycling through 503, reset and 500.
    pub fn start(upstream: u16, every: usize) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().expect("local addr").port();
        let injected = Arc::new(AtomicUsize::new(0));
        let counter = injected.clone();
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(conn) = conn else { continue };
                let n = n + 1;
                if every > 0 && n % every == 0 {
                    let kind = counter.fetch_add(1, Ordering::SeqCst) % 3;
                    std::thread::spawn(move || inject(conn, kind));
                } else {
                    std::thread::spawn(move || pass(conn, upstream));
                }
            }
        });
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            injected,
        }
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }
}

/// Reads the request head (what the client sends before waiting), then answers with fault
/// `kind`: 0 = 503 Slow Down, 1 = reset, 2 = 500.
fn inject(mut conn: TcpStream, kind: usize) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let answer = |status: &str, code: &str| {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
        );
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    match kind {
        0 => {
            let _ = conn.write_all(answer("503 Slow Down", "SlowDown").as_bytes());
        }
        1 => reset(&conn),
        _ => {
            let _ = conn.write_all(answer("500 Internal Server Error", "InternalError").as_bytes());
        }
    }
    let _ = conn.shutdown(Shutdown::Both);
}

/// Closes with a TCP reset (SO_LINGER 0) instead of an orderly close.
fn reset(conn: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket this function borrows, with a correctly sized value.
    #[allow(unsafe_code)]
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Copies bytes both ways between the client and the upstream server until either closes.
fn pass(client: TcpStream, upstream: u16) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let mut client = client;
        let mut server = server;
        let _ = std::io::copy(&mut client, &mut server);
        let _ = server.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut s2, &mut c2);
    let _ = c2.shutdown(Shutdown::Write);
    let _ = up.join();
}
