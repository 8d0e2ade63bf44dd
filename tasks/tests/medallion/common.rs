//! Helpers shared by the medallion tests.

use std::path::Path;

pub use tweetflow_test_support::tables::{p, rows, rows_of, version};
pub use tweetflow_test_support::{
    TaskContextBuilder, assert_unique_rows, repo_root, test_csv, venv,
};

/// Writes a landing file.
pub fn land(dir: &Path, name: &str, contents: &[u8]) {
    std::fs::create_dir_all(dir).expect("create landing");
    std::fs::write(dir.join(name), contents).expect("write landing file");
}

/// Registers the medallion tasks (the types of this test suite).
pub fn register_medallion(registry: &mut tweetflow_engine::Registry) {
    use tweetflow_tasks::medallion::{aggregate, clean, ingest, maintenance, profile, replay};
    registry
        .register(replay::ReplayTask)
        .register(ingest::IngestTask)
        .register(clean::CleanTask)
        .register(aggregate::AggregateTask)
        .register(profile::ProfileTask)
        .register(maintenance::OptimizeTask)
        .register(maintenance::VacuumTask)
        .register(maintenance::ResetTask);
}
