//! The versions of a Delta table read from a listing of its `_delta_log/`, without loading
//! the table: what the scheduler's table triggers poll.
//!
//! A local table costs one directory read. On an object store, a listing that starts after
//! the latest version seen (`after`) returns only newer commits: one request per poll however
//! long the log. Stores are opened once per location and kept.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use deltalake::{ObjectStore, Path};
use futures::StreamExt;

use crate::error::{Result, StorageError};
use crate::storage;

/// What one listing of a table's log found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogVersions {
    /// Nothing at the location yet, or a log without a first commit.
    Missing,
    /// Something is there, but no Delta log.
    NotATable(String),
    /// The table's versions.
    Versions {
        /// The newest version.
        latest: i64,
        /// The oldest version whose commit is still in the log (full listings only).
        earliest: Option<i64>,
    },
}

/// Lists tables' logs, keeping one store per object-store location.
#[derive(Default)]
pub struct LogLister {
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl LogLister {
    /// A lister with no store opened yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The versions of the table at `location`: all of its commits when `after` is `None`,
    /// else those newer than `after` (the latest is then `after` when there are none).
    pub async fn versions(&self, location: &str, after: Option<i64>) -> Result<LogVersions> {
        match local_path(location)? {
            Some(dir) => local_versions(&dir),
            None => self.remote_versions(location, after).await,
        }
    }

    fn store(&self, location: &str) -> Result<Arc<dyn ObjectStore>> {
        let mut stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = stores.get(location) {
            return Ok(s.clone());
        }
        let store = storage::store_for(location)?;
        stores.insert(location.to_string(), store.clone());
        Ok(store)
    }

    async fn remote_versions(&self, location: &str, after: Option<i64>) -> Result<LogVersions> {
        let store = self.store(location)?;
        let log = Path::from("_delta_log");
        let mut listing = match after {
            Some(v) => store.list_with_offset(Some(&log), &Path::from(commit_name(v).as_str())),
            None => store.list(Some(&log)),
        };
        let mut found = Found::default();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| storage::classify_store(location, e))?;
            if let Some(name) = meta.location.filename() {
                found.add(name);
            }
        }
        drop(listing);
        if let Some(v) = found.result(after) {
            return Ok(v);
        }
        // No commit: a table being created, or something that is not a table.
        let top = store
            .list_with_delimiter(None)
            .await
            .map_err(|e| storage::classify_store(location, e))?;
        let has_log = top
            .common_prefixes
            .iter()
            .any(|p| p.as_ref() == "_delta_log");
        if has_log || (top.objects.is_empty() && top.common_prefixes.is_empty()) {
            Ok(LogVersions::Missing)
        } else {
            Ok(LogVersions::NotATable(
                "objects but no `_delta_log/` (is it the table's root?)".into(),
            ))
        }
    }
}

/// The log file name of commit `version`.
fn commit_name(version: i64) -> String {
    format!("_delta_log/{version:020}.json")
}

/// The local directory of `location`, or `None` for an object store.
fn local_path(location: &str) -> Result<Option<PathBuf>> {
    if !location.contains("://") {
        return Ok(Some(PathBuf::from(location)));
    }
    let url = storage::location_url(location)?;
    if url.scheme() != "file" {
        return Ok(None);
    }
    url.to_file_path()
        .map(Some)
        .map_err(|_| StorageError::InvalidLocation {
            location: location.to_string(),
            message: format!("`{location}` is not a usable path"),
        })
}

fn local_versions(dir: &FsPath) -> Result<LogVersions> {
    let ctx = || format!("listing `{}`", dir.join("_delta_log").display());
    if dir.is_file() {
        return Ok(LogVersions::NotATable("a file, not a directory".into()));
    }
    let entries = match std::fs::read_dir(dir.join("_delta_log")) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let has_files = std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            return Ok(if has_files {
                LogVersions::NotATable("a directory with no `_delta_log/`".into())
            } else {
                LogVersions::Missing
            });
        }
        Err(e) => return Err(StorageError::io(ctx(), e)),
    };
    let mut found = Found::default();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(ctx(), e))?;
        if let Some(name) = entry.file_name().to_str() {
            found.add(name);
        }
    }
    // A local listing is whole: the earliest is known even when `after` is given.
    Ok(found.result(None).unwrap_or(LogVersions::Missing))
}

/// The versions seen in a listing.
#[derive(Default)]
struct Found {
    latest: Option<i64>,
    earliest_commit: Option<i64>,
}

impl Found {
    /// Counts `name` when it is a commit (`N.json`) or a checkpoint (`N.checkpoint…`).
    fn add(&mut self, name: &str) {
        let Some((digits, rest)) = name.split_once('.') else {
            return;
        };
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return;
        }
        let Ok(v) = digits.parse::<i64>() else {
            return;
        };
        if rest == "json" {
            self.earliest_commit = Some(self.earliest_commit.map_or(v, |e| e.min(v)));
            self.latest = Some(self.latest.map_or(v, |l| l.max(v)));
        } else if rest.starts_with("checkpoint") {
            self.latest = Some(self.latest.map_or(v, |l| l.max(v)));
        }
    }

    fn result(self, after: Option<i64>) -> Option<LogVersions> {
        match (self.latest, after) {
            (Some(latest), None) => Some(LogVersions::Versions {
                latest,
                earliest: self.earliest_commit,
            }),
            (Some(latest), Some(a)) => Some(LogVersions::Versions {
                latest: latest.max(a),
                earliest: None,
            }),
            (None, Some(a)) => Some(LogVersions::Versions {
                latest: a,
                earliest: None,
            }),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_and_checkpoints_are_versions_other_files_are_not() {
        let mut f = Found::default();
        for name in [
            "00000000000000000003.json",
            "00000000000000000004.json",
            "00000000000000000004.checkpoint.parquet",
            "00000000000000000005.crc",
            "_last_checkpoint",
            "00000000000000000009.json.tmp",
            "0000000000000000007.json",
        ] {
            f.add(name);
        }
        assert_eq!(
            f.result(None),
            Some(LogVersions::Versions {
                latest: 4,
                earliest: Some(3)
            })
        );
    }

    #[test]
    fn a_local_directory_reads_missing_not_a_table_or_versions() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("t");
        assert_eq!(local_versions(&table).unwrap(), LogVersions::Missing);
        std::fs::create_dir_all(&table).unwrap();
        assert_eq!(local_versions(&table).unwrap(), LogVersions::Missing);
        std::fs::write(table.join("part-0.parquet"), b"x").unwrap();
        assert!(matches!(
            local_versions(&table).unwrap(),
            LogVersions::NotATable(_)
        ));
        std::fs::create_dir_all(table.join("_delta_log")).unwrap();
        assert_eq!(local_versions(&table).unwrap(), LogVersions::Missing);
        std::fs::write(table.join("_delta_log/00000000000000000000.json"), b"{}").unwrap();
        std::fs::write(table.join("_delta_log/00000000000000000001.json"), b"{}").unwrap();
        assert_eq!(
            local_versions(&table).unwrap(),
            LogVersions::Versions {
                latest: 1,
                earliest: Some(0)
            }
        );
    }
}
