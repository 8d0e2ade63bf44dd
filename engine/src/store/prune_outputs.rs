//! Cache entries whose output is gone.
//!
//! A cache entry names an output (a table at a version, a file, ...). Whether that output is
//! still there only its task type knows ([`crate::Task::output_still_valid`]), so this pass
//! runs beside [`super::prune`], with the registry:
//!
//! ```text
//! runs/.cache/<key>.json ──► task type (registry) ──► output_still_valid(params, output)
//!                                                         │ false
//!                                                         ▼
//!                                              entry removed (a future cache miss)
//! ```
//!
//! An entry is only removed when its type is registered, its recorded params deserialize
//! and the type answers `false`. Entries written before params were recorded, of unknown
//! types, or of runs being executed are left alone. An entry replaced meanwhile (same key,
//! newer output) is left alone too. Removing a valid entry would only cost a cache miss;
//! keeping an invalid one never causes a wrong hit, since the executor checks again.

use std::fs;

use futures::StreamExt;

use super::RunStore;
use super::log::load_record;
use super::prune::{EntryRemoval, PrunedEntry};
use crate::cache::CacheEntry;
use crate::error::EngineError;
use crate::registry::Registry;

/// How many entries are checked at once (each check may open a table).
const CONCURRENT_CHECKS: usize = 8;

impl RunStore {
    /// Removes (or, with `dry_run`, lists) the cache entries whose output their task type
    /// reports gone; with `pipeline`, only entries made by runs of that pipeline.
    pub async fn prune_gone_outputs(
        &self,
        registry: &Registry,
        pipeline: Option<&str>,
        dry_run: bool,
    ) -> Result<Vec<PrunedEntry>, EngineError> {
        let candidates: Vec<_> = self
            .cache_entries()
            .into_iter()
            .filter_map(|(path, entry, bytes)| {
                let entry = entry?;
                entry.params.as_ref()?;
                registry.get(&entry.task_type)?;
                if self.is_executing(&entry.run_id) {
                    return None;
                }
                if let Some(p) = pipeline {
                    let record = load_record(&self.run_dir(&entry.run_id)).ok()?;
                    if record.pipeline != p {
                        return None;
                    }
                }
                Some((path, entry, bytes))
            })
            .collect();
        let gone: Vec<_> = futures::stream::iter(candidates)
            .map(|(path, entry, bytes)| async move {
                let task = registry.get(&entry.task_type)?;
                let params = entry.params.as_ref()?;
                if task.check_params(params).is_err()
                    || task.output_still_valid(params, &entry.output).await
                {
                    return None;
                }
                Some((path, entry, bytes))
            })
            .buffer_unordered(CONCURRENT_CHECKS)
            .filter_map(std::future::ready)
            .collect()
            .await;

        let mut removed = Vec::new();
        for (path, entry, bytes) in gone {
            if !dry_run {
                // Rewritten since it was read: a newer output, checked by the next prune.
                let current = fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<CacheEntry>(&b).ok());
                if current.as_ref().map(|c| c.created_at) != Some(entry.created_at) {
                    continue;
                }
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(EngineError::io("remove", &path)(e)),
                }
            }
            removed.push(PrunedEntry {
                key: entry.key,
                run_id: entry.run_id,
                bytes,
                reason: EntryRemoval::OutputGone,
            });
        }
        removed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(removed)
    }
}
