//! Model registry round trip: register from uploaded artifacts, aliases, stages, every
//! `models:/` form, download.

use tweetflow_mlflow::{Error, ModelUri};

use crate::artifacts::{sample_tree, tree};
use crate::common::{client, unique};

#[tokio::test]
async fn registry_round_trip() {
    let c = client();
    let exp = c
        .get_or_create_experiment(&unique("registry"))
        .await
        .unwrap();
    let run = c
        .create_run(&exp.experiment_id, Some("train"), &[])
        .await
        .unwrap();
    let id = run.info.run_id.clone();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    sample_tree(&src);
    c.log_artifacts(&id, &src, Some("model")).await.unwrap();
    c.log_artifacts(&id, &src, Some("model_v2")).await.unwrap();
    std::fs::write(src.join("config.json"), "v3").unwrap();
    c.log_artifacts(&id, &src, Some("model_v3")).await.unwrap();

    let name = unique("sentiment");
    let missing = c.get_registered_model(&name).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    let m = c
        .create_registered_model(
            &name,
            Some("tweet sentiment"),
            &[("task".into(), "sentiment".into())],
        )
        .await
        .unwrap();
    assert_eq!(m.name, name);
    assert!(
        c.create_registered_model(&name, None, &[])
            .await
            .unwrap_err()
            .is_already_exists()
    );
    assert_eq!(
        c.get_or_create_registered_model(&name).await.unwrap().name,
        name
    );
    let got = c.get_registered_model(&name).await.unwrap();
    assert_eq!(got.description.as_deref(), Some("tweet sentiment"));

    // Version 1 from a runs:/ URI (resolved to mlflow-artifacts:), 2 and 3 from mlflow-artifacts: URIs.
    let v1 = c
        .create_model_version(&name, &format!("runs:/{id}/model"), None, &[])
        .await
        .unwrap();
    assert_eq!(v1.version, "1");
    assert!(v1.source.starts_with("mlflow-artifacts:/"), "{}", v1.source);
    assert_eq!(v1.run_id.as_deref(), Some(id.as_str()));
    let root = c.artifact_root(&id).await.unwrap();
    let v2 = c
        .create_model_version(
            &name,
            &format!("{root}/model_v2"),
            Some(&id),
            &[("k".into(), "v".into())],
        )
        .await
        .unwrap();
    let v3 = c
        .create_model_version(&name, &format!("{root}/model_v3"), None, &[])
        .await
        .unwrap();
    assert_eq!((v2.version.as_str(), v3.version.as_str()), ("2", "3"));
    assert!(
        c.create_model_version(&name, "s3://bucket/model", None, &[])
            .await
            .is_err()
    );

    let ready = c
        .wait_model_version_ready(&name, "3", std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(ready.status.as_deref(), Some("READY"));
    let g = c.get_model_version(&name, "2").await.unwrap();
    assert_eq!(g.source, v2.source);
    assert!(g.tags.iter().any(|t| t.key == "k" && t.value == "v"));
    assert!(
        c.get_model_version(&name, "99")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let all = c.model_versions(&name).await.unwrap();
    assert_eq!(
        all.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(),
        vec!["3", "2", "1"]
    );
    let searched = c
        .search_model_versions(&format!("name='{name}'"))
        .await
        .unwrap();
    assert_eq!(searched.len(), 3);
    assert_eq!(
        c.get_model_version_download_uri(&name, "1").await.unwrap(),
        v1.source
    );

    // Aliases.
    c.set_alias(&name, "champion", "1").await.unwrap();
    c.set_alias(&name, "challenger", "2").await.unwrap();
    assert_eq!(
        c.get_model_version_by_alias(&name, "champion")
            .await
            .unwrap()
            .version,
        "1"
    );
    assert!(
        c.get_registered_model(&name)
            .await
            .unwrap()
            .aliases
            .iter()
            .any(|a| a.alias == "challenger" && a.version == "2")
    );
    assert!(matches!(
        c.set_alias(&name, "v2", "2").await,
        Err(Error::InvalidInput(_))
    ));
    c.delete_alias(&name, "challenger").await.unwrap();
    let e = c
        .get_model_version_by_alias(&name, "challenger")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");

    // Stages.
    let p = c
        .transition_stage(&name, "2", "production", false)
        .await
        .unwrap();
    assert_eq!(p.current_stage.as_deref(), Some("Production"));
    let latest = c.get_latest_versions(&name, &["Production"]).await.unwrap();
    assert_eq!(
        latest
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>(),
        vec!["2"]
    );
    assert!(c.transition_stage(&name, "2", "Prod", false).await.is_err());

    // Every models:/ form.
    for (uri, want) in [
        (format!("models:/{name}@champion"), "1"),
        (format!("models:/{name}/2"), "2"),
        (format!("models:/{name}/latest"), "3"),
        (format!("models:/{name}/Production"), "2"),
    ] {
        let r = c
            .resolve_model_uri(&ModelUri::parse(&uri).unwrap())
            .await
            .unwrap();
        assert_eq!(r.version, want, "{uri}");
        assert_eq!(r.artifact_uri, r.model_version.source, "{uri}");
    }
    for uri in [
        format!("models:/{name}/Staging"),
        format!("models:/{name}@nobody"),
        format!("models:/{name}/42"),
        format!("models:/{}/1", unique("nomodel")),
    ] {
        let e = c
            .resolve_model_uri(&ModelUri::parse(&uri).unwrap())
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{uri}: {e}");
    }

    // Download a model version's files.
    let dest = tmp.path().join("dl");
    let (r, path) = c
        .download_model(&format!("models:/{name}@champion"), &dest)
        .await
        .unwrap();
    assert_eq!((r.version.as_str(), path.as_path()), ("1", dest.as_path()));
    let mut want = tree(&src);
    want.insert(
        "config.json".into(),
        br#"{"id2label": {"0": "NEG", "1": "NEU", "2": "POS"}}"#.to_vec(),
    );
    assert_eq!(tree(&dest), want);
    let dest3 = tmp.path().join("dl3");
    c.download_model(&format!("models:/{name}/latest"), &dest3)
        .await
        .unwrap();
    assert_eq!(tree(&dest3), tree(&src));
    assert!(matches!(
        c.download_model("models:/oops", &dest).await,
        Err(Error::InvalidUri { .. })
    ));

    c.delete_registered_model(&name).await.unwrap();
    assert!(
        c.get_registered_model(&name)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        c.get_model_version(&name, "1")
            .await
            .unwrap_err()
            .is_not_found()
    );
}
