//! Running a task attempt outside the engine's process.
//!
//! A task's `executor:` says where its attempts run: `local` (in the engine's process, or one
//! child process per shard) or an executor a plugin registers (e.g. a cluster's job API).
//! Outside the engine, an attempt is the same `tweetflow` binary in task-execution mode
//! (`tweetflow task exec FILE --result PATH`):
//!
//! ```text
//!  engine ──writes──▶ runs/<id>/exec/<submission id>/attempt.json   (ResolvedAttempt)
//!    │                                  │
//!    │ Executor::run (submit, poll)     ▼
//!    │                      tweetflow task exec attempt.json --result result.json
//!    │                        │ JSON log lines on stdout ──▶ copied into the run's log.jsonl
//!    │                        │ result.json (output or error) written atomically
//!    ◀── output / TaskError ──┘ exit status: 0 ok, 10 retryable, 11 fatal, 12 config, 13 timeout
//! ```
//!
//! The engine stays the one place that decides retries, timeouts and caching, and keeps the
//! run record: an executor only runs one attempt and reports how it ended.

mod log_lines;
mod plugin;
mod process;
mod resolved;

pub use log_lines::{replay_line, replay_log_lines};
pub(crate) use plugin::Erased;
pub use plugin::{DynExecutor, Executor, JobReporter, RemoteAttempt};
pub use process::run_process;
pub use resolved::{AttemptResult, ResolvedAttempt, exit_code, kind_of_exit_code, read_result};
