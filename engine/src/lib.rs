//! # tweetflow-engine
//!
//! A small, fast DAG engine. A pipeline is a YAML file whose tasks are registered Rust task
//! types; the engine validates it, builds the graph, runs the tasks concurrently with
//! retries, timeouts and caching, and records every run.
//!
//! ```text
//!  pipeline.yaml ──load_file─▶ Pipeline ──graph──▶ DAG
//!        │ (every problem at once,                 │
//!        │  file:line:column + hint)               ▼
//!        ▼                                     Engine::run ── Registry ──▶ Task::run
//!   Diagnostics                                  │    │  (retries, timeouts, shards,
//!                                                │    │   cancellation; an Executor
//!                                                │    │   runs remote attempts)
//!                                  cache::Cache ◀┘    └──▶ store::RunStore
//!                            (key: type, version,           runs/<id>/run.json
//!                             params, upstream               runs/<id>/events.jsonl
//!                             fingerprints)                  runs/<id>/log.jsonl
//! ```
//!
//! The public modules are the rooms a caller works with ([`task`] for task authors,
//! [`executor`] for executor authors, [`spec`], [`store`], [`scheduler`], [`cache`], [`cron`],
//! [`graph`], [`logging`], [`secrets`]); the rest is private and what callers need of it is
//! re-exported here. See the crate's README for the module map.
//!
//! User mistakes are [`Diagnostics`]; task failures are [`TaskError`]s that say whether they
//! are retryable; problems of the engine itself (I/O on the run store, a locked run) are
//! [`EngineError`]s.

mod atomic_file;
pub mod cache;
mod cron;
mod diagnostic;
mod duration;
mod error;
pub mod executor;
mod expect;
mod graph;
mod interpolate;
mod listener;
mod loader;
mod log_cap;
pub mod logging;
pub mod metrics;
mod observer;
mod orphans;
mod progress;
mod recover;
mod registry;
mod retry;
mod run;
pub mod scheduler;
mod schema;
mod schema_check;
pub mod secrets;
mod section;
pub mod spec;
pub mod store;
pub mod task;
pub mod telemetry;
mod trigger;
mod watch;
mod worker;
mod yaml;

pub use cron::{CronError, CronExpr, UnknownZone, parse_zone, zone_names};
pub use diagnostic::{Diagnostic, Diagnostics, Span};
pub use duration::{DurationError, format_duration, human_duration, parse_duration};
pub use error::{EngineError, SettingsError};
pub use executor::Executor;
pub use expect::{ExpectChecker, Expectation, Expectations, OnFail, SqlProblem};
pub use graph::{Format as GraphFormat, draw as draw_graph, levels as graph_levels};
pub use listener::RunListener;
pub use loader::{LoadOptions, MAX_TASKS, load_file, load_str};
pub use observer::{ObserverError, RetryNotice, RunObserver};
pub use orphans::{RUN_ID_ENV, stop_orphans};
pub use progress::{PROGRESS_TARGET, ProgressReporter};
pub use recover::engine_died_reason;
pub use registry::Registry;
pub use run::{Engine, OUTCOME_TARGET, RunOptions};
pub use schema::{ParamDoc, param_docs, pipeline_schema};
pub use secrets::process_env;
pub use section::{DynSection, Section, SectionProblem, pointer_matches};
pub use spec::{Pipeline, TaskSpec};
pub use store::{RunRecord, RunStatus, RunStore, TaskStatus};
pub use task::{
    BoxFuture, DynTask, ErrorKind, LEFT_OUTPUT, ParamsError, PipelineInfo, RunLink, RunLinks,
    RunView, Shard, Task, TaskContext, TaskError, TaskOutput, TaskState, UnrecordedRun,
};
pub use trigger::{
    TableVersions, TableWatcher, TriggerField, TriggerSpec, TriggerStart, TriggerValues,
    VersionRange, WatchError,
};
pub use watch::{WatchOptions, WatchSummary, watch};
pub use worker::{AttemptSource, ResultSink, task_exec, task_exec_from};
pub use yaml::{MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES};
