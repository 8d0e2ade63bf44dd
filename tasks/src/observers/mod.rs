//! Run observers: outside systems told about each pipeline run.
//!
//! | observer | section | does |
//! |----------|---------|------|
//! | [`MlflowRuns`] | `mlflow:` | each pipeline run becomes an MLflow run, with its tables as datasets (lineage) |

mod lineage;
mod mlflow_runs;

pub use mlflow_runs::MlflowRuns;
