//! # tweetflow-engine
//!
//! A small, fast DAG engine. A pipeline is a YAML file whose tasks are registered Rust task
//! types; the engine validates it, builds the graph, runs the tasks concurrently with
//! retries, timeouts and caching, and records every run.
//!
//! ```text
//!  pipeline.yaml ──loader::load_file─▶ Pipeline ──graph──▶ DAG
//!        │ (every problem at once,                         │
//!        │  file:line:column + hint)                       ▼
//!        ▼                                              run::run ── Registry ──▶ Task::run
//!   Diagnostics                                        │    │  (retries, timeouts,
//!                                                      │    │   cancellation)
//!                                          cache::Cache ◀┘    └──▶ store::RunStore
//!                                    (key: type, version,           runs/<id>/run.json
//!                                     params, upstream               runs/<id>/events.jsonl
//!                                     fingerprints)                  runs/<id>/log.jsonl
//! ```
//!
//! User mistakes are [`Diagnostics`]; task failures are [`TaskError`]s that say whether they
//! are retryable; problems of the engine itself (I/O on the run store, a locked run) are
//! [`EngineError`]s.

mod atomic_file;
pub mod cache;
pub mod cron;
pub mod diagnostic;
pub mod duration;
pub mod error;
pub mod executor;
pub mod graph;
pub mod interpolate;
pub mod listener;
pub mod loader;
pub mod log_cap;
pub mod logging;
pub mod metrics;
pub mod observer;
pub mod progress;
pub mod registry;
pub mod retry;
pub mod run;
pub mod scheduler;
pub mod schema;
pub mod schema_check;
pub mod secrets;
pub mod section;
pub mod spec;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod watch;
pub mod worker;
pub mod yaml;

pub use diagnostic::{Diagnostic, Diagnostics, Span};
pub use error::EngineError;
pub use executor::Executor;
pub use listener::RunListener;
pub use loader::{LoadOptions, load_file, load_str};
pub use progress::ProgressReporter;
pub use registry::Registry;
pub use run::{Engine, RunOptions};
pub use secrets::process_env;
pub use section::Section;
pub use spec::{Pipeline, TaskSpec};
pub use store::{RunRecord, RunStatus, RunStore, TaskStatus};
pub use task::{DynTask, ErrorKind, PipelineInfo, Task, TaskContext, TaskError, TaskOutput};
