//! Resolving `model` (a directory, an object-store prefix or a `models:/` URI) into a verified directory and what
//! gold records about it, and the model slot a run keeps across re-plans.

use std::path::PathBuf;

use tweetflow_mlflow::{Client, ClientConfig};
use tweetflow_model::{Manifest, ModelSource, Predictor};

use super::error::{InferError, InferResult};
use super::params::InferParams;
use super::remote_model;

/// `model_version` of a directory model whose manifest hash cannot be read.
pub const LOCAL_VERSION: &str = "local";

/// The model a run scores with: its verified directory and what gold records about it.
#[derive(Clone, Debug)]
pub struct ScoringModel {
    /// The verified model directory.
    pub dir: PathBuf,
    /// Recorded as `model_uri`.
    pub uri: String,
    /// Recorded as `model_version`.
    pub version: String,
    /// The directory's manifest, verified against its files when the model was resolved.
    pub manifest: Manifest,
}

/// Resolves `params.model`: a directory is verified, a `models:/` URI is resolved on the
/// registry (`tracking_uri`, else `MLFLOW_TRACKING_URI`) and downloaded into the cache once.
pub async fn resolve_model(params: &InferParams) -> InferResult<ScoringModel> {
    if remote_model::is_remote(&params.model) {
        let dir = remote_model::fetch(&params.model, &params.cache_dir()).await?;
        return directory_model(&dir, Some(params.model.trim()));
    }
    let source = ModelSource::parse(&params.model)?;
    match &source {
        ModelSource::Dir(dir) => directory_model(dir, None),
        ModelSource::Registry(_) => {
            let client = registry_client(params.tracking_uri.as_deref())?;
            let local = tweetflow_model::resolve(&client, &source, &params.cache_dir()).await?;
            tracing::info!(model = %params.model, version = ?local.version, dir = %local.dir.display(),
                from_cache = local.from_cache, offline = local.offline, "infer: model resolved");
            Ok(ScoringModel {
                uri: params.model.trim().to_string(),
                version: local
                    .version
                    .clone()
                    .unwrap_or_else(|| LOCAL_VERSION.into()),
                dir: local.dir,
                manifest: local.manifest,
            })
        }
    }
}

/// A model directory, verified; recorded as `uri` (default: its absolute path) and the first
/// 12 hex digits of its manifest's hash.
#[allow(clippy::result_large_err)]
fn directory_model(dir: &std::path::Path, uri: Option<&str>) -> InferResult<ScoringModel> {
    let manifest = tweetflow_model::verify_dir(dir)?;
    let uri = match uri {
        Some(uri) => uri.to_string(),
        None => std::path::absolute(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string(),
    };
    let version =
        tweetflow_model::manifest::sha256_file(&dir.join(tweetflow_model::manifest::MANIFEST_FILE))
            .map(|(hex, _)| hex.chars().take(12).collect())
            .unwrap_or_else(|_| LOCAL_VERSION.to_string());
    Ok(ScoringModel {
        dir: dir.to_path_buf(),
        uri,
        version,
        manifest,
    })
}

/// The registry client: `tracking_uri` when given (other settings from the `MLFLOW_*`
/// environment variables), else [`Client::from_env`].
#[allow(clippy::result_large_err)]
pub fn registry_client(tracking_uri: Option<&str>) -> InferResult<Client> {
    let config = match tracking_uri {
        Some(uri) => {
            let uri = uri.to_string();
            ClientConfig::from_lookup(move |k| {
                if k == "MLFLOW_TRACKING_URI" {
                    Some(uri.clone())
                } else {
                    std::env::var(k).ok()
                }
            })
        }
        None => ClientConfig::from_env(),
    }
    .map_err(InferError::Client)?;
    Client::new(config).map_err(InferError::Client)
}

/// The model of a run, resolved on first need and kept across re-plans.
#[derive(Default)]
pub struct LoadedModel {
    resolved: Option<(ScoringModel, Predictor)>,
}

impl LoadedModel {
    /// A model resolved already, with its predictor (which may hold a loaded classifier).
    pub fn new(model: ScoringModel, predictor: Predictor) -> Self {
        LoadedModel {
            resolved: Some((model, predictor)),
        }
    }

    /// The resolved model and its predictor for shard `shard` (its sessions, see
    /// [`InferParams::sessions`]), resolving `params.model` on first use.
    pub(super) async fn get(
        &mut self,
        params: &InferParams,
        shard: Option<tweetflow_engine::task::Shard>,
    ) -> InferResult<(&ScoringModel, &mut Predictor)> {
        let resolved = match self.resolved.take() {
            Some(resolved) => resolved,
            None => {
                let model = resolve_model(params).await?;
                let predictor = Predictor::verified(
                    model.dir.clone(),
                    model.manifest.clone(),
                    params.classifier_options(shard),
                    params.batch_size,
                )
                .with_sessions(params.sessions(shard).0);
                (model, predictor)
            }
        };
        let (model, predictor) = self.resolved.insert(resolved);
        Ok((model, predictor))
    }
}
