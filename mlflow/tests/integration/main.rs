//! Integration tests of the MLflow client against a real `mlflow server` (sqlite backend,
//! local artifact folder) started once for this test binary from the project's venv.
#![allow(clippy::unwrap_used)]

mod artifacts;
mod common;
mod faults;
mod registry;
mod tracking;
