//! [`WriteControl`]: what a writing run obeys besides its params: cancellation, and in builds
//! with the `failpoints` cargo feature (the tests' builds, never a release build) failpoints,
//! simulated crashes for the crash tests.
//!
//! Without the feature [`WriteControl::failpoint`] does nothing and [`FAILPOINT_ENV`] is not
//! read, so a release `tweetflow` cannot be made to crash, pause or fail by its environment.

use tokio_util::sync::CancellationToken;

use crate::error::Result;
#[cfg(feature = "failpoints")]
use crate::error::StorageError;

/// Environment variable naming a failpoint (see [`WriteControl::failpoint`]); for crash tests.
/// Read only in builds with the `failpoints` feature.
pub const FAILPOINT_ENV: &str = "TWEETFLOW_DELTA_FAILPOINT";

/// Whether this build obeys failpoints (the `failpoints` cargo feature).
pub const FAILPOINTS_ENABLED: bool = cfg!(feature = "failpoints");

/// Failpoints and cancellation of one writing run.
#[derive(Clone, Debug, Default)]
pub struct WriteControl {
    /// A named point at which the run stops with [`crate::StorageError::Failpoint`], simulating
    /// a crash: `ingest.after_write` (Parquet written, nothing committed), `ingest.after_commit`
    /// (bronze committed, quarantine not), `ingest.after_quarantine_commit`,
    /// `clean.after_write`, `clean.after_quarantine_commit`, `clean.after_commit`,
    /// `aggregate.after_write`, `aggregate.after_commit`. Append `:abort` to abort the
    /// process at that point instead of returning an error, `:kill` to have it killed by
    /// `SIGKILL` there, `:pause:<marker file>` to stop there until the run is cancelled or the
    /// process killed, once: the first process to get there creates the marker file, the
    /// others (a retry) go on (for stopping a job while it is in the middle of its work).
    /// `infer.scoring` is reached after each batch of gold rows is written. Only in builds with
    /// the `failpoints` feature.
    #[cfg(feature = "failpoints")]
    pub failpoint: Option<String>,
    /// Stops the run between files and batches when cancelled.
    pub cancel: Option<CancellationToken>,
}

impl WriteControl {
    /// Control of a task attempt: its cancellation and, in builds with the `failpoints`
    /// feature, the failpoint named by [`FAILPOINT_ENV`] (ignored otherwise).
    pub fn from_env(cancel: CancellationToken) -> Self {
        Self::from_lookup(cancel, |name| std::env::var(name).ok())
    }

    /// [`WriteControl::from_env`] with a custom variable lookup.
    fn from_lookup(cancel: CancellationToken, lookup: impl Fn(&str) -> Option<String>) -> Self {
        #[cfg(feature = "failpoints")]
        {
            WriteControl {
                failpoint: lookup(FAILPOINT_ENV).filter(|s| !s.is_empty()),
                cancel: Some(cancel),
            }
        }
        #[cfg(not(feature = "failpoints"))]
        {
            let _ignored = lookup;
            WriteControl {
                cancel: Some(cancel),
            }
        }
    }

    /// Control that fires `failpoint`.
    #[cfg(feature = "failpoints")]
    pub fn with_failpoint(name: &str) -> Self {
        WriteControl {
            failpoint: Some(name.to_string()),
            cancel: None,
        }
    }

    /// Fails when `name` is the configured failpoint; with the suffix `:abort`
    /// (`ingest.after_commit:abort`) the whole process aborts there instead, like a crash, with
    /// `:kill` it is killed by `SIGKILL`, and with `:panic` the task panics (a bug). Does
    /// nothing in builds without the `failpoints` feature.
    #[cfg(feature = "failpoints")]
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
            // SAFETY: kill(2) and getpid(2) take plain integers and touch no memory of ours;
            // sending SIGKILL to this process is the simulated crash asked for.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
        Err(StorageError::Failpoint(name.to_string()))
    }

    /// Fails when `name` is the configured failpoint: a no-op in this build, which has no
    /// `failpoints` feature.
    #[cfg(not(feature = "failpoints"))]
    #[inline(always)]
    pub fn failpoint(&self, name: &str) -> Result<()> {
        let _ = name;
        Ok(())
    }

    /// The `:pause:<marker>` action of [`WriteControl::failpoint`].
    #[cfg(feature = "failpoints")]
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
            Some(c) if c.is_cancelled() => Err(crate::error::StorageError::Cancelled),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lookup that names `ingest.after_write:<action>` as the failpoint.
    fn env_naming(action: &'static str) -> impl Fn(&str) -> Option<String> {
        move |name| (name == FAILPOINT_ENV).then(|| format!("ingest.after_write{action}"))
    }

    #[test]
    fn the_environment_names_a_failpoint_only_in_builds_with_the_failpoints_feature() {
        let ctl = WriteControl::from_lookup(CancellationToken::new(), env_naming(""));
        let fired = ctl.failpoint("ingest.after_write");
        assert_eq!(
            fired.is_err(),
            cfg!(feature = "failpoints"),
            "failpoint result {fired:?}"
        );
        assert!(ctl.failpoint("clean.after_write").is_ok());
        assert_eq!(FAILPOINTS_ENABLED, cfg!(feature = "failpoints"));
    }

    /// Without the feature even the crashing actions are ignored: the test process goes on.
    #[cfg(not(feature = "failpoints"))]
    #[test]
    fn without_the_feature_abort_kill_panic_and_pause_are_ignored() {
        for action in [":abort", ":kill", ":panic", ":pause:/nonexistent/marker"] {
            let ctl = WriteControl::from_lookup(CancellationToken::new(), env_naming(action));
            assert!(ctl.failpoint("ingest.after_write").is_ok(), "{action}");
        }
    }

    #[cfg(feature = "failpoints")]
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
