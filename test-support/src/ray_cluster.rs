//! A real local Ray cluster for tests: one per process, started on first use from the
//! project's venv (`TWEETFLOW_VENV`, else `<workspace>/.venv`): a head node and one more
//! worker node on this machine, each with 1 CPU, on free ports, with their own temporary
//! directory. It is stopped (`ray stop --force`) when the test process exits, even by
//! `kill -9` (a watchdog shell notices the parent is gone).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::fixtures::venv;
use crate::mlflow_server::free_port;

/// A running local Ray cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The dashboard (Jobs REST API): `http://127.0.0.1:<port>`.
    pub address: String,
    /// The cluster's temporary directory (sessions, logs).
    pub temp_dir: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static RAY: OnceLock<PathBuf> = OnceLock::new();
static WATCHDOG: OnceLock<u32> = OnceLock::new();

extern "C" fn stop_cluster() {
    if let Some(ray) = RAY.get() {
        let _ = Command::new(ray)
            .args(["stop", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    if let Some(pid) = WATCHDOG.get() {
        // SAFETY: kill(2) on the watchdog shell this process started.
        unsafe {
            libc::kill(*pid as i32, libc::SIGKILL);
        }
    }
    if let Some(Ok(c)) = CLUSTER.get() {
        let _ = std::fs::remove_dir_all(&c.temp_dir);
    }
}

fn answers(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let ok = buf.starts_with("HTTP/1.") && buf.lines().next().is_some_and(|l| l.contains(" 200"));
    ok.then_some(buf)
}

fn start() -> Result<Cluster, String> {
    let ray = venv().join("bin").join("ray");
    if !ray.exists() {
        return Err(format!(
            "the Ray tests need a real cluster, but {} does not exist. Create the venv with \
             scripts/setup-venv.sh (requirements.txt pins ray[default]).",
            ray.display()
        ));
    }
    let _ = RAY.set(ray.clone());
    // Ray's socket paths must stay short: a directory directly under /tmp.
    let temp_dir = PathBuf::from(format!("/tmp/tfray-{}", std::process::id()));
    std::fs::create_dir_all(&temp_dir).map_err(|e| format!("{}: {e}", temp_dir.display()))?;
    // SAFETY: registering a plain extern "C" function.
    unsafe {
        libc::atexit(stop_cluster);
    }
    let gcs = free_port();
    let dashboard = free_port();
    let ports: Vec<String> = (0..6).map(|_| free_port().to_string()).collect();
    // Starts both nodes, then waits for the test process to go away and stops them.
    let script = r#"
        ray="$0"; dir="$1"; gcs="$2"; dash="$3"; parent="$4"
        "$ray" start --head --port "$gcs" --dashboard-host 127.0.0.1 --dashboard-port "$dash" \
            --num-cpus 1 --temp-dir "$dir" --disable-usage-stats --include-dashboard true \
            --ray-client-server-port "$5" --dashboard-agent-listen-port "$6" \
            --min-worker-port 30000 --max-worker-port 30999 >"$dir/head.log" 2>&1 || exit 1
        "$ray" start --address "127.0.0.1:$gcs" --num-cpus 1 --disable-usage-stats \
            --dashboard-agent-listen-port "$7" --min-worker-port 31000 --max-worker-port 31999 \
            >"$dir/worker.log" 2>&1 || exit 1
        touch "$dir/started"
        while kill -0 "$parent" 2>/dev/null; do sleep 1; done
        "$ray" stop --force >/dev/null 2>&1
        rm -rf "$dir"
    "#;
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg(&ray)
            .arg(&temp_dir)
            .arg(gcs.to_string())
            .arg(dashboard.to_string())
            .arg(std::process::id().to_string())
            .args(&ports[..3])
            .env("PATH", path_with_venv(&ray))
            .env("RAY_ADDRESS", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start bash: {e}"))?
    };
    let _ = WATCHDOG.set(child.id());
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(240) {
        if temp_dir.join("started").exists()
            && let Some(summary) = answers(dashboard, "/nodes?view=summary")
            && summary.matches("\"raylet\"").count() >= 2
        {
            eprintln!(
                "Ray test cluster (2 nodes) on dashboard port {dashboard} ready in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            return Ok(Cluster {
                address: format!("http://127.0.0.1:{dashboard}"),
                temp_dir,
            });
        }
        std::thread::sleep(Duration::from_millis(500));
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
