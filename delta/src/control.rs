//! [`WriteControl`]: what a writing run obeys besides its params: failpoints (simulated crashes
//! for tests) and cancellation.

use tokio_util::sync::CancellationToken;

use crate::error::{Result, StorageError};

/// Environment variable naming a failpoint (see [`WriteControl::failpoint`]); for crash tests.
pub const FAILPOINT_ENV: &str = "TWEETFLOW_DELTA_FAILPOINT";

/// Failpoints and cancellation of one writing run.
#[derive(Clone, Debug, Default)]
pub struct WriteControl {
    /// A named point at which the run stops with [`StorageError::Failpoint`], simulating a
    /// crash: `ingest.after_write` (Parquet written, nothing committed), `ingest.after_commit`
    /// (bronze committed, quarantine not), `ingest.after_quarantine_commit`,
    /// `clean.after_write`, `clean.after_quarantine_commit`, `clean.after_commit`,
    /// `aggregate.after_write`, `aggregate.after_commit`. Append `:abort` to abort the
    /// process at that point instead of returning an error, `:kill` to have it killed by
    /// `SIGKILL` there.
    pub failpoint: Option<String>,
    /// Stops the run between files and batches when cancelled.
    pub cancel: Option<CancellationToken>,
}

impl WriteControl {
    /// Control of a task attempt: its cancellation and the failpoint named by [`FAILPOINT_ENV`].
    pub fn from_env(cancel: CancellationToken) -> Self {
        WriteControl {
            failpoint: std::env::var(FAILPOINT_ENV).ok().filter(|s| !s.is_empty()),
            cancel: Some(cancel),
        }
    }

    /// Control that fires `failpoint`.
    pub fn with_failpoint(name: &str) -> Self {
        WriteControl {
            failpoint: Some(name.to_string()),
            cancel: None,
        }
    }

    /// Fails when `name` is the configured failpoint; with the suffix `:abort`
    /// (`ingest.after_commit:abort`) the whole process aborts there instead, like a crash, and
    /// with `:kill` it is killed by `SIGKILL`.
    pub fn failpoint(&self, name: &str) -> Result<()> {
        let Some(configured) = &self.failpoint else {
            return Ok(());
        };
        let (point, action) = configured
            .split_once(':')
            .unwrap_or((configured.as_str(), "error"));
        if point != name {
            return Ok(());
        }
        if action == "abort" {
            tracing::error!(failpoint = name, "failpoint: aborting the process");
            std::process::abort();
        }
        if action == "kill" {
            tracing::error!(failpoint = name, "failpoint: killing the process");
            // SAFETY: plain kill(2) of this process.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
        Err(StorageError::Failpoint(name.to_string()))
    }

    /// Fails when the run was cancelled.
    pub fn check_cancel(&self) -> Result<()> {
        match &self.cancel {
            Some(c) if c.is_cancelled() => Err(StorageError::Cancelled),
            _ => Ok(()),
        }
    }
}
