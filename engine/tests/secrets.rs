//! Secrets reach the tasks and nothing else: runs that succeed, fail, retry, time out, hit the
//! cache and are resumed leave no byte of a secret in the run store, and a resume without the
//! secret in the environment is an error naming it.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use tracing::info;
use tweetflow_engine::secrets::MissingSecret;
use tweetflow_engine::{
    Engine, EngineError, LoadOptions, Registry, RunOptions, RunStatus, Task, TaskContext,
    TaskError, TaskOutput, TaskStatus, load_str, process_env,
};

/// Values the tasks received, to check they saw the real secrets.
static RECEIVED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A task that writes its value everywhere it can: the log, its output, its error.
struct Leaky;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LeakyParams {
    /// The value to leak.
    value: String,
    /// Attempts that fail (retryable) before one succeeds.
    #[serde(default)]
    fail_first: u32,
    /// Fail every attempt, fatally.
    #[serde(default)]
    fatal: bool,
    /// Sleep this long first (ms).
    #[serde(default)]
    sleep_ms: u64,
}

impl Task for Leaky {
    type Params = LeakyParams;
    const TYPE: &'static str = "leaky";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "Logs, returns and fails with its value";

    async fn run(&self, ctx: &TaskContext, params: LeakyParams) -> Result<TaskOutput, TaskError> {
        RECEIVED.lock().unwrap().push(params.value.clone());
        info!(target: "tweetflow::leaky", value = %params.value, "the value is {}", params.value);
        tokio::time::sleep(Duration::from_millis(params.sleep_ms)).await;
        if params.fatal {
            return Err(TaskError::fatal(format!("bad value {}", params.value)));
        }
        if ctx.attempt <= params.fail_first {
            return Err(TaskError::retryable(format!(
                "attempt {} failed with {}",
                ctx.attempt, params.value
            )));
        }
        Ok(TaskOutput::new().with("echo", params.value.clone()))
    }
}

const PIPELINE: &str = r#"
name: secretive
params:
  token: "${env.SECRETS_TEST_API_TOKEN}"
  region: "${env.TWEETFLOW_TEST_REGION:-eu}"
tasks:
  ok:
    type: leaky
    with: { value: "Bearer ${params.token}" }
    cache: { enabled: true }
  cached_too:
    type: leaky
    depends_on: [ok]
    with: { value: "${params.token}" }
    cache: { enabled: true }
  flaky:
    type: leaky
    with: { value: "x-${secret.SECRETS_TEST_PLAIN}-y", fail_first: 1 }
    retries: { max_attempts: 3, initial_delay: 10ms, jitter: false }
  slow:
    type: leaky
    with: { value: "${secret.SECRETS_TEST_PLAIN}", sleep_ms: 5000 }
    timeout: 50ms
  broken:
    type: leaky
    with: { value: "${params.token}", fatal: true }
"#;

fn engine(dir: &std::path::Path) -> Engine {
    let mut r = Registry::new();
    r.register(Leaky);
    Engine::new(Arc::new(r), dir)
}

/// Every file below `dir` that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    hits.push(path.display().to_string());
                }
            }
        }
    }
    hits
}

#[tokio::test]
async fn secrets_never_reach_the_run_store_and_resume_reads_them_again() {
    tweetflow_engine::logging::init(tweetflow_engine::logging::LogFormat::Text);
    let token = format!("tok-{}-unique", std::process::id());
    let plain = format!("pl41n-{}-unique", std::process::id());
    // SAFETY: this test binary has one test; nothing reads the environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SECRETS_TEST_API_TOKEN", &token);
        std::env::set_var("SECRETS_TEST_PLAIN", &plain);
    }
    let mut r = Registry::new();
    r.register(Leaky);
    let pipeline = load_str(
        "secretive.yaml",
        PIPELINE,
        &LoadOptions {
            registry: &r,
            param_overrides: &[],
            env: &process_env,
        },
    )
    .unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(
        pipeline.params["token"],
        token.as_str(),
        "tasks use the value"
    );
    assert_eq!(pipeline.redacted_params()["token"], "***");
    assert_eq!(pipeline.redacted_params()["region"], "eu", "not sensitive");

    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let record = engine
        .run(
            pipeline.clone(),
            "secretive.yaml",
            PIPELINE,
            RunOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.tasks["ok"].status, TaskStatus::Succeeded);
    assert_eq!(record.tasks["flaky"].status, TaskStatus::Succeeded);
    assert_eq!(record.tasks["flaky"].attempts.len(), 2);
    assert_eq!(record.tasks["slow"].status, TaskStatus::Failed);
    assert_eq!(record.tasks["broken"].status, TaskStatus::Failed);
    {
        let received = RECEIVED.lock().unwrap();
        assert!(
            received.contains(&format!("Bearer {token}")),
            "{received:?}"
        );
        assert!(received.contains(&format!("x-{plain}-y")), "{received:?}");
    }

    // A second run hits the cache; then the failed run is resumed.
    let again = engine
        .run(pipeline, "secretive.yaml", PIPELINE, RunOptions::default())
        .await
        .unwrap();
    assert_eq!(again.tasks["ok"].status, TaskStatus::Cached);
    RECEIVED.lock().unwrap().clear();
    let resumed = engine
        .resume(&record.run_id, RunOptions::default())
        .await
        .unwrap();
    assert_eq!(resumed.tasks["slow"].status, TaskStatus::Failed);
    assert!(
        RECEIVED.lock().unwrap().contains(&plain),
        "the resumed run read the secret from the environment"
    );

    let plan = std::fs::read_to_string(dir.path().join(&record.run_id).join("plan.json")).unwrap();
    assert!(plan.contains("\"***\""), "{plan}");
    assert!(plan.contains("SECRETS_TEST_API_TOKEN"), "{plan}");
    for needle in [token.as_str(), plain.as_str()] {
        assert_eq!(
            files_containing(dir.path(), needle),
            Vec::<String>::new(),
            "a secret was written"
        );
    }
    let log = std::fs::read_to_string(dir.path().join(&record.run_id).join("log.jsonl")).unwrap();
    assert!(log.contains("the value is Bearer ***"), "{log}");

    // Without the secret, a resume is refused with its name.
    // SAFETY: as above.
    #[allow(unsafe_code)]
    unsafe {
        std::env::remove_var("SECRETS_TEST_PLAIN");
    }
    match engine.resume(&record.run_id, RunOptions::default()).await {
        Err(EngineError::MissingSecret { source, .. }) => {
            assert_eq!(
                source,
                MissingSecret {
                    name: "SECRETS_TEST_PLAIN".into()
                }
            );
            assert!(source.to_string().contains("`SECRETS_TEST_PLAIN`"));
        }
        other => panic!("expected a missing secret, got {other:?}"),
    }
}

#[test]
fn secrets_are_refused_where_they_would_be_written() {
    let mut r = Registry::new();
    r.register(Leaky);
    let env = |k: &str| (k == "A_TOKEN").then(|| "0123456789".to_string());
    let options = LoadOptions {
        registry: &r,
        param_overrides: &[],
        env: &env,
    };
    let err = load_str(
        "p.yaml",
        "name: p\ntasks:\n  a:\n    type: leaky\n    with: { value: x }\n    timeout: \"${env.A_TOKEN}\"\n",
        &options,
    )
    .unwrap_err();
    let text = err.render();
    assert!(text.contains("a secret cannot be used here"), "{text}");
    assert!(!text.contains("0123456789"), "{text}");
    // Overridden on the command line, a param is no longer a secret.
    let p = load_str(
        "p.yaml",
        "name: p\nparams: { t: \"${env.A_TOKEN}\" }\ntasks:\n  a: { type: leaky, with: { value: \"${params.t}\" } }\n",
        &LoadOptions {
            param_overrides: &[("t".into(), "given".into())],
            ..options
        },
    )
    .unwrap();
    assert!(p.secrets.is_empty(), "{:?}", p.secrets);
    assert_eq!(p.tasks[0].with["value"], "given");
}

#[test]
fn an_attempt_file_for_a_worker_holds_no_secret_and_the_worker_reads_it_again() {
    use tweetflow_engine::executor::ResolvedAttempt;
    let value = format!("attempt-secret-{}", std::process::id());
    // SAFETY: a variable no other test of this binary reads.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SECRETS_TEST_ATTEMPT_TOKEN", &value);
    }
    let mut r = Registry::new();
    r.register(Leaky);
    let p = load_str(
        "p.yaml",
        "name: p\nparams: { t: \"${env.SECRETS_TEST_ATTEMPT_TOKEN}\" }\ntasks:\n  a: { type: leaky, with: { value: x }, cache: { enabled: true } }\n  b: { type: leaky, with: { value: \"Bearer ${params.t}\" } }\n",
        &LoadOptions {
            registry: &r,
            param_overrides: &[],
            env: &process_env,
        },
    )
    .unwrap();
    let slots = p.attempt_secrets("b");
    assert_eq!(
        slots.iter().map(|s| s.at.as_str()).collect::<Vec<_>>(),
        ["/pipeline_params/t", "/params/value"]
    );
    let attempt = ResolvedAttempt {
        run_id: "r".into(),
        task_id: "b".into(),
        task_type: "leaky".into(),
        task_version: "1".into(),
        attempt: 1,
        shard: None,
        params: p.tasks[1].with.clone(),
        upstream: Default::default(),
        pipeline: p.name.clone(),
        spec_hash: p.spec_hash.clone(),
        pipeline_params: p.params.clone(),
        sections: p.sections.clone(),
        expect: Default::default(),
        artifacts_dir: "artifacts".into(),
        cwd: None,
        secrets: slots,
        run_store: None,
        links: Default::default(),
        traceparent: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("attempt.json");
    attempt.write(&file).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(&value), "{text}");
    assert_eq!(ResolvedAttempt::read(&file).unwrap(), attempt);
    // SAFETY: as above.
    #[allow(unsafe_code)]
    unsafe {
        std::env::remove_var("SECRETS_TEST_ATTEMPT_TOKEN");
    }
    let err = ResolvedAttempt::read(&file).unwrap_err();
    assert!(
        err.to_string().contains("`SECRETS_TEST_ATTEMPT_TOKEN`"),
        "{err}"
    );
}

#[tokio::test]
async fn the_scheduler_reads_secrets_from_the_environment_at_each_tick() {
    use tweetflow_engine::scheduler::{Scheduled, Scheduler, TestClock, TickAction};
    use tweetflow_engine::store::RunStore;
    let yaml = "name: sched_secret\nschedule: { cron: \"0 * * * *\", catchup: last, overlap: allow }\ntasks:\n  a: { type: leaky, with: { value: \"${secret.SECRETS_TEST_SCHED}\" } }\n";
    let mut r = Registry::new();
    r.register(Leaky);
    // Loaded while the secret was set; gone from the environment when the tick comes.
    let env = |k: &str| (k == "SECRETS_TEST_SCHED").then(|| "sched-value-at-load".to_string());
    let pipeline = load_str(
        "p.yaml",
        yaml,
        &LoadOptions {
            registry: &r,
            param_overrides: &[],
            env: &env,
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".schedules")).unwrap();
    std::fs::write(
        dir.path().join(".schedules/sched_secret.json"),
        r#"{"last_tick": "2026-01-01T00:00:00Z", "last_fired": null, "history": []}"#,
    )
    .unwrap();
    let clock = TestClock::new("2026-01-01T01:05:00Z".parse().unwrap());
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let scheduler = Scheduler::new(engine(dir.path()), clock.clone()).with_observer(tx);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    let scheduled = Scheduled {
        pipeline,
        file: "p.yaml".into(),
        text: yaml.into(),
    };
    let handle = tokio::spawn(async move {
        scheduler
            .run(vec![scheduled], stop, Duration::from_secs(5))
            .await
    });
    let (_, tick) = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tick.action, TickAction::Skipped);
    let reason = tick.reason.unwrap_or_default();
    assert!(reason.contains("`SECRETS_TEST_SCHED`"), "{reason}");
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    assert!(RunStore::new(dir.path()).list().unwrap().is_empty());
    let state = std::fs::read_to_string(dir.path().join(".schedules/sched_secret.json")).unwrap();
    assert!(!state.contains("sched-value-at-load"), "{state}");
}
