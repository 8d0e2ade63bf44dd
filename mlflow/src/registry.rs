//! Model registry: registered models, versions, aliases, stages, `models:/` resolution and
//! model download.

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::client::Client;
use crate::error::{Error, ErrorCode, Result};
use crate::model_uri::{ModelUri, STAGES};
use crate::types::{ModelVersion, RegisteredModel};
use crate::validation;

/// A `models:/` URI resolved to one concrete version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    /// The URI that was resolved.
    pub uri: ModelUri,
    /// Registered model name.
    pub name: String,
    /// Concrete version.
    pub version: String,
    /// Where its files are (`mlflow-artifacts:/...`), from `get-download-uri`.
    pub artifact_uri: String,
    /// The version's full record.
    pub model_version: ModelVersion,
}

#[derive(Deserialize)]
struct RegisteredModelAnswer {
    registered_model: RegisteredModel,
}

#[derive(Deserialize)]
struct ModelVersionAnswer {
    model_version: ModelVersion,
}

#[derive(Deserialize)]
struct ModelVersionsAnswer {
    #[serde(default)]
    model_versions: Vec<ModelVersion>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct DownloadUriAnswer {
    artifact_uri: String,
}

#[derive(Deserialize)]
struct Empty {}

fn canonical_stage(stage: &str) -> Result<&'static str> {
    STAGES
        .iter()
        .copied()
        .find(|s| s.eq_ignore_ascii_case(stage))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "unknown stage {stage:?}; expected one of {}",
                STAGES.join(", ")
            ))
        })
}

fn tags_json(tags: &[(String, String)]) -> Vec<serde_json::Value> {
    tags.iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

impl Client {
    /// Creates a registered model. Fails with `ResourceAlreadyExists` if the name is taken.
    pub async fn create_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<RegisteredModel> {
        validation::non_empty("registered model name", name)?;
        let mut body = json!({"name": name, "tags": tags_json(tags)});
        if let Some(d) = description {
            body["description"] = json!(d);
        }
        let a: RegisteredModelAnswer = self
            .call(Method::POST, "registered-models/create", &[], Some(&body))
            .await?;
        Ok(a.registered_model)
    }

    /// A registered model (with its aliases and latest version per stage).
    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        validation::non_empty("registered model name", name)?;
        let a: RegisteredModelAnswer = self
            .call::<(), _>(
                Method::GET,
                "registered-models/get",
                &[("name", name)],
                None,
            )
            .await?;
        Ok(a.registered_model)
    }

    /// The registered model of that name, created if missing (race-free: an
    /// `RESOURCE_ALREADY_EXISTS` from the create leads to a lookup).
    pub async fn get_or_create_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        match self.create_registered_model(name, None, &[]).await {
            Ok(m) => Ok(m),
            Err(e) if e.is_already_exists() => self.get_registered_model(name).await,
            Err(e) => Err(e),
        }
    }

    /// Deletes a registered model and all its versions.
    pub async fn delete_registered_model(&self, name: &str) -> Result<()> {
        validation::non_empty("registered model name", name)?;
        let _: Empty = self
            .call(
                Method::DELETE,
                "registered-models/delete",
                &[],
                Some(&json!({"name": name})),
            )
            .await?;
        Ok(())
    }

    /// Registers a new version of a model. `source` is where its files are: an
    /// `mlflow-artifacts:/...` URI, or a `runs:/<run_id>/<path>` URI which is resolved here to
    /// the run's `mlflow-artifacts:` location (the server wants the former). The server also
    /// wants the `run_id` of a source inside a run's artifacts: when not given, it is taken from
    /// the source (`<experiment>/<run_id>/artifacts/...`).
    pub async fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<ModelVersion> {
        validation::non_empty("registered model name", name)?;
        validation::non_empty("model version source", source)?;
        let (source, run_id) = match source.strip_prefix("runs:/") {
            Some(rest) => {
                let from_uri = rest
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                (
                    self.resolve_artifact_uri(source).await?,
                    Some(run_id.map(str::to_string).unwrap_or(from_uri)),
                )
            }
            None => {
                let path = crate::artifacts::proxy_path(source)?;
                (
                    source.to_string(),
                    run_id
                        .map(str::to_string)
                        .or_else(|| run_id_of_artifact_path(&path)),
                )
            }
        };
        let mut body = json!({"name": name, "source": source, "tags": tags_json(tags)});
        if let Some(r) = run_id {
            body["run_id"] = json!(r);
        }
        let a: ModelVersionAnswer = self
            .call(Method::POST, "model-versions/create", &[], Some(&body))
            .await?;
        Ok(a.model_version)
    }

    /// Registers a new version of a model built by run `run_id`, with the source
    /// `runs:/<run_id>/<artifact_path>` kept as such, so the version page links to that run.
    /// The files must already be in the run's artifacts under `artifact_path`.
    pub async fn create_model_version_from_run(
        &self,
        name: &str,
        run_id: &str,
        artifact_path: &str,
        tags: &[(String, String)],
    ) -> Result<ModelVersion> {
        validation::non_empty("registered model name", name)?;
        validation::non_empty("run id", run_id)?;
        let source = format!("runs:/{run_id}/{}", artifact_path.trim_matches('/'));
        let body = json!({
            "name": name,
            "source": source,
            "run_id": run_id,
            "tags": tags_json(tags),
        });
        let a: ModelVersionAnswer = self
            .call(Method::POST, "model-versions/create", &[], Some(&body))
            .await?;
        Ok(a.model_version)
    }

    /// One version of a model.
    pub async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        validation::non_empty("registered model name", name)?;
        validation::non_empty("model version", version)?;
        let a: ModelVersionAnswer = self
            .call::<(), _>(
                Method::GET,
                "model-versions/get",
                &[("name", name), ("version", version)],
                None,
            )
            .await?;
        Ok(a.model_version)
    }

    /// Polls a version until its registration is done: `Ok` once `READY`, an error on
    /// `FAILED_REGISTRATION` or after `timeout`. The SQL store registers synchronously; remote
    /// registries may answer `PENDING_REGISTRATION` first.
    pub async fn wait_model_version_ready(
        &self,
        name: &str,
        version: &str,
        timeout: std::time::Duration,
    ) -> Result<ModelVersion> {
        let start = std::time::Instant::now();
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            let mv = self.get_model_version(name, version).await?;
            match mv.status.as_deref() {
                None | Some("READY") => return Ok(mv),
                Some("FAILED_REGISTRATION") => {
                    return Err(Error::Api {
                        code: ErrorCode::InvalidState,
                        message: format!(
                            "registration of {name} version {version} failed: {}",
                            mv.status_message.as_deref().unwrap_or("no message")
                        ),
                        status: 400,
                        endpoint: "model-versions/get".into(),
                    });
                }
                Some(other) if start.elapsed() >= timeout => {
                    return Err(Error::Timeout {
                        endpoint: format!(
                            "model-versions/get ({name} version {version} still {other})"
                        ),
                        timeout,
                    });
                }
                Some(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
    }

    /// All versions matching a filter (e.g. `name='sentiment'`), following the pages.
    pub async fn search_model_versions(&self, filter: &str) -> Result<Vec<ModelVersion>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("max_results", "10000")];
            if !filter.is_empty() {
                q.push(("filter", filter));
            }
            if let Some(t) = token.as_deref() {
                q.push(("page_token", t));
            }
            let a: ModelVersionsAnswer = self
                .call::<(), _>(Method::GET, "model-versions/search", &q, None)
                .await?;
            out.extend(a.model_versions);
            match a.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// All versions of one model, highest first.
    pub async fn model_versions(&self, name: &str) -> Result<Vec<ModelVersion>> {
        validation::non_empty("registered model name", name)?;
        let mut v = self
            .search_model_versions(&format!("name='{}'", name.replace('\'', "\\'")))
            .await?;
        v.sort_by_key(|m| std::cmp::Reverse(m.version_number()));
        Ok(v)
    }

    /// Points an alias at a version (moving it if it pointed elsewhere).
    pub async fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<()> {
        validation::non_empty("registered model name", name)?;
        validation::alias(alias)?;
        validation::non_empty("model version", version)?;
        let body = json!({"name": name, "alias": alias, "version": version});
        let _: Empty = self
            .call(Method::POST, "registered-models/alias", &[], Some(&body))
            .await?;
        Ok(())
    }

    /// The version an alias points at. A missing alias is reported with `ResourceDoesNotExist`
    /// (the server answers it with a 400 `INVALID_PARAMETER_VALUE`).
    pub async fn get_model_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion> {
        validation::non_empty("registered model name", name)?;
        validation::non_empty("alias", alias)?;
        let r: Result<ModelVersionAnswer> = self
            .call::<(), _>(
                Method::GET,
                "registered-models/alias",
                &[("name", name), ("alias", alias)],
                None,
            )
            .await;
        match r {
            Ok(a) => Ok(a.model_version),
            Err(Error::Api {
                code: ErrorCode::InvalidParameterValue,
                message,
                status,
                endpoint,
            }) if message.to_ascii_lowercase().contains("not found") => Err(Error::Api {
                code: ErrorCode::ResourceDoesNotExist,
                message,
                status,
                endpoint,
            }),
            Err(e) => Err(e),
        }
    }

    /// Removes an alias.
    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        validation::non_empty("registered model name", name)?;
        validation::non_empty("alias", alias)?;
        let body = json!({"name": name, "alias": alias});
        let _: Empty = self
            .call(Method::DELETE, "registered-models/alias", &[], Some(&body))
            .await?;
        Ok(())
    }

    /// Moves a version to a stage (`None`, `Staging`, `Production`, `Archived`; any case),
    /// optionally archiving the versions currently in that stage. Stages are deprecated in
    /// MLflow in favour of aliases but still served.
    pub async fn transition_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        validation::non_empty("registered model name", name)?;
        validation::non_empty("model version", version)?;
        let stage = canonical_stage(stage)?;
        let body = json!({"name": name, "version": version, "stage": stage, "archive_existing_versions": archive_existing});
        let a: ModelVersionAnswer = self
            .call(
                Method::POST,
                "model-versions/transition-stage",
                &[],
                Some(&body),
            )
            .await?;
        Ok(a.model_version)
    }

    /// The latest version in each of the given stages (every stage when empty).
    pub async fn get_latest_versions(
        &self,
        name: &str,
        stages: &[&str],
    ) -> Result<Vec<ModelVersion>> {
        validation::non_empty("registered model name", name)?;
        let stages: Vec<&str> = stages
            .iter()
            .map(|s| canonical_stage(s))
            .collect::<Result<_>>()?;
        let body = json!({"name": name, "stages": stages});
        let a: ModelVersionsAnswer = self
            .call(
                Method::POST,
                "registered-models/get-latest-versions",
                &[],
                Some(&body),
            )
            .await?;
        Ok(a.model_versions)
    }

    /// Where a version's files can be downloaded from (an `mlflow-artifacts:` URI).
    pub async fn get_model_version_download_uri(
        &self,
        name: &str,
        version: &str,
    ) -> Result<String> {
        validation::non_empty("registered model name", name)?;
        validation::non_empty("model version", version)?;
        let a: DownloadUriAnswer = self
            .call::<(), _>(
                Method::GET,
                "model-versions/get-download-uri",
                &[("name", name), ("version", version)],
                None,
            )
            .await?;
        Ok(a.artifact_uri)
    }

    /// Resolves a `models:/` URI to a concrete version and its artifact location.
    ///
    /// `latest` is the highest version number (any stage); a stage is the highest version in
    /// that stage. No match is reported with `ResourceDoesNotExist`.
    pub async fn resolve_model_uri(&self, uri: &ModelUri) -> Result<ResolvedModel> {
        let mv = match uri {
            ModelUri::Version { name, version } => {
                self.get_model_version(name, &version.to_string()).await?
            }
            ModelUri::Alias { name, alias } => self.get_model_version_by_alias(name, alias).await?,
            ModelUri::Latest { name } => {
                let all = self.get_latest_versions(name, &[]).await?;
                all.into_iter()
                    .max_by_key(|m| m.version_number())
                    .ok_or_else(|| not_found(uri))?
            }
            ModelUri::Stage { name, stage } => {
                let all = self.get_latest_versions(name, &[stage.as_str()]).await?;
                all.into_iter()
                    .max_by_key(|m| m.version_number())
                    .ok_or_else(|| not_found(uri))?
            }
        };
        let artifact_uri = self
            .get_model_version_download_uri(&mv.name, &mv.version)
            .await?;
        Ok(ResolvedModel {
            uri: uri.clone(),
            name: mv.name.clone(),
            version: mv.version.clone(),
            artifact_uri,
            model_version: mv,
        })
    }

    /// Resolves a `models:/` URI and downloads the version's files into `dest_dir` (the content
    /// of the model directory goes into `dest_dir` itself). Returns the resolution.
    pub async fn download_model(
        &self,
        uri: &str,
        dest_dir: &Path,
    ) -> Result<(ResolvedModel, PathBuf)> {
        let parsed = ModelUri::parse(uri)?;
        let resolved = self.resolve_model_uri(&parsed).await?;
        let path = self
            .download_uri_contents(&resolved.artifact_uri, dest_dir)
            .await?;
        Ok((resolved, path))
    }
}

/// The run id in a proxy path of the default layout `<experiment>/<run_id>/artifacts/...`.
fn run_id_of_artifact_path(path: &str) -> Option<String> {
    let mut segs = path.split('/');
    let (_exp, run, art) = (segs.next()?, segs.next()?, segs.next()?);
    (art == "artifacts" && run.len() == 32 && run.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| run.to_string())
}

fn not_found(uri: &ModelUri) -> Error {
    Error::Api {
        code: ErrorCode::ResourceDoesNotExist,
        message: format!("no model version matches {uri}"),
        status: 404,
        endpoint: "registered-models/get-latest-versions".into(),
    }
}

/// Tag pairs for the registry calls, from `(key, value)` string slices.
pub fn model_tags(tags: &[(&str, &str)]) -> Vec<(String, String)> {
    tags.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_from_source() {
        let run = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            run_id_of_artifact_path(&format!("1/{run}/artifacts/model")),
            Some(run.to_string())
        );
        assert_eq!(run_id_of_artifact_path("1/models/m-123/artifacts"), None);
        assert_eq!(run_id_of_artifact_path("1"), None);
        assert_eq!(canonical_stage("production").unwrap(), "Production");
        assert!(canonical_stage("prod").is_err());
    }
}
