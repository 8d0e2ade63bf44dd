//! Paths of the workspace's shared fixtures.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support lives in the workspace")
        .to_path_buf()
}

/// `tests/fixtures/tiny-model`: a 6 KB 3-label model.
pub fn tiny_model() -> PathBuf {
    repo_root().join("tests/fixtures/tiny-model")
}

/// `tests/fixtures/tiny-model-int8`: the tiny model quantized like the real encoder (int8
/// weights, activations quantized per row).
pub fn tiny_model_int8() -> PathBuf {
    repo_root().join("tests/fixtures/tiny-model-int8")
}

/// The Sentiment140 test CSV (gzip).
pub fn test_csv() -> PathBuf {
    repo_root().join("datasets/sentiment140/test.csv.gz")
}

/// The project's Python venv (mlflow, onnxruntime, deltalake, scikit-learn): `TWEETFLOW_VENV`,
/// else `<workspace>/.venv`.
pub fn venv() -> PathBuf {
    match std::env::var_os("TWEETFLOW_VENV") {
        Some(v) => PathBuf::from(v),
        None => repo_root().join(".venv"),
    }
}
