//! Artifacts through the tracking server's `mlflow-artifacts` proxy: upload, list, download.
//!
//! A run's artifact root is `mlflow-artifacts:/<experiment>/<run>/artifacts`; the proxy serves
//! it under `/api/2.0/mlflow-artifacts/artifacts/<experiment>/<run>/artifacts/...`. Only
//! `mlflow-artifacts:` locations (the default of `mlflow server --artifacts-destination`) and
//! `runs:/` URIs are handled.

use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::client::{Body, Client};
use crate::error::{Error, Result};
use crate::types::FileInfo;

/// Files transferred at the same time by directory uploads and downloads.
const TRANSFER_CONCURRENCY: usize = 4;

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    files: Vec<FileInfo>,
}

/// Turns an `mlflow-artifacts:` URI into the proxy's relative path.
///
/// Accepts `mlflow-artifacts:/1/abc/artifacts/x`, `mlflow-artifacts://host:port/1/abc/...`
/// and `mlflow-artifacts:1/abc/...`.
pub fn proxy_path(uri: &str) -> Result<String> {
    let rest = uri
        .strip_prefix("mlflow-artifacts:")
        .ok_or_else(|| Error::invalid_uri(uri, "not an mlflow-artifacts: URI (only artifacts served by the tracking server are supported)"))?;
    let rest = match rest.strip_prefix("//") {
        // `//host:port/path`: drop the authority.
        Some(auth_path) => match auth_path.find('/') {
            Some(i) => &auth_path[i..],
            None => "",
        },
        None => rest,
    };
    let path = rest.trim_matches('/');
    check_relative(uri, path)?;
    Ok(path.to_string())
}

fn check_relative(what: &str, path: &str) -> Result<()> {
    if path.split('/').any(|s| s == ".." || s == ".") || path.contains('\\') {
        return Err(Error::invalid_uri(
            what,
            "artifact paths must not contain '.', '..' or '\\' segments",
        ));
    }
    Ok(())
}

fn join(a: &str, b: &str) -> String {
    let (a, b) = (a.trim_matches('/'), b.trim_matches('/'));
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

impl Client {
    /// The artifact root of a run (`mlflow-artifacts:/...`), cached per run.
    pub async fn artifact_root(&self, run_id: &str) -> Result<String> {
        if let Some(r) = self.lock_roots().get(run_id) {
            return Ok(r.clone());
        }
        let run = self.get_run(run_id).await?;
        Ok(run.info.artifact_uri)
    }

    /// Resolves `runs:/<run_id>/<path>` or `mlflow-artifacts:/...` to an `mlflow-artifacts:` URI.
    pub async fn resolve_artifact_uri(&self, uri: &str) -> Result<String> {
        if let Some(rest) = uri.strip_prefix("runs:/") {
            let rest = rest.trim_start_matches('/');
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            if run_id.is_empty() {
                return Err(Error::invalid_uri(uri, "expected runs:/<run_id>/<path>"));
            }
            check_relative(uri, path)?;
            let root = self.artifact_root(run_id).await?;
            proxy_path(&root)?;
            return Ok(if path.is_empty() {
                root
            } else {
                format!("{}/{}", root.trim_end_matches('/'), path.trim_matches('/'))
            });
        }
        proxy_path(uri)?;
        Ok(uri.to_string())
    }

    /// Uploads one local file to `<artifact_dir_uri>/<name>` (an `mlflow-artifacts:` URI).
    /// The file is read in memory, so that a retry can send it again.
    pub async fn upload_file_to(
        &self,
        local: &Path,
        artifact_dir_uri: &str,
        name: &str,
    ) -> Result<()> {
        let dir = proxy_path(artifact_dir_uri)?;
        crate::validation::non_empty("artifact file name", name)?;
        let remote = join(&dir, name);
        check_relative(&remote, &remote)?;
        let data = tokio::fs::read(local)
            .await
            .map_err(|e| Error::io(local, e))?;
        let url = self.artifact_url(&remote)?;
        let endpoint = format!("mlflow-artifacts PUT {remote}");
        let resp = self
            .send_raw(
                Method::PUT,
                url,
                &endpoint,
                Body::Bytes(bytes::Bytes::from(data)),
                self.config().artifact_timeout,
            )
            .await?;
        drop(resp);
        Ok(())
    }

    /// Uploads a file to the run's artifacts, under `artifact_path` (or at the root), keeping
    /// its file name. Like `mlflow.log_artifact`.
    pub async fn log_artifact(
        &self,
        run_id: &str,
        local_file: &Path,
        artifact_path: Option<&str>,
    ) -> Result<()> {
        let name = local_file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::InvalidInput(format!("{} has no UTF-8 file name", local_file.display()))
            })?;
        let root = self.artifact_root(run_id).await?;
        let dir = match artifact_path {
            Some(p) => {
                check_relative(p, p.trim_matches('/'))?;
                format!("{}/{}", root.trim_end_matches('/'), p.trim_matches('/'))
            }
            None => root,
        };
        self.upload_file_to(local_file, &dir, name).await
    }

    /// Uploads the content of a local directory, recursively, to the run's artifacts under
    /// `artifact_path` (or at the root). Like `mlflow.log_artifacts`. Returns the number of
    /// files uploaded.
    pub async fn log_artifacts(
        &self,
        run_id: &str,
        local_dir: &Path,
        artifact_path: Option<&str>,
    ) -> Result<usize> {
        let root = self.artifact_root(run_id).await?;
        let dir = match artifact_path {
            Some(p) => {
                check_relative(p, p.trim_matches('/'))?;
                format!("{}/{}", root.trim_end_matches('/'), p.trim_matches('/'))
            }
            None => root,
        };
        self.upload_dir_to(local_dir, &dir).await
    }

    /// Uploads the content of a local directory, recursively, under an `mlflow-artifacts:` URI.
    pub async fn upload_dir_to(&self, local_dir: &Path, artifact_dir_uri: &str) -> Result<usize> {
        proxy_path(artifact_dir_uri)?;
        let files = walk(local_dir).await?;
        let n = files.len();
        futures::stream::iter(files)
            .map(|(path, rel)| async move {
                let (sub, name) = match rel.rsplit_once('/') {
                    Some((d, f)) => (
                        format!("{}/{}", artifact_dir_uri.trim_end_matches('/'), d),
                        f.to_string(),
                    ),
                    None => (artifact_dir_uri.to_string(), rel.clone()),
                };
                self.upload_file_to(&path, &sub, &name).await
            })
            .buffer_unordered(TRANSFER_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(n)
    }

    /// Lists the run's artifacts directly under `path` (the root when `None`). Paths in the
    /// answer are relative to the run's artifact root, like `mlflow.artifacts.list_artifacts`.
    pub async fn list_artifacts(&self, run_id: &str, path: Option<&str>) -> Result<Vec<FileInfo>> {
        let root = self.artifact_root(run_id).await?;
        let sub = path.unwrap_or("").trim_matches('/');
        check_relative(sub, sub)?;
        let uri = if sub.is_empty() {
            root
        } else {
            format!("{}/{}", root.trim_end_matches('/'), sub)
        };
        let mut files = self.list_artifacts_at(&uri).await?;
        for f in &mut files {
            f.path = join(sub, &f.path);
        }
        Ok(files)
    }

    /// Lists the entries directly under an `mlflow-artifacts:` URI; paths are relative to it.
    pub async fn list_artifacts_at(&self, uri: &str) -> Result<Vec<FileInfo>> {
        let path = proxy_path(uri)?;
        let url = self.artifact_list_url(&path)?;
        let a: ListAnswer = self
            .call_url(Method::GET, url, "mlflow-artifacts list", Body::None)
            .await?;
        let mut files = a.files;
        for f in &files {
            check_relative(&f.path, &f.path)?;
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Downloads a run artifact (a file, or a directory recursively) into `dest_dir`, keeping
    /// its name; with `path` empty, the whole artifact root goes into `dest_dir`. Returns the
    /// local path of what was downloaded.
    pub async fn download_artifacts(
        &self,
        run_id: &str,
        path: &str,
        dest_dir: &Path,
    ) -> Result<PathBuf> {
        let root = self.artifact_root(run_id).await?;
        let sub = path.trim_matches('/');
        check_relative(sub, sub)?;
        let uri = if sub.is_empty() {
            root
        } else {
            format!("{}/{}", root.trim_end_matches('/'), sub)
        };
        self.download_uri(&uri, dest_dir).await
    }

    /// Downloads what an `mlflow-artifacts:` or `runs:/` URI points at (a file, or a directory
    /// recursively) into `dest_dir`, keeping its name (the content of a URI naming a run's
    /// artifact root goes into `dest_dir` itself). Returns the local path.
    pub async fn download_uri(&self, uri: &str, dest_dir: &Path) -> Result<PathBuf> {
        self.fetch(uri, dest_dir, false).await
    }

    /// Downloads the content of the directory an `mlflow-artifacts:` or `runs:/` URI points at
    /// into `dest_dir` itself (a file goes to `dest_dir/<name>`). Returns `dest_dir`, or the file.
    pub async fn download_uri_contents(&self, uri: &str, dest_dir: &Path) -> Result<PathBuf> {
        self.fetch(uri, dest_dir, true).await
    }

    async fn fetch(&self, uri: &str, dest_dir: &Path, contents_only: bool) -> Result<PathBuf> {
        let uri = self.resolve_artifact_uri(uri).await?;
        let path = proxy_path(&uri)?;
        let name = path.rsplit('/').next().unwrap_or("").to_string();
        tokio::fs::create_dir_all(dest_dir)
            .await
            .map_err(|e| Error::io(dest_dir, e))?;
        let entries = self.list_artifacts_at(&uri).await?;
        if entries.is_empty() {
            // A file (listing a file answers nothing), or an empty directory.
            let target = dest_dir.join(if name.is_empty() { "artifact" } else { &name });
            self.download_file(&path, &target).await?;
            return Ok(target);
        }
        let is_run_root = name == "artifacts" && path.split('/').count() == 3;
        let local_root = if contents_only || is_run_root {
            dest_dir.to_path_buf()
        } else {
            dest_dir.join(&name)
        };
        // Breadth-first listing of every file under the URI.
        let mut files = Vec::new();
        let mut dirs = vec![(String::new(), entries)];
        while let Some((prefix, list)) = dirs.pop() {
            for f in list {
                let rel = join(&prefix, &f.path);
                if f.is_dir {
                    let sub = self
                        .list_artifacts_at(&format!("mlflow-artifacts:/{}", join(&path, &rel)))
                        .await?;
                    if sub.is_empty() {
                        let d = local_root.join(&rel);
                        tokio::fs::create_dir_all(&d)
                            .await
                            .map_err(|e| Error::io(&d, e))?;
                    }
                    dirs.push((rel, sub));
                } else {
                    files.push(rel);
                }
            }
        }
        futures::stream::iter(files)
            .map(|rel| {
                let remote = join(&path, &rel);
                let target = local_root.join(&rel);
                async move { self.download_file(&remote, &target).await }
            })
            .buffer_unordered(TRANSFER_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(local_root)
    }

    /// Downloads one file of the proxy (`path` relative to the proxy root) to `target`,
    /// through a temporary `.part` file renamed at the end.
    async fn download_file(&self, path: &str, target: &Path) -> Result<()> {
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| Error::io(parent, e))?;
        }
        let url = self.artifact_url(path)?;
        let endpoint = format!("mlflow-artifacts GET {path}");
        let timeout = self.config().artifact_timeout;
        let part = target.with_file_name(format!(
            ".{}.part",
            target
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("download")
        ));
        let fetched = self
            .with_retries(&endpoint, || {
                let url = url.clone();
                let part = part.clone();
                let endpoint = endpoint.clone();
                async move {
                    let mut resp = self
                        .send_checked_once(Method::GET, url, &endpoint, Body::None, timeout)
                        .await?;
                    let mut f = tokio::fs::File::create(&part)
                        .await
                        .map_err(|e| Error::io(&part, e))?;
                    while let Some(chunk) = resp
                        .chunk()
                        .await
                        .map_err(|e| self.map_reqwest(&endpoint, timeout, e))?
                    {
                        f.write_all(&chunk).await.map_err(|e| Error::io(&part, e))?;
                    }
                    f.flush().await.map_err(|e| Error::io(&part, e))?;
                    Ok(())
                }
            })
            .await;
        if let Err(e) = fetched {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        tokio::fs::rename(&part, target)
            .await
            .map_err(|e| Error::io(target, e))?;
        Ok(())
    }
}

/// Every file under `dir`, with its path relative to `dir` (`/`-separated), sorted.
async fn walk(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let meta = tokio::fs::metadata(dir)
        .await
        .map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::InvalidInput(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        let mut rd = tokio::fs::read_dir(&d)
            .await
            .map_err(|e| Error::io(&d, e))?;
        while let Some(entry) = rd.next_entry().await.map_err(|e| Error::io(&d, e))? {
            let name = entry.file_name().into_string().map_err(|n| {
                Error::InvalidInput(format!("non UTF-8 file name {n:?} in {}", d.display()))
            })?;
            let ft = entry
                .file_type()
                .await
                .map_err(|e| Error::io(entry.path(), e))?;
            let r = join(&rel, &name);
            if ft.is_dir() {
                stack.push((entry.path(), r));
            } else if ft.is_file()
                || (ft.is_symlink()
                    && tokio::fs::metadata(entry.path())
                        .await
                        .is_ok_and(|m| m.is_file()))
            {
                out.push((entry.path(), r));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths() {
        assert_eq!(
            proxy_path("mlflow-artifacts:/1/abc/artifacts").unwrap(),
            "1/abc/artifacts"
        );
        assert_eq!(
            proxy_path("mlflow-artifacts://127.0.0.1:5000/1/abc/artifacts/m").unwrap(),
            "1/abc/artifacts/m"
        );
        assert!(proxy_path("s3://bucket/x").is_err());
        assert!(proxy_path("mlflow-artifacts:/1/../x").is_err());
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a/", "/b"), "a/b");
    }
}
