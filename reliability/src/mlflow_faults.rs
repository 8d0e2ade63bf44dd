//! MLflow down, slow, or answering 500 or 429 for a whole run of the main pipeline: the
//! tables stand, the run is tagged `mlflow.pending`, and `--resume` against the real server
//! logs what was missed.

use std::time::Instant;

use crate::fault_server::{Fault, FaultServer};
use crate::runner::{Sandbox, shipped_pipeline, shorten};
use crate::tables::diff;
use crate::{Ctx, Row, SuiteError, closed_port_url};

/// One row per kind of fault.
pub fn run(ctx: &Ctx) -> Result<Vec<Row>, SuiteError> {
    let real =
        std::panic::catch_unwind(|| tweetflow_test_support::mlflow_server::server().url.clone());
    let delay = ctx.config.mlflow_delay;
    let kinds: [(String, Option<Fault>); 4] = [
        ("MLflow down for the whole run".into(), None),
        (
            match ctx.config.mlflow_timeout {
                Some(t) => format!(
                    "MLflow slow ({} s answers, client timeout {} s) for the whole run",
                    delay.as_secs(),
                    t.as_secs()
                ),
                None => format!(
                    "MLflow slow ({} s answers) for the whole run",
                    delay.as_secs()
                ),
            },
            real.as_ref().ok().map(|url| Fault::Slow {
                delay,
                upstream: url.trim_start_matches("http://").to_string(),
            }),
        ),
        (
            "MLflow answering 500 for the whole run".into(),
            Some(Fault::Status(500)),
        ),
        (
            "MLflow answering 429 for the whole run".into(),
            Some(Fault::Status(429)),
        ),
    ];
    let mut rows = Vec::new();
    for (name, fault) in kinds {
        let mut row = Row::new(format!("{name}, then --resume"));
        row.injected = 1;
        let Ok(real) = &real else {
            row.fail("no real MLflow server to resume against (it did not start)");
            rows.push(row);
            continue;
        };
        if name.contains("slow") && fault.is_none() {
            row.fail("no upstream for the slow server");
            rows.push(row);
            continue;
        }
        let server = match &fault {
            Some(f) => Some(
                FaultServer::start(&ctx.rt, f.clone())
                    .map_err(SuiteError::io("start the fault server"))?,
            ),
            None => None,
        };
        let url = server
            .as_ref()
            .map_or_else(closed_port_url, |s| s.url.clone());
        one(ctx, &url, real, &mut row)?;
        if let Some(s) = &server {
            row.note
                .push_str(&format!("; {} requests refused or delayed", s.hits()));
        }
        rows.push(row);
    }
    Ok(rows)
}

fn one(ctx: &Ctx, url: &str, real: &str, row: &mut Row) -> Result<(), SuiteError> {
    let sb = Sandbox::new(&ctx.tf)?;
    let args = sb.main_run_args(Some(&shipped_pipeline()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = sb.cmd(&args);
    cmd.env("MLFLOW_TRACKING_URI", url);
    if let Some(t) = ctx.config.mlflow_timeout {
        cmd.env("MLFLOW_HTTP_REQUEST_TIMEOUT", t.as_secs_f64().to_string());
    }
    match ctx.config.mlflow_retries {
        Some(n) => cmd.env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", n.to_string()),
        None => cmd.env_remove("MLFLOW_HTTP_REQUEST_MAX_RETRIES"),
    };
    let start = Instant::now();
    let out = sb.run(cmd, "faulty")?;
    let took = start.elapsed();
    let mut ok = true;
    let d = diff(&ctx.reference, &ctx.snapshot(&sb.data()));
    if !d.details.is_empty() {
        ok = false;
        row.fail(format!(
            "tables after the faulty run: {}",
            d.details.join("; ")
        ));
    }
    let id = out
        .record
        .as_ref()
        .and_then(|r| r["run_id"].as_str())
        .map(String::from);
    let pending = out
        .record
        .as_ref()
        .and_then(|r| r["tags"]["mlflow.pending"].as_str())
        .map(String::from);
    let not_done: Vec<String> = out
        .record
        .as_ref()
        .and_then(|r| r["tasks"].as_object())
        .map(|tasks| {
            tasks
                .iter()
                .filter(|(_, t)| t["status"] != "succeeded")
                .map(|(n, t)| format!("{n} {}", t["status"].as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    row.note = format!("run {} in {:.0} s", out.status(), took.as_secs_f64());
    if !not_done.is_empty() {
        row.note.push_str(&format!(" ({})", not_done.join(", ")));
    }
    let Some(id) = id else {
        row.fail(format!("no run record: {}", out.describe()));
        return Ok(());
    };
    let link = || -> Option<serde_json::Value> {
        let bytes = std::fs::read(sb.runs().join(&id).join("mlflow.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    match &pending {
        Some(p) => {
            row.note
                .push_str(&format!(", tagged pending ({}), resumed", shorten(p, 40)));
            let mut cmd = sb.cmd(&["run", "--resume", &id, "--json"]);
            cmd.env("MLFLOW_TRACKING_URI", real)
                .env_remove("MLFLOW_HTTP_REQUEST_MAX_RETRIES");
            let resumed = sb.run(cmd, "resumed")?;
            let still_pending = resumed
                .record
                .as_ref()
                .is_some_and(|r| r["tags"].get("mlflow.pending").is_some());
            let complete = link().is_some_and(|l| l["complete"] == true);
            if !resumed.succeeded() || still_pending || !complete {
                ok = false;
                row.fail(format!(
                    "--resume against the real server: {}, still pending: {still_pending}, logged completely: {complete}",
                    resumed.describe()
                ));
            }
        }
        // Answered in the end: everything logged, nothing pending.
        None if out.succeeded() && link().is_some_and(|l| l["complete"] == true) => {
            row.note.push_str(", everything logged, nothing pending");
        }
        None => {
            ok = false;
            row.fail(format!(
                "neither logged nor tagged pending: {}",
                out.describe()
            ));
        }
    }
    let d = diff(&ctx.reference, &ctx.snapshot(&sb.data()));
    row.lost += d.lost;
    row.duplicated += d.duplicated;
    if !d.details.is_empty() {
        ok = false;
        row.fail(format!("tables after --resume: {}", d.details.join("; ")));
    }
    if ok {
        row.survived += 1;
    }
    Ok(())
}
