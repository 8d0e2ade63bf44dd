//! A real SMTP server for tests: `aiosmtpd` (from the project's venv) on a free port, in its
//! own process group (see [`crate::watched`]), writing each mail it accepts as one JSON line
//! (`from`, `to`, `data`: the raw message, `auth`: the user that authenticated, if any).
//! With a user and password it offers AUTH PLAIN and LOGIN over plain text (no TLS, as a
//! relay on the same host would) and refuses mail from clients that did not authenticate.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use crate::fixtures::venv;
use crate::watched::{free_port, spawn_watched, wait_until};

const SCRIPT: &str = r#"
import json, os, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out, port = sys.argv[1], int(sys.argv[2])
user, password = os.environ.get("SMTP_USER"), os.environ.get("SMTP_PASSWORD")

class Handler:
    async def handle_DATA(self, server, session, envelope):
        login = None
        if session.authenticated:
            data = session.auth_data
            login = data.login.decode() if isinstance(data, LoginPassword) else repr(data)
        record = {"from": envelope.mail_from, "to": envelope.rcpt_tos,
                  "data": envelope.content.decode("utf-8", "replace"), "auth": login}
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 Message accepted for delivery"

def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and user is not None
          and auth_data.login.decode() == user and auth_data.password.decode() == password)
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

kwargs = {}
if user:
    kwargs = dict(authenticator=authenticate, auth_require_tls=False, auth_required=True)
controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
controller.start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// A running SMTP server.
pub struct SmtpServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    mails: PathBuf,
}

/// One mail the server accepted.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The raw message (headers and body).
    pub data: String,
    /// The user that authenticated, if any.
    pub auth: Option<String>,
}

impl SmtpServer {
    /// Starts a server; with `credentials`, clients must authenticate with them. Panics
    /// (failing the test) when it cannot be started.
    pub fn start(credentials: Option<(&str, &str)>) -> SmtpServer {
        let python = venv().join("bin").join("python");
        assert!(
            python.exists(),
            "the SMTP tests need the project's venv ({}), with aiosmtpd",
            python.display()
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "tweetflow-smtp-test-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create the SMTP server's directory");
        let mails = dir.join("mails.jsonl");
        let port = free_port();
        let port_arg = port.to_string();
        let args: [&OsStr; 4] = [
            "-c".as_ref(),
            SCRIPT.as_ref(),
            mails.as_os_str(),
            port_arg.as_ref(),
        ];
        let log = dir.join("server.log");
        spawn_watched(&python, &args, &log, Some(&dir), |c| {
            if let Some((user, password)) = credentials {
                c.env("SMTP_USER", user).env("SMTP_PASSWORD", password);
            }
        })
        .expect("start the SMTP server");
        let ready = wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("ready"))
        });
        assert!(
            ready.is_some(),
            "the SMTP server did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        SmtpServer { port, mails }
    }

    /// The mails accepted so far, in order.
    pub fn mails(&self) -> Vec<Mail> {
        std::fs::read_to_string(&self.mails)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                Some(Mail {
                    from: v["from"].as_str()?.to_string(),
                    to: v["to"]
                        .as_array()?
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect(),
                    data: v["data"].as_str()?.to_string(),
                    auth: v["auth"].as_str().map(str::to_string),
                })
            })
            .collect()
    }

    /// Waits up to `limit` for at least `n` mails.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Mail> {
        wait_until(limit, Duration::from_millis(50), || {
            let mails = self.mails();
            (mails.len() >= n).then_some(mails)
        })
        .unwrap_or_else(|| self.mails())
    }
}
