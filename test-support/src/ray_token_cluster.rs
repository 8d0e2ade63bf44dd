//! A Ray cluster set up as in production, for tests: token authentication on
//! (`RAY_AUTH_MODE=token`, a random token), a head node with no CPUs (it runs no job), and one
//! worker node with 2 CPUs in its own mount namespace with an empty tmpfs over `/tmp`, so it
//! sees none of the files the tests' engines write (their sandboxes, run stores and local
//! tables live under `/tmp`). The worker node is like a node of a Ray image: the `tweetflow`
//! binary at [`TokenCluster::node_tweetflow`] (copied into its tmpfs), the node's Python with
//! Ray, the `AWS_*` variables of the S3 test server ([`crate::s3_server`]) in its environment,
//! and nothing of tweetflow's own settings (`TWEETFLOW_VENV`, `ORT_DYLIB_PATH` are removed).
//!
//! Two versions: [`RayVersion::Pinned`] (the project venv's `ray`) and
//! [`RayVersion::Previous`] (the previous minor, installed on first use into
//! `<venv>/extra/ray-<version>` with pip). One cluster per version and test process; its
//! processes are in their own process group, stopped with the test process (never `ray stop`,
//! which would stop every Ray cluster of the machine).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::fixtures::venv;
use crate::watched::{free_port, http, spawn_watched, wait_until};

/// The previous minor release of Ray, tested beside the pinned one.
pub const PREVIOUS_RAY: &str = "2.59";

/// Which Ray the cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RayVersion {
    /// The project venv's (requirements.txt).
    Pinned,
    /// [`PREVIOUS_RAY`], from its own venv.
    Previous,
}

/// A running token-protected cluster.
#[derive(Debug)]
pub struct TokenCluster {
    /// The dashboard (Jobs REST API): `http://127.0.0.1:<port>`.
    pub address: String,
    /// The cluster's token.
    pub token: String,
    /// `ray --version` of its nodes.
    pub version: String,
    /// The `tweetflow` binary on the worker node (absent on the engine's machine).
    pub node_tweetflow: String,
    /// The venv whose Python and Ray the nodes run.
    pub venv: PathBuf,
    /// The cluster's temporary directory (logs).
    pub temp_dir: PathBuf,
}

static PINNED: OnceLock<Result<TokenCluster, String>> = OnceLock::new();
static PREVIOUS: OnceLock<Result<TokenCluster, String>> = OnceLock::new();

/// Where the worker node finds the `tweetflow` binary.
const NODE_BIN: &str = "/tmp/tfnode/tweetflow";

/// The venv of [`PREVIOUS_RAY`], made with pip on first use.
fn previous_venv() -> Result<PathBuf, String> {
    let dir = venv().join("extra").join(format!("ray-{PREVIOUS_RAY}"));
    let done = dir.join(".installed");
    if done.exists() {
        return Ok(dir);
    }
    let python = venv().join("bin").join("python");
    let t = Instant::now();
    let run = |cmd: &mut std::process::Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    if !dir.join("bin").join("pip").exists() {
        run(std::process::Command::new(&python)
            .args(["-m", "venv"])
            .arg(&dir))?;
    }
    run(
        std::process::Command::new(dir.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("ray[default]=={PREVIOUS_RAY}.*"),
        ]),
    )
    .map_err(|e| {
        format!(
            "cannot install Ray {PREVIOUS_RAY} into {}: {e}",
            dir.display()
        )
    })?;
    std::fs::write(&done, "").map_err(|e| format!("{}: {e}", done.display()))?;
    eprintln!(
        "installed Ray {PREVIOUS_RAY} into {} in {:.0} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(dir)
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("tfray-{hex}")
}

fn start(version: RayVersion, binary: &Path) -> Result<TokenCluster, String> {
    let venv = match version {
        RayVersion::Pinned => venv(),
        RayVersion::Previous => previous_venv()?,
    };
    let ray = venv.join("bin").join("ray");
    if !ray.exists() {
        return Err(format!(
            "the Ray tests need a real cluster, but {} does not exist. Create the venv with \
             scripts/setup-venv.sh (requirements.txt pins ray[default]).",
            ray.display()
        ));
    }
    if !binary.exists() {
        return Err(format!("no tweetflow binary at {}", binary.display()));
    }
    let version_text = std::process::Command::new(&ray)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let tag = match version {
        RayVersion::Pinned => "p",
        RayVersion::Previous => "q",
    };
    // Ray's socket paths must stay short: a directory directly under /tmp.
    let temp_dir = PathBuf::from(format!("/tmp/tfrt{tag}-{}", std::process::id()));
    std::fs::create_dir_all(temp_dir.join("home"))
        .map_err(|e| format!("{}: {e}", temp_dir.display()))?;
    let token = random_token();
    let gcs = free_port().to_string();
    let dashboard = free_port();
    let dashboard_arg = dashboard.to_string();
    let ports: Vec<String> = (0..3).map(|_| free_port().to_string()).collect();
    let (lo, hi) = match version {
        // Below the ephemeral range (32768-60999), where `free_port` takes its ports.
        RayVersion::Pinned => ("20000", "21999"),
        RayVersion::Previous => ("22000", "23999"),
    };
    // The head (no CPUs), then the worker node in its own mount namespace: a tmpfs over
    // /tmp hides the engine's files; the binary is copied in through a descriptor opened
    // before the mount.
    let script = r#"
        ray="$0"; dir="$1"; gcs="$2"; dash="$3"; bin="$7"; lo="$8"; hi="$9"
        "$ray" start --head --port "$gcs" --dashboard-host 127.0.0.1 --dashboard-port "$dash" \
            --num-cpus 0 --temp-dir "$dir" --disable-usage-stats --include-dashboard true \
            --ray-client-server-port "$4" --dashboard-agent-listen-port "$5" \
            --min-worker-port "$lo" --max-worker-port "$((lo + 999))" >"$dir/head.log" 2>&1 || { touch "$dir/failed"; exit 1; }
        exec 3<"$bin"
        env -u TWEETFLOW_VENV -u ORT_DYLIB_PATH -u TWEETFLOW_RUNS_DIR HOME=/tmp/tfnode-home \
            unshare --mount --propagation private bash -c '
                mount -t tmpfs tmpfs /tmp || exit 1
                mkdir -p /tmp/tfnode /tmp/tfnode-home && cat <&3 >/tmp/tfnode/tweetflow && chmod 755 /tmp/tfnode/tweetflow || exit 1
                exec 3<&-
                cd /tmp/tfnode
                exec "$0" start --address "127.0.0.1:$1" --num-cpus 2 --disable-usage-stats \
                    --dashboard-agent-listen-port "$2" --min-worker-port "$3" --max-worker-port "$4" --block
            ' "$ray" "$gcs" "$6" "$((lo + 1000))" "$hi" >"$dir/worker.log" 2>&1 &
        exec 3<&-
        touch "$dir/started"
        wait
    "#;
    let args: [&OsStr; 12] = [
        "-c".as_ref(),
        script.as_ref(),
        ray.as_os_str(),
        temp_dir.as_os_str(),
        gcs.as_ref(),
        dashboard_arg.as_ref(),
        ports[0].as_ref(),
        ports[1].as_ref(),
        ports[2].as_ref(),
        binary.as_os_str(),
        lo.as_ref(),
        hi.as_ref(),
    ];
    let s3 = crate::s3_server::server();
    let bin_dir = ray.parent().map(Path::to_path_buf).unwrap_or_default();
    spawn_watched(
        Path::new("bash"),
        &args,
        &temp_dir.join("start.log"),
        Some(&temp_dir),
        |c| {
            c.env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()),
            )
            .env("HOME", temp_dir.join("home"))
            .env("RAY_ADDRESS", "")
            .env("RAY_AUTH_MODE", "token")
            .env("RAY_AUTH_TOKEN", &token)
            .envs(s3.env());
        },
    )
    .map_err(|e| format!("cannot start the Ray test cluster: {e}"))?;
    let t = Instant::now();
    let auth = format!("Authorization: Bearer {token}\r\n");
    let ready = wait_until(Duration::from_secs(300), Duration::from_millis(500), || {
        if temp_dir.join("failed").exists() {
            return Some(false);
        }
        let summary = http(dashboard, "GET", "/nodes?view=summary", &auth)?;
        (temp_dir.join("started").exists()
            && summary.lines().next().is_some_and(|l| l.contains(" 200"))
            && summary.matches("\"raylet\"").count() >= 2)
            .then_some(true)
    });
    if ready == Some(true) {
        eprintln!(
            "Ray {version_text} token-protected cluster (head + namespaced worker) on dashboard port {dashboard} ready in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        return Ok(TokenCluster {
            address: format!("http://127.0.0.1:{dashboard}"),
            token,
            version: version_text,
            node_tweetflow: NODE_BIN.to_string(),
            venv,
            temp_dir,
        });
    }
    let log = |name: &str| std::fs::read_to_string(temp_dir.join(name)).unwrap_or_default();
    Err(format!(
        "the token-protected Ray test cluster did not start (within 300 s)\nstart:\n{}\nhead:\n{}\nworker:\n{}",
        log("start.log"),
        log("head.log"),
        log("worker.log")
    ))
}

/// The cluster of `version`, its worker node holding a copy of the `tweetflow` binary at
/// `binary` (on first use); panics (failing the test) with the reason when it cannot start.
pub fn token_cluster(version: RayVersion, binary: &Path) -> &'static TokenCluster {
    let cell = match version {
        RayVersion::Pinned => &PINNED,
        RayVersion::Previous => &PREVIOUS,
    };
    match cell.get_or_init(|| start(version, binary)) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// Why this machine cannot run a worker node in its own mount namespace.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoMountNamespace(pub String);

/// Whether this process may create mount namespaces (root, `unshare` installed).
pub fn can_unshare() -> Result<(), NoMountNamespace> {
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .output()
        .map_err(|e| NoMountNamespace(format!("`unshare` cannot run: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NoMountNamespace(format!(
            "`unshare --mount` fails here ({}): the test runs a Ray worker node in its own mount namespace, which needs root",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
