//! Server processes that die with the test process.
//!
//! [`spawn_watched`] runs a server command in the background of a bash "watchdog" in its own
//! process group. The watchdog waits for the test process to go away (even by `kill -9`, when
//! no exit handler runs), then stops the whole group (TERM, a grace period, KILL) and removes
//! the server's scratch directory. An exit handler also stops every group when the test
//! process exits normally. [`http`] is the tiny HTTP/1.0 client the harnesses poll with.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// The process groups to stop when the test process exits, with their scratch directories.
static GROUPS: Mutex<Vec<(i32, Option<PathBuf>)>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

#[allow(unsafe_code)]
extern "C" fn stop_all() {
    let entries = std::mem::take(&mut *GROUPS.lock().unwrap_or_else(|e| e.into_inner()));
    let groups: Vec<i32> = entries.iter().map(|(g, _)| *g).collect();
    for pgid in &groups {
        // SAFETY: plain kill(2) calls on process groups this process created.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
    }
    let t = Instant::now();
    // SAFETY: signal 0 only checks for existence.
    while t.elapsed() < Duration::from_secs(3)
        && groups.iter().any(|g| unsafe { libc::kill(-g, 0) } == 0)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pgid in &groups {
        // SAFETY: as above.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    for dir in entries.iter().filter_map(|(_, d)| d.as_ref()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Stops one process group started by [`spawn_watched`] now (TERM, up to 3 s, KILL), before
/// the test process exits.
#[allow(unsafe_code)] // kill(2) has no safe wrapper in the standard library
pub fn stop_group(pgid: i32) {
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(g, _)| *g != pgid);
    // SAFETY: kill(2) on a process group this process created; signal 0 only checks.
    unsafe {
        libc::kill(-pgid, libc::SIGTERM);
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) && unsafe { libc::kill(-pgid, 0) } == 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Starts `program args...` (stdout and stderr to `log`) under a watchdog in its own process
/// group; `scratch`, if given, is removed when the group is stopped. `configure` sets the
/// environment or working directory of the command. Returns the process group id.
pub fn spawn_watched(
    program: &Path,
    args: &[&OsStr],
    log: &Path,
    scratch: Option<&Path>,
    configure: impl FnOnce(&mut Command),
) -> std::io::Result<i32> {
    AT_EXIT.call_once(|| {
        // SAFETY: registering a plain extern "C" function.
        #[allow(unsafe_code)]
        unsafe {
            libc::atexit(stop_all);
        }
    });
    // $0 parent pid, $1 log, $2 scratch dir ("" for none), $3.. the command.
    let script = r#"
        parent="$0"; log="$1"; scratch="$2"; shift 2
        "$@" >"$log" 2>&1 &
        while kill -0 "$parent" 2>/dev/null; do sleep 1; done
        trap '' TERM
        kill -TERM 0
        sleep 3
        [ -n "$scratch" ] && rm -rf "$scratch"
        kill -KILL 0
    "#;
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(script)
        .arg(std::process::id().to_string())
        .arg(log)
        .arg(scratch.map(Path::as_os_str).unwrap_or_default())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    configure(&mut command);
    let child = {
        use std::os::unix::process::CommandExt;
        command.process_group(0).spawn()?
    };
    let pgid = child.id() as i32;
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((pgid, scratch.map(Path::to_path_buf)));
    Ok(pgid)
}

/// Sends one HTTP/1.0 request (`extra_headers` as `Name: value\r\n` lines) to 127.0.0.1:`port`
/// and returns the whole answer (status line, headers, body), or `None` when nothing answers.
pub fn http(port: u16, method: &str, path: &str, extra_headers: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n{extra_headers}\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.").then_some(buf)
}

/// Polls `ready` every `every` until it gives a value or `limit` passes.
pub fn wait_until<T>(
    limit: Duration,
    every: Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<T> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(v) = ready() {
            return Some(v);
        }
        std::thread::sleep(every);
    }
    None
}
