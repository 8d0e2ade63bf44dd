//! Files written whole or not at all (run records, cache entries, schedule state).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::EngineError;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = File::create(&tmp).map_err(EngineError::io("create", &tmp))?;
    f.write_all(bytes).map_err(EngineError::io("write", &tmp))?;
    f.sync_data().map_err(EngineError::io("sync", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(EngineError::io("rename into", path))
}
