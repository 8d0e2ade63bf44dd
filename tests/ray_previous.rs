//! The `ray` executor on the previous minor release of Ray ([`PREVIOUS_RAY`], installed on
//! first use into its own venv beside the project's), set up as in production like
//! `tests/ray_token.rs`: token authentication, a head with no CPUs, a worker node that sees
//! none of the engine's files. The node's Python has no `onnxruntime` wheel, so the worker
//! takes the library named by `onnxruntime:` in the executor settings.
#![allow(clippy::unwrap_used)]

mod common;
mod ray_prod;

use common::task;
use ray_prod::{all_text, jobs_api};
use tweetflow_test_support::ray_token_cluster::{PREVIOUS_RAY, RayVersion, token_cluster};

/// The ONNX Runtime library of the project venv's `onnxruntime` wheel.
fn venv_onnxruntime() -> String {
    let lib = tweetflow_test_support::venv().join("lib");
    for py in std::fs::read_dir(&lib).unwrap().flatten() {
        let capi = py.path().join("site-packages/onnxruntime/capi");
        if let Ok(entries) = std::fs::read_dir(&capi) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with("libonnxruntime.so.") {
                    return e.path().display().to_string();
                }
            }
        }
    }
    panic!("no onnxruntime wheel in {}", lib.display());
}

#[test]
fn the_medallion_on_the_previous_ray_minor_equals_a_local_run() {
    if let Err(e) = tweetflow_test_support::ray_token_cluster::can_unshare() {
        panic!("{e}");
    }
    let c = token_cluster(
        RayVersion::Previous,
        std::path::Path::new(env!("CARGO_BIN_EXE_tweetflow")),
    );
    assert!(
        c.version.contains(&format!("{PREVIOUS_RAY}.")),
        "{}",
        c.version
    );
    let api = jobs_api(c);
    assert_eq!(api.status_without_token(), 401, "the cluster wants a token");
    let sb = common::Sandbox::new();
    let (bucket, model) = ray_prod::bucket_with_model("rayprev");
    let pipeline = ray_prod::medallion(
        &tweetflow_test_support::test_csv(),
        &model,
        &format!(
            "address: \"{}\", tweetflow: \"{}\", onnxruntime: \"{}\"",
            c.address,
            c.node_tweetflow,
            venv_onnxruntime()
        ),
        "",
    );
    sb.write("p.yaml", &pipeline);
    sb.write("local.yaml", &ray_prod::local_twin(&pipeline));
    let local_root = format!("s3://{bucket}/local");
    let ray_root = format!("s3://{bucket}/ray");
    let (code, local) = ray_prod::run(
        &sb,
        &["local.yaml", "--param", &format!("root={local_root}")],
        &[],
    );
    assert_eq!(code, 0, "{local}");
    let home = sb.path().display().to_string();
    let (code, record) = ray_prod::run(
        &sb,
        &[
            "p.yaml",
            "--param",
            &format!("root={ray_root}"),
            "--param",
            "shards=2",
        ],
        &[("RAY_AUTH_TOKEN", &c.token), ("HOME", &home)],
    );
    assert_eq!(code, 0, "{record:#}");
    assert_eq!(
        task(&record, "infer")["attempts"].as_array().unwrap().len(),
        2
    );
    ray_prod::assert_same_tables(&record, &local_root, &ray_root);
    let run_id = record["run_id"].as_str().unwrap();
    assert_eq!(api.jobs_of(run_id).len(), 6);
    let log = std::fs::read_to_string(sb.runs().join(run_id).join("log.jsonl")).unwrap();
    assert!(
        log.contains("`onnxruntime` of the executor settings"),
        "the runtime came from the executor settings"
    );
    assert!(!all_text(&sb.runs()).contains(&c.token));
    let overheads = ray_prod::overheads(&sb, run_id);
    let avg =
        |f: fn(&(f64, f64)) -> f64| overheads.iter().map(f).sum::<f64>() / overheads.len() as f64;
    eprintln!(
        "Ray {} with token auth: {} jobs, submit->start {:.0} ms, end->collected {:.0} ms on average",
        c.version,
        overheads.len(),
        avg(|o| o.0),
        avg(|o| o.1)
    );
}
