//! Run observers: outside systems told about each run (e.g. a tracking server).
//!
//! An observer is called when a run starts and when it ends. Its failures never fail the
//! run or lose its data: the engine records them in the run's tags as `<observer>.pending`
//! and a later `--resume` of the run (even a succeeded one) calls the observer again so it
//! can log what it missed.

//!
//! Besides start and end, an observer hears of each failed attempt that will be retried
//! ([`RunObserver::attempt_retrying`], while the run goes on) and of a run whose engine died
//! ([`RunObserver::run_interrupted`], called by whoever finds such a run). An observer that
//! must act while a run is going (e.g. when it runs late) starts its own timer in
//! [`RunObserver::run_started`] and stops it in [`RunObserver::run_finished`].

use std::error::Error;
use std::path::Path;
use std::time::Duration;

use crate::spec::Pipeline;
use crate::store::RunRecord;
use crate::task::{BoxFuture, RunLinks, TaskError};

/// Why an observer could not record part of a run. Its text is what the run's
/// `<observer>.pending` tag holds.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct ObserverError {
    /// Whether trying again (a later `--resume`) may succeed, e.g. a server that was down.
    pub retryable: bool,
    /// What went wrong.
    pub source: Box<dyn Error + Send + Sync>,
}

impl ObserverError {
    /// A failure that may pass on another try.
    pub fn retryable(source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        ObserverError {
            retryable: true,
            source: source.into(),
        }
    }

    /// A failure that another try will not fix (e.g. a wrong configuration).
    pub fn fatal(source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        ObserverError {
            retryable: false,
            source: source.into(),
        }
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// A failed attempt that the engine will try again (see [`RunObserver::attempt_retrying`]).
#[derive(Clone, Copy, Debug)]
pub struct RetryNotice<'a> {
    /// The run's id.
    pub run_id: &'a str,
    /// The run's directory in the run store.
    pub run_dir: &'a Path,
    /// The task.
    pub task: &'a str,
    /// The shard, when the task is split into shards.
    pub shard: Option<u32>,
    /// The number of the attempt that failed (1-based).
    pub attempt: u32,
    /// The most attempts the task may make.
    pub max_attempts: u32,
    /// Why it failed (secrets masked).
    pub error: &'a TaskError,
    /// How long the engine waits before the next attempt.
    pub retry_in: Duration,
}

/// Something told about runs.
pub trait RunObserver: Send + Sync {
    /// A short name, used in the `<name>.pending` tag.
    fn name(&self) -> &'static str;

    /// Whether the observer wants this pipeline's runs.
    fn wants(&self, pipeline: &Pipeline) -> bool;

    /// The run started (or was resumed). What the observer returns is attached to the run
    /// for its tasks to read ([`crate::task::TaskContext::links`]), e.g. the id of the
    /// outside system's record of the run.
    fn run_started<'a>(
        &'a self,
        run_dir: &'a Path,
        pipeline: &'a Pipeline,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<RunLinks, ObserverError>>;

    /// The run reached its final state.
    fn run_finished<'a>(
        &'a self,
        run_dir: &'a Path,
        pipeline: &'a Pipeline,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<(), ObserverError>>;

    /// An attempt failed and will be retried. Called on the run's task, so it must not
    /// block: work that takes time goes to a background task. The default does nothing.
    fn attempt_retrying(&self, _pipeline: &Pipeline, _notice: &RetryNotice<'_>) {}

    /// The engine executing the run died (the run says `running` but nobody holds its
    /// lock); called once per interruption by whoever finds it, with the record as left.
    /// The default does nothing.
    fn run_interrupted<'a>(
        &'a self,
        _run_dir: &'a Path,
        _pipeline: &'a Pipeline,
        _record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<(), ObserverError>> {
        Box::pin(async { Ok(()) })
    }

    /// A micro-batch of streaming session `session` (`run --watch`) ended; `batch` counts
    /// from 1. The default does nothing.
    fn batch_finished<'a>(
        &'a self,
        _session: &'a str,
        _batch: usize,
        _pipeline: &'a Pipeline,
        _record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<(), ObserverError>> {
        Box::pin(async { Ok(()) })
    }

    /// Streaming session `session` ended (`cancelled` when stopped by a signal).
    fn session_finished<'a>(
        &'a self,
        _session: &'a str,
        _pipeline: &'a Pipeline,
        _cancelled: bool,
    ) -> BoxFuture<'a, Result<(), ObserverError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The tag that marks an observer's missed work.
pub fn pending_tag(observer: &str) -> String {
    format!("{observer}.pending")
}
