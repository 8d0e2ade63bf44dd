//! The `tweetflow` binary with tables and landing folders on a real S3 API server (moto,
//! started by the tests): a pipeline whose `storage:` section carries the credentials (never
//! recorded), `tweetflow table show|optimize|vacuum|reset` on `s3://` tables with the
//! standard `AWS_*` variables, and misconfigurations as config errors naming the param; the
//! whole main pipeline on S3 and on Azure Blob Storage (Azurite) equals the local run.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Sandbox, status, task};
use tweetflow_test_support::{azurite, s3_server};

fn pipeline(root: &str, endpoint: &str, secret_from: &str) -> String {
    let csv = tweetflow_test_support::test_csv().display().to_string();
    format!(
        r#"name: lake
params: {{ root: "{root}" }}
storage:
  aws_endpoint_url: "{endpoint}"
  aws_access_key_id: {key}
  aws_secret_access_key: "{secret_from}"
  aws_region: us-east-1
  aws_allow_http: true
tasks:
  replay:
    type: replay
    with: {{ csv: "{csv}", landing: "${{params.root}}/landing", tweets_per_file: 100 }}
  ingest:
    type: ingest
    depends_on: [replay]
    with: {{ source: "${{params.root}}/landing", table: "${{params.root}}/bronze", settle_time: 0s }}
  clean:
    type: clean
    depends_on: [ingest]
    with: {{ input: "${{params.root}}/bronze", table: "${{params.root}}/silver" }}
  aggregate:
    type: aggregate
    depends_on: [clean]
    with: {{ input: "${{params.root}}/silver", table: "${{params.root}}/mentions" }}
"#,
        key = s3_server::ACCESS_KEY_ID,
    )
}

/// Every file under `dir`, as text.
fn all_text(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.push_str(&all_text(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

#[test]
fn a_pipeline_on_s3_records_no_credential_and_its_tables_are_maintained_by_hand() {
    let server = s3_server::server();
    let root = format!("s3://{}/lake", s3_server::bucket("cli"));
    let sb = Sandbox::new();
    sb.write(
        "lake.yaml",
        &pipeline(&root, &server.endpoint, "${env.LAKE_SECRET}"),
    );
    let out = sb
        .cmd(&["run", "lake.yaml", "--json"])
        .env("LAKE_SECRET", s3_server::SECRET_ACCESS_KEY)
        .output()
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        out.status.code(),
        Some(0),
        "{record:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in ["replay", "ingest", "clean", "aggregate"] {
        assert_eq!(status(&record, id), "succeeded", "{:#}", task(&record, id));
    }
    // The run store holds `***` where the secret was, never the secret.
    let stored = all_text(&sb.runs());
    assert!(!stored.contains(s3_server::SECRET_ACCESS_KEY));
    let plan =
        std::fs::read_to_string(sb.runs().join(sb.run_ids()[0].clone()).join("plan.json")).unwrap();
    assert!(plan.contains(r#""aws_secret_access_key": "***""#), "{plan}");
    assert!(plan.contains(&server.endpoint), "{plan}");

    // The table commands on s3:// with the standard AWS_* variables.
    let bronze = format!("{root}/bronze");
    let show = sb
        .cmd(&["table", "show", &bronze])
        .envs(server.env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(text.contains("rows"), "{text}");
    for args in [
        vec!["table", "optimize", bronze.as_str()],
        vec!["table", "vacuum", bronze.as_str(), "--dry-run"],
        vec!["table", "reset", bronze.as_str(), "--confirm"],
    ] {
        let out = sb.cmd(&args).envs(server.env()).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let gone = sb
        .cmd(&["table", "show", &bronze])
        .envs(server.env())
        .output()
        .unwrap();
    assert!(!gone.status.success());
}

#[test]
fn misconfigured_storage_is_a_config_error_naming_the_param() {
    let server = s3_server::server();
    let sb = Sandbox::new();
    // A bucket that does not exist: ingest names `source`, not retried.
    sb.write(
        "lake.yaml",
        &pipeline(
            "s3://no-such-bucket-anywhere/lake",
            &server.endpoint,
            "${env.LAKE_SECRET}",
        )
        .replace(
            "tasks:",
            "defaults: { retries: { max_attempts: 3, initial_delay: 10ms } }\ntasks:",
        ),
    );
    let out = sb
        .cmd(&["run", "lake.yaml", "--json"])
        .env("LAKE_SECRET", s3_server::SECRET_ACCESS_KEY)
        .output()
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{record:#}");
    let replay = task(&record, "replay");
    let tries = replay["attempts"].as_array().unwrap();
    assert_eq!(tries.len(), 1, "a config error is not retried: {replay:#}");
    assert_eq!(tries[0]["error"]["kind"], "config", "{replay:#}");
    let message = tries[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("param `landing`") && message.contains("bucket does not exist"),
        "{replay:#}"
    );
    assert!(!all_text(&sb.runs()).contains(s3_server::SECRET_ACCESS_KEY));
}

/// The row sets of `tables` under `root`, read by the Python `deltalake` package: each row as
/// JSON without the columns that record when it was processed and where the model was read
/// from, sorted.
fn python_row_sets(root: &str, tables: &[&str], env: &[(String, String)]) -> serde_json::Value {
    let script = r#"
import json, os, sys
import deltalake
root, out = sys.argv[1], {}
for name in sys.argv[2:]:
    t = deltalake.DeltaTable(f"{root}/{name}").to_pyarrow_table()
    cols = [c for c in t.column_names if c not in ("processing_time", "model_uri")]
    rows = [json.dumps({c: t.column(c)[i].as_py() for c in cols}, default=str, sort_keys=True) for i in range(t.num_rows)]
    out[name] = sorted(rows)
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"#;
    let mut args = vec![root];
    args.extend_from_slice(tables);
    serde_json::from_str(&common::venv_python(script, &args, env)).unwrap()
}

/// The whole main pipeline (replay, ingest, clean, infer, aggregate, profile, log-metrics,
/// report) with every location on S3 gives the same bronze, silver, gold and mentions row
/// sets as the local run, both read back by the Python `deltalake` package.
#[test]
fn the_main_pipeline_on_s3_equals_the_local_run() {
    let server = s3_server::server();
    let bucket = s3_server::bucket("main");
    let root = format!("s3://{bucket}/main");
    // The model directory is on S3 too (copied into the local cache by infer).
    let upload = r#"
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
src, bucket = sys.argv[1], sys.argv[2]
for name in os.listdir(src):
    s3.upload_file(os.path.join(src, name), bucket, f"models/tiny/{name}")
"#;
    let model_dir = tweetflow_test_support::tiny_model().display().to_string();
    common::venv_python(upload, &[model_dir.as_str(), &bucket], &server.env());
    let model = format!("s3://{bucket}/models/tiny");
    let (_, remote) = main_pipeline_equals_the_local_run(&root, &model, &server.env());
    let gold = task(&remote, "infer");
    assert_eq!(
        gold["output"]["values"]["model_uri"],
        model.as_str(),
        "{gold:#}"
    );
}

/// The same on Azure Blob Storage (`az://`, the Azurite emulator), with the standard
/// `AZURE_*` variables.
#[test]
fn the_main_pipeline_on_azure_equals_the_local_run() {
    let server = azurite::server();
    let root = format!("az://{}/main", azurite::container("main"));
    let model = tweetflow_test_support::tiny_model().display().to_string();
    let (sb, _) = main_pipeline_equals_the_local_run(&root, &model, &server.env());
    assert!(!all_text(&sb.runs()).contains(azurite::ACCOUNT_KEY));
}

/// Runs the main pipeline locally and under `remote_root` with `remote_model`, checks both
/// give the same tables and metrics; returns the sandbox and the remote run's record.
fn main_pipeline_equals_the_local_run(
    remote_root: &str,
    remote_model: &str,
    env: &[(String, String)],
) -> (Sandbox, serde_json::Value) {
    let sb = Sandbox::new();
    let local_root = sb.path().join("local").display().to_string();
    let local_model = tweetflow_test_support::tiny_model().display().to_string();
    let mlflow = &tweetflow_test_support::mlflow_server::server().url;
    let local = sb.run_main_pipeline(&local_root, &local_model, 300, mlflow, &[]);
    let remote = sb.run_main_pipeline(remote_root, remote_model, 300, mlflow, env);
    let tables = ["bronze", "silver", "gold", "mentions"];
    let expected = python_row_sets(&local_root, &tables, &[]);
    let got = python_row_sets(remote_root, &tables, env);
    for t in tables {
        let rows = expected[t].as_array().unwrap();
        assert!(!rows.is_empty(), "{t}: the local run wrote no rows");
        assert_eq!(
            got[t], expected[t],
            "{t} at {remote_root} differs from the local run"
        );
    }
    assert_eq!(expected["bronze"].as_array().unwrap().len(), 300);
    // The same metrics were measured on the same gold rows.
    for key in ["accuracy", "f1", "macro_f1", "rows"] {
        let value = |r: &serde_json::Value| task(r, "log_metrics")["output"]["values"][key].clone();
        assert!(
            value(&local).is_number(),
            "{:#}",
            task(&local, "log_metrics")
        );
        assert_eq!(value(&local), value(&remote), "{key}");
    }
    (sb, remote)
}
