//! Bad `notify:` and `sla:` sections: every problem at once, each at its position with a hint.
#![allow(clippy::unwrap_used)]

use tweetflow_engine::process_env;
use tweetflow_engine::{LoadOptions, load_str};

fn problems(text: &str) -> Vec<String> {
    let registry = tweetflow_tasks::default_registry();
    let options = LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &process_env,
    };
    match load_str("p.yaml", text, &options) {
        Ok(_) => Vec::new(),
        Err(d) => d
            .items
            .iter()
            .map(|i| {
                format!(
                    "{}:{} {} | {}",
                    i.span.line,
                    i.span.column,
                    i.message,
                    i.hint.as_deref().unwrap_or("")
                )
            })
            .collect(),
    }
}

#[test]
fn every_problem_of_the_alert_sections_is_reported_at_once() {
    let text = r#"name: p
sla: { max_duration: 20 minutes }
notify:
  - on: [faild, failed]
    webhok: { url: "https://hooks.example/x" }
  - on: [failed]
    email: { smtp: "smtp://", from: bot@example.com, to: [oncall@example.com, not-an-address] }
  - on: []
    slack: { webhook_url: "ftp://hooks.example/x" }
tasks: { a: { type: noop } }
"#;
    let got = problems(text);
    let expected = [
        "2:22 sla.max_duration: invalid duration",
        "4:10 notify[0].on[0]",
        "4:5 notify[0]: the entry has no channel",
        "5:5 notify[0]: unknown key `webhok`",
        "7:20 notify[1].email.smtp: the `smtp` URL has no host",
        "7:79 notify[1].email.to[1]: `not-an-address` is not a mail address",
        "8:9 notify[2].on: no event is chosen",
        "9:27 notify[2].slack.webhook_url: `ftp://hooks.example` is not an http(s) URL",
    ];
    for e in expected {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing `{e}` in:\n{}",
            got.join("\n")
        );
    }
    assert!(
        got.iter().all(|g| !g.ends_with("| ")),
        "each has a hint:\n{}",
        got.join("\n")
    );
    assert!(
        got.iter()
            .any(|g| g.contains("faild") && g.contains("failed")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.contains("webhok") && g.contains("webhook")),
        "{got:?}"
    );
}

#[test]
fn channel_urls_from_the_environment_are_secrets_in_the_plan() {
    // SAFETY: this test binary's only environment change, made before anything reads it.
    unsafe {
        std::env::set_var(
            "ALERTS_VALIDATION_HOOK",
            "https://hooks.example/T000/B000/XXXX",
        )
    };
    let registry = tweetflow_tasks::default_registry();
    let options = LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &process_env,
    };
    let text = r#"name: p
notify:
  - on: [failed]
    slack: { webhook_url: "${env.ALERTS_VALIDATION_HOOK}" }
tasks: { a: { type: noop } }
"#;
    let pipeline = load_str("p.yaml", text, &options).unwrap();
    let plan = pipeline.to_plan().unwrap().to_string();
    assert!(!plan.contains("hooks.example"), "{plan}");
    assert!(plan.contains("ALERTS_VALIDATION_HOOK"), "{plan}");
}

#[test]
fn defaults_may_hold_the_channels_a_pipeline_without_its_own_inherits() {
    let registry = tweetflow_tasks::default_registry();
    let options = LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &process_env,
    };
    let text = r#"name: p
defaults:
  retries: { max_attempts: 2 }
  notify:
    - on: [failed]
      webhook: { url: "https://hooks.example/team" }
tasks: { a: { type: noop } }
"#;
    let pipeline = load_str("p.yaml", text, &options).unwrap();
    let notify = pipeline
        .section::<tweetflow_notify::NotifySection>()
        .unwrap();
    assert_eq!(notify.0.len(), 1);
    assert_eq!(pipeline.tasks[0].retries.max_attempts, 2);
    let own = text.replace("tasks:", "notify: [ { on: [succeeded], slack: { webhook_url: \"https://hooks.example/own\" } } ]\ntasks:");
    let pipeline = load_str("p.yaml", &own, &options).unwrap();
    let notify = pipeline
        .section::<tweetflow_notify::NotifySection>()
        .unwrap();
    assert!(notify.0[0].slack.is_some());
}
