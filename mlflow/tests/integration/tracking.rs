//! Tracking calls against the real server.

use std::collections::HashSet;

use tweetflow_mlflow::{
    Client, ClientConfig, DEFAULT_EXPERIMENT_ID, Error, ErrorCode, Metric, MlflowRunStatus, Param,
    RunTag, SearchRuns,
};

use crate::common::{client, client_config, server, unique};

#[tokio::test]
async fn experiments_get_create_and_race() {
    let c = client();
    let name = unique("exp");
    let missing = c.get_experiment_by_name(&name).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    assert_eq!(missing.status(), Some(404));
    assert!(!missing.is_retryable());

    // Concurrent get-or-create of one name: a single experiment comes out.
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let c = c.clone();
            let name = name.clone();
            tokio::spawn(async move { c.get_or_create_experiment(&name).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap().experiment_id);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = ids.into_iter().next().unwrap();

    let by_name = c.get_experiment_by_name(&name).await.unwrap();
    assert_eq!(by_name.experiment_id, id);
    assert!(
        by_name.artifact_location.starts_with("mlflow-artifacts:"),
        "{}",
        by_name.artifact_location
    );
    let by_id = c.get_experiment(&id).await.unwrap();
    assert_eq!(by_id.name, name);

    let dup = c.create_experiment(&name, &[]).await.unwrap_err();
    assert!(dup.is_already_exists(), "{dup}");
    assert_eq!(dup.code(), Some(&ErrorCode::ResourceAlreadyExists));

    let tagged = unique("exp-tagged");
    let tid = c
        .create_experiment(&tagged, &[("team".into(), "nlp".into())])
        .await
        .unwrap();
    let e = c.get_experiment(&tid).await.unwrap();
    assert!(
        e.tags.iter().any(|t| t.key == "team" && t.value == "nlp"),
        "{:?}",
        e.tags
    );

    assert!(c.get_experiment("999999").await.unwrap_err().is_not_found());
    assert!(matches!(
        c.create_experiment(" ", &[]).await,
        Err(Error::InvalidInput(_))
    ));

    // A deleted experiment is reported, not silently reused.
    let gone = unique("exp-deleted");
    let gid = c.create_experiment(&gone, &[]).await.unwrap();
    c.delete_experiment(&gid).await.unwrap();
    let err = c.get_or_create_experiment(&gone).await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InvalidState), "{err}");
}

#[tokio::test]
async fn default_experiment_from_env_config() {
    let name = unique("env-exp");
    let url = server().url.clone();
    let cfg = ClientConfig::from_lookup(|k| match k {
        "MLFLOW_TRACKING_URI" => Some(url.clone()),
        "MLFLOW_EXPERIMENT_NAME" => Some(name.clone()),
        _ => None,
    })
    .unwrap();
    let c = Client::new(cfg).unwrap();
    c.health().await.unwrap();
    let e = c.default_experiment().await.unwrap();
    assert_eq!(e.name, name);
    let d = client().default_experiment().await.unwrap();
    assert_eq!(d.experiment_id, DEFAULT_EXPERIMENT_ID);
}

#[tokio::test]
async fn runs_create_update_get_search_delete() {
    let c = client();
    let exp = c.get_or_create_experiment(&unique("runs")).await.unwrap();
    let run = c
        .create_run(
            &exp.experiment_id,
            Some("first"),
            &[RunTag::new("kind", "test"), RunTag::new("seed", "1")],
        )
        .await
        .unwrap();
    assert_eq!(run.info.run_name, "first");
    assert_eq!(run.info.status, MlflowRunStatus::Running);
    assert!(run.info.start_time.is_some());
    assert_eq!(run.data.tag("kind"), Some("test"));
    let id = run.info.run_id.clone();

    let info = c
        .update_run(&id, Some(MlflowRunStatus::Running), None, Some("renamed"))
        .await
        .unwrap();
    assert_eq!(info.run_name, "renamed");
    let info = c.end_run(&id, MlflowRunStatus::Finished).await.unwrap();
    assert_eq!(info.status, MlflowRunStatus::Finished);
    let got = c.get_run(&id).await.unwrap();
    assert_eq!(got.info.status, MlflowRunStatus::Finished);
    assert!(got.info.end_time.unwrap() >= got.info.start_time.unwrap());
    assert!(c.end_run(&id, MlflowRunStatus::Running).await.is_err());

    for i in 0..5 {
        let r = c
            .create_run(&exp.experiment_id, Some(&format!("r{i}")), &[])
            .await
            .unwrap();
        c.log_param(&r.info.run_id, "i", &i.to_string())
            .await
            .unwrap();
        c.log_metric(&r.info.run_id, &Metric::new("score", i as f64, 0))
            .await
            .unwrap();
    }
    let page = c
        .search_runs(
            &SearchRuns::in_experiments([exp.experiment_id.clone()]).filter("params.i = '3'"),
        )
        .await
        .unwrap();
    assert_eq!(page.runs.len(), 1);
    assert_eq!(page.runs[0].data.param("i"), Some("3"));
    let all = c
        .search_all_runs(
            &SearchRuns::in_experiments([exp.experiment_id.clone()])
                .max_results(2)
                .order_by("metrics.score DESC"),
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].data.metric("score"), Some(4.0));

    c.delete_run(&id).await.unwrap();
    let left = c
        .search_all_runs(&SearchRuns::in_experiments([exp.experiment_id.clone()]))
        .await
        .unwrap();
    assert_eq!(left.len(), 5);
    assert!(c.search_runs(&SearchRuns::default()).await.is_err());
}

#[tokio::test]
async fn missing_resources() {
    let c = client();
    let e = c
        .get_run("0123456789abcdef0123456789abcdef")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = c
        .log_metric(
            "0123456789abcdef0123456789abcdef",
            &Metric::new("m", 1.0, 0),
        )
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = c.create_run("987654", None, &[]).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    // An unknown route answers HTML: reported as such, not retried.
    let bad = Client::new(ClientConfig::new(format!(
        "{}/no/such/prefix",
        server().url
    )))
    .unwrap();
    let e = bad.get_experiment("0").await.unwrap_err();
    assert!(
        matches!(e, Error::UnexpectedResponse { status: 404, .. }),
        "{e}"
    );
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn log_metric_param_tag_and_history() {
    let c = client();
    let exp = c.get_or_create_experiment(&unique("log")).await.unwrap();
    let run = c.create_run(&exp.experiment_id, None, &[]).await.unwrap();
    let id = run.info.run_id.as_str();

    let points = [
        Metric::at("loss", 0.9, 0, 1_700_000_000_000),
        Metric::at("loss", 0.5, 1, 1_700_000_000_100),
        Metric::at("loss", 0.25, 2, 1_700_000_000_200),
    ];
    for p in &points {
        c.log_metric(id, p).await.unwrap();
    }
    let mut h = c.get_metric_history(id, "loss").await.unwrap();
    h.sort_by_key(|m| m.step);
    assert_eq!(h, points.to_vec());

    c.log_param(id, "lr", "0.01").await.unwrap();
    c.log_param(id, "lr", "0.01").await.unwrap(); // same value again: fine
    c.set_tag(id, "stage", "a").await.unwrap();
    c.set_tag(id, "stage", "b").await.unwrap(); // tags can change
    let got = c.get_run(id).await.unwrap();
    assert_eq!(got.data.param("lr"), Some("0.01"));
    assert_eq!(got.data.tag("stage"), Some("b"));
    assert_eq!(got.data.metric("loss"), Some(0.25));

    // Changing a param: refused by the client from its own record...
    match c.log_param(id, "lr", "0.02").await.unwrap_err() {
        Error::ParamChanged {
            key,
            logged,
            attempted,
            ..
        } => assert_eq!(
            (key.as_str(), logged.as_str(), attempted.as_str()),
            ("lr", "0.01", "0.02")
        ),
        e => panic!("{e}"),
    }
    let e = c
        .log_batch(id, &[], &[Param::new("lr", "0.03")], &[])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ParamChanged { .. }), "{e}");
    // ...and by the server for a client that has no record, mapped to the same error.
    let other = client();
    match other.log_param(id, "lr", "0.04").await.unwrap_err() {
        Error::ParamChanged {
            key,
            logged,
            attempted,
            ..
        } => assert_eq!(
            (key.as_str(), logged.as_str(), attempted.as_str()),
            ("lr", "0.01", "0.04")
        ),
        e => panic!("{e}"),
    }
    let e = other
        .log_batch(id, &[], &[Param::new("lr", "0.05")], &[])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ParamChanged { .. }), "{e}");
    let e = c
        .log_batch(id, &[], &[Param::new("x", "1"), Param::new("x", "2")], &[])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ParamChanged { .. }), "{e}");

    // Client-side validation.
    for bad in [
        c.log_metric(id, &Metric::new("nan", f64::NAN, 0)).await,
        c.log_metric(id, &Metric::new("inf", f64::INFINITY, 0))
            .await,
        c.log_metric(id, &Metric::new("", 1.0, 0)).await,
        c.log_param(id, "long", &"x".repeat(6001)).await,
        c.log_param(id, "", "v").await,
        c.log_param("", "k", "v").await,
        c.set_tag(id, "bad*key", "v").await,
    ] {
        assert!(matches!(bad, Err(Error::InvalidInput(_))), "{bad:?}");
    }
    let e = c
        .log_batch(
            id,
            &[Metric::new("ok", 1.0, 0), Metric::new("nan", f64::NAN, 1)],
            &[],
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)));
    assert!(
        c.get_metric_history(id, "ok").await.unwrap().is_empty(),
        "nothing sent when validation fails"
    );
    c.log_param(id, "long", &"x".repeat(6000)).await.unwrap();
    assert_eq!(
        c.get_run(id)
            .await
            .unwrap()
            .data
            .param("long")
            .map(str::len),
        Some(6000)
    );

    // Opt-in non-finite values travel as MLflow's strings and come back.
    let mut cfg = client_config();
    cfg.allow_non_finite_metrics = true;
    let lax = Client::new(cfg).unwrap();
    lax.log_metric(id, &Metric::at("nan", f64::NAN, 0, 5))
        .await
        .unwrap();
    lax.log_batch(
        id,
        &[
            Metric::at("inf", f64::INFINITY, 0, 5),
            Metric::at("inf", f64::NEG_INFINITY, 1, 6),
        ],
        &[],
        &[],
    )
    .await
    .unwrap();
    let h = c.get_metric_history(id, "nan").await.unwrap();
    assert!(h.len() == 1 && h[0].value.is_nan(), "{h:?}");
    let mut h = c.get_metric_history(id, "inf").await.unwrap();
    h.sort_by_key(|m| m.step);
    // The server stores infinities as the largest finite doubles.
    assert_eq!(
        h.iter().map(|m| m.value).collect::<Vec<_>>(),
        vec![f64::MAX, f64::MIN]
    );
}

#[tokio::test]
async fn log_batch_splits_to_server_limits() {
    let c = client();
    let exp = c.get_or_create_experiment(&unique("batch")).await.unwrap();
    let run = c
        .create_run(&exp.experiment_id, Some("batch"), &[])
        .await
        .unwrap();
    let id = run.info.run_id.as_str();
    let metrics: Vec<Metric> = (0..2500)
        .map(|i| {
            Metric::at(
                format!("m{}", i % 5),
                i as f64 / 10.0,
                (i / 5) as i64,
                1_000 + i as i64,
            )
        })
        .collect();
    let params: Vec<Param> = (0..250)
        .map(|i| Param::new(format!("p{i:03}"), format!("v{i}")))
        .collect();
    let tags: Vec<RunTag> = (0..150)
        .map(|i| RunTag::new(format!("t{i:03}"), format!("w{i}")))
        .collect();
    let report = c.log_batch(id, &metrics, &params, &tags).await.unwrap();
    assert_eq!(report.requests, 3, "{report:?}");
    assert_eq!(
        (report.metrics, report.params, report.tags),
        (2500, 250, 150)
    );

    let got = c.get_run(id).await.unwrap();
    assert_eq!(got.data.params.len(), 250);
    for p in &params {
        assert_eq!(got.data.param(&p.key), Some(p.value.as_str()));
    }
    for t in &tags {
        assert_eq!(got.data.tag(&t.key), Some(t.value.as_str()));
    }
    let mut total = 0;
    for k in 0..5 {
        let mut h = c.get_metric_history(id, &format!("m{k}")).await.unwrap();
        h.sort_by_key(|m| m.step);
        let want: Vec<Metric> = metrics
            .iter()
            .filter(|m| m.key == format!("m{k}"))
            .cloned()
            .collect();
        assert_eq!(h, want);
        total += h.len();
    }
    assert_eq!(total, 2500);
    // Re-sending points (what a retry after a lost answer does) stores them once.
    c.log_batch(id, &metrics[..50], &[], &[]).await.unwrap();
    assert_eq!(c.get_metric_history(id, "m0").await.unwrap().len(), 500);

    // Re-sending the same params is skipped; only the new one goes out.
    let again = c
        .log_batch(id, &[], &[params[0].clone(), Param::new("new", "1")], &[])
        .await
        .unwrap();
    assert_eq!((again.requests, again.params), (1, 1));
    // Concurrent variant.
    let more: Vec<Metric> = (0..3000).map(|i| Metric::at("c", i as f64, i, 7)).collect();
    let r = c
        .log_batch_concurrent(id, &more, &[], &[], 3)
        .await
        .unwrap();
    assert_eq!(r.requests, 3);
    assert_eq!(c.get_metric_history(id, "c").await.unwrap().len(), 3000);
}
