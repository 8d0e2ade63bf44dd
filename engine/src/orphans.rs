//! Processes a dead engine left behind, stopped before its run is resumed.
//!
//! Every process the engine starts for a run (a `command` task's program, a local shard's
//! `tweetflow task exec`) gets [`RUN_ID_ENV`]`=<run id>` in its environment, which its own
//! children inherit, and is asked to be killed with its parent (`PR_SET_PDEATHSIG`). The
//! kernel does that for the direct child when the engine dies; a grandchild (the program a
//! `sh -c` started, say) is not covered by it. So before a resume starts a run's work again,
//! [`stop_orphans`] looks through `/proc` for live processes whose environment names the run,
//! kills each one's process group and itself with SIGKILL, and waits until they are gone:
//! nothing of the dead engine keeps writing while the resumed run does the same work.
//!
//! Only processes of this machine and of this user can be seen; a process that cleared its
//! environment and left its process group is not found. Ray jobs are not processes of the
//! engine: a resume attaches to them (see `crate::executor`). A Ray job's processes may run on
//! this machine and carry the run id too (a `command` task inside the job sets it), so a
//! process whose environment holds an attempt given inline ([`crate::executor::ATTEMPT_ENV`],
//! which only a remote executor's job has) is never taken for an orphan.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// The environment variable naming the run a child process works for.
pub const RUN_ID_ENV: &str = "TWEETFLOW_RUN_ID";

/// How long [`stop_orphans`] waits for killed processes to go.
const WAIT: Duration = Duration::from_secs(5);

/// Kills the processes left over from an earlier engine of run `run_id` (see the module
/// doc); returns how many were found.
#[allow(unsafe_code)] // getpgrp(2) and kill(2), see the SAFETY notes
pub fn stop_orphans(run_id: &str) -> usize {
    let own = ancestors();
    let found = find(run_id, &own);
    if found.is_empty() {
        return 0;
    }
    warn!(run_id, processes = ?found, "processes of the dead engine still run: killing them");
    // SAFETY: getpgrp(2) has no preconditions.
    let own_group = unsafe { libc::getpgrp() };
    for &pid in &found {
        if let Some(group) = process_group(pid).filter(|g| *g != own_group && *g > 1) {
            // SAFETY: kill(2) on a process group found above; no memory effects.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        // SAFETY: kill(2) on a process found above; no memory effects.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let start = Instant::now();
    loop {
        let left = find(run_id, &own);
        if left.is_empty() {
            info!(
                run_id,
                killed = found.len(),
                "stopped the dead engine's processes"
            );
            break;
        }
        if start.elapsed() > WAIT {
            warn!(run_id, processes = ?left, "processes of the dead engine did not go");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    found.len()
}

/// Live (not zombie) processes whose environment holds `RUN_ID_ENV=run_id` and no inline
/// attempt (a remote job's), except `own`.
fn find(run_id: &str, own: &HashSet<i32>) -> Vec<i32> {
    let needle = format!("{RUN_ID_ENV}={run_id}");
    let remote = format!("{}=", crate::executor::ATTEMPT_ENV);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<i32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !own.contains(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                let mut vars = env.split(|b| *b == 0);
                let ours = vars.clone().any(|var| var == needle.as_bytes());
                ours && !vars.any(|var| var.starts_with(remote.as_bytes()))
            })
        })
        .filter(|pid| state(*pid).is_some_and(|s| s != 'Z' && s != 'X'))
        .collect();
    out.sort_unstable();
    out
}

/// Fields after the command name of `/proc/<pid>/stat` (the name may hold spaces).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn state(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

fn parent(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

fn process_group(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// This process and its ancestors (never killed, even when started by a task of the run).
fn ancestors() -> HashSet<i32> {
    let mut out = HashSet::new();
    let mut pid = std::process::id() as i32;
    while pid > 1 && out.insert(pid) {
        match parent(pid) {
            Some(p) => pid = p,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_grandchild_carrying_the_run_id_is_killed_and_others_are_left() {
        let run = format!("orphan-test-{}", std::process::id());
        // `sh` starts a grandchild in the background and exits: the grandchild is an orphan.
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 60 >/dev/null 2>&1 & echo $!"])
            .env(RUN_ID_ENV, &run)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let mut other = Command::new("sleep")
            .arg("60")
            .env(RUN_ID_ENV, "another-run")
            .spawn()
            .expect("sleep");
        // A remote job's process of the same run (a `command` task inside a Ray job on this
        // machine): its executor owns it.
        let mut remote = Command::new("sleep")
            .arg("60")
            .env(RUN_ID_ENV, &run)
            .env(crate::executor::ATTEMPT_ENV, "H4sI")
            .spawn()
            .expect("sleep");
        let out = {
            use std::io::Read;
            let mut s = String::new();
            sh.stdout
                .take()
                .expect("stdout")
                .read_to_string(&mut s)
                .expect("read");
            s
        };
        let _ = sh.wait();
        let grandchild: i32 = out.trim().parse().expect("pid");
        assert_eq!(find(&run, &ancestors()), vec![grandchild]);
        assert_eq!(stop_orphans(&run), 1);
        assert!(find(&run, &ancestors()).is_empty());
        assert_eq!(
            other.try_wait().expect("poll"),
            None,
            "another run's process lives"
        );
        assert_eq!(
            remote.try_wait().expect("poll"),
            None,
            "a remote job's process lives"
        );
        for p in [&mut other, &mut remote] {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}
