//! `manifest.json`: the SHA-256 and size of every file of a model directory
//! (`{"format": "tweetflow-model-manifest/1", "files": [{"path", "sha256", "size"}]}`).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// The `format` value this crate reads and writes.
pub const MANIFEST_FORMAT: &str = "tweetflow-model-manifest/1";
/// File name of the manifest inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// One file of a model directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path relative to the model directory (`/`-separated).
    pub path: String,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The parsed `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Every other file of the directory.
    pub files: Vec<ManifestEntry>,
}

/// Hex SHA-256 and size of a file, read in chunks.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| ModelError::io(path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    let digest = h.finalize();
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    Ok((hex, size))
}

fn manifest_error(dir: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Manifest {
        dir: dir.to_path_buf(),
        message: message.into(),
    }
}

/// A manifest path made safe to join to the directory (relative, no `..`).
fn safe_join(dir: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    let ok = !rel.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok {
        return Err(manifest_error(
            dir,
            format!(
                "{MANIFEST_FILE} lists {rel:?}, which is not a relative path inside the directory"
            ),
        ));
    }
    Ok(dir.join(p))
}

impl Manifest {
    /// Reads `dir/manifest.json` (a missing manifest is [`ModelError::MissingFile`]).
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModelError::MissingFile {
                    dir: dir.to_path_buf(),
                    file: MANIFEST_FILE.into(),
                    hint: " (every model directory lists its files with their SHA-256 there)"
                        .into(),
                });
            }
            Err(e) => return Err(ModelError::io(path, e)),
        };
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            manifest_error(dir, format!("{MANIFEST_FILE} is not a valid manifest: {e}"))
        })?;
        if m.format != MANIFEST_FORMAT {
            return Err(manifest_error(
                dir,
                format!(
                    "{MANIFEST_FILE} has format {:?}, expected {MANIFEST_FORMAT:?}",
                    m.format
                ),
            ));
        }
        Ok(m)
    }

    /// Builds the manifest of every regular file under `dir` except `manifest.json` itself
    /// (sorted by path).
    pub fn of_dir(dir: &Path) -> Result<Manifest> {
        let mut files = Vec::new();
        let mut stack = vec![(dir.to_path_buf(), String::new())];
        while let Some((d, prefix)) = stack.pop() {
            let rd = std::fs::read_dir(&d).map_err(|e| ModelError::io(&d, e))?;
            for entry in rd {
                let entry = entry.map_err(|e| ModelError::io(&d, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let rel = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                let ft = entry
                    .file_type()
                    .map_err(|e| ModelError::io(entry.path(), e))?;
                if ft.is_dir() {
                    stack.push((entry.path(), rel));
                } else if rel != MANIFEST_FILE {
                    let (sha256, size) = sha256_file(&entry.path())?;
                    files.push(ManifestEntry {
                        path: rel,
                        sha256,
                        size,
                    });
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Manifest {
            format: MANIFEST_FORMAT.into(),
            files,
        })
    }

    /// Writes `dir/manifest.json` for the current content of `dir`.
    pub fn write_for_dir(dir: &Path) -> Result<Manifest> {
        let m = Manifest::of_dir(dir)?;
        let path = dir.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(&m)
            .map_err(|e| manifest_error(dir, format!("cannot serialize the manifest: {e}")))?;
        std::fs::write(&path, text + "\n").map_err(|e| ModelError::io(path, e))?;
        Ok(m)
    }

    /// Checks every listed file: present, same size, same SHA-256. The first mismatch is an
    /// error naming the file (missing files are [`ModelError::MissingFile`]).
    pub fn verify(&self, dir: &Path) -> Result<()> {
        for f in &self.files {
            let path = safe_join(dir, &f.path)?;
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ModelError::MissingFile {
                        dir: dir.to_path_buf(),
                        file: f.path.clone(),
                        hint: format!(" (listed in {MANIFEST_FILE})"),
                    });
                }
                Err(e) => return Err(ModelError::io(path, e)),
            };
            if meta.len() != f.size {
                return Err(manifest_error(
                    dir,
                    format!(
                        "{} has {} bytes, {MANIFEST_FILE} says {}: the file was modified or is incomplete",
                        f.path,
                        meta.len(),
                        f.size
                    ),
                ));
            }
            let (sha, _) = sha256_file(&path)?;
            if !sha.eq_ignore_ascii_case(&f.sha256) {
                return Err(manifest_error(
                    dir,
                    format!(
                        "{} does not match {MANIFEST_FILE}: SHA-256 {sha}, expected {}; the file was modified \
                         (rebuild the model directory or restore the file)",
                        f.path, f.sha256
                    ),
                ));
            }
        }
        Ok(())
    }

    /// True when the manifest lists `path`.
    pub fn lists(&self, path: &str) -> bool {
        self.files.iter().any(|f| f.path == path)
    }
}

/// Reads and verifies the manifest of a model directory, returning it.
pub fn verify_dir(dir: &Path) -> Result<Manifest> {
    if !dir.is_dir() {
        return Err(ModelError::InvalidInput {
            what: "model directory".into(),
            message: format!("{} is not a directory", dir.display()),
        });
    }
    let m = Manifest::read(dir)?;
    m.verify(dir)?;
    Ok(m)
}
