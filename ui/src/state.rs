//! What every request handler shares: the pipeline paths, the run store and its index, the
//! registry, the guard, the launcher, the templates and the metrics.

use std::path::PathBuf;
use std::sync::Arc;

use tweetflow_engine::metrics::StoreMetrics;
use tweetflow_engine::{Registry, RunStore};

use crate::actions::Launcher;
use crate::render::Templates;
use crate::run_index::RunIndex;
use crate::security::Guard;

/// What every request handler shares.
pub struct AppState {
    /// Pipeline files, or directories of them.
    pub paths: Vec<PathBuf>,
    /// The run store.
    pub store: RunStore,
    /// Summaries of runs read so far.
    pub index: RunIndex,
    /// The task types.
    pub registry: Arc<Registry>,
    /// Token and same-origin checks.
    pub guard: Guard,
    /// Calls the binary.
    pub launcher: Launcher,
    /// The page templates.
    pub templates: Templates,
    /// The run store's metrics (`/metrics`).
    pub metrics: Arc<StoreMetrics>,
}
