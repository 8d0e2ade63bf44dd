//! `tweetflow schema` checked by a real JSON Schema validator (Python's `jsonschema`, draft
//! 2020-12, from the project's venv): every checked-in pipeline and a pipeline using every
//! top-level key validate; misspelt keys do not.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::Sandbox;

/// Validates each YAML file against the schema; returns one line per file: `ok` or the
/// validator's first error.
fn validate(schema: &Path, files: &[PathBuf]) -> Vec<String> {
    let script = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
for f in sys.argv[2:]:
    errors = sorted(v.iter_errors(yaml.safe_load(open(f))), key=lambda e: list(e.path))
    print("ok" if not errors else "error: " + errors[0].message)
"#;
    let mut args = vec![schema.to_path_buf()];
    args.extend_from_slice(files);
    common::venv_python(script, &args, &[])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn pipelines_validate_against_the_published_schema() {
    let sb = Sandbox::new();
    let out = sb.run(&["schema"]);
    assert!(out.status.success());
    let schema = sb.write("schema.json", std::str::from_utf8(&out.stdout).unwrap());

    let root = tweetflow_test_support::repo_root();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    files.push(sb.write(
        "every_key.yaml",
        r#"name: every_key
description: uses every top-level key
schedule: { cron: "*/5 * * * *", timezone: Europe/Paris, overlap: queue, catchup: all, max_catchup: 3, start_deadline: 1m, on_interrupted: resume, max_resumes: 2 }
params: { n: 3, label: x, flag: true }
defaults:
  retries: { max_attempts: 3, backoff: linear, initial_delay: 1s, max_delay: 1m, jitter: false }
  timeout: 10m
  cache: { enabled: true, ttl: 1h }
mlflow: { experiment: demo }
retention: { keep_last: 10, max_age: 30d, keep_failed: true }
tasks:
  a: { type: noop, retries: 2, cache: false }
  b: { type: command, depends_on: [a], with: { argv: [echo, hi] }, timeout: 5s }
"#,
    ));
    let bad = [
        (
            "bad_top.yaml",
            "name: x\nschedul: { cron: \"* * * * *\" }\ntasks:\n  a: { type: noop }\n",
        ),
        (
            "bad_schedule.yaml",
            "name: x\nschedule: { cron: \"* * * * *\", overlap: sometimes }\ntasks:\n  a: { type: noop }\n",
        ),
        (
            "bad_retention.yaml",
            "name: x\nretention: { keep_failed: true }\ntasks:\n  a: { type: noop }\n",
        ),
        (
            "bad_with.yaml",
            "name: x\ntasks:\n  a: { type: command, with: { argvv: [echo] } }\n",
        ),
    ];
    for (name, text) in bad {
        files.push(sb.write(name, text));
    }
    let results = validate(&schema, &files);
    assert_eq!(results.len(), files.len());
    let (good, bad_results) = results.split_at(files.len() - bad.len());
    for (file, result) in files.iter().zip(good) {
        assert_eq!(result, "ok", "{} should validate", file.display());
    }
    for ((name, _), result) in bad.iter().zip(bad_results) {
        assert!(
            result.starts_with("error: "),
            "{name} should not validate: {result}"
        );
    }
    // And the engine agrees with the schema on the pipeline that uses every key.
    let out = sb.run(&["validate", "every_key.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
