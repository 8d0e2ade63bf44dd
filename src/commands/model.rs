//! `tweetflow model register|resolve`: the MLflow model registry by hand.

use tweetflow_mlflow::{Client, ModelUri};
use tweetflow_model::{ModelSource, resolve};

use crate::cli::ModelCommand;
use crate::exit;

/// Runs a model command against `MLFLOW_TRACKING_URI`.
pub async fn model(command: ModelCommand) -> anyhow::Result<u8> {
    let client = Client::from_env()?;
    match command {
        ModelCommand::Register {
            dir,
            name,
            alias,
            if_missing,
            if_changed,
            run_id,
        } => {
            if (if_missing || if_changed)
                && let Some(alias) = &alias
            {
                let uri = ModelUri::parse(&format!("models:/{name}@{alias}"))?;
                match client.resolve_model_uri(&uri).await {
                    Ok(found) if if_missing => {
                        println!(
                            "{name}@{alias} is already version {}: nothing to do",
                            found.version
                        );
                        return Ok(exit::OK);
                    }
                    Ok(found) => {
                        let (local_sha, _) = tweetflow_model::manifest::sha256_file(
                            &dir.join(tweetflow_model::manifest::MANIFEST_FILE),
                        )?;
                        let same = found.model_version.tags.iter().any(|t| {
                            t.key == tweetflow_model::registry::MANIFEST_TAG && t.value == local_sha
                        });
                        if same {
                            println!(
                                "{name}@{alias} is already version {} with this manifest: nothing to do",
                                found.version
                            );
                            return Ok(exit::OK);
                        }
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let registered = match run_id.as_deref().filter(|r| !r.trim().is_empty()) {
                Some(run) => {
                    tweetflow_model::register_from_run(&client, &dir, &name, alias.as_deref(), run)
                        .await?
                }
                None => tweetflow_model::register(&client, &dir, &name, alias.as_deref()).await?,
            };
            println!(
                "registered {} version {}{} from {}",
                registered.name,
                registered.version,
                registered
                    .alias
                    .as_deref()
                    .map(|a| format!(" (alias {a})"))
                    .unwrap_or_default(),
                dir.display()
            );
            Ok(exit::OK)
        }
        ModelCommand::Resolve { uri, cache_dir } => {
            let source = ModelSource::parse(&uri)?;
            let local = resolve(&client, &source, &cache_dir).await?;
            println!(
                "{uri} -> {} (version {}{})",
                local.dir.display(),
                local.version.as_deref().unwrap_or("local"),
                if local.from_cache {
                    ", from the local cache"
                } else {
                    ""
                }
            );
            let classifier = tweetflow_model::Classifier::load(
                &local.dir,
                tweetflow_model::ClassifierOptions::default(),
            )?;
            println!("loads: labels {:?}", classifier.labels());
            Ok(exit::OK)
        }
    }
}
