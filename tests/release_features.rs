//! What a release build of the `tweetflow` binary carries: no test hooks. The failpoints of
//! `tweetflow-delta` (simulated crashes named by `TWEETFLOW_DELTA_FAILPOINT`) sit behind its
//! `failpoints` feature, which only the crates' dev-dependencies enable; this checks that the
//! dependency graph of `cargo build --release --bin tweetflow` (normal and build edges, no dev
//! edges) resolves `tweetflow-delta` without it, and that the test builds have it.
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// The features cargo resolves for `tweetflow-delta` when building `tweetflow` along `edges`.
fn delta_features(edges: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--offline", "-p", "tweetflow", "-e", edges])
        .args(["--prefix", "none", "-f", "{p}|{f}"])
        .output()
        .expect("cargo tree runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("tweetflow-delta "))
        .unwrap_or_else(|| panic!("tweetflow-delta not in the tree:\n{stdout}"));
    let features = line.split('|').nth(1).unwrap_or_default();
    let features = features.trim_end_matches(" (*)");
    features
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_release_build_of_tweetflow_has_no_failpoints_and_the_test_builds_do() {
    let release = delta_features("normal,build");
    assert!(
        !release.iter().any(|f| f == "failpoints"),
        "`cargo build --release --bin tweetflow` would obey TWEETFLOW_DELTA_FAILPOINT: \
         tweetflow-delta resolves with features {release:?}"
    );
    let tests = delta_features("normal,build,dev");
    assert!(
        tests.iter().any(|f| f == "failpoints"),
        "the crash tests need tweetflow-delta's `failpoints` feature; got {tests:?}"
    );
}
