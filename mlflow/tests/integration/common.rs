//! Test harness: the shared real MLflow server (see `tweetflow_mlflow::test_server`) and
//! clients of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use tweetflow_mlflow::test_server::{free_port, server};
use tweetflow_mlflow::{Client, ClientConfig};

/// A config pointing at the shared server with fast retries.
pub fn config() -> ClientConfig {
    ClientConfig::new(server().url.clone()).with_retries(3, Duration::from_millis(50))
}

/// A client of the shared server.
pub fn client() -> Client {
    Client::new(config()).expect("client")
}

/// A name unique within this test process.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}
