//! Golden test of `clean` on tricky tweets. The expected output is checked in as
//! `tests/medallion/golden/clean_tricky.expected`; run with `UPDATE_GOLDEN=1` to regenerate it.

use tweetflow_delta::WriteControl;
use tweetflow_tasks::medallion::clean::{CleanParams, clean};
use tweetflow_tasks::medallion::ingest::{IngestParams, ingest};
use tweetflow_tasks::medallion::tweet_id;

use crate::common::*;

const FILE: &str = "tricky-000001.jsonl";

#[tokio::test]
async fn clean_tricky_tweets_matches_golden() {
    let golden_dir = repo_root().join("tasks/tests/medallion/golden");
    let input = std::fs::read(golden_dir.join("tricky.jsonl")).unwrap();
    let lines = input
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as i64;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    land(&d.join("landing"), FILE, &input);
    ingest(
        &IngestParams::new(p(d, "landing"), p(d, "bronze")),
        &WriteControl::default(),
    )
    .await
    .unwrap();
    let cp = CleanParams::new(p(d, "bronze"), p(d, "silver"));
    let s = clean(&cp, &WriteControl::default()).await.unwrap();

    let line_of = |id: &str| (1..=lines).find(|l| tweet_id(FILE, *l) == id).unwrap_or(-1);
    let mut out = String::new();
    out.push_str(&format!(
        "# summary: tweets={} with_mentions={} without_mentions={} quarantined={} rows={}\n",
        s.tweets, s.tweets_with_mentions, s.tweets_without_mentions, s.quarantined, s.rows
    ));
    out.push_str(
        "# silver: line | tweet_id | timestamp | user | mention | cleaned_text | sentiment\n",
    );
    let silver = rows_of(
        &p(d, "silver"),
        &[
            "tweet_id",
            "timestamp",
            "user",
            "mention",
            "cleaned_text",
            "sentiment",
        ],
    )
    .await;
    let mut silver: Vec<(i64, Vec<String>)> =
        silver.into_iter().map(|r| (line_of(&r[0]), r)).collect();
    silver.sort();
    for (line, r) in silver {
        out.push_str(&format!("{line} | {}\n", r.join(" | ")));
    }
    out.push_str("# quarantine: line | tweet_id | date | reason\n");
    let q = rows_of(
        &cp.quarantine_location(),
        &["line", "tweet_id", "date", "reason"],
    )
    .await;
    let mut q: Vec<(i64, Vec<String>)> =
        q.into_iter().map(|r| (r[0].parse().unwrap(), r)).collect();
    q.sort();
    for (_, r) in q {
        out.push_str(&format!("{}\n", r.join(" | ")));
    }

    let expected_path = golden_dir.join("clean_tricky.expected");
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&expected_path, &out).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run with UPDATE_GOLDEN=1 to create it",
            expected_path.display()
        )
    });
    assert_eq!(
        out,
        expected,
        "clean output differs from {}; UPDATE_GOLDEN=1 regenerates it",
        expected_path.display()
    );
}
