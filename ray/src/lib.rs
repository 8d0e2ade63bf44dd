//! # tweetflow-ray
//!
//! The `ray` executor: each task attempt (or shard attempt) is a Ray job submitted through
//! the Ray Jobs REST API, whose entrypoint runs the same `tweetflow` binary as
//! `tweetflow task exec`.
//!
//! ```text
//!  engine ── POST /api/jobs/ (submission_id = run, task, shard, attempt) ──▶ Ray head
//!    │   ◀── GET /api/jobs/{id} (poll) ───────────────────────────────────  │ job on a node:
//!    │   ◀── GET /api/jobs/{id}/logs (copied into the run's log.jsonl)       │ tweetflow task exec
//!    │   ── POST /api/jobs/{id}/stop (timeout, Ctrl-C) ──▶                   │   writes result.json
//!    └── reads the result (output or error with its kind) ◀──────────────────┘
//! ```
//!
//! A resumed run finds the job of the same submission id: a job still running is waited
//! for, a finished one collected, a failed one submitted again under a new id. The result
//! file lives in the run's directory, which workers must share (a shared disk, as in the
//! tests; see `docs/scale-out.md`).

mod client;
mod config;
mod executor;

pub use client::{JobInfo, JobStatus, JobsClient, RayError};
pub use config::{RayConfig, SizeError, parse_bytes};
pub use executor::RayExecutor;

/// Registers the `ray` executor.
pub fn register(registry: &mut tweetflow_engine::Registry) {
    registry.register_executor(RayExecutor);
}
