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
    /// `SIGKILL` there, `:pause:<marker file>` to stop there until the run is cancelled or the
    /// process killed, once: the first process to get there creates the marker file, the
    /// others (a retry) go on (for stopping a job while it is in the middle of its work).
    /// `infer.scoring` is reached after each batch of gold rows is written.
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
    /// (`ingest.after_commit:abort`) the whole process aborts there instead, like a crash, with
    /// `:kill` it is killed by `SIGKILL`, and with `:panic` the task panics (a bug).
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
        if let Some(marker) = action.strip_prefix("pause:") {
            return self.pause_once(name, std::path::Path::new(marker));
        }
        if action == "panic" {
            panic!("failpoint {name}: panicking");
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

    /// The `:pause:<marker>` action of [`WriteControl::failpoint`].
    fn pause_once(&self, name: &str, marker: &std::path::Path) -> Result<()> {
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(marker);
        if created.is_err() {
            return Ok(());
        }
        tracing::warn!(failpoint = name, marker = %marker.display(), "failpoint: paused until stopped");
        loop {
            self.check_cancel()?;
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Fails when the run was cancelled.
    pub fn check_cancel(&self) -> Result<()> {
        match &self.cancel {
            Some(c) if c.is_cancelled() => Err(StorageError::Cancelled),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_failpoint_holds_the_first_run_until_cancelled_and_lets_the_next_one_go() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("paused");
        let cancel = CancellationToken::new();
        cancel.cancel();
        let ctl = WriteControl {
            failpoint: Some(format!("infer.scoring:pause:{}", marker.display())),
            cancel: Some(cancel),
        };
        assert!(ctl.failpoint("infer.after_commit").is_ok());
        assert!(matches!(
            ctl.failpoint("infer.scoring"),
            Err(StorageError::Cancelled)
        ));
        assert!(marker.exists());
        assert!(ctl.failpoint("infer.scoring").is_ok(), "once");
    }
}
