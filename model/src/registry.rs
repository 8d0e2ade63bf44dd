//! Model sources (`models:/` URIs or directories), a local cache of registry versions, and
//! registering a model directory in the MLflow model registry.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tweetflow_mlflow::{Client, MlflowRunStatus, ModelUri, RunTag};

use crate::classifier::{CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE};
use crate::error::{ModelError, Result};
use crate::manifest::{self, MANIFEST_FILE, Manifest};

/// Default model cache, relative to the working directory: `<cache>/<name>/<version>/`.
pub const DEFAULT_CACHE_DIR: &str = "data/model-cache";
/// The MLflow experiment whose runs hold registered model files.
pub const REGISTER_EXPERIMENT: &str = "tweetflow-models";
/// The artifact path (inside the run) of the model directory.
pub const MODEL_ARTIFACT_PATH: &str = "model";

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A local model directory.
    Dir(PathBuf),
    /// A registered model version: `models:/NAME@ALIAS`, `/VERSION`, `/latest`, `/STAGE`.
    Registry(ModelUri),
}

impl ModelSource {
    /// `models:/...` is a registry URI (an invalid one is an error); anything else is a
    /// directory path (checked when resolved).
    pub fn parse(source: &str) -> Result<ModelSource> {
        let s = source.trim();
        if s.is_empty() {
            return Err(ModelError::InvalidInput {
                what: "model source".into(),
                message: "empty; give a model directory or a models:/NAME@ALIAS URI".into(),
            });
        }
        if s.starts_with("models:") {
            return ModelUri::parse(s).map(ModelSource::Registry).map_err(|e| {
                ModelError::InvalidInput {
                    what: "model source".into(),
                    message: e.to_string(),
                }
            });
        }
        if s.contains(":/") && !Path::new(s).exists() {
            return Err(ModelError::InvalidInput {
                what: "model source".into(),
                message: format!(
                    "{s:?} is neither a directory nor a models:/ URI (runs:/ and other URIs are not supported: register the model and use models:/NAME@ALIAS, or give an s3://, az:// or gs:// prefix to infer)"
                ),
            });
        }
        Ok(ModelSource::Dir(PathBuf::from(s)))
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Dir(p) => write!(f, "{}", p.display()),
            ModelSource::Registry(u) => write!(f, "{u}"),
        }
    }
}

/// A model directory ready to load, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalModel {
    /// The verified model directory.
    pub dir: PathBuf,
    /// The `models:/` URI it was resolved from (`None` for a directory source).
    pub uri: Option<String>,
    /// Registered model name.
    pub name: Option<String>,
    /// The concrete version the URI resolved to.
    pub version: Option<String>,
    /// True when the files were already in the cache (nothing downloaded).
    pub from_cache: bool,
    /// True when the registry was unreachable and a cached copy of a pinned version was used.
    pub offline: bool,
    /// The directory's manifest, verified against its files by the resolution (pass it to
    /// [`crate::Classifier::load_verified`] rather than hashing the files again).
    pub manifest: Manifest,
}

/// A version created by [`register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredVersion {
    /// Registered model name.
    pub name: String,
    /// The new version number.
    pub version: String,
    /// The MLflow run holding the files (experiment [`REGISTER_EXPERIMENT`], or the run
    /// given to [`register_from_run`]).
    pub run_id: String,
    /// The version's source (`mlflow-artifacts:/.../artifacts/model`, or `runs:/<run>/model`).
    pub source: String,
    /// The alias set on it, if any.
    pub alias: Option<String>,
    /// `models:/NAME/VERSION`.
    pub uri: String,
}

/// A name usable as one path segment of the cache.
fn segment(what: &str, s: &str) -> Result<String> {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        return Err(ModelError::InvalidInput {
            what: what.into(),
            message: format!("{s:?} cannot name a cache directory"),
        });
    }
    Ok(cleaned)
}

/// The cache directory of one registered version: `<cache_dir>/<name>/<version>/`.
pub fn cache_path(cache_dir: &Path, name: &str, version: &str) -> Result<PathBuf> {
    Ok(cache_dir
        .join(segment("model name", name)?)
        .join(segment("model version", version)?))
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// Makes a model directory available locally.
///
/// * A directory source is verified (manifest) and returned as is.
/// * A `models:/` URI is resolved on the registry to a concrete version; its files are
///   downloaded once into `<cache_dir>/<name>/<version>/` (into a temporary directory first,
///   verified against its manifest, then renamed, so a cache entry is always complete) and
///   reused by later calls.
/// * Registry unreachable (or 429/5xx after the client's retries): if the URI pins a version
///   (`models:/NAME/3`) and that version is in the cache, the cached copy is used
///   (`offline = true`); otherwise a retryable error. Aliases, stages and `latest` are never
///   answered from the cache: what they point at may have moved.
pub async fn resolve(
    client: &Client,
    source: &ModelSource,
    cache_dir: &Path,
) -> Result<LocalModel> {
    let uri = match source {
        ModelSource::Dir(dir) => {
            let m = manifest::verify_dir(dir)?;
            return Ok(LocalModel {
                dir: dir.clone(),
                uri: None,
                name: None,
                version: None,
                from_cache: false,
                offline: false,
                manifest: m,
            });
        }
        ModelSource::Registry(uri) => uri,
    };
    let resolved = match client.resolve_model_uri(uri).await {
        Ok(r) => r,
        Err(e) if e.is_retryable() => {
            if let ModelUri::Version { name, version } = uri {
                let dir = cache_path(cache_dir, name, &version.to_string())?;
                if let Ok(m) = manifest::verify_dir(&dir) {
                    tracing::warn!(%uri, dir = %dir.display(), error = %e, "model registry unreachable; using the cached copy of the pinned version");
                    return Ok(LocalModel {
                        dir,
                        uri: Some(uri.to_string()),
                        name: Some(name.clone()),
                        version: Some(version.to_string()),
                        from_cache: true,
                        offline: true,
                        manifest: m,
                    });
                }
            }
            let why = match uri {
                ModelUri::Version { .. } => "the version is not in the local cache".to_string(),
                _ => format!(
                    "{uri} names no fixed version, so a cached copy is not used offline (pin a version, e.g. models:/{}/<N>, to allow that)",
                    uri.name()
                ),
            };
            return Err(ModelError::registry(format!("resolving {uri} ({why})"), e));
        }
        Err(e) => return Err(ModelError::registry(format!("resolving {uri}"), e)),
    };
    let dest = cache_path(cache_dir, &resolved.name, &resolved.version)?;
    let local = |dir: PathBuf, from_cache: bool, m: Manifest| LocalModel {
        dir,
        uri: Some(uri.to_string()),
        name: Some(resolved.name.clone()),
        version: Some(resolved.version.clone()),
        from_cache,
        offline: false,
        manifest: m,
    };
    if dest.exists() {
        match manifest::verify_dir(&dest) {
            Ok(m) => return Ok(local(dest, true, m)),
            Err(e) => {
                tracing::warn!(dir = %dest.display(), error = %e, "cached model is damaged; downloading it again");
                std::fs::remove_dir_all(&dest).map_err(|e| ModelError::io(&dest, e))?;
            }
        }
    }
    let parent = dest.parent().unwrap_or(cache_dir).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| ModelError::io(&parent, e))?;
    let tmp = parent.join(format!(".tmp-{}-{}", resolved.version, unique_suffix()));
    let downloaded = async {
        client
            .download_uri_contents(&resolved.artifact_uri, &tmp)
            .await
            .map_err(|e| {
                ModelError::registry(
                    format!(
                        "downloading {uri} (version {}) from {}",
                        resolved.version, resolved.artifact_uri
                    ),
                    e,
                )
            })?;
        manifest::verify_dir(&tmp)
    }
    .await;
    let m = match downloaded {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => Ok(local(dest, false, m)),
        Err(rename_err) => {
            // Another process may have finished the same download first.
            let _ = std::fs::remove_dir_all(&tmp);
            match manifest::verify_dir(&dest) {
                Ok(m) => Ok(local(dest, true, m)),
                Err(_) => Err(ModelError::io(&dest, rename_err)),
            }
        }
    }
}

/// The model-version tag holding the SHA-256 of the registered directory's `manifest.json`.
pub const MANIFEST_TAG: &str = "manifest_sha256";

/// Registers a model directory as a new version of `name`: verifies its manifest, uploads
/// the directory as the artifacts (`model/`) of a new run of the experiment
/// [`REGISTER_EXPERIMENT`], creates the registered model if needed, creates a version whose
/// source is the run's `mlflow-artifacts:` location, waits until it is ready and, when given,
/// points `alias` at it. Returns the new version.
///
/// This is what `tweetflow model register DIR --name NAME [--alias production]` runs.
pub async fn register(
    client: &Client,
    dir: &Path,
    name: &str,
    alias: Option<&str>,
) -> Result<RegisteredVersion> {
    let manifest_sha = check_model_dir(dir, name)?;
    let exp = client
        .get_or_create_experiment(REGISTER_EXPERIMENT)
        .await
        .map_err(|e| ModelError::registry(format!("experiment {REGISTER_EXPERIMENT}"), e))?;
    let run = client
        .create_run(
            &exp.experiment_id,
            Some(&format!("register-{name}")),
            &[
                RunTag::new("tweetflow.model_name", name),
                RunTag::new("tweetflow.model_dir", dir.display().to_string()),
                RunTag::new("tweetflow.manifest_sha256", manifest_sha.clone()),
            ],
        )
        .await
        .map_err(|e| ModelError::registry("creating the run that holds the model files", e))?;
    let run_id = run.info.run_id.clone();
    let result = publish(client, dir, name, alias, &run_id, &manifest_sha, false).await;
    let status = if result.is_ok() {
        MlflowRunStatus::Finished
    } else {
        MlflowRunStatus::Failed
    };
    if let Err(e) = client.end_run(&run_id, status).await {
        tracing::warn!(run_id, error = %e, "cannot close the registration run");
    }
    result
}

/// Registers a model directory as a new version of `name` built by the run `run_id` (e.g.
/// the training pipeline's run): uploads the directory into that run's artifacts (`model/`)
/// and creates a version with that `run_id` and the source `runs:/<run_id>/model`, so the
/// version page links to the run that built it. The run is left as it is. Otherwise as
/// [`register`].
pub async fn register_from_run(
    client: &Client,
    dir: &Path,
    name: &str,
    alias: Option<&str>,
    run_id: &str,
) -> Result<RegisteredVersion> {
    let manifest_sha = check_model_dir(dir, name)?;
    client
        .set_tag(run_id, "tweetflow.manifest_sha256", &manifest_sha)
        .await
        .map_err(|e| ModelError::registry(format!("tagging run {run_id}"), e))?;
    publish(client, dir, name, alias, run_id, &manifest_sha, true).await
}

/// Checks the name and the directory's manifest; returns the manifest's SHA-256.
fn check_model_dir(dir: &Path, name: &str) -> Result<String> {
    if name.trim().is_empty() || name.contains('/') {
        return Err(ModelError::InvalidInput {
            what: "registered model name".into(),
            message: format!("{name:?}: must be non-empty and without '/'"),
        });
    }
    let m = manifest::verify_dir(dir)?;
    for f in [MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE] {
        if !m.lists(f) {
            return Err(ModelError::Manifest {
                dir: dir.to_path_buf(),
                message: format!(
                    "{MANIFEST_FILE} does not list {f}; this is not a complete model directory"
                ),
            });
        }
    }
    let (manifest_sha, _) = manifest::sha256_file(&dir.join(MANIFEST_FILE))?;
    Ok(manifest_sha)
}

/// Uploads `dir` into the artifacts of `run_id`, creates the version (with a `runs:/` source
/// when `runs_source`, else the `mlflow-artifacts:` location), waits until it is ready and
/// sets `alias`.
async fn publish(
    client: &Client,
    dir: &Path,
    name: &str,
    alias: Option<&str>,
    run_id: &str,
    manifest_sha: &str,
    runs_source: bool,
) -> Result<RegisteredVersion> {
    client
        .log_artifacts(run_id, dir, Some(MODEL_ARTIFACT_PATH))
        .await
        .map_err(|e| ModelError::registry(format!("uploading {}", dir.display()), e))?;
    client
        .get_or_create_registered_model(name)
        .await
        .map_err(|e| ModelError::registry(format!("registered model {name}"), e))?;
    let tags = [(MANIFEST_TAG.to_string(), manifest_sha.to_string())];
    let mv = if runs_source {
        client
            .create_model_version_from_run(name, run_id, MODEL_ARTIFACT_PATH, &tags)
            .await
    } else {
        let root = client
            .artifact_root(run_id)
            .await
            .map_err(|e| ModelError::registry("reading the run's artifact root", e))?;
        let source = format!("{}/{MODEL_ARTIFACT_PATH}", root.trim_end_matches('/'));
        client
            .create_model_version(name, &source, Some(run_id), &tags)
            .await
    }
    .map_err(|e| ModelError::registry(format!("creating a version of {name}"), e))?;
    client
        .wait_model_version_ready(name, &mv.version, Duration::from_secs(120))
        .await
        .map_err(|e| ModelError::registry(format!("{name} version {}", mv.version), e))?;
    if let Some(a) = alias {
        client.set_alias(name, a, &mv.version).await.map_err(|e| {
            ModelError::registry(
                format!("setting alias {a} on {name} version {}", mv.version),
                e,
            )
        })?;
    }
    Ok(RegisteredVersion {
        name: name.to_string(),
        uri: format!("models:/{name}/{}", mv.version),
        version: mv.version,
        run_id: run_id.to_string(),
        source: mv.source,
        alias: alias.map(str::to_string),
    })
}
