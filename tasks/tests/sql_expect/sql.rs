//! The `sql` task on real Delta tables: a GROUP BY checked against a golden file and against
//! the same count done in Rust, incremental appends, merge, exactly once, errors.

use std::collections::BTreeMap;

use serde_json::json;
use tweetflow_delta::WriteControl;
use tweetflow_engine::ErrorKind;
use tweetflow_engine::OnFail;
use tweetflow_tasks::sql::{Mode, SqlParams, run_sql};

use crate::common::*;

const PER_MENTION: &str = "SELECT mention, count(*) AS tweets, count(DISTINCT user) AS users, \
     min(timestamp) AS first_seen, avg(CASE WHEN sentiment = 'positive' THEN 1.0 ELSE 0.0 END) AS positive_share \
     FROM silver GROUP BY mention";

fn sql_params(d: &std::path::Path, query: &str, mode: Mode) -> SqlParams {
    SqlParams {
        tables: BTreeMap::from([("silver".to_string(), p(d, "silver"))]),
        query: query.to_string(),
        table: p(d, "out"),
        mode,
        merge_keys: Vec::new(),
        incremental: false,
        quarantine: None,
    }
}

fn counts(rows: &[Vec<String>]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r[0].clone()).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn a_group_by_over_silver_matches_the_golden_file_and_a_count_in_rust() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tricky =
        std::fs::read(repo_root().join("tasks/tests/medallion/golden/tricky.jsonl")).unwrap();
    std::fs::create_dir_all(d.join("landing")).unwrap();
    std::fs::write(d.join("landing/tricky-000001.jsonl"), tricky).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(d.join("landing/tricky-000001.jsonl"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
        .unwrap();
    ingest_and_clean(d).await;

    let s = run_sql(
        &sql_params(d, PER_MENTION, Mode::Overwrite),
        "per_mention",
        1,
        &WriteControl::default(),
    )
    .await
    .unwrap();
    assert_eq!(s.read_versions["silver"], version(&p(d, "silver")).await);
    let got = rows_of(
        &p(d, "out"),
        &["mention", "tweets", "users", "first_seen", "positive_share"],
    )
    .await;
    let silver = rows_of(&p(d, "silver"), &["mention", "user"]).await;
    let expected = counts(&silver);
    assert_eq!(
        got.iter()
            .map(|r| (r[0].clone(), r[1].parse::<u64>().unwrap()))
            .collect::<BTreeMap<_, _>>(),
        expected
    );
    assert_eq!(s.rows, expected.len() as u64);
    let text: String = got.iter().map(|r| r.join(" | ") + "\n").collect();
    let golden = repo_root().join("tasks/tests/sql_expect/golden/per_mention.expected");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    assert_eq!(text, std::fs::read_to_string(&golden).unwrap());

    // Overwrite again: the same rows, a new version.
    let again = run_sql(
        &sql_params(d, PER_MENTION, Mode::Overwrite),
        "per_mention",
        2,
        &WriteControl::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.table_version, s.table_version + 1);
    assert_eq!(
        rows_of(
            &p(d, "out"),
            &["mention", "tweets", "users", "first_seen", "positive_share"]
        )
        .await,
        got
    );
}

#[tokio::test]
async fn incremental_append_reads_each_new_version_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    land_tweets(&d.join("landing"), "t-000001.jsonl", 0, 40);
    ingest_and_clean(d).await;
    let mut params = sql_params(
        d,
        "SELECT tweet_id, mention, upper(mention) AS big FROM silver",
        Mode::Append,
    );
    params.incremental = true;
    let first = run_sql(&params, "copy", 1, &WriteControl::default())
        .await
        .unwrap();
    let silver_v1 = rows_of(&p(d, "silver"), &["tweet_id", "mention"]).await;
    assert_eq!(first.rows, silver_v1.len() as u64);
    assert_eq!(first.read_from["silver"], 0);

    land_tweets(&d.join("landing"), "t-000002.jsonl", 40, 30);
    ingest_and_clean(d).await;
    let second = run_sql(&params, "copy", 2, &WriteControl::default())
        .await
        .unwrap();
    let silver_v2 = rows_of(&p(d, "silver"), &["tweet_id", "mention"]).await;
    assert_eq!(
        second.rows,
        (silver_v2.len() - silver_v1.len()) as u64,
        "only the new rows"
    );
    assert_eq!(
        second.read_from["silver"],
        first.read_versions["silver"] + 1
    );
    assert_eq!(
        rows_of(&p(d, "out"), &["tweet_id", "mention"]).await,
        silver_v2,
        "each row once"
    );

    let third = run_sql(&params, "copy", 3, &WriteControl::default())
        .await
        .unwrap();
    assert_eq!(
        (third.rows, third.table_version),
        (0, second.table_version),
        "nothing new: no commit"
    );
}

#[tokio::test]
async fn merge_replaces_matching_keys_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    land_tweets(&d.join("landing"), "t-000001.jsonl", 0, 60);
    ingest_and_clean(d).await;
    let counted = "SELECT mention, count(*) AS n FROM silver GROUP BY mention";
    run_sql(
        &sql_params(d, counted, Mode::Overwrite),
        "m",
        1,
        &WriteControl::default(),
    )
    .await
    .unwrap();
    let before = rows_of(&p(d, "out"), &["mention", "n"]).await;
    let mut params = sql_params(
        d,
        "SELECT mention, CAST(-1 AS BIGINT) AS n FROM silver WHERE mention LIKE 'm1%' GROUP BY mention UNION ALL SELECT 'new' AS mention, CAST(7 AS BIGINT) AS n",
        Mode::Merge,
    );
    params.merge_keys = vec!["mention".into()];
    run_sql(&params, "m", 2, &WriteControl::default())
        .await
        .unwrap();
    let mut expected: Vec<Vec<String>> = before
        .iter()
        .map(|r| {
            if r[0].starts_with("m1") {
                vec![r[0].clone(), "-1".into()]
            } else {
                r.clone()
            }
        })
        .collect();
    expected.push(vec!["new".into(), "7".into()]);
    expected.sort();
    assert!(expected.iter().any(|r| r[1] == "-1"), "some keys matched");
    assert_eq!(rows_of(&p(d, "out"), &["mention", "n"]).await, expected);
}

#[tokio::test]
async fn a_retried_or_resumed_run_commits_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    land_tweets(&d.join("landing"), "t-000001.jsonl", 0, 30);
    ingest_and_clean(d).await;
    let params = sql_params(d, "SELECT tweet_id, mention FROM silver", Mode::Append);
    let err = run_sql(
        &params,
        "copy",
        42,
        &WriteControl::with_failpoint("sql.after_commit"),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("failpoint"), "{err}");
    let v = version(&p(d, "out")).await;
    let retry = run_sql(&params, "copy", 42, &WriteControl::default())
        .await
        .unwrap();
    assert!(retry.already_committed);
    assert_eq!(retry.table_version, v);
    assert_eq!(
        retry.rows,
        rows(&p(d, "silver")).await.1.len() as u64,
        "the committed run's figures"
    );
    assert_eq!(
        rows_of(&p(d, "out"), &["tweet_id"]).await.len(),
        rows(&p(d, "silver")).await.1.len()
    );
    // Through the task: the token comes from the run id; another run appends again.
    let task_params = serde_json::to_value(&params).unwrap();
    let out = run_task(
        "sql",
        "copy",
        "run-a",
        task_params.clone(),
        Default::default(),
        d,
    )
    .await
    .unwrap();
    let again = run_task("sql", "copy", "run-a", task_params, Default::default(), d)
        .await
        .unwrap();
    assert_eq!(out.get("table_version"), again.get("table_version"));
    assert_eq!(again.get("already_committed"), Some(&json!(true)));
    assert_eq!(out.fingerprint, again.fingerprint);
}

#[tokio::test]
async fn bad_queries_are_config_errors_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    land_tweets(&d.join("landing"), "t-000001.jsonl", 0, 20);
    ingest_and_clean(d).await;
    run_sql(
        &sql_params(
            d,
            "SELECT mention, count(*) AS tweets FROM silver GROUP BY mention",
            Mode::Overwrite,
        ),
        "q",
        1,
        &WriteControl::default(),
    )
    .await
    .unwrap();
    // (query, mode, texts the error must hold)
    let cases: [(&str, Mode, &[&str]); 6] = [
        (
            "SELEC mention FROM silver",
            Mode::Overwrite,
            &["param `query`", "SELEC", "Line: 1, Column: 1"],
        ),
        (
            "SELECT mention, nope FROM silver",
            Mode::Overwrite,
            &["param `query`", "nope"],
        ),
        (
            "SELECT * FROM missing",
            Mode::Overwrite,
            &["param `query`", "missing"],
        ),
        (
            "CREATE TABLE x AS SELECT 1",
            Mode::Overwrite,
            &["param `query`", "not supported"],
        ),
        (
            "SELECT mention, CAST(count(*) AS VARCHAR) AS tweets FROM silver GROUP BY mention",
            Mode::Append,
            &[
                "param `table`",
                "`tweets` is Utf8 in the query but Int64 in the table",
            ],
        ),
        (
            "SELECT mention FROM silver",
            Mode::Append,
            &["param `table`", "`tweets` is not in the query"],
        ),
    ];
    for (query, mode, texts) in cases {
        let params = serde_json::to_value(sql_params(d, query, mode)).unwrap();
        let err = run_task("sql", "q", "r9", params, Default::default(), d)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config, "{query}: {err}");
        for t in texts {
            assert!(err.message.contains(t), "{query}: `{t}` not in: {err}");
        }
    }
    let mut params = sql_params(d, "SELECT 1 AS x", Mode::Overwrite);
    params.incremental = true;
    let err = run_task(
        "sql",
        "q",
        "r9",
        serde_json::to_value(params).unwrap(),
        Default::default(),
        d,
    )
    .await
    .unwrap_err();
    assert!(err.message.contains("param `incremental`"), "{err}");
}

#[tokio::test]
async fn expectations_apply_to_sql_results() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    land_tweets(&d.join("landing"), "t-000001.jsonl", 0, 60);
    ingest_and_clean(d).await;
    let params = serde_json::to_value(sql_params(
        d,
        "SELECT mention, count(*) AS tweets FROM silver GROUP BY mention",
        Mode::Overwrite,
    ))
    .unwrap();
    let silver = rows_of(&p(d, "silver"), &["mention"]).await;
    let few = counts(&silver).values().filter(|n| **n < 5).count() as u64;
    assert!(few > 0);
    let out = run_task(
        "sql",
        "per_mention",
        "r1",
        params.clone(),
        expectations(&[("busy", "tweets >= 5", OnFail::Quarantine)]),
        d,
    )
    .await
    .unwrap();
    assert_eq!(failed(&out, "busy"), few);
    let q = rows_of(&p(d, "out_quarantine"), &["mention", "tweets", "reason"]).await;
    assert_eq!(q.len() as u64, few);
    assert!(
        q.iter()
            .all(|r| r[2] == "expectation busy" && r[1].parse::<u64>().unwrap() < 5)
    );
    let v = version(&p(d, "out")).await;
    let err = run_task(
        "sql",
        "per_mention",
        "r2",
        params,
        expectations(&[("busy", "tweets >= 5", OnFail::Fail)]),
        d,
    )
    .await
    .unwrap_err();
    assert!(err.message.contains("expectation `busy` failed"), "{err}");
    assert_eq!(version(&p(d, "out")).await, v, "nothing committed");
}
