//! Helpers shared by the tests of every tweetflow crate (a dev-dependency only):
//!
//! * [`mlflow_server`]: the one real MLflow server of a test process, and clients of it.
//! * [`s3_server`]: the one real S3 API server of a test process, and fresh buckets on it.
//! * [`azurite`]: the one real Azure Blob Storage emulator (Azurite) of a test process.
//! * [`ray_cluster`]: the one real local Ray cluster (head and worker node) of a test process.
//! * [`ray_token_cluster`]: a Ray cluster as in production (token authentication, a head with
//!   no CPUs, a worker node that shares no files with the engine), for the pinned Ray and the
//!   previous minor.
//! * [`smtp_server`]: a real SMTP server (aiosmtpd) that records the mails it accepts.
//! * [`http_receiver`]: a local HTTP server recording the posts it gets, answering as told.
//! * [`prometheus`]: a real Prometheus server scraping given targets, and queries of its API.
//! * [`otlp_receiver`]: a local OTLP/HTTP trace receiver decoding the protobuf for real.
//! * [`fault_proxy`]: a TCP proxy injecting 503s, 500s and connection resets in front of one.
//! * [`watched`]: server processes that die with the test process (the harnesses above).
//! * [`fixtures`]: paths of the workspace's fixtures (the tiny models, the test tweets) and the
//!   project's Python venv.
//! * [`TaskContextBuilder`]: a [`tweetflow_engine::TaskContext`] for calling a task directly.
//! * [`assert_unique_rows`]: no two table rows share a key.
//!
//! It depends on `tweetflow-engine` and `tweetflow-mlflow`, so those two crates use it from
//! their integration tests only, never from unit tests.

#![warn(missing_docs)]

pub mod azurite;
pub mod context;
pub mod fault_proxy;
pub mod fixtures;
pub mod http_receiver;
pub mod medallion;
pub mod mlflow_server;
pub mod otlp_receiver;
pub mod prometheus;
pub mod ray_cluster;
pub mod ray_token_cluster;
pub mod rows;
pub mod s3_server;
pub mod smtp_server;
pub mod tables;
pub mod watched;

pub use context::TaskContextBuilder;
pub use fixtures::{repo_root, test_csv, tiny_model, tiny_model_int8, venv};
pub use rows::assert_unique_rows;
