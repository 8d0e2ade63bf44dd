//! Hostile and unfinished landing files: files still being written, hidden and temporary
//! names, files changed after ingest, oversized records, gzip files (good and corrupt).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::json;
use tweetflow_delta::WriteControl;
use tweetflow_engine::Task;
use tweetflow_tasks::medallion::ingest::{IngestParams, IngestTask, ingest};

use crate::common::*;

fn tweet(i: usize) -> String {
    format!(
        "{{\"date\": \"Mon Apr 06 22:19:45 PDT 2009\", \"user\": \"u{i}\", \"text\": \"@a tweet {i}\", \"sentiment\": \"positive\"}}\n"
    )
}

/// Sets the modification time of `path` to `ago` before now.
fn age(path: &Path, ago: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

#[tokio::test]
async fn a_file_still_being_written_is_taken_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let landing = d.join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let file = landing.join("tweets-000001.jsonl");
    // The writer has written two records and half of the third.
    let whole: String = (1..=3).map(tweet).collect();
    let cut = whole.len() - 40;
    std::fs::write(&file, &whole[..cut]).unwrap();
    let ip = IngestParams::new(p(d, "landing"), p(d, "bronze"));

    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.files, s.quarantined, s.settling), (0, 0, 0, 1));
    assert_eq!(
        version(&ip.table).await,
        -1,
        "no table written for a settling file"
    );

    // The writer finishes; once the file has settled, every record is ingested once.
    std::fs::write(&file, &whole).unwrap();
    let again = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!(
        (again.rows, again.settling),
        (0, 1),
        "still within the settle time"
    );
    age(&file, Duration::from_secs(6));
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.files, s.quarantined, s.settling), (3, 1, 0, 0));
    let users = rows_of(&ip.table, &["user"]).await;
    assert_eq!(users, vec![vec!["u1"], vec!["u2"], vec!["u3"]]);
    assert_eq!(
        version(&ip.quarantine_location()).await,
        -1,
        "nothing quarantined"
    );
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.files, s.changed), (0, 0, 0));
    assert_eq!(rows_of(&ip.table, &["user"]).await.len(), 3);
}

/// The log lines written on one thread, from [`capture_logs`].
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

thread_local! {
    static CAPTURED: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Writes a log line to the [`Logs`] of the thread that logs it, if any.
struct ThreadWriter;

impl std::io::Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|c| {
            if let Some(logs) = c.borrow().as_ref() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The info lines logged on this thread from now on. The subscriber is the process's
/// global one (a scoped one can miss events whose call site another test thread reached
/// first).
fn capture_logs() -> Logs {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| ThreadWriter)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
    let logs = Logs::default();
    CAPTURED.with(|c| *c.borrow_mut() = Some(logs.clone()));
    logs
}

#[tokio::test]
async fn the_outputs_and_one_info_line_say_what_ingest_left_and_why() {
    let logs = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let landing = d.join("landing");
    land(&landing, "a.jsonl", tweet(1).as_bytes());
    land(&landing, ".b.jsonl", tweet(2).as_bytes());
    land(&landing, "c.jsonl.tmp", tweet(3).as_bytes());
    let ip = IngestParams::new(p(d, "landing"), p(d, "bronze"));
    let ctx = TaskContextBuilder::new(d.join("artifacts")).build();
    let out = IngestTask.run(&ctx, ip.clone()).await.unwrap();
    assert_eq!(out.get("rows"), Some(&json!(1)));
    assert_eq!(out.get("skipped_names"), Some(&json!(2)));
    assert_eq!(out.left(), ["2 skipped by name (skip_names)"]);
    assert!(!logs.take().contains("no landing file ingested"));

    // Four files copied in now (one of them a second ago), and `a.jsonl` rewritten
    // after it was taken: nothing is ingested.
    for i in 0..4 {
        std::fs::write(landing.join(format!("new-{i}.jsonl")), tweet(10 + i)).unwrap();
    }
    age(&landing.join("new-2.jsonl"), Duration::from_secs(1));
    land(
        &landing,
        "a.jsonl",
        format!("{}{}", tweet(1), tweet(5)).as_bytes(),
    );
    let out = IngestTask.run(&ctx, ip.clone()).await.unwrap();
    let text = logs.take();
    assert_eq!(out.get("rows"), Some(&json!(0)));
    assert_eq!(out.get("settling"), Some(&json!(4)));
    assert_eq!(out.get("changed"), Some(&json!(1)));
    assert_eq!(
        out.left(),
        [
            "4 files waiting: modified in the last 5s (settle_time)",
            "2 skipped by name (skip_names)",
            "1 changed after ingest"
        ]
    );
    assert_eq!(out.get("left"), Some(&json!(out.left())));
    // One info line about the waiting files: the first to settle and when it is taken.
    let info: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" INFO ") && l.contains("settle"))
        .collect();
    assert_eq!(info.len(), 1, "{text}");
    let modified = std::fs::metadata(landing.join("new-2.jsonl"))
        .unwrap()
        .modified()
        .unwrap();
    let taken_from = chrono::DateTime::<chrono::Utc>::from(modified + Duration::from_secs(5))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    assert!(
        info[0].contains(&format!(
            "no landing file ingested: 4 files are modified in the last 5s (settle_time); \
             the first, `new-2.jsonl`, is taken by a run from {taken_from} (in "
        )),
        "{}",
        info[0]
    );

    // Once they settle, a run takes them and says only what it still leaves.
    for i in 0..4 {
        age(
            &landing.join(format!("new-{i}.jsonl")),
            Duration::from_secs(10),
        );
    }
    let out = IngestTask.run(&ctx, ip).await.unwrap();
    assert_eq!(out.get("rows"), Some(&json!(4)));
    assert_eq!(out.left(), ["2 skipped by name (skip_names)"]);
    assert!(!logs.take().contains("settle"));
}

#[tokio::test]
async fn the_settle_time_is_a_param() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let landing = d.join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    std::fs::write(landing.join("a.jsonl"), tweet(1)).unwrap();
    let mut ip = IngestParams::new(p(d, "landing"), p(d, "bronze"));
    ip.settle_time = "1h".into();
    age(&landing.join("a.jsonl"), Duration::from_secs(600));
    assert_eq!(ingest(&ip, &WriteControl::default()).await.unwrap().rows, 0);
    ip.settle_time = "0s".into();
    std::fs::write(landing.join("b.jsonl"), tweet(2)).unwrap();
    assert_eq!(ingest(&ip, &WriteControl::default()).await.unwrap().rows, 2);
    ip.settle_time = "soon".into();
    let err = ingest(&ip, &WriteControl::default()).await.unwrap_err();
    assert!(err.to_string().contains("param `settle_time`"), "{err}");
}

#[tokio::test]
async fn hidden_and_temporary_names_are_skipped_and_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let landing = d.join("landing");
    let skipped = [
        ".tweets.jsonl",
        "_tweets.jsonl",
        "tweets.jsonl.tmp",
        "tweets.jsonl._COPYING_",
        "tweets.jsonl.partial",
        "tweets.jsonl.part",
        "tweets.jsonl~",
    ];
    for (i, name) in skipped.iter().enumerate() {
        land(&landing, name, tweet(i).as_bytes());
    }
    land(&landing, "tweets.jsonl", tweet(100).as_bytes());
    let mut ip = IngestParams::new(p(d, "landing"), p(d, "bronze"));
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.files), (1, 1));
    assert_eq!(
        rows_of(&ip.table, &["source_file"]).await,
        vec![vec!["tweets.jsonl"]]
    );

    // Only `.tmp` names skipped now: the others are read.
    ip.skip_names = vec!["*.tmp".into()];
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.files), (6, 6));
    let files: Vec<String> = rows_of(&ip.table, &["source_file"])
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert!(
        !files.contains(&"tweets.jsonl.tmp".to_string()),
        "{files:?}"
    );
}

#[tokio::test]
async fn a_file_changed_after_ingest_is_reported_once_per_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let landing = d.join("landing");
    land(&landing, "a.jsonl", tweet(1).as_bytes());
    land(&landing, "b.jsonl", tweet(2).as_bytes());
    let ip = IngestParams::new(p(d, "landing"), p(d, "bronze"));
    let qloc = ip.quarantine_location();
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.changed), (2, 0));

    // `a.jsonl` is rewritten in place with one more record.
    land(
        &landing,
        "a.jsonl",
        format!("{}{}", tweet(1), tweet(3)).as_bytes(),
    );
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.files, s.changed), (0, 0, 1));
    let q = rows_of(&qloc, &["source_file", "reason"]).await;
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0][0], "a.jsonl");
    assert!(
        q[0][1].starts_with("changed_after_ingest: landing file `a.jsonl`"),
        "{q:?}"
    );
    assert_eq!(
        rows_of(&ip.table, &["user"]).await.len(),
        2,
        "not ingested again"
    );

    // Reported once: later runs stay quiet while the file stays as it is.
    let bronze_version = version(&ip.table).await;
    let q_version = version(&qloc).await;
    for _ in 0..2 {
        let s = ingest(&ip, &WriteControl::default()).await.unwrap();
        assert_eq!((s.rows, s.changed), (0, 0));
    }
    assert_eq!(version(&ip.table).await, bronze_version);
    assert_eq!(version(&qloc).await, q_version);

    // Another change is another report.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(landing.join("a.jsonl"))
        .unwrap();
    f.write_all(tweet(4).as_bytes()).unwrap();
    drop(f);
    age(&landing.join("a.jsonl"), Duration::from_secs(30));
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.changed), (0, 1));
    assert_eq!(rows_of(&qloc, &["reason"]).await.len(), 2);
    assert_eq!(rows_of(&ip.table, &["user"]).await.len(), 2);
}

#[tokio::test]
async fn an_oversized_record_is_quarantined_with_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut file = tweet(1).into_bytes();
    // A 3 MiB "tweet" on one line, then a good one.
    let text = "x".repeat(3 * 1024 * 1024);
    let big = format!(
        "{{\"date\": \"Mon Apr 06 22:19:45 PDT 2009\", \"user\": \"big\", \"text\": \"{text}\", \"sentiment\": \"positive\"}}"
    );
    file.extend_from_slice(big.as_bytes());
    file.push(b'\n');
    file.extend_from_slice(tweet(2).as_bytes());
    land(&d.join("landing"), "big.jsonl", &file);
    let ip = IngestParams::new(p(d, "landing"), p(d, "bronze"));
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.quarantined), (2, 1));
    let q = rows_of(&ip.quarantine_location(), &["line", "reason", "raw_line"]).await;
    assert_eq!(q[0][0], "2");
    let expected = format!(
        "max_record_bytes: the record has {} bytes, more than 1048576",
        big.len()
    );
    assert!(q[0][1].starts_with(&expected), "{q:?}");
    assert_eq!(q[0][2].len(), 1024);
    assert!(q[0][2].starts_with("{\"date\""));
    let users = rows_of(&ip.table, &["user", "line"]).await;
    assert_eq!(users, vec![vec!["u1", "1"], vec!["u2", "3"]]);

    // The limit is a param.
    let mut small = IngestParams::new(p(d, "landing"), p(d, "bronze_small"));
    small.max_record_bytes = 100;
    let s = ingest(&small, &WriteControl::default()).await.unwrap();
    assert_eq!((s.rows, s.quarantined), (0, 3));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn gzip_files_are_read_and_a_corrupt_one_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let landing = d.join("landing");
    let plain: String = (1..=3).map(tweet).collect();
    // Two gzip members in one file, as `cat a.gz b.gz` gives.
    let mut two = gzip(tweet(4).as_bytes());
    two.extend(gzip(tweet(5).as_bytes()));
    land(&landing, "a.json.gz", &gzip(plain.as_bytes()));
    land(&landing, "b.jsonl.gz", &two);
    // A gzip file cut in the middle, and one that is not gzip at all.
    let long: String = (10..400).map(tweet).collect();
    let whole = gzip(long.as_bytes());
    land(&landing, "c.json.gz", &whole[..whole.len() / 2]);
    land(&landing, "d.json.gz", b"not gzip at all\n");
    land(&landing, "e.jsonl", tweet(6).as_bytes());
    let ip = IngestParams::new(p(d, "landing"), p(d, "bronze"));
    let s = ingest(&ip, &WriteControl::default()).await.unwrap();
    assert_eq!(s.files, 5);
    assert_eq!(s.quarantined, 2);
    let q = rows_of(&ip.quarantine_location(), &["source_file", "reason"]).await;
    let mut q: Vec<(String, String)> = q
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    q.sort();
    assert_eq!(q[0].0, "c.json.gz");
    assert!(q[0].1.starts_with("corrupt gzip: "), "{q:?}");
    assert_eq!(q[1].0, "d.json.gz");
    assert!(q[1].1.starts_with("corrupt gzip: "), "{q:?}");
    let users: Vec<String> = rows_of(&ip.table, &["user", "source_file"])
        .await
        .into_iter()
        .filter(|r| r[1] != "c.json.gz")
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(users, ["u1", "u2", "u3", "u4", "u5", "u6"]);
    // The records of the cut file before the cut are in bronze, none twice.
    let cut: Vec<Vec<String>> = rows_of(&ip.table, &["user", "source_file"])
        .await
        .into_iter()
        .filter(|r| r[1] == "c.json.gz")
        .collect();
    assert!(!cut.is_empty() && cut.len() < 390, "{}", cut.len());
    assert_unique_rows(&cut, &[0], "bronze");
}

#[test]
fn the_published_schema_documents_the_landing_defaults() {
    let mut registry = tweetflow_engine::Registry::new();
    register_medallion(&mut registry);
    let schema = registry.get("ingest").unwrap().params_schema();
    let props = &schema["properties"];
    assert_eq!(props["settle_time"]["default"], "5s");
    assert_eq!(props["max_record_bytes"]["default"], 1_048_576);
    let names: Vec<&str> = props["skip_names"]["default"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for pattern in [".*", "_*", "*.tmp", "*_COPYING_*", "*.partial"] {
        assert!(names.contains(&pattern), "{names:?}");
    }
    for key in ["settle_time", "skip_names", "max_record_bytes"] {
        let text = props[key]["description"].as_str().unwrap_or_default();
        assert!(text.contains("default"), "{key}: {text}");
    }
}
