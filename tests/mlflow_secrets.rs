//! Secrets end to end with the real binary and real MLflow servers: a unique value in a secret
//! is used by `command` tasks that succeed, fail, retry and time out, in a run that is resumed
//! and logged to MLflow; then no byte of it is found in the run store, in what the CLI prints,
//! or in the MLflow server's store (params, tags, metric keys, artifacts). A server with basic
//! auth accepts the password, which is never written either, nor are AWS credentials.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Sandbox;
use tweetflow_test_support::mlflow_server::{free_port, server};
use tweetflow_test_support::venv;

/// Every file below `dir` holding `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                hits.push(path);
            }
        }
    }
    hits
}

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}-zq", std::process::id())
}

const PIPELINE: &str = r#"
name: secret_e2e
params:
  token: "${env.E2E_API_TOKEN}"
mlflow:
  experiment: secrets-${env.E2E_SUFFIX}
tasks:
  prints:
    type: command
    with:
      argv: [sh, -c, 'echo "token is $T"; echo "again $T" >&2']
      env: { T: "${params.token}" }
    cache: { enabled: true }
  flaky:
    type: command
    with:
      argv: [sh, -c, 'if [ ! -f flaky.done ]; then touch flaky.done; echo "failing with $T" >&2; exit 1; fi; echo "ok $T"']
      env: { T: "${secret.E2E_PLAIN}" }
    retries: { max_attempts: 2, initial_delay: 10ms }
  slow:
    type: command
    with:
      argv: [sh, -c, 'echo "slow $T"; sleep 5']
      env: { T: "${secret.E2E_PLAIN}" }
    timeout: 300ms
  fails:
    type: command
    depends_on: [prints]
    with:
      argv: [sh, -c, 'echo "bad $0" >&2; exit 3', "${params.token}"]
"#;

#[test]
fn a_secret_is_used_and_never_written_to_the_run_store_or_mlflow() {
    let server = server();
    let sb = Sandbox::new();
    sb.write("p.yaml", PIPELINE);
    let token = unique("tok");
    let plain = unique("plain");
    let suffix = unique("exp");
    let run = |args: &[&str]| {
        sb.cmd(args)
            .env("MLFLOW_TRACKING_URI", &server.url)
            .env("E2E_API_TOKEN", &token)
            .env("E2E_PLAIN", &plain)
            .env("E2E_SUFFIX", &suffix)
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    };
    let first = run(&["run", "p.yaml", "--json"]);
    assert_eq!(
        first.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let run_id = record["run_id"].as_str().unwrap().to_string();
    assert_eq!(common::status(&record, "prints"), "succeeded");
    assert_eq!(common::status(&record, "flaky"), "succeeded");
    assert_eq!(common::attempts(&record, "flaky"), 2);
    assert_eq!(common::status(&record, "slow"), "failed");
    assert_eq!(common::status(&record, "fails"), "failed");
    let stdout_tail = record["tasks"]["prints"]["output"]["values"]["stdout_tail"]
        .as_str()
        .unwrap();
    assert_eq!(
        stdout_tail, "token is ***\n",
        "the task saw the value, the record shows ***"
    );

    // Resumed: the secrets are read from the environment again.
    let resumed = run(&["run", "--resume", &run_id, "--json"]);
    assert_eq!(
        resumed.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    // A second run reuses the cache.
    let again = run(&["run", "p.yaml", "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(common::status(&again, "prints"), "cached");
    // Without the secret, a resume is an error naming it.
    let missing = sb
        .cmd(&["run", "--resume", &run_id])
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("E2E_API_TOKEN", &token)
        .env("E2E_SUFFIX", &suffix)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("`E2E_PLAIN`") && err.contains("not set"),
        "{err}"
    );

    let log = std::fs::read_to_string(sb.runs().join(&run_id).join("log.jsonl")).unwrap();
    assert!(
        log.contains("token is ***"),
        "the command's output is masked: {log}"
    );
    let plan = std::fs::read_to_string(sb.runs().join(&run_id).join("plan.json")).unwrap();
    assert!(
        plan.contains("E2E_API_TOKEN") && plan.contains("\"***\""),
        "{plan}"
    );

    // MLflow has the run, with the secret param as ***.
    let mlflow_dir = mlflow_store_dir();
    let link: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.runs().join(&run_id).join("mlflow.json")).unwrap(),
    )
    .unwrap();
    let body = get(
        &server.url,
        &format!(
            "/api/2.0/mlflow/runs/get?run_id={}",
            link["run_id"].as_str().unwrap()
        ),
        None,
    );
    assert!(
        body.contains("\"key\":\"token\"") || body.contains("\"key\": \"token\""),
        "{body}"
    );
    assert!(body.contains("***"), "{body}");

    for needle in [&token, &plain] {
        for (what, out) in [
            ("first", &first),
            ("resumed", &resumed),
            ("missing", &missing),
        ] {
            for stream in [&out.stdout, &out.stderr] {
                assert!(
                    !String::from_utf8_lossy(stream).contains(needle.as_str()),
                    "{what} printed a secret"
                );
            }
        }
        assert_eq!(files_containing(&sb.runs(), needle), Vec::<PathBuf>::new());
        assert_eq!(files_containing(&mlflow_dir, needle), Vec::<PathBuf>::new());
        assert!(!body.contains(needle.as_str()));
    }
}

/// The directory of the shared MLflow test server (its database and artifacts).
fn mlflow_store_dir() -> PathBuf {
    let prefix = format!("tweetflow-mlflow-test-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .expect("the MLflow test server's directory")
}

/// GET `path` from `url` (HTTP/1.0), with basic auth when given; the body.
fn get(url: &str, path: &str, auth: Option<(&str, &str)>) -> String {
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    if let Some((user, password)) = auth {
        let token = base64(&format!("{user}:{password}"));
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An MLflow server with basic auth (`mlflow server --app-name basic-auth`), stopped on drop.
struct AuthServer {
    url: String,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        // SAFETY: signals the server's own process group.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn auth_server(admin_password: &str) -> AuthServer {
    let python = venv().join("bin").join("python");
    let probe = Command::new(&python)
        .args(["-c", "import flask_wtf"])
        .output()
        .expect("run the venv's python");
    assert!(
        probe.status.success(),
        "the basic-auth MLflow server needs the mlflow[auth] extra (requirements-test.txt) in {}: run `scripts/setup-venv.sh test`",
        venv().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("basic_auth.ini");
    std::fs::write(
        &ini,
        format!(
            "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{}/auth.db\nadmin_username = admin\nadmin_password = {admin_password}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(venv().join("bin").join("mlflow"))
        .args([
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            "127.0.0.1",
            "--workers",
            "1",
        ])
        .args(["--port", &port.to_string()])
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}/mlflow.db", dir.path().display()))
        .arg("--artifacts-destination")
        .arg(dir.path().join("artifacts"))
        .env("MLFLOW_AUTH_CONFIG_PATH", &ini)
        .env("MLFLOW_FLASK_SERVER_SECRET_KEY", unique("flask"))
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
        .process_group(0)
        .spawn()
        .expect("start mlflow");
    let server = AuthServer {
        url: format!("http://127.0.0.1:{port}"),
        child,
        dir,
    };
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && get(&server.url, "/health", None).contains(" 200 ")
        {
            return server;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "the basic-auth MLflow server did not start (needs the mlflow[auth] extra):\n{}",
        std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default()
    );
}

#[test]
fn an_mlflow_password_works_and_is_never_written() {
    let password = unique("Pw");
    let server = auth_server(&password);
    // The password given as MLFLOW_TRACKING_PASSWORD, then inside the tracking URI.
    let port = server.url.rsplit(':').next().unwrap();
    let in_url = format!("http://admin:{password}@127.0.0.1:{port}");
    for (uri, env_password) in [(server.url.clone(), true), (in_url, false)] {
        password_run(&server, &password, &uri, env_password);
    }
}

fn password_run(server: &AuthServer, password: &str, uri: &str, env_password: bool) {
    // Cloud credentials in the environment are masked the same way.
    let aws_key_id = unique("AKIA");
    let aws_secret = unique("aws-secret");
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: authed
mlflow: { experiment: authed }
tasks:
  env: { type: command, with: { argv: [sh, -c, 'env; echo "pw=$MLFLOW_TRACKING_PASSWORD uri=$MLFLOW_TRACKING_URI" >&2'] } }
"#,
    );
    let mut cmd = sb.cmd(&["run", "p.yaml", "--json"]);
    cmd.env("MLFLOW_TRACKING_URI", uri)
        .env("AWS_ACCESS_KEY_ID", &aws_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &aws_secret)
        .env("RUST_LOG", "info");
    if env_password {
        cmd.env("MLFLOW_TRACKING_USERNAME", "admin")
            .env("MLFLOW_TRACKING_PASSWORD", password);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = record["run_id"].as_str().unwrap();
    let tags = &record["tags"];
    assert!(
        tags.get("mlflow.pending").is_none(),
        "the password was accepted: {tags}"
    );
    let link: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.runs().join(run_id).join("mlflow.json")).unwrap())
            .unwrap();
    assert_eq!(link["complete"], true);
    assert_eq!(link["tracking_uri"], server.url.as_str(), "{link}");
    let path = format!(
        "/api/2.0/mlflow/runs/get?run_id={}",
        link["run_id"].as_str().unwrap()
    );
    assert!(
        get(&server.url, &path, None).contains(" 401 "),
        "auth is on"
    );
    let body = get(&server.url, &path, Some(("admin", password)));
    assert!(body.contains("FINISHED"), "{body}");
    let log = std::fs::read_to_string(sb.runs().join(run_id).join("log.jsonl")).unwrap();
    match env_password {
        true => assert!(log.contains("pw=***"), "{log}"),
        false => assert!(log.contains("uri=http://admin:***@127.0.0.1"), "{log}"),
    }

    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(password));
    }
    assert_eq!(
        files_containing(&sb.runs(), password),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_containing(&server.dir.path().join("artifacts"), password),
        Vec::<PathBuf>::new()
    );
    let db = std::fs::read(server.dir.path().join("mlflow.db")).unwrap();
    assert!(!db.windows(password.len()).any(|w| w == password.as_bytes()));
    assert!(!body.contains(password));
}
