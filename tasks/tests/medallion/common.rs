//! Helpers shared by the medallion tests.

use std::path::Path;

pub use tweetflow_test_support::tables::{p, rows, rows_of, version};
pub use tweetflow_test_support::{
    TaskContextBuilder, assert_unique_rows, repo_root, test_csv, venv,
};

/// Writes a landing file, finished a minute ago (past ingest's settle time).
pub fn land(dir: &Path, name: &str, contents: &[u8]) {
    std::fs::create_dir_all(dir).expect("create landing");
    std::fs::write(dir.join(name), contents).expect("write landing file");
    let file = std::fs::File::options()
        .write(true)
        .open(dir.join(name))
        .expect("open landing file");
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    file.set_modified(past).expect("set the modification time");
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
