//! Test harness: the shared real MLflow server (see `tweetflow_test_support::mlflow_server`),
//! clients of it, and unique names.

use std::sync::atomic::{AtomicU64, Ordering};

pub use tweetflow_test_support::mlflow_server::{client, client_config, free_port, server};

/// A name unique within this test process.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}
