//! # tweetflow-ray
//!
//! The `ray` executor: each task attempt (or shard attempt) is a Ray job submitted through
//! the Ray Jobs REST API, whose entrypoint runs the same `tweetflow` binary as
//! `tweetflow task exec`. The nodes need no file of the engine's:
//!
//! ```text
//!  engine ── POST /api/jobs/ ─────────────────────────────────────────────▶ Ray head
//!    │        submission_id = run, task, shard, attempt                      │
//!    │        runtime_env.env_vars.TWEETFLOW_ATTEMPT = the attempt            │ job on a node:
//!    │          (gzip + base64 JSON, no secret in it)                         │ tweetflow task exec
//!    │   ◀── GET /api/jobs/{id} (poll) ────────────────────────────────────  │   reads $TWEETFLOW_ATTEMPT
//!    │   ◀── GET /api/jobs/{id}/logs: log lines (copied into log.jsonl) and   │   prints JSON log lines,
//!    │       the last line `@@tweetflow-result@@ {output | error + kind}` ◀──┘   then the result line
//!    │   ── POST /api/jobs/{id}/stop (timeout, Ctrl-C) ──▶
//! ```
//!
//! Every request carries `Authorization: Bearer <token>` when a token is found ([`auth`]:
//! the executor's `auth_token`, `RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH`,
//! `~/.ray/auth_token`); a 401/403 is a configuration error naming where it looked. The
//! token never goes to the jobs.
//!
//! A resumed run finds the job of the same submission id: a job still running is waited
//! for, a finished one collected (its result is in its logs), a failed one submitted again
//! under a new id. The engine's run directory stays on the engine's machine; tables,
//! landing folders and models are object-store locations or `models:/` URIs (local paths
//! are refused at validation unless listed in `shared_paths`).

pub mod auth;
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
