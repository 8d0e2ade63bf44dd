//! Run observers: outside systems told about each pipeline run.
//!
//! | observer | section | does |
//! |----------|---------|------|
//! | [`mlflow_runs::MlflowRuns`] | `mlflow:` | each pipeline run becomes an MLflow run, with its tables as datasets ([`lineage`]) |

pub mod lineage;
pub mod mlflow_runs;
