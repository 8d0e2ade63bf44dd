//! Model directories on object storage (`s3://`, `az://`, `abfss://`, `gs://`).
//!
//! The objects directly under the prefix are copied once into the local model cache, under a
//! key made of the location and each object's name, size and entity tag, so a changed model
//! is fetched again and an unchanged one never is:
//!
//! ```text
//! s3://bucket/models/sentiment/ ── list ──► key ──► <cache_dir>/remote/<key>/  (exists: done)
//!                                                     ▲ rename
//!                                   stream each object into .tmp-<key>-<pid>/
//! ```
//!
//! The copy is then verified like any model directory (its manifest), by the caller.

use std::path::{Path, PathBuf};

use deltalake::logstore::object_store::ObjectStoreExt;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tweetflow_delta::StorageError;
use tweetflow_delta::folder::Folder;

use super::error::InferResult;
use crate::table_error::TableTaskError;

/// Whether `model` names an object-store location rather than a directory or `models:/` URI.
pub fn is_remote(model: &str) -> bool {
    let model = model.trim();
    ["s3://", "s3a://", "az://", "abfs://", "abfss://", "gs://"]
        .iter()
        .any(|scheme| model.starts_with(scheme))
}

/// Copies the model directory at `location` into `cache_dir` (once per content) and returns
/// the local directory.
pub async fn fetch(location: &str, cache_dir: &Path) -> InferResult<PathBuf> {
    let location = location.trim().trim_end_matches('/');
    let folder = Folder::open(location).map_err(TableTaskError::from)?;
    let Folder::Remote { store, .. } = &folder else {
        return Ok(PathBuf::from(location));
    };
    let entries: Vec<_> = folder
        .list_entries()
        .await
        .map_err(TableTaskError::from)?
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !e.name.starts_with('.'))
        .collect();
    if entries.is_empty() {
        return Err(TableTaskError::from(StorageError::Config {
            location: location.to_string(),
            message: "no model files there (a model directory holds manifest.json, model.onnx, tokenizer.json, config.json)".into(),
        })
        .into());
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(location.as_bytes());
    for e in &entries {
        let etag = e.etag.clone().unwrap_or_default();
        hasher.update(format!("\0{}\0{}\0{etag}", e.name, e.size).as_bytes());
    }
    let key: String = hasher.finalize().to_hex().chars().take(24).collect();
    let root = cache_dir.join("remote");
    let dest = root.join(&key);
    if dest.is_dir() {
        tracing::debug!(model = %location, dir = %dest.display(), "model copy in the cache");
        return Ok(dest);
    }
    let tmp = root.join(format!(".tmp-{key}-{}", std::process::id()));
    let io =
        |what: String| move |e: std::io::Error| TableTaskError::from(StorageError::io(what, e));
    let _ = tokio::fs::remove_dir_all(&tmp).await;
    tokio::fs::create_dir_all(&tmp)
        .await
        .map_err(io(format!("creating `{}`", tmp.display())))?;
    for e in &entries {
        let path = tmp.join(&e.name);
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(io(format!("creating `{}`", path.display())))?;
        let got = store
            .get(&deltalake::Path::from(e.name.as_str()))
            .await
            .map_err(|err| {
                TableTaskError::from(tweetflow_delta::storage::classify_store(location, err))
            })?;
        let mut chunks = got.into_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|err| {
                TableTaskError::from(tweetflow_delta::storage::classify_store(location, err))
            })?;
            file.write_all(&chunk)
                .await
                .map_err(io(format!("writing `{}`", path.display())))?;
        }
        file.flush()
            .await
            .map_err(io(format!("writing `{}`", path.display())))?;
    }
    match tokio::fs::rename(&tmp, &dest).await {
        Ok(()) => {}
        // Another process copied the same content first.
        Err(_) if dest.is_dir() => {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
        }
        Err(e) => {
            return Err(io(format!("moving the model copy to `{}`", dest.display()))(e).into());
        }
    }
    tracing::info!(model = %location, dir = %dest.display(), files = entries.len(), "model copied from object storage");
    Ok(dest)
}
