//! Golden tests of pipeline validation: every `tests/validation/*.yaml` is validated and the
//! rendered diagnostics are compared with the `.expected` file beside it.
//!
//! Regenerate the expected files with:
//! `cargo test --test validation_golden -- --complete`
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tweetflow_engine::{LoadOptions, load_file};

fn env(name: &str) -> Option<String> {
    (name == "HOME").then(|| "/home/tester".to_string())
}

fn render(path: &Path) -> String {
    let registry = tweetflow_tasks::default_registry();
    let options = LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &env,
    };
    match load_file(path, &options) {
        Ok(p) => format!("valid: {} tasks\n", p.tasks.len()),
        Err(d) => d.render(),
    }
}

fn main() -> ExitCode {
    let complete = std::env::args().any(|a| a == "--complete")
        || std::env::var_os("TWEETFLOW_COMPLETE").is_some();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).expect("cd to the crate root");
    let mut cases: Vec<PathBuf> = std::fs::read_dir("tests/validation")
        .expect("tests/validation exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.strip_prefix(root).map(Path::to_path_buf).unwrap_or(p))
        .collect();
    cases.sort();
    let (mut passed, mut failed) = (0, 0);
    for case in &cases {
        let got = render(case);
        let expected_path = case.with_extension("expected");
        if complete {
            std::fs::write(&expected_path, &got).expect("write expected file");
            println!("test {} ... completed", case.display());
            passed += 1;
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got == expected {
            println!("test {} ... ok", case.display());
            passed += 1;
        } else {
            println!(
                "test {} ... FAILED\n--- expected ({})\n{expected}--- got\n{got}",
                case.display(),
                expected_path.display()
            );
            failed += 1;
        }
    }
    if cases.is_empty() {
        println!("no golden cases found");
        return ExitCode::FAILURE;
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
