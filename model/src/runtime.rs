//! Locating and loading the ONNX Runtime shared library (`ort` with `load-dynamic`).
//!
//! Search order, first match wins:
//!
//! 1. `ORT_DYLIB_PATH`, when set: that file and nothing else (an explicit setting that
//!    points at a missing or unusable file is an error, not a reason to look elsewhere);
//! 2. beside the executable: `<exe dir>/libonnxruntime.so*`;
//! 3. the project's Python venv: `$TWEETFLOW_VENV`, else the nearest `.venv` in the current
//!    directory or one of its parents, then
//!    `lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` (the `onnxruntime`
//!    wheel installed by `scripts/setup-venv.sh`).
//!
//! On a cluster node (the Ray executor sets `TWEETFLOW_WORKER` in each job), the search goes
//! the way a Ray image is set up: the `onnxruntime` wheel of the node's Python first (the `python3` on
//! `PATH`, asked with `importlib`), then
//! the library named by `onnxruntime:` in the executor's settings (`TWEETFLOW_ONNXRUNTIME`),
//! then `ORT_DYLIB_PATH`, then 2 and 3; a candidate that cannot be loaded passes to the next.
//!
//! The library is loaded once per process ([`init`]); the outcome, success or failure, is
//! kept, so every later call answers the same. A failure is one message that names every
//! place looked and the command that fixes it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{ModelError, Result};

/// Oldest ONNX Runtime release this build can use (`ort`'s API level).
pub const MIN_ORT_MINOR: u32 = ort::MINOR_VERSION;

/// The loaded runtime.
#[derive(Clone)]
pub struct Runtime {
    /// The shared library that was loaded.
    pub library: PathBuf,
    /// How it was found (e.g. "ORT_DYLIB_PATH", "beside the executable", "venv /x/.venv").
    pub found_via: String,
    pub(crate) env: ort::environment::Environment,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .field("found_via", &self.found_via)
            .finish_non_exhaustive()
    }
}

struct RuntimeCell(std::result::Result<Runtime, String>);

static RUNTIME: OnceLock<RuntimeCell> = OnceLock::new();

/// One place the search looked at, for the error message.
struct Looked {
    place: String,
    outcome: String,
}

fn lib_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
                    && p.is_file()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    // Prefer the versioned file (`libonnxruntime.so.1.32.0`) over a bare `.so` symlink: both
    // work, the versioned name is more informative in messages.
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found
}

/// The venv the search uses: `$TWEETFLOW_VENV`, else the nearest `.venv` from the current
/// directory up.
pub fn project_venv() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("TWEETFLOW_VENV").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(v));
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|d| d.join(".venv"))
        .find(|v| v.is_dir())
}

/// Library files of the `onnxruntime` wheel inside a venv.
fn venv_libs(venv: &Path) -> (Vec<PathBuf>, String) {
    let lib = venv.join("lib");
    let mut out = Vec::new();
    let mut pys = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&lib) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("python3") {
                pys.push(name);
                out.extend(lib_files_in(
                    &e.path()
                        .join("site-packages")
                        .join("onnxruntime")
                        .join("capi"),
                ));
            }
        }
    }
    let pattern = format!(
        "{}/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*",
        venv.display()
    );
    let outcome = if !venv.is_dir() {
        "no such directory".to_string()
    } else if pys.is_empty() {
        "no lib/python3* inside".to_string()
    } else if out.is_empty() {
        "no match (onnxruntime is not installed in this venv)".to_string()
    } else {
        String::new()
    };
    (out, format!("{pattern}|{outcome}"))
}

/// Set by the Ray executor in each job: the process runs on a cluster node.
pub const WORKER_ENV: &str = "TWEETFLOW_WORKER";
/// The library named by `onnxruntime:` in the executor's settings, on a node.
pub const EXECUTOR_LIBRARY_ENV: &str = "TWEETFLOW_ONNXRUNTIME";

/// The `onnxruntime` package folder of the Python on `PATH` (`python3`, then `python`), as
/// that Python finds it.
fn python_wheel(found: &mut Vec<(PathBuf, String)>, looked: &mut Vec<Looked>) {
    const ASK: &str = "import importlib.util as u, sys\ns = u.find_spec('onnxruntime')\nprint(sys.executable)\nprint(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";
    for python in ["python3", "python"] {
        let out = match std::process::Command::new(python)
            .args(["-c", ASK])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => out,
            Ok(out) => {
                looked.push(Looked {
                    place: format!("the onnxruntime wheel of `{python}` on PATH"),
                    outcome: format!("`{python}` failed ({})", out.status),
                });
                continue;
            }
            Err(_) => {
                looked.push(Looked {
                    place: format!("the onnxruntime wheel of `{python}` on PATH"),
                    outcome: "no such program".into(),
                });
                continue;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let exe = lines.next().unwrap_or(python).to_string();
        let package = lines.next().unwrap_or("").trim();
        let place = format!("the onnxruntime wheel of {exe}");
        if package.is_empty() {
            looked.push(Looked {
                place,
                outcome: "not installed (pip install onnxruntime)".into(),
            });
            return;
        }
        let capi = Path::new(package).join("capi");
        let libs = lib_files_in(&capi);
        if libs.is_empty() {
            looked.push(Looked {
                place: format!("{place}: {}/libonnxruntime.so*", capi.display()),
                outcome: "no match".into(),
            });
        }
        found.extend(libs.into_iter().map(|p| (p, place.clone())));
        return;
    }
}

/// A library named by a variable, tried and passed over when it is not a file.
fn named_by(var: &str, what: &str, found: &mut Vec<(PathBuf, String)>, looked: &mut Vec<Looked>) {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            if p.is_file() {
                found.push((p, what.to_string()));
            } else {
                looked.push(Looked {
                    place: format!("{what}: {}", p.display()),
                    outcome: "no such file".into(),
                });
            }
        }
        None => looked.push(Looked {
            place: what.to_string(),
            outcome: "not set".into(),
        }),
    }
}

/// Candidate libraries in search order, and the places looked at.
fn candidates() -> (Vec<(PathBuf, String)>, Vec<Looked>, bool) {
    let mut looked = Vec::new();
    let mut found = Vec::new();
    let on_node = std::env::var_os(WORKER_ENV).is_some_and(|v| !v.is_empty());
    if on_node {
        python_wheel(&mut found, &mut looked);
        named_by(
            EXECUTOR_LIBRARY_ENV,
            "`onnxruntime` of the executor settings",
            &mut found,
            &mut looked,
        );
        named_by("ORT_DYLIB_PATH", "ORT_DYLIB_PATH", &mut found, &mut looked);
        beside_exe_and_venv(&mut found, &mut looked);
        return (found, looked, false);
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            found.push((p, "ORT_DYLIB_PATH".to_string()));
        } else {
            looked.push(Looked {
                place: format!("ORT_DYLIB_PATH={}", p.display()),
                outcome: "no such file".into(),
            });
        }
        return (found, looked, true);
    }
    looked.push(Looked {
        place: "ORT_DYLIB_PATH".into(),
        outcome: "not set".into(),
    });
    beside_exe_and_venv(&mut found, &mut looked);
    (found, looked, false)
}

/// Candidates 2 and 3 of the module documentation.
fn beside_exe_and_venv(found: &mut Vec<(PathBuf, String)>, looked: &mut Vec<Looked>) {
    match std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        Some(dir) => {
            let libs = lib_files_in(&dir);
            if libs.is_empty() {
                looked.push(Looked {
                    place: format!(
                        "beside the executable: {}/libonnxruntime.so*",
                        dir.display()
                    ),
                    outcome: "no match".into(),
                });
            }
            found.extend(
                libs.into_iter()
                    .map(|p| (p, "beside the executable".to_string())),
            );
        }
        None => looked.push(Looked {
            place: "beside the executable".into(),
            outcome: "the executable's path is unknown".into(),
        }),
    }
    match project_venv() {
        Some(venv) => {
            let (libs, desc) = venv_libs(&venv);
            if libs.is_empty() {
                let (pattern, outcome) = desc.split_once('|').unwrap_or((desc.as_str(), ""));
                looked.push(Looked {
                    place: format!("project venv: {pattern}"),
                    outcome: outcome.to_string(),
                });
            }
            let via = format!("venv {}", venv.display());
            found.extend(libs.into_iter().map(|p| (p, via.clone())));
        }
        None => looked.push(Looked {
            place: "project venv: $TWEETFLOW_VENV, or .venv in the current directory or a parent"
                .into(),
            outcome: match std::env::current_dir() {
                Ok(d) => format!(
                    "TWEETFLOW_VENV not set and no .venv from {} up",
                    d.display()
                ),
                Err(_) => "TWEETFLOW_VENV not set and the current directory is unknown".into(),
            },
        }),
    }
}

fn fix_text() -> String {
    if std::env::var_os(WORKER_ENV).is_some_and(|v| !v.is_empty()) {
        return format!(
            "Fix, on this cluster node: install the onnxruntime wheel (>= 1.{MIN_ORT_MINOR}) into the node's Python \
             (`pip install onnxruntime` in the Ray image), or set `onnxruntime: /path/to/libonnxruntime.so.1.<minor>.<patch>` \
             in the task's executor settings, or ORT_DYLIB_PATH in the node's environment"
        );
    }
    format!(
        "Fix: run scripts/setup-venv.sh in the project directory (installs the onnxruntime wheel into .venv), \
         or export ORT_DYLIB_PATH=/path/to/libonnxruntime.so.1.<minor>.<patch> (ONNX Runtime >= 1.{MIN_ORT_MINOR}; \
         e.g. export ORT_DYLIB_PATH=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -1))"
    )
}

fn load() -> std::result::Result<Runtime, String> {
    let (found, mut looked, explicit) = candidates();
    let mut failures = Vec::new();
    for (path, via) in found {
        match ort::init_from(&path) {
            Ok(builder) => {
                let env = builder
                    .with_name("tweetflow")
                    .build()
                    .map_err(|e| format!("ONNX Runtime loaded from {} ({via}) but its environment cannot be created: {e}", path.display()))?;
                tracing::info!(library = %path.display(), found_via = %via, "ONNX Runtime loaded");
                return Ok(Runtime {
                    library: path,
                    found_via: via,
                    env,
                });
            }
            // `ort` remembers nothing after a failed load, so the next candidate can be tried.
            Err(e) => failures.push(Looked {
                place: format!("{via}: {}", path.display()),
                outcome: format!("cannot be used: {e}"),
            }),
        }
        if explicit {
            break;
        }
    }
    looked.extend(failures);
    let mut msg = String::from(
        "cannot load the ONNX Runtime shared library (libonnxruntime.so). Looked in:\n",
    );
    for l in &looked {
        msg.push_str(&format!("  - {}: {}\n", l.place, l.outcome));
    }
    // With an explicit ORT_DYLIB_PATH the venv was not searched: point at its library if any.
    if explicit
        && let Some(venv) = project_venv()
        && let Some(lib) = venv_libs(&venv).0.into_iter().next()
    {
        msg.push_str(&format!(
            "The project venv has one: export ORT_DYLIB_PATH={} (or unset ORT_DYLIB_PATH to use it).\n",
            lib.display()
        ));
    }
    msg.push_str(&fix_text());
    Err(msg)
}

/// Loads ONNX Runtime once per process (see the module docs for the search) and returns it.
/// Every call after the first answers the first outcome.
pub fn init() -> Result<&'static Runtime> {
    match &RUNTIME.get_or_init(|| RuntimeCell(load())).0 {
        Ok(r) => Ok(r),
        Err(m) => Err(ModelError::Runtime(m.clone())),
    }
}
