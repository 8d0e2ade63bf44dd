//! A real local Ray cluster for tests: one per process, started on first use from the
//! project's venv (`TWEETFLOW_VENV`, else `<workspace>/.venv`): a head node and one more
//! worker node on this machine, each with 1 CPU, on free ports, with their own temporary
//! directory. Its processes are stopped (its process group, not `ray stop`, which would stop
//! every Ray cluster of the machine) when the test process exits, even by `kill -9` (see
//! [`crate::watched`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::fixtures::venv;
use crate::watched::{free_port, http, spawn_watched, wait_until};

/// A running local Ray cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The dashboard (Jobs REST API): `http://127.0.0.1:<port>`.
    pub address: String,
    /// The cluster's temporary directory (sessions, logs).
    pub temp_dir: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

fn start() -> Result<Cluster, String> {
    let ray = venv().join("bin").join("ray");
    if !ray.exists() {
        return Err(format!(
            "the Ray tests need a real cluster, but {} does not exist. Create the venv with \
             `scripts/setup-venv.sh test` (requirements-test.txt pins ray[default]).",
            ray.display()
        ));
    }
    // Ray's socket paths must stay short: a directory directly under /tmp.
    let temp_dir = PathBuf::from(format!("/tmp/tfray-{}", std::process::id()));
    std::fs::create_dir_all(&temp_dir).map_err(|e| format!("{}: {e}", temp_dir.display()))?;
    let gcs = free_port().to_string();
    let dashboard = free_port();
    let dashboard_arg = dashboard.to_string();
    let ports: Vec<String> = (0..3).map(|_| free_port().to_string()).collect();
    // Starts both nodes; their daemons stay in the watchdog's process group, which is stopped
    // with the test process (never `ray stop`, which would stop every Ray on the machine).
    let script = r#"
        ray="$0"; dir="$1"; gcs="$2"; dash="$3"
        "$ray" start --head --port "$gcs" --dashboard-host 127.0.0.1 --dashboard-port "$dash" \
            --num-cpus 1 --temp-dir "$dir" --disable-usage-stats --include-dashboard true \
            --ray-client-server-port "$4" --dashboard-agent-listen-port "$5" \
            --min-worker-port 30000 --max-worker-port 30999 >"$dir/head.log" 2>&1 || exit 1
        "$ray" start --address "127.0.0.1:$gcs" --num-cpus 1 --disable-usage-stats \
            --dashboard-agent-listen-port "$6" --min-worker-port 31000 --max-worker-port 31999 \
            >"$dir/worker.log" 2>&1 || exit 1
        touch "$dir/started"
    "#;
    let args: [&OsStr; 9] = [
        "-c".as_ref(),
        script.as_ref(),
        ray.as_os_str(),
        temp_dir.as_os_str(),
        gcs.as_ref(),
        dashboard_arg.as_ref(),
        ports[0].as_ref(),
        ports[1].as_ref(),
        ports[2].as_ref(),
    ];
    spawn_watched(
        Path::new("bash"),
        &args,
        &temp_dir.join("start.log"),
        Some(&temp_dir),
        |c| {
            c.env("PATH", path_with_venv(&ray)).env("RAY_ADDRESS", "");
        },
    )
    .map_err(|e| format!("cannot start bash: {e}"))?;
    let t = Instant::now();
    let ready = wait_until(Duration::from_secs(240), Duration::from_millis(500), || {
        let summary = http(dashboard, "GET", "/nodes?view=summary", "")?;
        (temp_dir.join("started").exists()
            && summary.lines().next().is_some_and(|l| l.contains(" 200"))
            && summary.matches("\"raylet\"").count() >= 2)
            .then_some(())
    });
    if ready.is_some() {
        eprintln!(
            "Ray test cluster (2 nodes) on dashboard port {dashboard} ready in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        return Ok(Cluster {
            address: format!("http://127.0.0.1:{dashboard}"),
            temp_dir,
        });
    }
    let log = |name: &str| std::fs::read_to_string(temp_dir.join(name)).unwrap_or_default();
    Err(format!(
        "the Ray test cluster did not start within 240 s\nhead:\n{}\nworker:\n{}",
        log("head.log"),
        log("worker.log")
    ))
}

fn path_with_venv(ray: &std::path::Path) -> String {
    let bin = ray
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match std::env::var("PATH") {
        Ok(p) => format!("{bin}:{p}"),
        Err(_) => bin,
    }
}

/// The shared cluster; panics (failing the test) with the reason when it cannot start.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}
