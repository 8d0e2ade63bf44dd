//! Landing folders: a local directory or an object-store prefix (`s3://bucket/landing`),
//! listed, read and written the same way.
//!
//! A local folder is listed with one directory read (regular files only); an object-store
//! prefix with one delimited object listing (the objects directly under it). Names starting
//! with `.` or ending in `.tmp` are skipped either way. Writing is atomic in both: a local file
//! is written under a hidden temporary name and renamed into place; an object appears whole
//! when its put completes.

use std::io::{BufRead, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deltalake::logstore::object_store::{ObjectStoreExt, PutPayload};
use deltalake::{ObjectStore, Path};
use futures::StreamExt;

use crate::error::{Result, StorageError};
use crate::storage;

/// A landing folder.
#[derive(Clone, Debug)]
pub enum Folder {
    /// A local directory.
    Local(PathBuf),
    /// An object-store prefix.
    Remote {
        /// The location as given.
        location: String,
        /// The store, rooted at the prefix.
        store: Arc<dyn ObjectStore>,
    },
}

/// Whether a listed name is landed data (not hidden, not a temporary file).
pub fn is_landed_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.ends_with(".tmp")
}

/// A file of a landing folder (a regular file, or an object directly under the prefix) as
/// listed: what tells a later listing whether it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The file name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its last modification, in milliseconds since the Unix epoch (`None` when the file
    /// system does not say).
    pub modified_ms: Option<i64>,
    /// The object's entity tag (object stores only).
    pub etag: Option<String>,
}

impl Folder {
    /// The folder at `location` (a local path, `file://` or an object-store URL).
    pub fn open(location: &str) -> Result<Folder> {
        if !location.contains("://") {
            return Ok(Folder::Local(PathBuf::from(location)));
        }
        let url = storage::location_url(location)?;
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|_| StorageError::InvalidLocation {
                    location: location.to_string(),
                    message: format!("`{location}` is not a usable path"),
                })?;
            return Ok(Folder::Local(path));
        }
        Ok(Folder::Remote {
            location: location.to_string(),
            store: storage::store_for(location)?,
        })
    }

    /// The location as given.
    pub fn location(&self) -> String {
        match self {
            Folder::Local(p) => p.display().to_string(),
            Folder::Remote { location, .. } => location.clone(),
        }
    }

    /// The local directory, when the folder is local.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        match self {
            Folder::Local(p) => Some(p),
            Folder::Remote { .. } => None,
        }
    }

    /// The landed names ([`is_landed_name`]), sorted; `None` when a local folder does not
    /// exist (an object-store prefix always exists, possibly empty).
    pub async fn list(&self) -> Result<Option<Vec<String>>> {
        Ok(self.list_entries().await?.map(|entries| {
            entries
                .into_iter()
                .map(|e| e.name)
                .filter(|n| is_landed_name(n))
                .collect()
        }))
    }

    /// Every file of the folder with its size and modification time, sorted by name, hidden
    /// and temporary names included; `None` when a local folder does not exist.
    pub async fn list_entries(&self) -> Result<Option<Vec<Listed>>> {
        let mut entries = Vec::new();
        match self {
            Folder::Local(dir) => {
                if !dir.is_dir() {
                    return Ok(None);
                }
                let ctx = || format!("listing `{}`", dir.display());
                for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io(ctx(), e))? {
                    let entry = entry.map_err(|e| StorageError::io(ctx(), e))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let ft = entry.file_type().map_err(|e| StorageError::io(ctx(), e))?;
                    if !ft.is_file() {
                        continue;
                    }
                    // A file deleted between the directory read and its metadata is not listed.
                    let Ok(meta) = entry.metadata() else {
                        continue;
                    };
                    entries.push(Listed {
                        name,
                        size: meta.len(),
                        modified_ms: meta.modified().ok().and_then(epoch_ms),
                        etag: None,
                    });
                }
            }
            Folder::Remote { location, store } => {
                let listing = store
                    .list_with_delimiter(None)
                    .await
                    .map_err(|e| storage::classify_store(location, e))?;
                for meta in listing.objects {
                    let name = meta.location.filename().unwrap_or_default().to_string();
                    if name.is_empty() {
                        continue;
                    }
                    entries.push(Listed {
                        name,
                        size: meta.size,
                        modified_ms: Some(meta.last_modified.timestamp_millis()),
                        etag: meta.e_tag,
                    });
                }
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(entries))
    }

    /// A buffered reader of the landed object `name`: an object up to [`IN_MEMORY_MAX`] bytes
    /// is fetched whole, a larger one streamed into an unnamed temporary file first (memory
    /// stays bounded whatever the object's size).
    pub async fn reader(&self, name: &str) -> Result<Box<dyn BufRead + Send>> {
        match self {
            Folder::Local(dir) => {
                let path = dir.join(name);
                let file = std::fs::File::open(&path)
                    .map_err(|e| StorageError::io(format!("opening `{}`", path.display()), e))?;
                Ok(Box::new(std::io::BufReader::with_capacity(
                    256 * 1024,
                    file,
                )))
            }
            Folder::Remote { location, store } => {
                let got = store
                    .get(&Path::from(name))
                    .await
                    .map_err(|e| storage::classify_store(location, e))?;
                if got.meta.size <= IN_MEMORY_MAX {
                    let bytes = got
                        .bytes()
                        .await
                        .map_err(|e| storage::classify_store(location, e))?;
                    return Ok(Box::new(std::io::Cursor::new(bytes)));
                }
                let ctx = || format!("buffering `{name}` of `{location}` in a temporary file");
                let mut file = spool_file().map_err(|e| StorageError::io(ctx(), e))?;
                let mut stream = got.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| storage::classify_store(location, e))?;
                    file.write_all(&chunk)
                        .map_err(|e| StorageError::io(ctx(), e))?;
                }
                file.seek(std::io::SeekFrom::Start(0))
                    .map_err(|e| StorageError::io(ctx(), e))?;
                Ok(Box::new(std::io::BufReader::with_capacity(
                    256 * 1024,
                    file,
                )))
            }
        }
    }

    /// Creates a local folder (an object-store prefix needs nothing).
    pub fn create(&self) -> Result<()> {
        if let Folder::Local(dir) = self {
            std::fs::create_dir_all(dir)
                .map_err(|e| StorageError::io(format!("creating `{}`", dir.display()), e))?;
        }
        Ok(())
    }

    /// Writes `name` atomically (see the module docs). When the folder already holds exactly
    /// `contents` under `name`, the file is left as it is (its modification time or entity tag
    /// too): rewriting the same bytes, as a second replay does, is not a change to report.
    pub async fn write(&self, name: &str, contents: Vec<u8>) -> Result<()> {
        match self {
            Folder::Local(dir) => {
                let target = dir.join(name);
                if std::fs::read(&target).is_ok_and(|old| old == contents) {
                    return Ok(());
                }
                // A temporary name of this writer alone: two processes writing the same file
                // at once must not rename each other's temporary file away.
                static WRITES: AtomicU64 = AtomicU64::new(0);
                let n = WRITES.fetch_add(1, Ordering::Relaxed);
                let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
                std::fs::write(&tmp, &contents)
                    .map_err(|e| StorageError::io(format!("writing `{}`", tmp.display()), e))?;
                // Linked into place while the name is free, so a writer of the same bytes that
                // comes second leaves the first one's file untouched; replaced otherwise.
                let same_there = match std::fs::hard_link(&tmp, &target) {
                    Ok(()) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        std::fs::read(&target).is_ok_and(|old| old == contents)
                    }
                    Err(_) => false,
                };
                if same_there {
                    std::fs::remove_file(&tmp)
                        .map_err(|e| StorageError::io(format!("removing `{}`", tmp.display()), e))
                } else {
                    std::fs::rename(&tmp, &target).map_err(|e| {
                        StorageError::io(format!("renaming to `{}`", target.display()), e)
                    })
                }
            }
            Folder::Remote { location, store } => {
                let path = Path::from(name);
                if let Ok(meta) = store.head(&path).await
                    && meta.size == contents.len() as u64
                    && let Ok(got) = store.get(&path).await
                    && let Ok(bytes) = got.bytes().await
                    && bytes.as_ref() == contents.as_slice()
                {
                    return Ok(());
                }
                store
                    .put(&path, PutPayload::from(contents))
                    .await
                    .map_err(|e| storage::classify_store(location, e))?;
                Ok(())
            }
        }
    }

    /// Whether `name` exists in the folder.
    pub async fn contains(&self, name: &str) -> bool {
        match self {
            Folder::Local(dir) => dir.join(name).is_file(),
            Folder::Remote { store, .. } => store.head(&Path::from(name)).await.is_ok(),
        }
    }
}

/// Objects up to this size are read from memory; larger ones from a temporary file.
pub const IN_MEMORY_MAX: u64 = 16 * 1024 * 1024;

/// A new temporary file, already unlinked (it disappears when closed).
fn spool_file() -> std::io::Result<std::fs::File> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        ".tweetflow-landing-{}-{nanos:x}-{n}",
        std::process::id()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Milliseconds since the Unix epoch of `t` (negative before it).
fn epoch_ms(t: std::time::SystemTime) -> Option<i64> {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok(),
        Err(e) => i64::try_from(e.duration().as_millis()).ok().map(|ms| -ms),
    }
}
