//! Helpers of the expectation and `sql` tests: landing synthetic tweets, running a task type
//! from the registry with expectations, reading tables.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use tweetflow_delta::WriteControl;
use tweetflow_engine::{Expectation, Expectations, OnFail};
use tweetflow_engine::{PipelineInfo, TaskError, TaskOutput};
use tweetflow_tasks::medallion::clean::{CleanParams, clean};
use tweetflow_tasks::medallion::ingest::{IngestParams, ingest};

pub use tweetflow_test_support::tables::{p, rows, rows_of, version};
pub use tweetflow_test_support::{TaskContextBuilder, repo_root};

/// Writes `n` tweets (ids `first..first + n`) as one landing file, finished a minute ago:
/// users `u0`..`u6`, one or two mentions each (`@m0`..`@m12`, some `@ab`), valid dates.
pub fn land_tweets(dir: &Path, name: &str, first: usize, n: usize) {
    std::fs::create_dir_all(dir).expect("create landing");
    let mut text = String::new();
    for i in first..first + n {
        let mention = if i % 5 == 0 {
            format!("@ab and @m{}", i % 13)
        } else {
            format!("@m{}", i % 13)
        };
        let sentiment = if i % 2 == 0 { "positive" } else { "negative" };
        let line = json!({
            "date": format!("Mon Apr 06 {:02}:{:02}:00 PDT 2009", i % 24, i % 60),
            "user": format!("u{}", i % 7),
            "text": format!("{mention} tweet number {i}"),
            "sentiment": sentiment,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(dir.join(name), text).expect("write landing file");
    let file = std::fs::File::options()
        .write(true)
        .open(dir.join(name))
        .expect("open landing file");
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
        .expect("set the modification time");
}

/// Ingests and cleans what landed under `d/landing` into `d/bronze` and `d/silver`.
pub async fn ingest_and_clean(d: &Path) {
    ingest(
        &IngestParams::new(p(d, "landing"), p(d, "bronze")),
        &WriteControl::default(),
    )
    .await
    .expect("ingest");
    clean(
        &CleanParams::new(p(d, "bronze"), p(d, "silver")),
        &WriteControl::default(),
    )
    .await
    .expect("clean");
}

/// Expectations from `(name, sql, on_fail)`.
pub fn expectations(list: &[(&str, &str, OnFail)]) -> Expectations {
    list.iter()
        .map(|(name, sql, on_fail)| {
            (
                name.to_string(),
                Expectation {
                    sql: sql.to_string(),
                    on_fail: *on_fail,
                },
            )
        })
        .collect()
}

/// Runs one attempt of the registered type `task_type` as task `task_id` of run `run_id`, with
/// `expect` as its expectations.
pub async fn run_task(
    task_type: &str,
    task_id: &str,
    run_id: &str,
    params: Value,
    expect: Expectations,
    artifacts: &Path,
) -> Result<TaskOutput, TaskError> {
    let registry = tweetflow_tasks::default_registry();
    let task = registry.get(task_type).expect("registered type");
    let mut info = PipelineInfo::default();
    if !expect.is_empty() {
        info.expectations = BTreeMap::from([(task_id.to_string(), expect)]);
    }
    let ctx = TaskContextBuilder::new(artifacts)
        .run_id(run_id)
        .task_id(task_id)
        .pipeline(info)
        .build();
    task.run(&ctx, &params).await
}

/// The `failed` count of expectation `name` in a task's output.
pub fn failed(output: &TaskOutput, name: &str) -> u64 {
    output
        .get("expectations")
        .and_then(|e| e.get(name))
        .and_then(|t| t.get("failed"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no tally for `{name}` in {:?}", output.values))
}
