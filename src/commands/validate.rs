//! `tweetflow validate`: checks pipeline files without running them.

use tweetflow_engine::Registry;

use super::load_or_report;
use crate::exit;

/// Validates each file, printing its problems; returns the exit code.
pub(crate) fn validate(registry: &Registry, files: &[std::path::PathBuf]) -> u8 {
    let mut ok = true;
    for file in files {
        match load_or_report(registry, file, &[]) {
            Some(p) => println!("{}: ok ({} tasks)", file.display(), p.tasks.len()),
            None => ok = false,
        }
    }
    if ok { exit::OK } else { exit::INVALID }
}
