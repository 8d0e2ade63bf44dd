//! The scenarios of the Ray tests on a cluster set up as in production
//! ([`tweetflow_test_support::ray_token_cluster`]): token authentication, a head with no
//! CPUs, a worker node that sees none of the engine's files; tables, landing folder and model
//! on the S3 test server.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tweetflow_test_support::ray_token_cluster::TokenCluster;
use tweetflow_test_support::s3_server;

use crate::common::{self, Sandbox, task, wait_for};

/// A client of the cluster's Jobs API that sends its token.
pub fn jobs_api(cluster: &TokenCluster) -> JobsApi<'_> {
    JobsApi {
        cluster,
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    }
}

/// See [`jobs_api`].
pub struct JobsApi<'a> {
    cluster: &'a TokenCluster,
    http: reqwest::blocking::Client,
}

impl JobsApi<'_> {
    fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.http
            .get(format!("{}{path}", self.cluster.address))
            .bearer_auth(&self.cluster.token)
            .send()
            .unwrap()
    }

    /// The cluster's jobs of run `run_id`.
    pub fn jobs_of(&self, run_id: &str) -> Vec<Value> {
        let jobs: Vec<Value> = self.get("/api/jobs/").json().unwrap_or_default();
        jobs.into_iter()
            .filter(|j| j["metadata"]["tweetflow_run"] == run_id)
            .collect()
    }

    /// The logs of job `id`.
    pub fn logs(&self, id: &str) -> String {
        let v: Value = self
            .get(&format!("/api/jobs/{id}/logs"))
            .json()
            .unwrap_or_default();
        v["logs"].as_str().unwrap_or_default().to_string()
    }

    /// Stops job `id`; whether Ray stopped it (false: it had ended).
    pub fn stop(&self, id: &str) -> bool {
        let answer: Value = self
            .http
            .post(format!("{}/api/jobs/{id}/stop", self.cluster.address))
            .bearer_auth(&self.cluster.token)
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default();
        answer["stopped"] == true
    }

    /// The status code of a request without the token.
    pub fn status_without_token(&self) -> u16 {
        self.http
            .get(format!("{}/api/jobs/", self.cluster.address))
            .send()
            .unwrap()
            .status()
            .as_u16()
    }
}

/// Every file under `dir` as text (the run store's records, logs, plans, attempt files).
pub fn all_text(dir: &Path) -> String {
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

/// A fresh bucket holding the tiny int8 model under `models/tiny`; returns the bucket and the
/// model's `s3://` prefix.
pub fn bucket_with_model(prefix: &str) -> (String, String) {
    let server = s3_server::server();
    let bucket = s3_server::bucket(prefix);
    let upload = r#"
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
src, bucket = sys.argv[1], sys.argv[2]
for name in os.listdir(src):
    s3.upload_file(os.path.join(src, name), bucket, f"models/tiny/{name}")
"#;
    let model_dir = tweetflow_test_support::tiny_model_int8()
        .display()
        .to_string();
    common::venv_python(upload, &[model_dir.as_str(), &bucket], &server.env());
    let model = format!("s3://{bucket}/models/tiny");
    (bucket, model)
}

/// The row sets of `tables` under `root` on S3, read by the Python `deltalake` package: each
/// row as JSON without the column that records when it was processed, sorted.
pub fn row_sets(root: &str, tables: &[&str]) -> Value {
    let script = r#"
import json, os, sys
import deltalake
root, out = sys.argv[1], {}
for name in sys.argv[2:]:
    t = deltalake.DeltaTable(f"{root}/{name}").to_pyarrow_table()
    cols = [c for c in t.column_names if c != "processing_time"]
    rows = [json.dumps({c: t.column(c)[i].as_py() for c in cols}, default=str, sort_keys=True) for i in range(t.num_rows)]
    out[name] = sorted(rows)
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"#;
    let mut args = vec![root];
    args.extend_from_slice(tables);
    serde_json::from_str(&common::venv_python(
        script,
        &args,
        &s3_server::server().env(),
    ))
    .unwrap()
}

/// The medallion (replay on the engine's machine; ingest, clean and infer on Ray) with every
/// location on S3. `executor` is the settings of `ray:` (without braces), `extra_env` the
/// jobs' extra environment (`runtime_env.env_vars`, e.g. a failpoint).
pub fn medallion(csv: &Path, model: &str, executor: &str, extra_env: &str) -> String {
    format!(
        r#"
name: medallion_on_ray
params: {{ root: "s3://none", shards: 1 }}
defaults:
  retries: {{ max_attempts: 2, initial_delay: 10ms }}
  executor: {{ ray: {{ {executor}, num_cpus: 1, poll_ms: 100, runtime_env: {{ env_vars: {{ {extra_env} }} }} }} }}
tasks:
  replay:
    type: replay
    executor: local
    with: {{ csv: "{csv}", landing: "${{params.root}}/landing", tweets_per_file: 50, limit: 400 }}
  ingest:
    type: ingest
    depends_on: [replay]
    shards: ${{params.shards}}
    with: {{ source: "${{params.root}}/landing", table: "${{params.root}}/bronze", settle_time: 0s }}
  clean:
    type: clean
    depends_on: [ingest]
    shards: ${{params.shards}}
    with: {{ input: "${{params.root}}/bronze", table: "${{params.root}}/silver" }}
  infer:
    type: infer
    depends_on: [clean]
    shards: ${{params.shards}}
    with: {{ input: "${{params.root}}/silver", table: "${{params.root}}/gold", model: "{model}", batch_size: 8, threads: 1 }}
"#,
        csv = csv.display(),
    )
}

/// The same pipeline with every task in the engine's process (the reference run).
pub fn local_twin(pipeline: &str) -> String {
    pipeline
        .lines()
        .filter(|l| !l.starts_with("  executor: { ray:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `tweetflow run ARGS --json` in `sb` with the S3 server's variables and `env`, waited for.
pub fn run(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = sb
        .cmd(&all)
        .envs(s3_server::server().env())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let record = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a run record ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), record)
}

/// Checks that the Ray run under `ray_root` gave the tables of the local run under
/// `local_root`, and that its ingest, clean and infer ran in 2 shards each.
pub fn assert_same_tables(record: &Value, local_root: &str, ray_root: &str) {
    for id in ["ingest", "clean", "infer"] {
        assert_eq!(
            task(record, id)["output"]["values"]["shards"]
                .as_array()
                .map(Vec::len),
            Some(2),
            "{id}: {record}"
        );
    }
    let tables = ["bronze", "silver", "gold"];
    let expected = row_sets(local_root, &tables);
    let got = row_sets(ray_root, &tables);
    for t in tables {
        let rows = expected[t].as_array().unwrap();
        assert!(
            rows.len() > 50,
            "{t}: the local run wrote {} rows",
            rows.len()
        );
        assert_eq!(
            got[t], expected[t],
            "{t} of the Ray run differs from the local run"
        );
    }
}

/// Waits until one of the run's infer jobs logs that it paused at the scoring failpoint and
/// returns its id.
pub fn paused_infer_job(api: &JobsApi<'_>, sb: &Sandbox, local_run: &str) -> (String, String) {
    let mut found = None;
    let ok = wait_for(Duration::from_secs(400), || {
        let Some(run_id) = sb.run_ids().into_iter().find(|id| id != local_run) else {
            return false;
        };
        for job in api.jobs_of(&run_id) {
            let id = job["submission_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if id.contains("-infer-")
                && job["status"] == "RUNNING"
                && api.logs(&id).contains("failpoint: paused until stopped")
            {
                found = Some((run_id.clone(), id));
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        false
    });
    assert!(ok, "an infer job paused while scoring");
    found.unwrap()
}

/// (submit-to-start, end-to-collected) in ms of each Ray job of the run, from its log.
pub fn overheads(sb: &Sandbox, run_id: &str) -> Vec<(f64, f64)> {
    let log = std::fs::read_to_string(sb.runs().join(run_id).join("log.jsonl")).unwrap();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["fields"]["message"] == "Ray job ended")
        .filter_map(|e| {
            let f = &e["fields"];
            Some((
                f["submit_to_start_ms"].as_f64()?,
                f["end_to_collected_ms"].as_f64()?,
            ))
        })
        .collect()
}
