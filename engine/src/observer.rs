//! Run observers: outside systems told about each run (e.g. an MLflow tracking server).
//!
//! An observer is called when a run starts and when it ends. Its failures never fail the
//! run or lose its data: the engine records them in the run's tags as `<observer>.pending`
//! and a later `--resume` of the run (even a succeeded one) calls the observer again so it
//! can log what it missed.

use std::path::Path;

use crate::spec::Pipeline;
use crate::store::RunRecord;
use crate::task::BoxFuture;

/// Something told about runs.
pub trait RunObserver: Send + Sync {
    /// A short name, used in the `<name>.pending` tag.
    fn name(&self) -> &'static str;

    /// Whether the observer wants this pipeline's runs.
    fn wants(&self, pipeline: &Pipeline) -> bool;

    /// The run started (or was resumed).
    fn run_started<'a>(&'a self, run_dir: &'a Path, pipeline: &'a Pipeline, record: &'a RunRecord) -> BoxFuture<'a, Result<(), String>>;

    /// The run reached its final state.
    fn run_finished<'a>(&'a self, run_dir: &'a Path, pipeline: &'a Pipeline, record: &'a RunRecord) -> BoxFuture<'a, Result<(), String>>;
}

/// The tag that marks an observer's missed work.
pub fn pending_tag(observer: &str) -> String {
    format!("{observer}.pending")
}
