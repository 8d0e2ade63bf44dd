//! Hostile pipeline files are refused with a position and a clear message, in bounded memory
//! and time: the "billion laughs" alias bomb, deep nesting, an oversized file, too many tasks,
//! duplicate keys.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;
use tweetflow_engine::{
    Diagnostics, LoadOptions, MAX_TASKS, Pipeline, Registry, Task, TaskContext, TaskError,
    TaskOutput, load_file, load_str,
};
use tweetflow_engine::{MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES};

struct Noop;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct NoopParams {
    /// Anything.
    #[serde(default)]
    value: Option<serde_json::Value>,
}

impl Task for Noop {
    type Params = NoopParams;
    const TYPE: &'static str = "noop";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "Does nothing";

    async fn run(&self, _ctx: &TaskContext, _params: NoopParams) -> Result<TaskOutput, TaskError> {
        Ok(TaskOutput::new())
    }
}

fn load(text: &str) -> Result<Pipeline, Diagnostics> {
    let mut r = Registry::new();
    r.register(Noop);
    load_str(
        "hostile.yaml",
        text,
        &LoadOptions {
            registry: &r,
            param_overrides: &[],
            env: &|_| None,
        },
    )
}

/// Peak resident memory of this process so far, in bytes (Linux).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The "billion laughs" shape: nine levels, each a list of ten aliases of the level below.
fn billion_laughs() -> String {
    let mut text = String::from("name: lol\nparams: {}\nlol0: &lol0 \"lol\"\n");
    for level in 1..=9 {
        let refs = vec![format!("*lol{}", level - 1); 10].join(", ");
        text.push_str(&format!("lol{level}: &lol{level} [{refs}]\n"));
    }
    text.push_str("tasks:\n  a: { type: noop, with: { value: *lol9 } }\n");
    text
}

/// Loads `text`, which must be refused with a message containing `want` on a line of `lines`
/// (column 1 or more), within a second.
fn refused(
    name: &str,
    text: &str,
    want: &str,
    lines: impl Into<std::ops::RangeInclusive<usize>>,
) -> Duration {
    let lines = lines.into();
    let start = Instant::now();
    let err = load(text).expect_err(name);
    let took = start.elapsed();
    let first = &err.items[0];
    assert!(
        err.items.iter().any(|d| d.message.contains(want)),
        "{name}: {}",
        err.render()
    );
    let item = err.items.iter().find(|d| d.message.contains(want)).unwrap();
    assert!(lines.contains(&item.span.line), "{name}: {}", err.render());
    assert!(item.span.column >= 1 && first.span.line >= 1);
    assert!(
        err.render()
            .starts_with(&format!("hostile.yaml:{}:", first.span.line)),
        "{name}: file:line:column"
    );
    assert!(took < Duration::from_secs(1), "{name} took {took:?}");
    println!("{name}: refused in {took:?}: {}", item.message);
    took
}

#[test]
fn hostile_files_are_refused_in_bounded_memory_and_time() {
    let before = peak_rss();

    // One of the `lolN` lines, depending on the limit.
    refused(
        "billion laughs",
        &billion_laughs(),
        "this alias expands to",
        4..=12,
    );

    let deep_flow = format!(
        "name: deep\nx: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    refused("deep flow nesting", &deep_flow, "nested more than", 2..=2);

    let mut deep_block = String::from("name: deep\nx:\n");
    for i in 0..(MAX_DEPTH + 10) {
        deep_block.push_str(&" ".repeat(2 * (i + 1)));
        deep_block.push_str("k:\n");
    }
    refused(
        "deep block nesting",
        &deep_block,
        "nested more than",
        MAX_DEPTH + 2..=MAX_DEPTH + 2,
    );

    let big = format!("name: big\n# {}\n", "x".repeat(MAX_FILE_BYTES));
    refused("oversized file", &big, "the file is too large", 1..=1);

    let wide = format!(
        "name: wide\nvalues: [{}]\n",
        vec!["1"; MAX_NODES + 1].join(",")
    );
    refused("too many values", &wide, "more than", 2..=2);

    let mut many = String::from("name: many\ntasks:\n");
    for i in 0..=MAX_TASKS {
        many.push_str(&format!("  t{i}: {{ type: noop }}\n"));
    }
    refused("too many tasks", &many, "at most", 3..=3);

    refused(
        "duplicate keys",
        "name: dup\ntasks:\n  a: { type: noop }\n  a: { type: noop }\n",
        "duplicate key `a`",
        4..=4,
    );

    let grown = peak_rss().saturating_sub(before);
    println!("peak memory grew by {} MB", grown / (1 << 20));
    assert!(grown < 100 << 20, "peak memory grew by {grown} bytes");
}

#[test]
fn an_oversized_file_is_not_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(8 << 30).unwrap(); // 8 GiB, sparse
    let mut r = Registry::new();
    r.register(Noop);
    let start = Instant::now();
    let err = load_file(
        &path,
        &LoadOptions {
            registry: &r,
            param_overrides: &[],
            env: &|_| None,
        },
    )
    .unwrap_err();
    assert!(
        err.items[0].message.contains("too large"),
        "{}",
        err.render()
    );
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_pipeline_within_the_limits_loads() {
    let mut text = String::from("name: fine\nbase: &b { value: [1, 2, 3] }\ntasks:\n");
    for i in 0..200 {
        text.push_str(&format!("  t{i}: {{ type: noop, with: *b }}\n"));
    }
    let p = load(&text.replace("base:", "description: ok\nx-base:"));
    // `x-base` is an unknown key: the anchors still expand where used.
    let err = p.unwrap_err();
    assert!(
        err.items.iter().all(|d| d.message.contains("unknown key")),
        "{}",
        err.render()
    );
}
