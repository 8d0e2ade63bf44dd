//! Run observers: outside systems told about each pipeline run.
//!
//! | observer | section | does |
//! |----------|---------|------|
//! | [`mlflow_runs::MlflowRuns`] | `mlflow:` | each pipeline run becomes an MLflow run |

pub mod mlflow_runs;
