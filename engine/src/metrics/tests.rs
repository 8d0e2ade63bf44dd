use chrono::{Duration, TimeZone};

use super::*;
use crate::store::{Attempt, TaskStatus};
use crate::task::{ErrorKind, TaskError, TaskOutput};

fn record() -> RunRecord {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let pending = |task_type: &str| TaskRecord {
        task_type: task_type.into(),
        status: TaskStatus::Pending,
        attempts: Vec::new(),
        cache_key: None,
        output: None,
        error: None,
        started_at: None,
        ended_at: None,
    };
    let mut r = RunRecord {
        run_id: "r1".into(),
        pipeline: "p".into(),
        pipeline_file: "p.yaml".into(),
        spec_hash: String::new(),
        params: Default::default(),
        status: RunStatus::Succeeded,
        created_at: t0,
        ended_at: Some(t0 + Duration::seconds(10)),
        resumed_at: Vec::new(),
        tags: Default::default(),
        task_order: vec!["a".into(), "b".into()],
        tasks: [
            ("a".to_string(), pending("noop")),
            ("b".to_string(), pending("noop")),
        ]
        .into(),
        last_seq: 0,
        last_event_at: None,
        reason: None,
    };
    let a = r.tasks.get_mut("a").unwrap();
    a.status = TaskStatus::Succeeded;
    a.started_at = Some(t0);
    a.ended_at = Some(t0 + Duration::milliseconds(1500));
    a.output = Some(TaskOutput::new().with("rows", 42));
    a.attempts = vec![
        Attempt {
            number: 1,
            started_at: t0,
            ended_at: Some(t0 + Duration::milliseconds(500)),
            error: Some(TaskError {
                kind: ErrorKind::Retryable,
                message: "flaky".into(),
                param: None,
                source: None,
            }),
            shard: None,
            job: None,
        },
        Attempt {
            number: 2,
            started_at: t0 + Duration::seconds(1),
            ended_at: Some(t0 + Duration::milliseconds(1500)),
            error: None,
            shard: None,
            job: None,
        },
    ];
    r
}

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn a_finished_run_counts_its_tasks_attempts_rows_and_success() {
    let m = Metrics::new();
    m.count_finished_run(&record(), None);
    let text = m.encode();
    assert_eq!(
        line(
            &text,
            "tweetflow_runs_total{pipeline=\"p\",status=\"succeeded\"}"
        ),
        Some("tweetflow_runs_total{pipeline=\"p\",status=\"succeeded\"} 1"),
        "{text}"
    );
    assert!(
        line(
            &text,
            "tweetflow_task_attempts_total{pipeline=\"p\",task=\"a\",outcome=\"retryable_error\"} 1"
        )
        .is_some(),
        "{text}"
    );
    assert!(
        line(
            &text,
            "tweetflow_task_attempts_total{pipeline=\"p\",task=\"a\",outcome=\"succeeded\"} 1"
        )
        .is_some(),
        "{text}"
    );
    assert!(
        line(
            &text,
            "tweetflow_task_rows_total{pipeline=\"p\",task=\"a\"} 42"
        )
        .is_some(),
        "{text}"
    );
    assert!(line(&text, "tweetflow_task_duration_seconds_sum{pipeline=\"p\",task=\"a\",status=\"succeeded\"} 1.5").is_some(), "{text}");
    assert!(line(&text, "tweetflow_task_duration_seconds_bucket{le=\"1.0\",pipeline=\"p\",task=\"a\",status=\"succeeded\"} 0").is_some()
        || line(&text, "tweetflow_task_duration_seconds_bucket{pipeline=\"p\",task=\"a\",status=\"succeeded\",le=\"1.0\"} 0").is_some(), "{text}");
    assert!(
        line(
            &text,
            "tweetflow_last_success_timestamp_seconds{pipeline=\"p\"} 1767225610"
        )
        .is_some(),
        "{text}"
    );
    assert!(
        line(&text, "tweetflow_build_info{version=").is_some(),
        "{text}"
    );
    // Task b never ran: no duration, no attempts.
    assert!(!text.contains("task=\"b\""), "{text}");
}

#[test]
fn an_active_run_counts_until_its_guard_drops_and_alerts_are_counted() {
    let m = Metrics::new();
    let guard = m.run_active("p");
    assert!(
        m.encode()
            .contains("tweetflow_runs_active{pipeline=\"p\"} 1")
    );
    drop(guard);
    assert!(
        m.encode()
            .contains("tweetflow_runs_active{pipeline=\"p\"} 0")
    );
    m.alert("email", "sent");
    m.alert("email", "sent");
    m.schedule_lag("p", 0.25);
    let text = m.encode();
    assert!(
        text.contains("tweetflow_alerts_total{channel=\"email\",outcome=\"sent\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("tweetflow_schedule_lag_seconds{pipeline=\"p\"} 0.25"),
        "{text}"
    );
}

#[test]
fn a_resumed_run_counts_only_the_tasks_that_ended_after_the_resume() {
    let m = Metrics::new();
    let r = record();
    let since = r.tasks["a"].ended_at.unwrap() + Duration::seconds(1);
    m.count_finished_run(&r, Some(since));
    let text = m.encode();
    assert!(!text.contains("tweetflow_task_attempts_total{"), "{text}");
    assert!(
        text.contains("tweetflow_runs_total{pipeline=\"p\",status=\"succeeded\"} 1"),
        "{text}"
    );
}
