//! `tweetflow ui` in a real browser: headless Chromium driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`, installed by `scripts/setup-browser.sh`). Screenshots of
//! the main pages go to `test-artifacts/ui/` (or `$TWEETFLOW_TEST_ARTIFACTS/ui`).
//!
//! Without chromedriver the test says so and passes, unless `TWEETFLOW_REQUIRE_BROWSER=1`
//! (as `make test` sets it).
#![allow(clippy::unwrap_used)]

mod ui_server;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use ui_server::{TOKEN, UiServer};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

fn artifacts() -> PathBuf {
    let root = std::env::var_os("TWEETFLOW_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts"));
    let dir = root.join("ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    // The whole page, not just the window.
    let height = c
        .execute("return document.documentElement.scrollHeight", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(1000)
        .clamp(600, 4000);
    c.set_window_size(1400, height as u32 + 120).await.unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
    c.set_window_size(1400, 1000).await.unwrap();
}

async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
    c.find(Locator::Css(css))
        .await
        .ok()?
        .attr(name)
        .await
        .ok()?
}

/// Waits until the element `css` has attribute `name` equal to `want`, reloading the page
/// when `reload` is set (otherwise the page updates itself).
async fn wait_attr(c: &Client, css: &str, name: &str, want: &str, reload: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if attr(c, css, name).await.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never had {name}={want} (now {:?})",
            attr(c, css, name).await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        if reload {
            c.refresh().await.unwrap();
        }
    }
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_person_sees_in_the_browser() {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        let required = std::env::var("TWEETFLOW_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "chromium and chromedriver are missing: run scripts/setup-browser.sh"
        );
        eprintln!("skipped: no {CHROMIUM} or {CHROMEDRIVER} (run scripts/setup-browser.sh)");
        return;
    }
    let ui = blocking(UiServer::start);
    let failed_id = blocking(|| ui.run_cli("flaky", &[]));
    blocking(|| ui.run_cli("quick", &[]));
    let driver = blocking(start_driver);
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    let result = scenario(&c, &ui, &failed_id).await;
    c.close().await.unwrap();
    result.unwrap();
}

async fn scenario(c: &Client, ui: &UiServer, failed_id: &str) -> Result<(), String> {
    // Without the token an action is refused, and nothing starts.
    c.goto(&ui.url("/pipelines/quick")).await.unwrap();
    c.find(Locator::Css("#start-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let heading = c
        .wait()
        .for_element(Locator::Css("#message h1"))
        .await
        .unwrap();
    assert_eq!(heading.text().await.unwrap(), "Refused");
    let said = c
        .find(Locator::Css(".message-text"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(said.contains("needs the token"), "{said}");
    screenshot(c, "action-refused").await;
    assert_eq!(blocking(|| ui.json("/runs"))["total"], 2);

    // The printed URL hands the token over; the pipelines page lists the files.
    c.goto(&ui.url(&format!("/?token={TOKEN}"))).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/");
    let badge = c.find(Locator::Css(".who .badge")).await.unwrap();
    assert_eq!(badge.text().await.unwrap(), "actions enabled");
    let broken = c
        .find(Locator::Css("tr[data-pipeline=broken] .problems"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        broken.contains("broken.yaml:4:11: task `a`: unknown task type `nope`"),
        "{broken}"
    );
    let dots = c
        .find_all(Locator::Css("tr[data-pipeline=quick] .dot"))
        .await
        .unwrap();
    assert_eq!(dots.len(), 1);
    screenshot(c, "pipelines").await;

    // The DAG of tweet_sentiment: its 8 tasks and 9 edges.
    c.goto(&ui.url("/pipelines/tweet_sentiment")).await.unwrap();
    let mut tasks = BTreeSet::new();
    for node in c.find_all(Locator::Css("svg.dag g.node")).await.unwrap() {
        assert!(node.is_displayed().await.unwrap());
        tasks.insert(node.attr("data-task").await.unwrap().unwrap());
    }
    let expected: BTreeSet<String> = [
        "replay",
        "ingest",
        "clean",
        "infer",
        "aggregate",
        "mention_scores",
        "profile",
        "log_metrics",
        "report",
    ]
    .map(String::from)
    .into();
    assert_eq!(tasks, expected);
    let mut edges = BTreeSet::new();
    for edge in c.find_all(Locator::Css("svg.dag path.edge")).await.unwrap() {
        edges.insert(format!(
            "{}->{}",
            edge.attr("data-from").await.unwrap().unwrap(),
            edge.attr("data-to").await.unwrap().unwrap()
        ));
    }
    assert_eq!(edges.len(), 10);
    for e in [
        "replay->ingest",
        "infer->mention_scores",
        "clean->profile",
        "log_metrics->report",
        "aggregate->report",
    ] {
        assert!(edges.contains(e), "{e} missing from {edges:?}");
    }
    // Every edge goes left to right, from its source's box to its target's box.
    let geometry = c
        .execute(
            "const box = id => document.querySelector(`g.node[data-task=\"${id}\"] rect`).getBoundingClientRect();
             return [...document.querySelectorAll('path.edge')].map(p => {
               const a = box(p.dataset.from), b = box(p.dataset.to);
               return a.right <= b.left;
             });",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        geometry.as_array().unwrap().iter().all(|v| v == true),
        "{geometry}"
    );
    screenshot(c, "pipeline-dag").await;

    // A failed run: the Gantt bars are the record's attempts, at their times; the error and
    // the log are shown.
    let run = blocking(|| ui.json(&format!("/runs/{failed_id}")));
    c.goto(&ui.url(&format!("/runs/{failed_id}")))
        .await
        .unwrap();
    let span = run["gantt"]["span_ms"].as_f64().unwrap();
    let drawn = c
        .execute(
            "return [...document.querySelectorAll('.gantt-row')].map(row => {
               const track = row.querySelector('.gantt-track').getBoundingClientRect();
               return { task: row.dataset.task, bars: [...row.querySelectorAll('.bar')].map(b => {
                 const r = b.getBoundingClientRect();
                 return { kind: b.dataset.kind, attempt: b.dataset.attempt,
                          start: Number(b.dataset.startMs), end: Number(b.dataset.endMs),
                          left: (r.left - track.left) * 100 / track.width,
                          width: r.width * 100 / track.width };
               }) };
             });",
            vec![],
        )
        .await
        .unwrap();
    let record = &run["record"];
    let created =
        chrono::DateTime::parse_from_rfc3339(record["created_at"].as_str().unwrap()).unwrap();
    let ms = |v: &Value| {
        (chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap() - created)
            .num_milliseconds() as f64
    };
    let rows = drawn.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        let task = &record["tasks"][row["task"].as_str().unwrap()];
        let bars = row["bars"].as_array().unwrap();
        let attempts = task["attempts"].as_array().unwrap();
        if attempts.is_empty() {
            assert_eq!(bars.len(), 1);
            assert_eq!(bars[0]["kind"], task["status"]);
            continue;
        }
        assert_eq!(bars.len(), attempts.len(), "{row}");
        for (bar, attempt) in bars.iter().zip(attempts) {
            assert_eq!(bar["attempt"], attempt["number"].to_string());
            assert_eq!(bar["start"].as_f64().unwrap(), ms(&attempt["started_at"]));
            let left = bar["left"].as_f64().unwrap();
            let want = ms(&attempt["started_at"]) * 100.0 / span;
            assert!((left - want).abs() < 1.0, "{row}: left {left} vs {want}");
            let width = bar["width"].as_f64().unwrap();
            let want = (ms(&attempt["ended_at"]) - ms(&attempt["started_at"])) * 100.0 / span;
            assert!(
                (width - want.max(0.6)).abs() < 1.0,
                "{row}: width {width} vs {want}"
            );
        }
    }
    assert_eq!(rows[1]["bars"][0]["kind"], "retried");
    assert_eq!(rows[1]["bars"][1]["kind"], "failed");
    assert_eq!(rows[2]["bars"][0]["kind"], "upstream_failed");
    let error = c
        .find(Locator::Css("tr.task[data-task=fails] .task-error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(error.contains("the disk is on fire"), "{error}");
    let log = c
        .find(Locator::Css("#log"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("fails#"), "{log}");
    assert!(log.contains("run finished"), "{log}");
    assert!(c.find(Locator::Css("#resume-run")).await.is_ok());
    screenshot(c, "run-failed").await;

    // Start a run from the page with a param; it appears in the list and finishes.
    c.goto(&ui.url("/pipelines/quick")).await.unwrap();
    let n = c.find(Locator::Css("input[name='param.n']")).await.unwrap();
    n.clear().await.unwrap();
    n.send_keys("7").await.unwrap();
    c.find(Locator::Css("#start-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let page = c.wait().for_element(Locator::Css("#run")).await.unwrap();
    let id = page.attr("data-run").await.unwrap().unwrap();
    wait_attr(c, "#run", "data-status", "succeeded", true).await;
    let params = c
        .find(Locator::Css("#params"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(params.contains("n 7"), "{params}");
    c.goto(&ui.url("/runs")).await.unwrap();
    wait_attr(
        c,
        &format!("tr.run[data-run='{id}']"),
        "data-status",
        "succeeded",
        true,
    )
    .await;
    screenshot(c, "runs").await;

    // Cancel a running run from its page.
    c.goto(&ui.url("/pipelines/slow")).await.unwrap();
    c.find(Locator::Css("#start-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("#cancel-run"))
        .await
        .unwrap();
    wait_attr(
        c,
        "#gantt .gantt-row[data-task=sleep]",
        "data-status",
        "running",
        true,
    )
    .await;
    let following = c
        .find(Locator::Css("#log-state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(following, "following the log…");
    screenshot(c, "run-running").await;
    c.find(Locator::Css("#cancel-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_attr(c, "#run", "data-status", "cancelled", false).await;
    let status = c
        .find(Locator::Css("#run-status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status, "cancelled");
    let sleep_row = attr(c, ".gantt-row[data-task=sleep]", "data-status").await;
    assert_eq!(sleep_row.as_deref(), Some("cancelled"));
    screenshot(c, "run-cancelled").await;

    c.goto(&ui.url("/schedules")).await.unwrap();
    screenshot(c, "schedules").await;
    Ok(())
}
