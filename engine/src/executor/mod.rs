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
//! A worker that shares no disk with the engine (a cluster node) gets the same attempt in the
//! environment variable [`ATTEMPT_ENV`] ([`ResolvedAttempt::to_inline`]) and, without
//! `--result`, prints the result as the last line of its output ([`RESULT_MARK`], read back
//! with [`find_result_line`]).
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
pub use resolved::{
    ATTEMPT_ENV, AttemptResult, RESULT_MARK, ResolvedAttempt, exit_code, find_result_line,
    is_result_line, kind_of_exit_code, read_result,
};
