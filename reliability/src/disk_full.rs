//! Disk full while a table is written and while the run store is written: a small tmpfs
//! filled up to a few KiB (as root), else a file-size limit on the engine (`RLIMIT_FSIZE`,
//! `SIGXFSZ` ignored, so writes fail with `EFBIG`). Expected: a clear error, the run record
//! readable, and after space is freed, `--resume` (or a rerun) completes exactly once.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::runner::{RunOutcome, Sandbox, shorten};
use crate::tables::{TABLES, diff};
use crate::{Ctx, Row, SuiteError};

/// Size of the small filesystem.
const FS_BYTES: u64 = 4 << 20;
/// File-size limit when no small filesystem can be mounted: above a landing file and the run
/// record, below the bronze table's Parquet file.
const FSIZE_LIMIT: u64 = 20_000;

#[derive(Clone, Copy, PartialEq)]
enum Place {
    Table,
    RunStore,
}

/// Both places, [`crate::Config::disk_full_each`] times each.
pub fn run(ctx: &Ctx) -> Result<Vec<Row>, SuiteError> {
    let mut rows = Vec::new();
    for place in [Place::Table, Place::RunStore] {
        let mut row = Row::new(match place {
            Place::Table => "disk full while writing a table, then --resume",
            Place::RunStore => "disk full while writing the run store, then --resume",
        });
        let mut how = String::new();
        let mut errors = Vec::new();
        for i in 0..ctx.config.disk_full_each {
            let sb = Sandbox::new(&ctx.tf)?;
            // Free space grows with each injection, so the disk fills at different writes.
            let free = match place {
                Place::Table => 8 << 10,
                Place::RunStore => 12 << 10,
            } + (i as u64) * (12 << 10);
            match SmallFs::mount(&sb.path().join("small")) {
                Ok(fs) => {
                    how = "tmpfs".into();
                    one(ctx, sb, place, Full::Fs(fs, free), &mut row, &mut errors)?;
                }
                Err(why) if place == Place::Table => {
                    how = format!("file-size limit {FSIZE_LIMIT} B ({why})");
                    one(ctx, sb, place, Full::Fsize, &mut row, &mut errors)?;
                }
                Err(why) => {
                    how = format!("not run: no small filesystem ({why})");
                    break;
                }
            }
        }
        errors.sort();
        errors.dedup();
        row.note = format!("{how}; errors: {}", errors.join(" | "));
        rows.push(row);
    }
    Ok(rows)
}

enum Full {
    Fs(SmallFs, u64),
    Fsize,
}

fn one(
    ctx: &Ctx,
    mut sb: Sandbox,
    place: Place,
    full: Full,
    row: &mut Row,
    errors: &mut Vec<String>,
) -> Result<(), SuiteError> {
    let i = row.injected;
    row.injected += 1;
    let args = sb.main_run_args(None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = match &full {
        Full::Fs(fs, free) => {
            match place {
                Place::Table => put_tables_on(&sb.data(), fs.dir())?,
                Place::RunStore => sb.set_runs(fs.dir().join("runs")),
            }
            fs.fill(*free)?;
            sb.run(sb.cmd(&args), "full")?
        }
        Full::Fsize => {
            let mut cmd = sb.cmd(&args);
            limit_file_size(&mut cmd, FSIZE_LIMIT);
            sb.run(cmd, "full")?
        }
    };
    let mut ok = true;
    if first.stderr.contains("panicked at") {
        // A panic caught inside a dependency still prints its message.
        errors.push("a caught panic printed on stderr".into());
    }
    match clear_error(&first) {
        Some(e) => errors.push(e),
        None => {
            ok = false;
            row.fail(format!(
                "injection {i}: no clear disk-full error: {}",
                first.describe()
            ));
        }
    }
    if let Err(e) = sb.runs_list() {
        ok = false;
        row.fail(format!("injection {i}: run store unreadable: {e}"));
    }
    if let Some(id) = sb.run_ids().last()
        && sb.record(id).is_none()
    {
        errors.push("no run record written".into());
    }
    if let Full::Fs(fs, _) = &full {
        fs.free()?;
    }
    let out = sb.resume_or_rerun("after")?;
    let d = diff(&ctx.reference, &ctx.snapshot(&sb.data()));
    row.lost += d.lost;
    row.duplicated += d.duplicated;
    if !out.succeeded() || !d.details.is_empty() {
        ok = false;
        row.fail(format!(
            "injection {i}: after freeing space {}; {}",
            out.describe(),
            d.details.join("; ")
        ));
    }
    if ok {
        row.survived += 1;
    }
    drop(full);
    Ok(())
}

/// The disk-full error of a failed run, named clearly (`None`: it succeeded, crashed (a
/// signal or a panic's exit code 101) or said something else).
fn clear_error(out: &RunOutcome) -> Option<String> {
    if !matches!(out.code, Some(c) if c != 0 && c != 101) {
        return None;
    }
    let record = out
        .record
        .as_ref()
        .map(|r| r.to_string())
        .unwrap_or_default();
    let all = format!("{}\n{record}", out.stderr);
    let line = all
        .lines()
        .chain(all.split("\\n"))
        .find(|l| l.contains("No space left on device") || l.contains("File too large"))?;
    let reason = if line.contains("No space left") {
        "No space left on device"
    } else {
        "File too large"
    };
    let place = if line.contains("/runs/") {
        "run store".to_string()
    } else {
        TABLES
            .iter()
            .rev()
            .find(|t| line.contains(&format!("data/{t}")))
            .map_or_else(|| shorten(line, 80), |t| format!("table {t}"))
    };
    Some(format!("{place}: {reason}"))
}

/// Makes each table under `data` a link to a folder of `small`.
fn put_tables_on(data: &Path, small: &Path) -> Result<(), SuiteError> {
    std::fs::create_dir_all(data).map_err(SuiteError::io("create the data folder"))?;
    for t in TABLES {
        let target = small.join(t);
        std::fs::create_dir_all(&target).map_err(SuiteError::io("create a table folder"))?;
        std::os::unix::fs::symlink(&target, data.join(t))
            .map_err(SuiteError::io("link a table folder"))?;
    }
    Ok(())
}

/// Sets `RLIMIT_FSIZE` of the child and ignores `SIGXFSZ`, so writes past `bytes` fail.
fn limit_file_size(cmd: &mut Command, bytes: u64) {
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// A small tmpfs mounted for the scenario, unmounted on drop.
struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    fn mount(dir: &Path) -> Result<SmallFs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        // SAFETY: getuid has no preconditions.
        #[allow(unsafe_code)]
        let uid = unsafe { libc::getuid() };
        if uid != 0 {
            return Err("not root".into());
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_BYTES}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallFs {
            dir: dir.to_path_buf(),
        })
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Fills the filesystem until about `free` bytes are left.
    fn fill(&self, free: u64) -> Result<(), SuiteError> {
        let used = dir_bytes(&self.dir);
        let size = FS_BYTES.saturating_sub(used + free) as usize;
        std::fs::write(self.filler(), vec![0u8; size]).map_err(SuiteError::io("fill the disk"))
    }

    /// Deletes the filler.
    fn free(&self) -> Result<(), SuiteError> {
        std::fs::remove_file(self.filler()).map_err(SuiteError::io("free the disk"))
    }
}

/// Bytes used by the files under `dir`, rounded up to 4 KiB pages.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => total += 4096 + dir_bytes(&e.path()),
                Ok(_) => total += e.metadata().map_or(0, |m| m.len().div_ceil(4096) * 4096),
                Err(_) => {}
            }
        }
    }
    total
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
