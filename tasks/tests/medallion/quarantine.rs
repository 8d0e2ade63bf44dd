//! Schema enforcement: every bad-input class ends in quarantine with its reason; unknown
//! fields follow `schema_evolution`.

use tweetflow_delta::WriteControl;
use tweetflow_tasks::TableTaskError;
use tweetflow_tasks::medallion::clean::{CleanParams, clean};
use tweetflow_tasks::medallion::ingest::{IngestParams, SchemaEvolution, ingest};

use crate::common::*;

const GOOD: &str = r#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "u", "text": "@a hi", "sentiment": "positive"}"#;

#[tokio::test]
async fn every_bad_input_class_is_quarantined_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut file: Vec<u8> = Vec::new();
    let cases: Vec<(&[u8], &str)> = vec![
        (GOOD.as_bytes(), ""),
        (b"this is not json", "not valid JSON"),
        (b"{\"date\": \"x\", \"user\": ", "not valid JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b"\"just a string\"", "not a JSON object"),
        (b"{\"date\": \"Mon Apr 06 22:19:45 PDT 2009\", \"user\": \"caf\xe9\", \"text\": \"t\", \"sentiment\": \"positive\"}", "not valid UTF-8"),
        (br#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "u", "sentiment": "positive"}"#, "missing required field `text`"),
        (br#"{"date": null, "user": "u", "text": "t", "sentiment": "positive"}"#, "missing required field `date` (null)"),
        (br#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": 42, "text": "t", "sentiment": "positive"}"#, "field `user` has the wrong type: expected string, found number"),
        (br#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "u", "text": ["t"], "sentiment": "positive"}"#, "field `text` has the wrong type: expected string, found array"),
        (br#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "u", "text": "t", "sentiment": 4}"#, "field `sentiment` has the wrong type: expected string, found number"),
        (br#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "u", "text": "t", "sentiment": "happy"}"#, "field `sentiment` has the invalid value `happy`"),
        (b"", ""),
        (br#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "u", "text": "@b bye", "sentiment": "negative"}"#, ""),
    ];
    for (line, _) in &cases {
        file.extend_from_slice(line);
        file.push(b'\n');
    }
    land(&d.join("landing"), "bad-000001.jsonl", &file);
    let ip = IngestParams::new(p(d, "landing"), p(d, "bronze"));
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!(s.rows, 2);
    assert_eq!(s.quarantined, 11);
    let q = rows_of(
        &ip.quarantine_location(),
        &["line", "reason", "raw_line", "raw_bytes", "source_file"],
    )
    .await;
    assert_eq!(q.len(), 11);
    for (i, (line, reason)) in cases.iter().enumerate() {
        let n = (i + 1).to_string();
        let row = q.iter().find(|r| r[0] == n);
        if reason.is_empty() {
            assert!(row.is_none(), "line {n} should not be quarantined");
            continue;
        }
        let row = row.unwrap_or_else(|| panic!("line {n} ({reason}) is not in quarantine"));
        assert!(
            row[1].starts_with(reason),
            "line {n}: reason `{}` should start with `{reason}`",
            row[1]
        );
        assert_eq!(
            row[2],
            String::from_utf8_lossy(line),
            "raw line (lossy) of line {n}"
        );
        assert_eq!(row[4], "bad-000001.jsonl");
        let hex: String = line.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(row[3], hex, "raw bytes of line {n}");
    }

    // Clean quarantines bad dates and missing values with the reason.
    let bad_dates = concat!(
        "{\"date\": \"Mon Apr 06 25:19:45 PDT 2009\", \"user\": \"u\", \"text\": \"@x\", \"sentiment\": \"positive\"}\n",
        "{\"date\": \"Tue Apr 06 22:19:45 PDT 2009\", \"user\": \"u\", \"text\": \"@x\", \"sentiment\": \"positive\"}\n",
        "{\"date\": \"Mon Apr 06 22:19:45 XYZ 2009\", \"user\": \"u\", \"text\": \"@x\", \"sentiment\": \"positive\"}\n",
        "{\"date\": \"\", \"user\": \"u\", \"text\": \"@x\", \"sentiment\": \"positive\"}\n",
    );
    land(&d.join("landing"), "bad-000002.jsonl", bad_dates.as_bytes());
    ingest(&ip, &WriteControl::default()).await.unwrap();
    let cp = CleanParams::new(p(d, "bronze"), p(d, "silver"));
    let c = clean(&cp, &WriteControl::default()).await.unwrap();
    assert_eq!(c.quarantined, 4);
    let q = rows_of(
        &cp.quarantine_location(),
        &["source_file", "line", "reason"],
    )
    .await;
    let reasons: Vec<&str> = q.iter().map(|r| r[2].as_str()).collect();
    assert!(reasons[0].contains("bad time"), "{reasons:?}");
    assert!(
        reasons[1].contains("does not match the date"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("unknown time zone `XYZ`"),
        "{reasons:?}"
    );
    assert!(reasons[3].contains("does not have the form"), "{reasons:?}");
}

fn with_extras() -> String {
    [
        r#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "u", "text": "@a one", "sentiment": "positive", "lang": "en", "geo": {"lat": 1}}"#,
        r#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "v", "text": "@a two", "sentiment": "negative"}"#,
        r#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "w", "text": "@a three", "sentiment": "neutral", "lang": "fr", "retweets": 3}"#,
    ]
    .join("\n")
}

#[tokio::test]
async fn schema_evolution_modes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    land(
        &d.join("landing"),
        "x-000001.jsonl",
        with_extras().as_bytes(),
    );
    let run = |mode: SchemaEvolution, table: &str| {
        let mut ip = IngestParams::new(p(d, "landing"), p(d, table));
        ip.schema_evolution = mode;
        ip
    };

    let ip = run(SchemaEvolution::Rescue, "rescue");
    ingest(&ip, &WriteControl::default()).await.unwrap();
    let r = rows_of(&ip.table, &["user", "_rescued_data"]).await;
    assert_eq!(r[0], vec!["u", r#"{"lang":"en","geo":{"lat": 1}}"#]);
    assert_eq!(r[1], vec!["v", ""]);
    assert_eq!(r[2], vec!["w", r#"{"lang":"fr","retweets":3}"#]);

    let ip = run(SchemaEvolution::AddColumns, "added");
    ingest(&ip, &WriteControl::default()).await.unwrap();
    let r = rows_of(&ip.table, &["user", "lang", "geo", "retweets"]).await;
    assert_eq!(r[0], vec!["u", "en", r#"{"lat": 1}"#, ""]);
    assert_eq!(r[1], vec!["v", "", "", ""]);
    assert_eq!(r[2], vec!["w", "fr", "", "3"]);
    // A later file with another new field evolves the schema again.
    land(&d.join("landing"), "x-000002.jsonl",
        br#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "z", "text": "@a four", "sentiment": "neutral", "mood": "ok"}"#);
    ingest(&ip, &WriteControl::default()).await.unwrap();
    let r = rows_of(&ip.table, &["user", "lang", "mood"]).await;
    assert_eq!(r.len(), 4);
    assert_eq!(r[3], vec!["z", "", "ok"]);
    // A field that would clash with a bronze column (names are case-insensitive) is quarantined.
    land(&d.join("landing"), "x-000003.jsonl",
        br#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "y", "text": "@a five", "sentiment": "neutral", "Line": 7}"#);
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.quarantined), (0, 1));
    let q = rows_of(&ip.quarantine_location(), &["source_file", "reason"]).await;
    assert_eq!(
        q,
        vec![vec![
            "x-000003.jsonl".to_string(),
            "field `Line` cannot become a column: it collides with a bronze column".to_string()
        ]]
    );
    std::fs::remove_file(d.join("landing/x-000002.jsonl")).unwrap();
    std::fs::remove_file(d.join("landing/x-000003.jsonl")).unwrap();

    let ip = run(SchemaEvolution::Ignore, "ignored");
    ingest(&ip, &WriteControl::default()).await.unwrap();
    let (names, r) = rows(&ip.table).await;
    assert_eq!(r.len(), 3);
    assert!(
        !names.iter().any(|n| n == "lang" || n == "_rescued_data"),
        "{names:?}"
    );

    let ip = run(SchemaEvolution::Fail, "failed");
    let err = ingest(&ip, &WriteControl::default()).await.unwrap_err();
    assert!(matches!(err, TableTaskError::Data(_)), "{err}");
    assert!(!err.is_retryable());
    let msg = err.to_string();
    assert!(
        msg.contains("x-000001.jsonl") && msg.contains("line 1") && msg.contains("`lang`"),
        "{msg}"
    );
    assert_eq!(version(&ip.table).await.max(0), 0, "nothing committed");
}
