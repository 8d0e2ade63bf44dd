//! The task cache.
//!
//! A task's cache key is the BLAKE3 hash of: its type, its type's version, its resolved
//! params (after interpolation), and the fingerprint of each direct dependency's output.
//! So an entry is invalidated by:
//! - a change to any param of the task (including a `--param` or `${env.X}` it uses);
//! - a change to the contents of a file the task names as a cache input
//!   (`Task::cache_inputs`, e.g. a `command`'s `inputs`), see [`hash_inputs`];
//! - a new version of the task type (bumped when its behaviour changes);
//! - a changed output of any direct dependency (its fingerprint: e.g. a new table version);
//! - its age passing `cache.ttl`;
//! - the task reporting that the cached output is gone (`Task::output_still_valid`; `runs
//!   prune` removes such entries, see [`crate::store::prune_outputs`]);
//! - `--refresh TASK` (that task runs and its entry is replaced) and `--no-cache` (the
//!   cache is neither read nor written).
//!
//! Secrets (see [`crate::secrets`]) are not part of the key: rotating a token reuses the
//! entries made with the old one. Entries live in `<runs>/.cache/<key>.json` and are written
//! atomically, with secrets masked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::atomic_file::write_atomic;
use crate::error::EngineError;
use crate::task::TaskOutput;

/// A cached task result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The key it is stored under.
    pub key: String,
    /// The task type that produced it.
    pub task_type: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// The run that produced it.
    pub run_id: String,
    /// The task id in that run.
    pub task_id: String,
    /// The output to reuse.
    pub output: TaskOutput,
    /// The task's resolved params (secrets masked), so that `runs prune` can ask the task
    /// type whether the output is still there ([`crate::store::prune_outputs`]). Absent in
    /// entries written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Json>,
}

/// The cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// Computes a task's cache key. `inputs` is the [`hash_inputs`] of its cache inputs (`None`
/// when it names none).
pub fn cache_key(
    task_type: &str,
    version: &str,
    params: &Json,
    upstream: &BTreeMap<String, TaskOutput>,
    inputs: Option<&str>,
) -> String {
    let fingerprints: BTreeMap<&str, &str> = upstream
        .iter()
        .map(|(k, v)| (k.as_str(), v.fingerprint.as_str()))
        .collect();
    let mut material = serde_json::json!({
        "type": task_type,
        "version": version,
        "params": canonical(params),
        "upstream": fingerprints,
    });
    if let Some(inputs) = inputs {
        material["inputs"] = Json::from(inputs);
    }
    blake3::hash(material.to_string().as_bytes())
        .to_hex()
        .to_string()
}

/// BLAKE3 of the contents of `paths`: each file's path and bytes; a directory's files
/// recursively, in sorted order, skipping hidden entries and `__pycache__`. A path that does
/// not exist hashes as missing (so creating it changes the hash).
pub fn hash_inputs(paths: &[PathBuf]) -> String {
    let mut hasher = blake3::Hasher::new();
    for path in paths {
        hash_path(&mut hasher, path);
    }
    hasher.finalize().to_hex().to_string()
}

fn hash_path(hasher: &mut blake3::Hasher, path: &std::path::Path) {
    hasher.update(path.to_string_lossy().as_bytes());
    hasher.update(b"\0");
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(dir) => dir
                .filter_map(|e| e.ok())
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    !name.starts_with('.') && name != "__pycache__"
                })
                .map(|e| e.path())
                .collect(),
            Err(_) => Vec::new(),
        };
        entries.sort();
        hasher.update(b"dir\0");
        for entry in entries {
            hash_path(hasher, &entry);
        }
    } else {
        match std::fs::File::open(path) {
            Ok(mut file) => {
                hasher.update(b"file\0");
                if std::io::copy(&mut file, hasher).is_err() {
                    hasher.update(b"unreadable\0");
                }
            }
            Err(_) => {
                hasher.update(b"missing\0");
            }
        }
    }
}

/// JSON with object keys sorted, so equal params hash equally whatever their order.
fn canonical(value: &Json) -> Json {
    match value {
        Json::Object(map) => {
            let sorted: BTreeMap<&String, Json> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            Json::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Json::Array(items) => Json::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

impl Cache {
    /// The cache under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Cache { dir: dir.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The entry for `key`, if present and younger than `ttl`.
    pub fn get(&self, key: &str, ttl: Option<Duration>) -> Option<CacheEntry> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
        if let Some(ttl) = ttl {
            let age = (Utc::now() - entry.created_at).to_std().unwrap_or_default();
            if age > ttl {
                return None;
            }
        }
        Some(entry)
    }

    /// Stores an entry.
    pub fn put(&self, entry: &CacheEntry) -> Result<(), EngineError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(EngineError::io("create cache directory", &self.dir))?;
        let bytes = crate::secrets::masked_json(entry)
            .and_then(|j| serde_json::to_vec_pretty(&j))
            .map_err(|e| EngineError::Corrupt {
                path: self.path(&entry.key),
                message: e.to_string(),
            })?;
        write_atomic(&self.path(&entry.key), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_depends_on_every_input_but_not_key_order() {
        let up =
            |fp: &str| BTreeMap::from([("a".to_string(), TaskOutput::new().with_fingerprint(fp))]);
        let base = cache_key("t", "1", &json!({"x": 1, "y": 2}), &up("f1"), None);
        assert_eq!(
            base,
            cache_key("t", "1", &json!({"y": 2, "x": 1}), &up("f1"), None)
        );
        assert_ne!(
            base,
            cache_key("u", "1", &json!({"x": 1, "y": 2}), &up("f1"), None)
        );
        assert_ne!(
            base,
            cache_key("t", "2", &json!({"x": 1, "y": 2}), &up("f1"), None)
        );
        assert_ne!(
            base,
            cache_key("t", "1", &json!({"x": 1, "y": 3}), &up("f1"), None)
        );
        assert_ne!(
            base,
            cache_key("t", "1", &json!({"x": 1, "y": 2}), &up("f2"), None)
        );
        assert_ne!(
            base,
            cache_key("t", "1", &json!({"x": 1, "y": 2}), &up("f1"), Some("h"))
        );
    }

    #[test]
    fn input_hash_follows_contents_not_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkg");
        std::fs::create_dir_all(pkg.join("__pycache__")).unwrap();
        std::fs::write(pkg.join("a.py"), "x = 1\n").unwrap();
        std::fs::write(pkg.join("b.py"), "y = 2\n").unwrap();
        let inputs = [pkg.clone(), dir.path().join("extra.txt")];
        let base = hash_inputs(&inputs);
        assert_eq!(base, hash_inputs(&inputs), "deterministic");
        // Byte-equal rewrite, compiled files and hidden files change nothing.
        std::fs::write(pkg.join("a.py"), "x = 1\n").unwrap();
        std::fs::write(pkg.join("__pycache__/a.cpython.pyc"), "compiled").unwrap();
        std::fs::write(pkg.join(".a.py.swp"), "editor").unwrap();
        assert_eq!(base, hash_inputs(&inputs));
        // An edit, a new file and a missing input appearing each change it.
        std::fs::write(pkg.join("a.py"), "x = 3\n").unwrap();
        let edited = hash_inputs(&inputs);
        assert_ne!(base, edited);
        std::fs::write(pkg.join("c.py"), "").unwrap();
        let added = hash_inputs(&inputs);
        assert_ne!(edited, added);
        std::fs::write(dir.path().join("extra.txt"), "").unwrap();
        assert_ne!(added, hash_inputs(&inputs));
        // Moving bytes from one file to another is a change too.
        std::fs::write(pkg.join("a.py"), "").unwrap();
        std::fs::write(pkg.join("b.py"), "x = 3\ny = 2\n").unwrap();
        assert_ne!(hash_inputs(&inputs), base);
    }

    #[test]
    fn ttl_expires_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let mut entry = CacheEntry {
            key: "k".into(),
            task_type: "t".into(),
            created_at: Utc::now() - chrono::Duration::seconds(120),
            run_id: "r".into(),
            task_id: "a".into(),
            output: TaskOutput::new().with("n", 1),
            params: None,
        };
        cache.put(&entry).unwrap();
        assert!(cache.get("k", None).is_some());
        assert!(cache.get("k", Some(Duration::from_secs(60))).is_none());
        entry.created_at = Utc::now();
        cache.put(&entry).unwrap();
        assert_eq!(
            cache
                .get("k", Some(Duration::from_secs(60)))
                .unwrap()
                .output,
            entry.output
        );
    }
}
