//! Broken and hostile inputs handed to the tasks, one test per input class, each a table of
//! cases: a broken model directory, a Delta table written by another tool with a missing or
//! mistyped column, a landing folder that cannot be listed, a param pointing inside the run
//! store. Every case fails its task (never a panic) with `TASK failed: param `NAME`: CAUSE`,
//! and leaves every table it names at the version it had (or absent).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::Sandbox;

/// The version of the Delta table at `dir` (its newest commit file), `None` without a log.
fn version(dir: &Path) -> Option<u64> {
    let log = std::fs::read_dir(dir.join("_delta_log")).ok()?;
    log.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max()
}

/// Runs a Python script with the `deltalake` package of the project's venv in the sandbox.
fn python(sb: &Sandbox, script: &str) {
    let py = tweetflow_test_support::venv().join("bin/python");
    let out = Command::new(py)
        .arg("-c")
        .arg(format!("import deltalake, pyarrow as pa\n{script}"))
        .current_dir(sb.path())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the one-task pipeline `task` (YAML flow mapping) as task `id`; returns its output.
fn run_task(sb: &Sandbox, id: &str, task: &str) -> (bool, String) {
    sb.write(
        "p.yaml",
        &format!("name: hostile\ntasks:\n  {id}: {task}\n"),
    );
    let out = sb.run(&["run", "p.yaml"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.success(), text)
}

/// One case: the task, what its failure line must contain, and the tables whose version must
/// not move.
struct Case<'a> {
    name: &'a str,
    id: &'a str,
    task: String,
    expected: &'a [&'a str],
    tables: &'a [&'a str],
}

fn check(sb: &Sandbox, cases: &[Case]) {
    for case in cases {
        let before: Vec<Option<u64>> = case
            .tables
            .iter()
            .map(|t| version(&sb.path().join(t)))
            .collect();
        let (ok, text) = run_task(sb, case.id, &case.task);
        assert!(!ok, "{}: the task succeeded\n{text}", case.name);
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{} failed: ", case.id)))
            .unwrap_or_else(|| panic!("{}: no `{} failed:` line\n{text}", case.name, case.id));
        for want in case.expected {
            assert!(
                line.contains(want),
                "{}: `{want}` not in `{line}`",
                case.name
            );
        }
        let after: Vec<Option<u64>> = case
            .tables
            .iter()
            .map(|t| version(&sb.path().join(t)))
            .collect();
        assert_eq!(
            before, after,
            "{}: a table moved ({:?})",
            case.name, case.tables
        );
    }
}

const TWEET: &str = r#"{"date": "Mon Apr 06 22:19:45 PDT 2009", "user": "u", "text": "@a hi there", "sentiment": "positive"}"#;

#[test]
fn tables_written_by_another_tool_with_an_unexpected_schema() {
    let sb = Sandbox::new();
    python(
        &sb,
        r#"
s = lambda *v: pa.array(list(v), pa.string())
i = lambda *v: pa.array(list(v), pa.int64())
ts = pa.array([0], pa.timestamp("us", tz="UTC"))
deltalake.write_deltalake("bronze_no_text", pa.table({"date": s("Mon Apr 06 22:19:45 PDT 2009"), "user": s("u"), "sentiment": s("positive"), "source_file": s("f"), "line": i(1), "processing_time": ts}))
deltalake.write_deltalake("bronze_int_text", pa.table({"date": s("Mon Apr 06 22:19:45 PDT 2009"), "user": s("u"), "text": i(5), "sentiment": s("positive"), "source_file": s("f"), "line": i(1), "processing_time": ts}))
deltalake.write_deltalake("q_int_reason", pa.table({"raw_line": s("x"), "raw_bytes": pa.array([b"x"]), "source_file": s("f"), "line": i(1), "reason": i(3), "processing_time": ts}))
deltalake.write_deltalake("silver_no_text", pa.table({"tweet_id": s("a"), "user": s("u"), "mention": s("m"), "sentiment": s("positive")}))
deltalake.write_deltalake("silver_ok", pa.table({"tweet_id": s("a"), "timestamp": ts, "user": s("u"), "mention": s("m"), "cleaned_text": s("hello"), "sentiment": s("positive")}))
deltalake.write_deltalake("mentions_str_total", pa.table({"mention": s("m"), "min_timestamp": ts, "max_timestamp": ts, "negative": i(0), "neutral": i(0), "positive": i(1), "total": s("1")}))
deltalake.write_deltalake("gold_str_score", pa.table({"tweet_id": s("a"), "timestamp": ts, "mention": s("m"), "cleaned_text": s("hello"), "sentiment": s("positive"), "sentiment_id": pa.array([1], pa.int32()), "predicted_sentiment": s("positive"), "predicted_score": s("high"), "predicted_sentiment_id": pa.array([1], pa.int32()), "model_uri": s("x"), "model_version": s("x")}))
"#,
    );
    sb.write("landing/a.jsonl", &format!("{TWEET}\n"));
    // A good bronze table, for the cases whose output table is the foreign one.
    let (ok, text) = run_task(
        &sb,
        "ingest",
        "{ type: ingest, with: { source: landing, table: bronze, settle_time: 0s } }",
    );
    assert!(ok, "{text}");
    let model = tweetflow_test_support::tiny_model().display().to_string();
    let cases = [
        Case {
            name: "ingest into a bronze table without `text`",
            id: "ingest",
            task: "{ type: ingest, with: { source: landing, table: bronze_no_text, quarantine: q1, settle_time: 0s } }".into(),
            expected: &["param `table`", "`bronze_no_text` is not a bronze table", "no column `text`"],
            tables: &["bronze_no_text", "q1"],
        },
        Case {
            name: "ingest into a bronze table whose `text` is an integer",
            id: "ingest",
            task: "{ type: ingest, with: { source: landing, table: bronze_int_text, quarantine: q1, settle_time: 0s } }".into(),
            expected: &["param `table`", "column `text` is an integer (Int64), expected a string"],
            tables: &["bronze_int_text", "q1"],
        },
        Case {
            name: "ingest with a quarantine table whose `reason` is an integer",
            id: "ingest",
            task: "{ type: ingest, with: { source: landing, table: bronze2, quarantine: q_int_reason, settle_time: 0s } }".into(),
            expected: &["param `quarantine`", "column `reason` is an integer"],
            tables: &["bronze2", "q_int_reason"],
        },
        Case {
            name: "clean from a bronze table without `text`",
            id: "clean",
            task: "{ type: clean, with: { input: bronze_no_text, table: silver1 } }".into(),
            expected: &["param `input`", "no column `text`"],
            tables: &["bronze_no_text", "silver1", "silver1_quarantine"],
        },
        Case {
            name: "clean from a bronze table whose `text` is an integer",
            id: "clean",
            task: "{ type: clean, with: { input: bronze_int_text, table: silver1 } }".into(),
            expected: &["param `input`", "column `text` is an integer"],
            tables: &["bronze_int_text", "silver1", "silver1_quarantine"],
        },
        Case {
            name: "clean into a silver table without `timestamp`",
            id: "clean",
            task: "{ type: clean, with: { input: bronze, table: silver_no_text } }".into(),
            expected: &["param `table`", "`silver_no_text` is not a silver table", "no column `timestamp`"],
            tables: &["bronze", "silver_no_text", "silver_no_text_quarantine"],
        },
        Case {
            name: "aggregate from a silver table without `timestamp`",
            id: "aggregate",
            task: "{ type: aggregate, with: { input: silver_no_text, table: mentions1 } }".into(),
            expected: &["param `input`", "no column `timestamp`"],
            tables: &["silver_no_text", "mentions1"],
        },
        Case {
            name: "aggregate into a mentions table whose `total` is a string",
            id: "aggregate",
            task: "{ type: aggregate, with: { input: silver_ok, table: mentions_str_total } }".into(),
            expected: &["param `table`", "column `total` is a string"],
            tables: &["silver_ok", "mentions_str_total"],
        },
        Case {
            name: "infer from a silver table without `cleaned_text`",
            id: "infer",
            task: format!("{{ type: infer, with: {{ input: silver_no_text, table: gold1, model: \"{model}\", threads: 1 }} }}"),
            expected: &["param `input`", "no column `cleaned_text`"],
            tables: &["silver_no_text", "gold1"],
        },
        Case {
            name: "infer into a gold table whose `predicted_score` is a string",
            id: "infer",
            task: format!("{{ type: infer, with: {{ input: silver_ok, table: gold_str_score, model: \"{model}\", threads: 1 }} }}"),
            expected: &["param `table`", "column `predicted_score` is a string"],
            tables: &["silver_ok", "gold_str_score"],
        },
    ];
    check(&sb, &cases);
}

/// Copies the fixture model to `name` and applies `damage` to the copy.
fn broken_model(sb: &Sandbox, name: &str, damage: impl FnOnce(&Path)) -> String {
    let from = tweetflow_test_support::tiny_model();
    let to = sb.path().join(name);
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    damage(&to);
    to.display().to_string()
}

/// Rewrites the manifest of `dir` so that it matches the files as they are.
fn reseal(dir: &Path) {
    let path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for f in manifest["files"].as_array_mut().unwrap() {
        let file = dir.join(f["path"].as_str().unwrap());
        let (sha, size) = tweetflow_model::manifest::sha256_file(&file).unwrap();
        f["sha256"] = sha.into();
        f["size"] = size.into();
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

#[test]
fn broken_model_directories() {
    let sb = Sandbox::new();
    let silver = r#"
s = lambda *v: pa.array(list(v), pa.string())
ts = pa.array([0], pa.timestamp("us", tz="UTC"))
deltalake.write_deltalake("silver", pa.table({"tweet_id": s("TID"), "timestamp": ts, "user": s("u"), "mention": s("m"), "cleaned_text": s("TEXT"), "sentiment": s("positive")}), mode="append")
"#;
    python(&sb, &silver.replace("TID", "a").replace("TEXT", "good day"));
    let good = tweetflow_test_support::tiny_model().display().to_string();
    let infer = |model: &str| {
        format!(
            "{{ type: infer, with: {{ input: silver, table: gold, model: \"{model}\", threads: 1 }} }}"
        )
    };
    // Gold exists; new silver rows wait for a model.
    let (ok, text) = run_task(&sb, "infer", &infer(&good));
    assert!(ok, "{text}");
    python(&sb, &silver.replace("TID", "b").replace("TEXT", "bad day"));
    let missing = broken_model(&sb, "m_missing", |d| {
        std::fs::remove_file(d.join("model.onnx")).unwrap()
    });
    let no_manifest = broken_model(&sb, "m_no_manifest", |d| {
        std::fs::remove_file(d.join("manifest.json")).unwrap()
    });
    let mismatch = broken_model(&sb, "m_mismatch", |d| {
        let mut config = std::fs::read_to_string(d.join("config.json")).unwrap();
        config.push(' ');
        std::fs::write(d.join("config.json"), config).unwrap();
    });
    let corrupt_graph = broken_model(&sb, "m_corrupt_graph", |d| {
        std::fs::write(d.join("model.onnx"), b"this is not an ONNX graph").unwrap();
        reseal(d);
    });
    let corrupt_tokenizer = broken_model(&sb, "m_corrupt_tokenizer", |d| {
        std::fs::write(d.join("tokenizer.json"), b"{ not json").unwrap();
        reseal(d);
    });
    let cases = [
        Case {
            name: "model.onnx missing",
            id: "infer",
            task: infer(&missing),
            expected: &["param `model`", "missing file model.onnx"],
            tables: &["silver", "gold"],
        },
        Case {
            name: "manifest.json missing",
            id: "infer",
            task: infer(&no_manifest),
            expected: &["param `model`", "missing file manifest.json"],
            tables: &["silver", "gold"],
        },
        Case {
            name: "a file that does not match the manifest",
            id: "infer",
            task: infer(&mismatch),
            expected: &["param `model`", "config.json has", "manifest.json says"],
            tables: &["silver", "gold"],
        },
        Case {
            name: "a corrupt graph (manifest matching)",
            id: "infer",
            task: infer(&corrupt_graph),
            expected: &["param `model`", "model.onnx", "cannot load the graph"],
            tables: &["silver", "gold"],
        },
        Case {
            name: "a corrupt tokenizer (manifest matching)",
            id: "infer",
            task: infer(&corrupt_tokenizer),
            expected: &["param `model`", "tokenizer.json"],
            tables: &["silver", "gold"],
        },
    ];
    check(&sb, &cases);
    // The good model still takes the waiting rows, once.
    let before = version(&sb.path().join("gold")).unwrap();
    let (ok, text) = run_task(&sb, "infer", &infer(&good));
    assert!(ok, "{text}");
    assert_eq!(version(&sb.path().join("gold")), Some(before + 1));
}

#[test]
fn landing_folders_that_cannot_be_listed() {
    let sb = Sandbox::new();
    sb.write("a_file", "not a folder\n");
    sb.write("locked/a.jsonl", &format!("{TWEET}\n"));
    let ingest = |source: &str| {
        format!("{{ type: ingest, with: {{ source: {source}, table: bronze, settle_time: 0s }} }}")
    };
    let mut cases = vec![
        Case {
            name: "a file instead of a folder",
            id: "ingest",
            task: ingest("a_file"),
            expected: &["param `source`", "`a_file` is a file, not a landing folder"],
            tables: &["bronze"],
        },
        Case {
            name: "a folder that does not exist",
            id: "ingest",
            task: ingest("nowhere"),
            expected: &["param `source`", "landing folder `nowhere` does not exist"],
            tables: &["bronze"],
        },
    ];
    let locked = sb.path().join("locked");
    let mut perms = std::fs::metadata(&locked).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o000);
    std::fs::set_permissions(&locked, perms).unwrap();
    // Root reads every folder whatever its mode: the case cannot happen then.
    let unreadable = std::fs::read_dir(&locked).is_err();
    if unreadable {
        cases.push(Case {
            name: "a folder that is not readable",
            id: "ingest",
            task: ingest("locked"),
            expected: &["param `source`", "listing `locked`", "ermission denied"],
            tables: &["bronze"],
        });
    } else {
        // SAFETY: geteuid(2) has no preconditions.
        #[allow(unsafe_code)]
        let uid = unsafe { libc::geteuid() };
        println!(
            "skipped the unreadable-folder case: this process (uid {uid}) reads folders of mode 000"
        );
    }
    check(&sb, &cases);
    let mut perms = std::fs::metadata(&locked).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&locked, perms).unwrap();
    assert!(
        !sb.path().join("bronze").exists(),
        "no table for a failed listing"
    );
}

#[test]
fn params_pointing_inside_the_run_store() {
    let sb = Sandbox::new();
    sb.write("landing/a.jsonl", &format!("{TWEET}\n"));
    let csv = tweetflow_test_support::test_csv().display().to_string();
    let model = tweetflow_test_support::tiny_model().display().to_string();
    let runs = sb.runs().display().to_string();
    let cases = [
        Case {
            name: "ingest table",
            id: "ingest",
            task:
                "{ type: ingest, with: { source: landing, table: runs/bronze, settle_time: 0s } }"
                    .into(),
            expected: &["param `table`", "`runs/bronze` is inside the run store"],
            tables: &["runs/bronze"],
        },
        Case {
            name: "ingest quarantine (absolute path)",
            id: "ingest",
            task: format!(
                "{{ type: ingest, with: {{ source: landing, table: bronze, quarantine: \"{runs}/q\", settle_time: 0s }} }}"
            ),
            expected: &["param `quarantine`", "is inside the run store"],
            tables: &["bronze"],
        },
        Case {
            name: "replay landing (through `..`)",
            id: "replay",
            task: format!(
                "{{ type: replay, with: {{ csv: \"{csv}\", landing: landing/../runs/landing }} }}"
            ),
            expected: &["param `landing`", "is inside the run store"],
            tables: &[],
        },
        Case {
            name: "clean quarantine",
            id: "clean",
            task: "{ type: clean, with: { input: bronze, table: silver, quarantine: runs } }"
                .into(),
            expected: &["param `quarantine`", "`runs` is inside the run store"],
            tables: &["silver"],
        },
        Case {
            name: "aggregate table (file URL)",
            id: "aggregate",
            task: format!(
                "{{ type: aggregate, with: {{ input: silver, table: \"file://{runs}/m\" }} }}"
            ),
            expected: &["param `table`", "is inside the run store"],
            tables: &[],
        },
        Case {
            name: "infer model cache",
            id: "infer",
            task: format!(
                "{{ type: infer, with: {{ input: silver, table: gold, model: \"{model}\", cache_dir: runs/cache }} }}"
            ),
            expected: &["param `cache_dir`", "is inside the run store"],
            tables: &["gold"],
        },
        Case {
            name: "reset the run store",
            id: "reset",
            task: "{ type: reset, with: { tables: [tables/x, runs], confirm: true } }".into(),
            expected: &["param `tables`", "`runs` is inside the run store"],
            tables: &[],
        },
    ];
    check(&sb, &cases);
    let mut left: Vec<String> = std::fs::read_dir(sb.runs())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.') && !n.starts_with("20"))
        .collect();
    left.sort();
    assert!(left.is_empty(), "written into the run store: {left:?}");
}
