//! Alerts end to end: real runs of the engine with the alerts observer, a real SMTP server
//! (aiosmtpd from the venv) receiving the mails, and local HTTP servers receiving the
//! webhook and Slack posts (and playing channels that are down, slow or answer 500).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tweetflow_engine::process_env;
use tweetflow_engine::{Engine, LoadOptions, Pipeline, RunOptions, RunRecord, RunStatus, load_str};
use tweetflow_notify::{DeliveryLog, DeliveryStatus, Notify};
use tweetflow_test_support::http_receiver::{HttpReceiver, Reply};
use tweetflow_test_support::smtp_server::SmtpServer;

const HMAC_KEY: &str = "hmac-key-5f1e9c0d7a";
const SMTP_PASSWORD: &str = "smtp-pass-8b2d4e6f10";

/// The servers every test shares, and the environment the pipelines read them from.
struct World {
    hooks: HttpReceiver,
    slack: HttpReceiver,
    failing: HttpReceiver,
    slow: HttpReceiver,
    smtp: SmtpServer,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let w = World {
            hooks: HttpReceiver::start(),
            slack: HttpReceiver::start(),
            failing: HttpReceiver::start(),
            slow: HttpReceiver::start(),
            smtp: SmtpServer::start(Some(("bot", SMTP_PASSWORD))),
        };
        // SAFETY: set once, before any test reads the environment (every test starts here).
        unsafe {
            std::env::set_var("ALERTS_TEST_HMAC", HMAC_KEY);
            std::env::set_var("ALERTS_TEST_SMTP_PASSWORD", SMTP_PASSWORD);
            std::env::set_var("ALERTS_TEST_HOOKS", w.hooks.url(""));
            std::env::set_var("ALERTS_TEST_SLACK", w.slack.url(""));
            std::env::set_var("ALERTS_TEST_FAILING", w.failing.url(""));
            std::env::set_var("ALERTS_TEST_SLOW", w.slow.url(""));
        }
        w
    })
}

fn registry() -> Arc<tweetflow_engine::Registry> {
    Arc::new(tweetflow_tasks::default_registry())
}

fn load(text: &str) -> Pipeline {
    let registry = registry();
    let options = LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &process_env,
    };
    load_str("alerts.yaml", text, &options).unwrap_or_else(|d| panic!("{}", d.render()))
}

fn engine(runs: &Path) -> Engine {
    Engine::new(registry(), runs)
        .with_observer(Arc::new(Notify::new(Some("http://ui.example:8080".into()))))
}

async fn run(runs: &Path, text: &str) -> RunRecord {
    engine(runs)
        .run(load(text), "alerts.yaml", text, RunOptions::default())
        .await
        .expect("the run is recorded")
}

fn on_path(r: &HttpReceiver, path: &str) -> Vec<tweetflow_test_support::http_receiver::Request> {
    r.requests()
        .into_iter()
        .filter(|q| q.path == path)
        .collect()
}

/// HMAC-SHA256 of `body` under `key` by Python's standard library: a check independent of
/// the Rust signing code.
fn python_signature(key: &str, body: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, body).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import hmac,hashlib,sys; print('sha256=' + hmac.new(sys.argv[1].encode(), open(sys.argv[2],'rb').read(), hashlib.sha256).hexdigest())")
        .arg(key)
        .arg(&file)
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Every file under `dir`, with its text.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            let bytes = std::fs::read(&p).unwrap_or_default();
            out.push((
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    out
}

fn assert_no_secret_in(dir: &Path, secrets: &[&str]) {
    for (file, text) in files(dir) {
        for s in secrets {
            assert!(!text.contains(s), "{file} holds the secret {s}:\n{text}");
        }
    }
}

/// The process's `tweetflow_alerts_total` for a channel kind and outcome.
fn alerts_counted(kind: &str, outcome: &str) -> u64 {
    let text = tweetflow_engine::metrics::global().encode();
    let series = format!("tweetflow_alerts_total{{channel=\"{kind}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_told_by_signed_webhook_slack_and_mail() {
    let w = world();
    let runs = tempfile::tempdir().unwrap();
    let counted_before = [
        alerts_counted("webhook", "sent"),
        alerts_counted("slack", "sent"),
        alerts_counted("email", "sent"),
    ];
    let text = format!(
        r#"
name: alerts_fail
defaults:
  retries: {{ max_attempts: 2, initial_delay: 10ms, jitter: false }}
notify:
  - on: [retry, failed]
    webhook: {{ url: "${{env.ALERTS_TEST_HOOKS}}/fail", secret: "${{secret.ALERTS_TEST_HMAC}}", headers: {{ X-Team: data }} }}
  - on: [failed]
    slack: {{ webhook_url: "${{env.ALERTS_TEST_SLACK}}/fail" }}
  - on: [failed, succeeded]
    email: {{ smtp: "smtp://127.0.0.1:{port}", from: tweetflow@example.com, to: [oncall@example.com, data@example.com], username: bot, password: "${{secret.ALERTS_TEST_SMTP_PASSWORD}}", tls: none }}
tasks:
  fine: {{ type: noop }}
  boom:
    type: command
    with: {{ argv: [sh, -c, "echo 'disk on fire' >&2; exit 3"] }}
"#,
        port = w.smtp.port
    );
    let record = run(runs.path(), &text).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert!(
        !record.tags.contains_key("notify.pending"),
        "{:?}",
        record.tags
    );

    // Webhook: the retry while the run went on, then the failure; both signed.
    let posts = on_path(&w.hooks, "/fail");
    let events: Vec<String> = posts
        .iter()
        .map(|p| p.json()["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["retry", "failed"]);
    for p in &posts {
        assert_eq!(p.method, "POST");
        assert_eq!(p.header("X-Team"), Some("data"));
        assert_eq!(p.header("Content-Type"), Some("application/json"));
        let signature = p.header("X-Tweetflow-Signature").expect("signed");
        assert_eq!(signature, python_signature(HMAC_KEY, &p.body));
        assert_ne!(signature, python_signature("another key", &p.body));
    }
    let failed = posts[1].json();
    assert_eq!(
        posts[1].header("X-Tweetflow-Delivery").unwrap(),
        format!("{}:failed:webhook", record.run_id)
    );
    assert_eq!(failed["pipeline"], "alerts_fail");
    assert_eq!(failed["run_id"], record.run_id.as_str());
    assert_eq!(failed["status"], "failed");
    assert!(failed["started_at"].is_string() && failed["ended_at"].is_string());
    assert_eq!(failed["failed_tasks"].as_array().unwrap().len(), 1);
    assert_eq!(failed["failed_tasks"][0]["task"], "boom");
    assert_eq!(failed["failed_tasks"][0]["attempts"], 2);
    assert!(
        !failed["failed_tasks"][0]["error"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        failed["url"],
        format!("http://ui.example:8080/runs/{}", record.run_id)
    );
    let retry = posts[0].json();
    assert_eq!(retry["status"], "running");
    assert_eq!(retry["failed_tasks"][0]["attempts"], 1);

    // Slack: Slack's incoming-webhook JSON.
    let slack = on_path(&w.slack, "/fail");
    assert_eq!(slack.len(), 1);
    let message = slack[0].json();
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .contains("[tweetflow] alerts_fail failed: boom")
    );
    let blocks = message["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    let all = message.to_string();
    assert!(
        all.contains(&record.run_id) && all.contains("*boom*"),
        "{all}"
    );
    assert!(all.contains("/runs/"), "{all}");

    // Mail: through the real SMTP server, authenticated, plain text and HTML.
    let mails: Vec<_> = w
        .smtp
        .wait_for(1, Duration::from_secs(5))
        .into_iter()
        .filter(|m| m.data.contains(&record.run_id))
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail.auth.as_deref(), Some("bot"));
    assert_eq!(mail.from, "tweetflow@example.com");
    assert_eq!(mail.to, ["oncall@example.com", "data@example.com"]);
    assert!(
        mail.data
            .contains("Subject: [tweetflow] alerts_fail failed: boom"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("multipart/alternative"));
    assert!(mail.data.contains("text/plain") && mail.data.contains("text/html"));

    // Recorded: channel, event, attempts, answer.
    let log = DeliveryLog::read(&runs.path().join(&record.run_id));
    let mut seen: Vec<(String, String, DeliveryStatus, u32)> = log
        .deliveries
        .iter()
        .map(|d| (d.event.clone(), d.channel.clone(), d.status, d.attempts))
        .collect();
    seen.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        seen,
        [
            (
                "failed".into(),
                "email".into(),
                DeliveryStatus::Delivered,
                1
            ),
            (
                "failed".into(),
                "slack".into(),
                DeliveryStatus::Delivered,
                1
            ),
            (
                "failed".into(),
                "webhook".into(),
                DeliveryStatus::Delivered,
                1
            ),
            (
                "retry".into(),
                "webhook".into(),
                DeliveryStatus::Delivered,
                1
            ),
        ]
    );
    let email = log
        .deliveries
        .iter()
        .find(|d| d.channel == "email")
        .unwrap();
    assert!(
        email.answer.as_deref().unwrap().starts_with("250"),
        "{email:?}"
    );

    // Each message sent is counted in the process's metrics (other tests of this binary may
    // add to the counters at the same time, never take away).
    let counted = [
        alerts_counted("webhook", "sent") - counted_before[0],
        alerts_counted("slack", "sent") - counted_before[1],
        alerts_counted("email", "sent") - counted_before[2],
    ];
    assert!(
        counted[0] >= 2 && counted[1] >= 1 && counted[2] >= 1,
        "alerts counted: {counted:?}"
    );

    // A resume that fails again sends nothing twice.
    let resumed = engine(runs.path())
        .resume(&record.run_id, RunOptions::default())
        .await
        .unwrap();
    assert_eq!(resumed.status, RunStatus::Failed);
    assert_eq!(on_path(&w.hooks, "/fail").len(), 2);
    assert_eq!(on_path(&w.slack, "/fail").len(), 1);
    std::thread::sleep(Duration::from_millis(200));
    let again = w
        .smtp
        .mails()
        .into_iter()
        .filter(|m| m.data.contains(&record.run_id))
        .count();
    assert_eq!(again, 1);

    // No channel URL, key or password in the run store.
    let hook = format!("{}/fail", w.hooks.url(""));
    let slack_url = format!("{}/fail", w.slack.url(""));
    assert_no_secret_in(runs.path(), &[HMAC_KEY, SMTP_PASSWORD, &hook, &slack_url]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_down_slow_or_failing_are_retried_recorded_and_leave_the_run_as_it_was() {
    let w = world();
    let runs = tempfile::tempdir().unwrap();
    let closed = tweetflow_test_support::watched::free_port();
    w.failing
        .reply_next([Reply::Status(500), Reply::Status(503)]);
    w.slow.reply_next([
        Reply::Late(Duration::from_millis(1500)),
        Reply::Late(Duration::from_millis(1500)),
    ]);
    let text = format!(
        r#"
name: alerts_faults
notify:
  - on: [succeeded]
    webhook: {{ url: "${{env.ALERTS_TEST_FAILING}}/faults" }}
    attempts: 3
  - on: [succeeded]
    slack: {{ webhook_url: "${{env.ALERTS_TEST_SLOW}}/faults" }}
    attempts: 2
    timeout: 300ms
  - on: [succeeded]
    email: {{ smtp: "smtp://127.0.0.1:{closed}", from: tweetflow@example.com, to: [oncall@example.com], tls: none }}
    attempts: 2
tasks:
  fine: {{ type: noop }}
"#
    );
    let record = run(runs.path(), &text).await;
    assert_eq!(record.status, RunStatus::Succeeded);
    assert!(record.tasks["fine"].status.is_success());
    let pending = record
        .tags
        .get("notify.pending")
        .expect("undelivered alerts are pending");
    assert!(
        pending.contains("slack") && pending.contains("email"),
        "{pending}"
    );
    assert!(!pending.contains("webhook"), "{pending}");

    let log = DeliveryLog::read(&runs.path().join(&record.run_id));
    let by = |c: &str| {
        log.deliveries
            .iter()
            .find(|d| d.channel == c)
            .unwrap()
            .clone()
    };
    let webhook = by("webhook");
    assert_eq!(
        (webhook.status, webhook.attempts),
        (DeliveryStatus::Delivered, 3)
    );
    assert_eq!(webhook.answer.as_deref(), Some("HTTP 200 ok"));
    assert_eq!(on_path(&w.failing, "/faults").len(), 3);
    let slack = by("slack");
    assert_eq!((slack.status, slack.attempts), (DeliveryStatus::Failed, 2));
    assert!(
        slack
            .error
            .as_deref()
            .unwrap()
            .contains("no answer in time"),
        "{slack:?}"
    );
    let email = by("email");
    assert_eq!((email.status, email.attempts), (DeliveryStatus::Failed, 2));
    assert!(
        email
            .error
            .as_deref()
            .unwrap()
            .contains(&format!("127.0.0.1:{closed}")),
        "{email:?}"
    );

    // `--resume` delivers what was missed, and only that.
    let resumed = engine(runs.path())
        .resume(&record.run_id, RunOptions::default())
        .await
        .unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded);
    assert_eq!(
        on_path(&w.failing, "/faults").len(),
        3,
        "the delivered webhook is not sent again"
    );
    let log = DeliveryLog::read(&runs.path().join(&record.run_id));
    let slack = log
        .deliveries
        .iter()
        .find(|d| d.channel == "slack")
        .unwrap();
    assert_eq!(
        (slack.status, slack.attempts),
        (DeliveryStatus::Delivered, 3)
    );
    let posts = on_path(&w.slow, "/faults");
    assert_eq!(posts.len(), 3);
    let keys: Vec<_> = posts
        .iter()
        .map(|p| p.header("X-Tweetflow-Delivery").unwrap().to_string())
        .collect();
    assert!(
        keys.iter()
            .all(|k| *k == format!("{}:succeeded:slack", record.run_id)),
        "{keys:?}"
    );
    let pending = resumed
        .tags
        .get("notify.pending")
        .expect("the mail is still pending");
    assert!(
        pending.contains("email") && !pending.contains("slack"),
        "{pending}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_run_is_told_once_while_it_goes() {
    let w = world();
    let runs = tempfile::tempdir().unwrap();
    let text = r#"
name: alerts_late
sla: { max_duration: 300ms }
notify:
  - on: [sla_missed, succeeded]
    webhook: { url: "${env.ALERTS_TEST_HOOKS}/late" }
tasks:
  slow:
    type: command
    with: { argv: [sleep, "1.5"] }
"#;
    let record = run(runs.path(), text).await;
    assert_eq!(record.status, RunStatus::Succeeded);
    let posts = on_path(&w.hooks, "/late");
    let events: Vec<String> = posts
        .iter()
        .map(|p| p.json()["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["sla_missed", "succeeded"]);
    let late = posts[0].json();
    assert_eq!(late["status"], "running");
    assert!(
        late["summary"]
            .as_str()
            .unwrap()
            .contains("max_duration 300ms"),
        "{late}"
    );
    let ended: std::time::SystemTime = record.ended_at.unwrap().into();
    assert!(posts[0].at < ended, "sent while the run was going");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_success_after_a_failure_is_a_recovery() {
    let w = world();
    let runs = tempfile::tempdir().unwrap();
    let flag = runs.path().join("flag");
    let text = format!(
        r#"
name: alerts_recover
notify:
  - on: [failed, recovered]
    webhook: {{ url: "${{env.ALERTS_TEST_HOOKS}}/recover" }}
tasks:
  check:
    type: command
    with: {{ argv: [test, -f, "{}"] }}
"#,
        flag.display()
    );
    assert_eq!(run(runs.path(), &text).await.status, RunStatus::Failed);
    std::fs::write(&flag, "").unwrap();
    let second = run(runs.path(), &text).await;
    assert_eq!(second.status, RunStatus::Succeeded);
    let third = run(runs.path(), &text).await;
    assert_eq!(third.status, RunStatus::Succeeded);
    let events: Vec<(String, String)> = on_path(&w.hooks, "/recover")
        .iter()
        .map(|p| {
            let j = p.json();
            (
                j["event"].as_str().unwrap().to_string(),
                j["run_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, "failed");
    assert_eq!(events[1], ("recovered".to_string(), second.run_id.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_is_told_once_per_interruption() {
    use tweetflow_engine::RunObserver;
    let w = world();
    let runs = tempfile::tempdir().unwrap();
    let text = r#"
name: alerts_interrupted
notify:
  - on: [interrupted]
    webhook: { url: "${env.ALERTS_TEST_HOOKS}/interrupted" }
tasks:
  fine: { type: noop }
"#;
    let pipeline = load(text);
    let done = run(runs.path(), text).await;
    // The record as a dead engine leaves it.
    let mut left = done.clone();
    left.status = RunStatus::Running;
    left.ended_at = None;
    let dir = runs.path().join(&left.run_id);
    let notify = Notify::new(None);
    notify
        .run_interrupted(&dir, &pipeline, &left)
        .await
        .unwrap();
    notify
        .run_interrupted(&dir, &pipeline, &left)
        .await
        .unwrap();
    let posts = on_path(&w.hooks, "/interrupted");
    assert_eq!(posts.len(), 1);
    let alert = posts[0].json();
    assert_eq!(alert["event"], "interrupted");
    assert_eq!(alert["status"], "interrupted");
    assert_eq!(
        posts[0].header("X-Tweetflow-Delivery").unwrap(),
        format!("{}:interrupted:0:webhook", left.run_id)
    );
    // Resumed, then interrupted again: a new alert.
    left.resumed_at.push(chrono::Utc::now());
    notify
        .run_interrupted(&dir, &pipeline, &left)
        .await
        .unwrap();
    assert_eq!(on_path(&w.hooks, "/interrupted").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_sends_to_each_channel_and_says_what_each_answered() {
    let w = world();
    let text = format!(
        r#"
name: alerts_probe
notify:
  - on: [failed]
    webhook: {{ url: "${{env.ALERTS_TEST_HOOKS}}/probe", secret: "${{secret.ALERTS_TEST_HMAC}}" }}
  - on: [failed]
    email: {{ smtp: "smtp://127.0.0.1:{port}", from: tweetflow@example.com, to: [probe@example.com], username: bot, password: wrong-password-123, tls: none }}
tasks:
  fine: {{ type: noop }}
"#,
        port = w.smtp.port
    );
    let outcomes = tweetflow_notify::send_test(&load(&text), None).await;
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].channel, "webhook");
    assert_eq!(outcomes[0].result.as_deref(), Ok("HTTP 200 ok"));
    let posts = on_path(&w.hooks, "/probe");
    assert_eq!(posts[0].json()["event"], "test");
    assert_eq!(
        posts[0].header("X-Tweetflow-Signature").unwrap(),
        python_signature(HMAC_KEY, &posts[0].body)
    );
    // The server refuses the password: said, without the password.
    let error = outcomes[1].result.as_ref().unwrap_err();
    assert!(
        error.contains("535") || error.to_lowercase().contains("auth"),
        "{error}"
    );
    assert!(!error.contains("wrong-password-123"));
}
