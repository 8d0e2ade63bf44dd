//! Alerts through the `tweetflow` binary: a failed run posts to a local receiver, `runs show`
//! lists the deliveries (never a channel URL or key), and `notify test` says what each
//! channel answered.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use tweetflow_test_support::http_receiver::{HttpReceiver, Reply};

const KEY: &str = "cli-hmac-key-3c9a1f";

fn tweetflow(runs: &std::path::Path, hook: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tweetflow"));
    c.arg("--runs-dir")
        .arg(runs)
        .env("ALERT_HOOK", hook)
        .env("ALERT_HMAC", KEY)
        .env("TWEETFLOW_UI_URL", "http://ui.example:8080")
        .env_remove("MLFLOW_TRACKING_URI");
    c
}

#[test]
fn a_failed_run_alerts_and_runs_show_lists_the_deliveries() {
    let receiver = HttpReceiver::start();
    receiver.reply_next([Reply::Status(500)]);
    let dir = tempfile::tempdir().unwrap();
    let hook = receiver.url("/cli");
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        r#"name: alerts_cli
notify:
  - on: [failed]
    webhook: { url: "${env.ALERT_HOOK}", secret: "${secret.ALERT_HMAC}" }
tasks:
  boom: { type: command, with: { argv: [sh, -c, "exit 4"] } }
"#,
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let out = tweetflow(&runs, &hook)
        .args(["run", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let posts = receiver.requests();
    assert_eq!(posts.len(), 2, "a 500, then the retry");
    let alert = posts[1].json();
    assert_eq!(alert["event"], "failed");
    let run_id = alert["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        alert["url"],
        format!("http://ui.example:8080/runs/{run_id}")
    );

    let show = tweetflow(&runs, &hook)
        .args(["runs", "show", &run_id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("alerts:"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("failed") && l.contains("webhook"))
        .unwrap_or_else(|| panic!("no delivery row in:\n{text}"));
    assert!(
        row.contains("delivered") && row.contains(" 2 ") && row.contains("HTTP 200 ok"),
        "{row}"
    );
    let json = tweetflow(&runs, &hook)
        .args(["runs", "show", &run_id, "--json"])
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["deliveries"][0]["attempts"], 2);
    for (name, shown) in [("show", &show.stdout), ("show --json", &json.stdout)] {
        let shown = String::from_utf8_lossy(shown);
        assert!(
            !shown.contains(&hook) && !shown.contains(KEY),
            "{name}: {shown}"
        );
    }
    let mut stack = vec![runs.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let t = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
                assert!(
                    !t.contains(&hook) && !t.contains(KEY),
                    "{}: {t}",
                    e.path().display()
                );
            }
        }
    }
}

#[test]
fn notify_test_prints_what_each_channel_answered() {
    let receiver = HttpReceiver::start();
    receiver.reply_next([Reply::Status(404)]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        r#"name: alerts_probe
notify:
  - on: [failed]
    name: ops
    webhook: { url: "${env.ALERT_HOOK}" }
  - on: [failed]
    slack: { webhook_url: "${env.ALERT_HOOK}" }
tasks: { a: { type: noop } }
"#,
    )
    .unwrap();
    let hook = receiver.url("/probe");
    let out = tweetflow(&dir.path().join("runs"), &hook)
        .args(["notify", "test"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("✗ ops (webhook): HTTP 404 error"),
        "{stdout}"
    );
    assert!(stdout.contains("✓ slack (slack): HTTP 200 ok"), "{stdout}");
    assert!(!stdout.contains(&hook), "{stdout}");
    assert_eq!(receiver.requests().len(), 2);
}

#[test]
fn bad_alert_sections_are_invalid_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "name: p\nsla: { max_duration: soon }\nnotify:\n  - on: [failed]\n    email: { smtp: \"smtp://\", from: a@example.com, to: [nobody] }\ntasks: { a: { type: noop } }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tweetflow"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(":2:22"), "{stderr}");
    assert!(stderr.contains("the `smtp` URL has no host"), "{stderr}");
    assert!(
        stderr.contains("`nobody` is not a mail address"),
        "{stderr}"
    );
    assert!(stderr.contains("3 problems"), "{stderr}");
}
