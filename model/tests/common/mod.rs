//! Shared helpers of the crate's tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tweetflow_test_support::tiny_model;

/// A fixture of this crate (`model/tests/fixtures/<name>`).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copies a model directory into `dest` (flat directories only).
pub fn copy_dir(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dest.join(e.file_name())).unwrap();
    }
}

/// A copy of the tiny model whose config.json `id2label` is replaced (manifest rewritten).
pub fn tiny_with_labels(tmp: &Path, labels: &[&str]) -> PathBuf {
    let dir = tmp.join(format!("tiny-{}", labels.join("-")));
    copy_dir(&tiny_model(), &dir);
    let cfg_path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let id2label: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), serde_json::json!(l)))
        .collect();
    cfg["id2label"] = serde_json::Value::Object(id2label);
    std::fs::write(&cfg_path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    tweetflow_model::Manifest::write_for_dir(&dir).unwrap();
    dir
}

/// Tweets in the tiny model's vocabulary and beyond (unknown words, punctuation, long texts).
pub fn sample_texts() -> Vec<String> {
    let base = [
        "I love this",
        "I hate this",
        "the phone is on the table",
        "great day at work !",
        "my phone sucks and i am so tired",
        "not bad , not great",
        "thanks you are awesome",
        "this movie is boring , the worst",
        "sick today . miss you",
        "what a cool and fun day , best movie ever , love it so much !",
        "unknownword another unknown",
        "?",
        "I LOVE THIS",
        "i like it but it is a bit sad that my phone is on the table and not with me today",
    ];
    let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    for i in 0..40 {
        v.push(format!(
            "{} {} day {}",
            base[i % base.len()],
            base[(i * 7) % base.len()],
            "!".repeat(i % 5)
        ));
    }
    v
}
