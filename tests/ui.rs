//! `tweetflow ui` through its JSON twins and its actions: the real binary serving a temporary
//! run store, runs started by the CLI and by the server.
#![allow(clippy::unwrap_used)]

mod ui_server;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::Value;
use ui_server::{TOKEN, UiServer, bin, client};

fn pipeline<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
}

#[test]
fn the_pipelines_page_shows_dags_schedules_and_validation_errors() {
    let ui = UiServer::start();
    let list = ui.json("/");
    let names: Vec<&str> = list["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "broken",
            "flaky",
            "nightly",
            "quick",
            "slow",
            "tweet_sentiment"
        ]
    );
    let broken = pipeline(&list, "broken");
    assert_eq!(broken["valid"], false);
    let problems = broken["problems"].as_array().unwrap();
    assert!(
        problems[0]["location"]
            .as_str()
            .unwrap()
            .ends_with("broken.yaml:4:11")
    );
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown task type `nope`")
    );
    assert!(
        problems[1]["location"]
            .as_str()
            .unwrap()
            .ends_with("broken.yaml:5:18")
    );

    let nightly = pipeline(&list, "nightly");
    assert_eq!(
        nightly["schedule"]["words"],
        "every day at 02:30 (Europe/Paris)"
    );
    let next = nightly["schedule"]["next"].as_array().unwrap();
    assert_eq!(next.len(), 5);
    assert!(next[0]["local"].as_str().unwrap().contains("02:30:00 CE"));

    let ts = ui.json("/pipelines/tweet_sentiment");
    let dag = &ts["dag"];
    assert_eq!(dag["nodes"].as_array().unwrap().len(), 9);
    let mut edges: Vec<String> = dag["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}->{}",
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap()
            )
        })
        .collect();
    edges.sort();
    assert_eq!(
        edges,
        [
            "aggregate->report",
            "clean->infer",
            "clean->profile",
            "infer->aggregate",
            "infer->log_metrics",
            "infer->mention_scores",
            "ingest->clean",
            "log_metrics->report",
            "profile->report",
            "replay->ingest",
        ]
    );
    let svg = ts["dag_svg"].as_str().unwrap();
    assert_eq!(svg.matches("<g class=\"node").count(), 9);
    assert_eq!(svg.matches("<path class=\"edge\"").count(), 10);
    // Layers follow depends_on: replay first, report last.
    let layer = |id: &str| {
        dag["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap()["layer"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        (layer("replay"), layer("clean"), layer("report")),
        (0, 2, 5)
    );

    let quick = ui.json("/pipelines/quick");
    let kinds: Vec<(String, String)> = quick["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("fast".to_string(), "boolean".to_string()),
            ("label".into(), "string".into()),
            ("n".into(), "integer".into())
        ]
    );
    let missing = client().get(ui.url("/pipelines/nope")).send().unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn the_runs_list_is_newest_first_filtered_and_paginated() {
    let ui = UiServer::start();
    let mut quick = Vec::new();
    for _ in 0..52 {
        quick.push(ui.run_cli("quick", &[]));
    }
    let failed = ui.run_cli("flaky", &[]);
    let first = ui.json("/runs");
    assert_eq!(first["total"], 53);
    assert_eq!(first["has_next"], true);
    let rows = first["runs"].as_array().unwrap();
    assert_eq!(rows.len(), 50);
    assert_eq!(rows[0]["run_id"], failed.as_str());
    assert_eq!(rows[0]["status"], "failed");
    assert_eq!(rows[1]["run_id"], quick[51].as_str());
    assert_eq!(rows[1]["tasks_ok"], 3);
    let second = ui.json("/runs?page=2");
    let ids: Vec<&str> = second["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&quick[2], &quick[1], &quick[0]]);
    assert_eq!(second["has_next"], false);

    let only_failed = ui.json("/runs?status=failed");
    assert_eq!(only_failed["runs"].as_array().unwrap().len(), 1);
    let quick_page = ui.json("/runs?pipeline=quick&page=2");
    assert_eq!(quick_page["runs"].as_array().unwrap().len(), 2);
    assert_eq!(quick_page["prev_url"], "/runs?pipeline=quick&page=1");
    assert_eq!(
        ui.json("/runs?pipeline=flaky&status=succeeded")["runs"],
        Value::Array(vec![])
    );
    let bad = client().get(ui.url("/runs?status=weird")).send().unwrap();
    assert_eq!(bad.status(), 400);
    // The pipeline's status dots.
    let list = ui.json("/");
    let dots = &pipeline(&list, "quick")["last_runs"];
    assert_eq!(dots.as_array().unwrap().len(), 10);
    assert_eq!(dots[0]["run_id"], quick[51].as_str());
}

fn ms_after(t: &Value, start: &Value) -> i64 {
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    (parse(t) - parse(start)).num_milliseconds()
}

#[test]
fn a_run_page_shows_the_timeline_of_the_record_errors_and_log() {
    let ui = UiServer::start();
    let id = ui.run_cli("flaky", &[]);
    let run = ui.json(&format!("/runs/{id}"));
    assert_eq!(run["summary"]["status"], "failed");
    assert_eq!(run["can_resume"], true);
    assert_eq!(run["can_cancel"], false);
    let record = &run["record"];
    let start = &record["created_at"];
    let rows = run["gantt"]["rows"].as_array().unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r["task"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["prepare", "fails", "after"]
    );
    for row in rows {
        let task = &record["tasks"][row["task"].as_str().unwrap()];
        let bars = row["bars"].as_array().unwrap();
        let attempts = task["attempts"].as_array().unwrap();
        if attempts.is_empty() {
            assert_eq!(bars.len(), 1, "{row}");
            assert_eq!(bars[0]["kind"], task["status"]);
            continue;
        }
        assert_eq!(bars.len(), attempts.len(), "{row}");
        for (bar, attempt) in bars.iter().zip(attempts) {
            assert_eq!(bar["attempt"], attempt["number"]);
            assert_eq!(bar["start_ms"], ms_after(&attempt["started_at"], start));
            assert_eq!(bar["end_ms"], ms_after(&attempt["ended_at"], start));
        }
    }
    let fails = &rows[1]["bars"];
    assert_eq!(fails[0]["kind"], "retried");
    assert_eq!(fails[1]["kind"], "failed");
    assert_eq!(rows[2]["bars"][0]["kind"], "upstream_failed");
    let task = &run["tasks"][1];
    assert_eq!(task["status"], "failed");
    assert!(
        task["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the disk is on fire")
    );
    let log = ui.json(&format!("/runs/{id}/log"));
    let lines = log["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["task"] == "fails" && l["level"] == "WARN"),
        "{log}"
    );
    assert_eq!(log["executing"], false);
    // The HTML page carries the same bars and the error.
    let html = client()
        .get(ui.url(&format!("/runs/{id}")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(html.matches("class=\"bar kind-").count(), 4);
    assert!(html.contains("the disk is on fire"));
    let missing = client()
        .get(ui.url("/runs/20990101T000000000Z-000000"))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn a_running_runs_log_streams_as_server_sent_events_until_it_ends() {
    let ui = UiServer::start();
    let start = client()
        .post(ui.url("/pipelines/slow/run"))
        .header("X-Tweetflow-Token", TOKEN)
        .header("Accept", "application/json")
        .form(&[("param.seconds", "1")])
        .send()
        .unwrap();
    assert_eq!(start.status(), 201);
    let id = start.json::<Value>().unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stream = client()
        .get(ui.url(&format!("/runs/{id}/log")))
        .header("Accept", "text/event-stream")
        .send()
        .unwrap();
    let began = Instant::now();
    let mut events = Vec::new();
    let mut data = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.unwrap();
        if let Some(e) = line.strip_prefix("event: ") {
            events.push(e.to_string());
        }
        if let Some(d) = line.strip_prefix("data: ") {
            data.push(d.to_string());
        }
        if line == "event: end" {
            break;
        }
    }
    assert_eq!(events.last().map(String::as_str), Some("end"));
    assert!(events.iter().filter(|e| *e == "line").count() >= 3);
    let messages: Vec<String> = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .map(|v| v["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(messages.first().map(String::as_str), Some("run started"));
    assert_eq!(messages.last().map(String::as_str), Some("run finished"));
    // The stream followed the run while it ran (it sleeps 1 s).
    assert!(began.elapsed() >= Duration::from_millis(500));
    assert_eq!(ui.wait_finished(&id)["summary"]["status"], "succeeded");
}

#[test]
fn actions_start_cancel_and_resume_runs_with_the_token_only() {
    let ui = UiServer::start();
    let http = client();
    // Without the token, or from another site: refused.
    let refused = http
        .post(ui.url("/pipelines/quick/run"))
        .header("Accept", "application/json")
        .form(&[("param.n", "4")])
        .send()
        .unwrap();
    assert_eq!(refused.status(), 403);
    let cross_site = http
        .post(ui.url("/pipelines/quick/run"))
        .header("Cookie", format!("tweetflow_ui_token={TOKEN}"))
        .header("Origin", "http://evil.example")
        .send()
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let wrong = http
        .post(ui.url("/pipelines/quick/run"))
        .header("X-Tweetflow-Token", "nope")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(!ui.runs_dir.exists() || ui.json("/runs")["total"] == 0);

    // A browser trades ?token= for a cookie.
    let handed = http
        .get(ui.url(&format!("/runs?token={TOKEN}")))
        .send()
        .unwrap();
    assert_eq!(handed.status(), 303);
    assert_eq!(handed.headers()["location"], "/runs");
    assert!(
        handed.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly; SameSite=Strict")
    );

    // Start with a param: an ordinary run that finishes.
    let started = http
        .post(ui.url("/pipelines/quick/run"))
        .header("Cookie", format!("tweetflow_ui_token={TOKEN}"))
        .header("Origin", ui.base.clone())
        .form(&[
            ("param.n", "4"),
            ("param.label", "hello"),
            ("param.fast", "true"),
        ])
        .send()
        .unwrap();
    assert_eq!(started.status(), 303);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let id = location.strip_prefix("/runs/").unwrap().to_string();
    let run = ui.wait_finished(&id);
    assert_eq!(run["summary"]["status"], "succeeded");
    assert_eq!(run["params"]["n"], 4);
    assert_eq!(run["record"]["tags"]["trigger"], "manual");

    // Cancel a running run, then resume it.
    let slow = http
        .post(ui.url("/pipelines/slow/run"))
        .header("X-Tweetflow-Token", TOKEN)
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(slow.status(), 201);
    let slow_id = slow.json::<Value>().unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ui.json(&format!("/runs/{slow_id}"))["tasks"][1]["status"] != "running" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let not_yet = http
        .post(ui.url(&format!("/runs/{slow_id}/cancel")))
        .send()
        .unwrap();
    assert_eq!(not_yet.status(), 403);
    let cancel = http
        .post(ui.url(&format!("/runs/{slow_id}/cancel")))
        .header("X-Tweetflow-Token", TOKEN)
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(cancel.status(), 202);
    let cancelled = ui.wait_finished(&slow_id);
    assert_eq!(cancelled["summary"]["status"], "cancelled");
    assert_eq!(cancelled["can_resume"], true);
    let again = http
        .post(ui.url(&format!("/runs/{slow_id}/cancel")))
        .header("X-Tweetflow-Token", TOKEN)
        .send()
        .unwrap();
    assert_eq!(again.status(), 409);

    let resumed = http
        .post(ui.url(&format!("/runs/{slow_id}/resume")))
        .header("X-Tweetflow-Token", TOKEN)
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(resumed.status(), 201);
    assert_eq!(resumed.json::<Value>().unwrap()["run_id"], slow_id.as_str());
    let running = ui.json(&format!("/runs/{slow_id}"));
    assert_eq!(running["record"]["resumed_at"].as_array().unwrap().len(), 1);
    let cancel = http
        .post(ui.url(&format!("/runs/{slow_id}/cancel")))
        .header("X-Tweetflow-Token", TOKEN)
        .send()
        .unwrap();
    assert_eq!(cancel.status(), 303);
    assert_eq!(ui.wait_finished(&slow_id)["summary"]["status"], "cancelled");

    // A succeeded run cannot be resumed: the CLI says why.
    let refused = http
        .post(ui.url(&format!("/runs/{id}/resume")))
        .header("X-Tweetflow-Token", TOKEN)
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already succeeded"),
        "{body}"
    );
}

/// The status of `GET path` sent as written (an HTTP client would normalise `..`).
fn raw_status(ui: &UiServer, path: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = ui.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn paths_and_hosts_are_checked_and_a_public_listen_needs_a_token() {
    let ui = UiServer::start();
    let http = client();
    for path in [
        "/runs/..",
        "/runs/%2E%2E",
        "/runs/.cache",
        "/runs/..%2F..%2Fetc/log",
        "/runs/a%2Fb",
    ] {
        assert_eq!(raw_status(&ui, path), 404, "{path}");
    }
    let rebound = http
        .get(ui.url("/"))
        .header("Host", "attacker.example")
        .send()
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let page = http.get(ui.url("/runs")).send().unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));

    let out = std::process::Command::new(bin())
        .args(["ui", "--listen", "0.0.0.0:0"])
        .env_remove("TWEETFLOW_UI_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a token"));
}

#[test]
fn the_schedules_page_shows_the_scheduler_state() {
    let ui = UiServer::start();
    let state_dir = ui.runs_dir.join(".schedules");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::write(
        state_dir.join("nightly.json"),
        r#"{"last_tick":"2026-01-02T01:30:00Z","last_fired":{"tick":"2026-01-01T01:30:00Z","decided_at":"2026-01-01T01:30:00Z","action":"fired","run_id":"20260101T013000000Z-abcdef","reason":null},
            "history":[{"tick":"2026-01-01T01:30:00Z","decided_at":"2026-01-01T01:30:00Z","action":"fired","run_id":"20260101T013000000Z-abcdef","reason":null},
                       {"tick":"2026-01-02T01:30:00Z","decided_at":"2026-01-02T01:30:01Z","action":"skipped","run_id":null,"reason":"a run is active (overlap: skip)"}]}"#,
    )
    .unwrap();
    let page = ui.json("/schedules");
    let rows = page["schedules"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let nightly = &rows[0];
    assert_eq!(nightly["pipeline"], "nightly");
    assert_eq!(nightly["counts"]["fired"], 1);
    assert_eq!(nightly["counts"]["skipped"], 1);
    assert_eq!(
        nightly["recent"][0]["reason"],
        "a run is active (overlap: skip)"
    );
    assert_eq!(nightly["last_tick"], "2026-01-02T01:30:00Z");
    let html = client()
        .get(ui.url("/schedules"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(html.contains("every day at 02:30 (Europe&#x2f;Paris)"));
}

/// A task split into shards on a remote executor: the run page lists each shard's attempts
/// with the job that ran it (written through the run store, as the engine records a Ray run).
#[test]
fn a_sharded_run_page_shows_each_shards_attempts_and_jobs() {
    use tweetflow_engine::store::Event;
    use tweetflow_engine::{LoadOptions, RunRecord, RunStatus, RunStore, TaskStatus};

    let ui = UiServer::start();
    let text = "name: sharded\ntasks:\n  score:\n    type: ingest\n    shards: 2\n    with: { source: landing, table: bronze }\n";
    let registry = tweetflow_tasks::default_registry();
    let pipeline = tweetflow_engine::load_str(
        "sharded.yaml",
        text,
        &LoadOptions {
            registry: &registry,
            param_overrides: &[],
            env: &|_| None,
        },
    )
    .unwrap_or_else(|d| panic!("{}", d.render()));
    let store = RunStore::new(&ui.runs_dir);
    let id = "20261130T120000000Z-abcdef".to_string();
    let mut run = store
        .create(
            RunRecord::new(id.clone(), &pipeline, "sharded.yaml"),
            &pipeline,
            text,
        )
        .unwrap();
    let at = chrono::Utc::now();
    let job = |shard: u32, n: u32| format!("tweetflow-{id}-score-shard-{shard}-of-2-attempt-{n}");
    run.append(Event::TaskStarted {
        task: "score".into(),
        at,
        cache_key: None,
    })
    .unwrap();
    for (shard, attempts) in [(0u32, 1u32), (1, 2)] {
        for n in 1..=attempts {
            run.append(Event::AttemptStarted {
                task: "score".into(),
                number: n,
                at,
                shard: Some(shard),
            })
            .unwrap();
            run.append(Event::AttemptJob {
                task: "score".into(),
                number: n,
                shard: Some(shard),
                job: job(shard, n),
            })
            .unwrap();
            run.append(Event::AttemptFinished {
                task: "score".into(),
                number: n,
                at,
                error: (n < attempts)
                    .then(|| tweetflow_engine::TaskError::retryable("the job was stopped")),
                shard: Some(shard),
            })
            .unwrap();
        }
    }
    run.append(Event::TaskFinished {
        task: "score".into(),
        status: TaskStatus::Succeeded,
        at,
        output: None,
        error: None,
    })
    .unwrap();
    run.append(Event::RunFinished {
        status: RunStatus::Succeeded,
        at,
    })
    .unwrap();
    drop(run);

    let page = ui.json(&format!("/runs/{id}"));
    let attempts = page["tasks"][0]["attempts"].as_array().unwrap();
    let seen: Vec<(u64, u64, &str)> = attempts
        .iter()
        .map(|a| {
            (
                a["shard"].as_u64().unwrap(),
                a["number"].as_u64().unwrap(),
                a["job"].as_str().unwrap(),
            )
        })
        .collect();
    // On the timeline, only shard 1's first attempt was retried.
    let bars = page["gantt"]["rows"][0]["bars"].as_array().unwrap();
    let kinds: Vec<(u64, &str)> = bars
        .iter()
        .map(|b| (b["shard"].as_u64().unwrap(), b["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [(0, "succeeded"), (1, "retried"), (1, "succeeded")]);
    let (j01, j11, j12) = (job(0, 1), job(1, 1), job(1, 2));
    assert_eq!(
        seen,
        [
            (0, 1, j01.as_str()),
            (1, 1, j11.as_str()),
            (1, 2, j12.as_str())
        ]
    );
    let html = client()
        .get(ui.url(&format!("/runs/{id}")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for j in [&j01, &j11, &j12] {
        assert!(
            html.contains(&format!("<code class=\"job-id\">{j}</code>")),
            "{html}"
        );
    }
    assert!(html.contains("shard 1 · attempt 1"), "{html}");
    assert!(html.contains("the job was stopped"), "{html}");
}

#[test]
fn a_run_whose_engine_died_reads_interrupted_with_a_badge_a_filter_and_resume() {
    let ui = UiServer::start();
    let http = client();
    // `tweetflow run` of the slow pipeline (1 s of sleep), killed with -9 once it sleeps.
    let mut engine = std::process::Command::new(bin())
        .current_dir(ui.dir.path())
        .arg("--runs-dir")
        .arg(&ui.runs_dir)
        .args(["run", "--param", "seconds=1"])
        .arg(ui.pipelines_dir.join("slow.yaml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        let runs = ui.json("/runs");
        if let Some(id) = runs["runs"][0]["run_id"].as_str()
            && ui.json(&format!("/runs/{id}"))["tasks"][1]["status"] == "running"
        {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "the run never reached its sleep");
        std::thread::sleep(Duration::from_millis(50));
    };
    engine.kill().unwrap();
    engine.wait().unwrap();

    // At once: no timeout to wait for.
    let run = ui.json(&format!("/runs/{id}"));
    assert_eq!(run["summary"]["status"], "interrupted", "{run}");
    assert!(run["summary"]["last_event_at"].is_string());
    assert_eq!(run["executing"], false);
    assert_eq!(run["can_resume"], true);
    let listed = ui.json("/runs?status=interrupted");
    assert_eq!(listed["runs"][0]["run_id"], id.as_str());
    assert!(
        ui.json("/runs?status=running")["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let html = http.get(ui.url("/runs")).send().unwrap().text().unwrap();
    assert!(html.contains("badge status-interrupted"), "{html}");
    assert!(
        html.contains(">interrupted</option>"),
        "a status filter for it"
    );
    let page = http
        .get(ui.url(&format!("/runs/{id}")))
        .header("Cookie", format!("tweetflow_ui_token={TOKEN}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("engine died · last event"), "{page}");
    assert!(page.contains("id=\"resume-run\""), "{page}");

    let resumed = http
        .post(ui.url(&format!("/runs/{id}/resume")))
        .header("X-Tweetflow-Token", TOKEN)
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(resumed.status(), 201);
    let done = ui.wait_finished(&id);
    assert_eq!(done["summary"]["status"], "succeeded", "{done}");
    assert_eq!(done["record"]["resumed_at"].as_array().unwrap().len(), 1);
    assert!(done["summary"]["last_event_at"].is_null());
}

/// A run started by a table trigger says so on its page and in `runs show`: the tags the
/// scheduler gives it (`trigger: table`, `trigger.NAME: versions A..B of LOCATION`).
#[test]
fn a_triggered_run_says_which_versions_started_it() {
    let ui = UiServer::start();
    let id = ui.run_cli("quick", &[]);
    let path = ui.runs_dir.join(&id).join("run.json");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    record["tags"] = serde_json::json!({
        "trigger": "table",
        "trigger.gold": "versions 3..7 of /lake/gold"
    });
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();

    let page = client()
        .get(ui.url(&format!("/runs/{id}")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains(
            "Started by new versions of <code>gold</code>: versions 3..7 of &#x2f;lake&#x2f;gold"
        ),
        "{page}"
    );
    let shown = std::process::Command::new(bin())
        .arg("--runs-dir")
        .arg(&ui.runs_dir)
        .args(["runs", "show", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("started by new versions of gold: versions 3..7 of /lake/gold"),
        "{text}"
    );
}
