//! Expectations on the shared write path: each action on real tables, the failing-rows error,
//! exactly-once counting and quarantining across a crash, and other table-writing tasks.

use serde_json::json;
use tweetflow_delta::WriteControl;
use tweetflow_delta::expect::{self, Scope};
use tweetflow_engine::ErrorKind;
use tweetflow_engine::OnFail;
use tweetflow_tasks::medallion::clean::{CleanParams, clean};

use crate::common::*;

const SHORT: &str = "length(mention) > 2";

/// Silver rows `(tweet_id, mention)` of a clean without expectations of the same landing.
async fn baseline(d: &std::path::Path) -> Vec<Vec<String>> {
    land_tweets(&d.join("landing"), "t-000001.jsonl", 0, 200);
    ingest_and_clean(d).await;
    rows_of(&p(d, "silver"), &["tweet_id", "mention"]).await
}

fn clean_params(d: &std::path::Path) -> serde_json::Value {
    json!({"input": p(d, "bronze"), "table": p(d, "silver2"), "quarantine": p(d, "q2")})
}

/// Quarantine rows `(tweet_id)` with reason `reason`.
async fn quarantined(location: &str, reason: &str) -> Vec<String> {
    if version(location).await < 0 {
        return Vec::new();
    }
    let mut ids: Vec<String> = rows_of(location, &["tweet_id", "reason"])
        .await
        .into_iter()
        .filter(|r| r[1] == reason)
        .map(|r| r[0].clone())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn each_action_does_what_it_says_on_the_rows_about_to_be_committed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let all = baseline(d).await;
    let short: Vec<Vec<String>> = all.iter().filter(|r| r[1].len() <= 2).cloned().collect();
    let long: Vec<Vec<String>> = all.iter().filter(|r| r[1].len() > 2).cloned().collect();
    assert!(
        !short.is_empty() && !long.is_empty(),
        "the data has both kinds"
    );
    let mut short_ids: Vec<String> = short.iter().map(|r| r[0].clone()).collect();
    short_ids.sort();

    // (action, silver rows expected, quarantined ids expected)
    let cases = [
        (OnFail::Warn, all.clone(), vec![]),
        (OnFail::Drop, long.clone(), vec![]),
        (OnFail::Quarantine, long.clone(), short_ids.clone()),
    ];
    for (i, (action, expected, expected_q)) in cases.into_iter().enumerate() {
        let run = d.join(format!("case{i}"));
        std::fs::create_dir_all(&run).unwrap();
        let params = json!({"input": p(d, "bronze"), "table": p(&run, "silver"), "quarantine": p(&run, "q")});
        let out = run_task(
            "clean",
            "clean",
            "r1",
            params,
            expectations(&[("short", SHORT, action)]),
            &run,
        )
        .await
        .unwrap_or_else(|e| panic!("{action:?}: {e}"));
        assert_eq!(failed(&out, "short"), short.len() as u64, "{action:?}");
        assert_eq!(
            out.get("expectations").unwrap()["short"]["action"],
            json!(format!("{action:?}").to_lowercase())
        );
        assert_eq!(
            rows_of(&p(&run, "silver"), &["tweet_id", "mention"]).await,
            expected,
            "{action:?}"
        );
        assert_eq!(
            quarantined(&p(&run, "q"), "expectation short").await,
            expected_q,
            "{action:?}"
        );
    }
}

#[tokio::test]
async fn fail_stops_the_task_naming_the_expectation_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    baseline(d).await;
    let err = run_task(
        "clean",
        "clean",
        "r1",
        clean_params(d),
        expectations(&[
            ("not_short", SHORT, OnFail::Fail),
            ("fine", "mention IS NOT NULL", OnFail::Warn),
        ]),
        d,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal, "{err}");
    assert!(
        err.message
            .contains("expectation `not_short` failed (`length(mention) > 2`)"),
        "{err}"
    );
    assert!(err.message.contains("nothing was committed"), "{err}");
    let shown = err.message.matches("{tweet_id=").count();
    assert!((1..=3).contains(&shown), "shows up to 3 rows: {err}");
    assert!(err.message.contains("mention=ab"), "{err}");
    assert!(
        rows(&p(d, "silver2")).await.1.is_empty(),
        "nothing committed"
    );
}

#[tokio::test]
async fn an_expectation_on_an_unknown_column_is_a_config_error_naming_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    baseline(d).await;
    let err = run_task(
        "clean",
        "clean",
        "r1",
        clean_params(d),
        expectations(&[("typo", "length(mentions) > 1", OnFail::Warn)]),
        d,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(
        err.message.contains("typo") && err.message.contains("mentions"),
        "{err}"
    );
    assert!(
        err.message.contains("cleaned_text"),
        "names the columns: {err}"
    );
}

#[tokio::test]
async fn a_crash_between_the_target_and_quarantine_commits_quarantines_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let all = baseline(d).await;
    let mut short_ids: Vec<String> = all
        .iter()
        .filter(|r| r[1].len() <= 2)
        .map(|r| r[0].clone())
        .collect();
    short_ids.sort();
    let params = CleanParams {
        input: p(d, "bronze"),
        table: p(d, "silver2"),
        quarantine: Some(p(d, "q2")),
    };
    let rules =
        tweetflow_tasks::expect::rules(&expectations(&[("short", SHORT, OnFail::Quarantine)]));

    // A crash after a write, before any commit: nothing is counted or quarantined.
    let scope = Scope::new("clean", rules.clone());
    let err = expect::scoped(
        scope.clone(),
        clean(&params, &WriteControl::with_failpoint("clean.after_write")),
    )
    .await
    .unwrap_err();
    assert!(err.is_failpoint(), "{err}");
    assert_eq!(scope.tallies()["short"].failed, 0);
    assert!(
        quarantined(&p(d, "q2"), "expectation short")
            .await
            .is_empty()
    );

    // A crash between silver's commit and the quarantine commit.
    let scope = Scope::with_control(
        "clean",
        rules.clone(),
        WriteControl::with_failpoint("expect.before_quarantine_commit"),
    );
    let err = expect::scoped(scope, clean(&params, &WriteControl::default()))
        .await
        .unwrap_err();
    assert!(err.is_failpoint(), "{err}");
    let silver_version = version(&p(d, "silver2")).await;
    assert!(
        quarantined(&p(d, "q2"), "expectation short")
            .await
            .is_empty(),
        "not yet"
    );

    // The retry finds nothing new in bronze, and commits the recorded quarantine rows once.
    let out = run_task(
        "clean",
        "clean",
        "r1",
        clean_params(d),
        expectations(&[("short", SHORT, OnFail::Quarantine)]),
        d,
    )
    .await
    .unwrap();
    assert_eq!(
        failed(&out, "short"),
        0,
        "counted by the commit that carried them"
    );
    assert_eq!(
        quarantined(&p(d, "q2"), "expectation short").await,
        short_ids
    );
    assert_eq!(version(&p(d, "silver2")).await, silver_version);
    let again = run_task(
        "clean",
        "clean",
        "r2",
        clean_params(d),
        expectations(&[("short", SHORT, OnFail::Quarantine)]),
        d,
    )
    .await
    .unwrap();
    assert_eq!(failed(&again, "short"), 0);
    assert_eq!(
        quarantined(&p(d, "q2"), "expectation short").await,
        short_ids,
        "once"
    );
    let long: Vec<Vec<String>> = all.iter().filter(|r| r[1].len() > 2).cloned().collect();
    assert_eq!(
        rows_of(&p(d, "silver2"), &["tweet_id", "mention"]).await,
        long
    );
}

#[tokio::test]
async fn ingest_and_aggregate_apply_expectations_through_the_same_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    land_tweets(&d.join("landing"), "t-000001.jsonl", 0, 50);
    let params = json!({"source": p(d, "landing"), "table": p(d, "bronze"), "settle_time": "0s"});
    let out = run_task(
        "ingest",
        "ingest",
        "r1",
        params,
        expectations(&[("later_lines", "line > 10", OnFail::Quarantine)]),
        d,
    )
    .await
    .unwrap();
    assert_eq!(failed(&out, "later_lines"), 10);
    let lines: Vec<i64> = rows_of(&p(d, "bronze"), &["line"])
        .await
        .iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    assert_eq!(lines.len(), 40);
    assert!(lines.iter().all(|l| *l > 10));
    let q = rows_of(
        &p(d, "bronze_quarantine"),
        &["line", "reason", "source_file"],
    )
    .await;
    assert_eq!(q.len(), 10, "{q:?}");
    assert!(
        q.iter()
            .all(|r| r[1] == "expectation later_lines" && r[2] == "t-000001.jsonl"),
        "{q:?}"
    );

    clean(
        &CleanParams::new(p(d, "bronze"), p(d, "silver")),
        &WriteControl::default(),
    )
    .await
    .unwrap();
    let silver = rows_of(&p(d, "silver"), &["mention"]).await;
    let params =
        json!({"input": p(d, "silver"), "table": p(d, "mentions"), "label_column": "sentiment"});
    let out = run_task(
        "aggregate",
        "aggregate",
        "r1",
        params,
        expectations(&[("popular", "total >= 3", OnFail::Drop)]),
        d,
    )
    .await
    .unwrap();
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for r in &silver {
        *counts.entry(r[0].clone()).or_default() += 1;
    }
    let dropped = counts.values().filter(|n| **n < 3).count() as u64;
    assert_eq!(failed(&out, "popular"), dropped);
    let kept: Vec<Vec<String>> = counts
        .iter()
        .filter(|(_, n)| **n >= 3)
        .map(|(m, n)| vec![m.clone(), n.to_string()])
        .collect();
    assert_eq!(
        rows_of(&p(d, "mentions"), &["mention", "total"]).await,
        kept
    );
}
