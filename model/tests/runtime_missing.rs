//! The error when ONNX Runtime cannot be loaded. `ort` loads its library once per process,
//! so each case runs this test binary again as a child process with its own environment.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const PROBE_ENV: &str = "TWEETFLOW_MODEL_RUNTIME_PROBE";

/// Runs in the child only: loads the runtime and prints the outcome.
#[test]
fn probe() {
    if std::env::var_os(PROBE_ENV).is_none() {
        return;
    }
    match tweetflow_model::runtime::init() {
        Ok(rt) => println!("PROBE-OK {}", rt.library.display()),
        Err(e) => {
            assert_eq!(e.class(), tweetflow_model::ErrorClass::Config);
            // The same answer on a second call.
            let again = tweetflow_model::runtime::init().unwrap_err().to_string();
            assert_eq!(again, e.to_string());
            // Loading a model reports the runtime error too (after the file checks).
            let tiny = tweetflow_test_support::tiny_model();
            let load = tweetflow_model::Classifier::load(&tiny, Default::default()).unwrap_err();
            assert_eq!(load.to_string(), e.to_string());
            println!("PROBE-ERR-BEGIN\n{e}\nPROBE-ERR-END");
        }
    }
}

fn run_probe(envs: &[(&str, &str)], remove: &[&str], cwd: &std::path::Path) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "probe", "--nocapture", "--test-threads", "1"])
        .env(PROBE_ENV, "1")
        .current_dir(cwd);
    for k in remove {
        cmd.env_remove(k);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn error_of(stdout: &str) -> String {
    let start = stdout
        .find("PROBE-ERR-BEGIN")
        .unwrap_or_else(|| panic!("no error in:\n{stdout}"));
    let end = stdout.find("PROBE-ERR-END").unwrap();
    stdout[start + "PROBE-ERR-BEGIN".len()..end]
        .trim()
        .to_string()
}

#[test]
fn ort_dylib_path_to_a_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("libonnxruntime.so.1.32.0");
    let out = run_probe(
        &[("ORT_DYLIB_PATH", missing.to_str().unwrap())],
        &[],
        tmp.path(),
    );
    let e = error_of(&out);
    assert!(
        e.contains(&format!(
            "ORT_DYLIB_PATH={}: no such file",
            missing.display()
        )),
        "{e}"
    );
    assert!(
        e.contains("scripts/setup-venv.sh") && e.contains("export ORT_DYLIB_PATH="),
        "{e}"
    );
}

#[test]
fn nothing_found_names_every_place() {
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("no-venv");
    let out = run_probe(
        &[("TWEETFLOW_VENV", venv.to_str().unwrap())],
        &["ORT_DYLIB_PATH"],
        tmp.path(),
    );
    let e = error_of(&out);
    assert!(e.contains("ORT_DYLIB_PATH: not set"), "{e}");
    assert!(e.contains("beside the executable"), "{e}");
    assert!(
        e.contains(&format!(
            "{}/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*",
            venv.display()
        )),
        "{e}"
    );
    assert!(e.contains("no such directory"), "{e}");
    assert!(
        e.contains("scripts/setup-venv.sh") && e.contains("export ORT_DYLIB_PATH="),
        "{e}"
    );
}

#[test]
fn a_library_that_is_not_onnx_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    // Any shared library without OrtGetApiBase: the C math library.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(libm) = libm else {
        eprintln!("no libm.so.6 found; skipping");
        return;
    };
    let out = run_probe(&[("ORT_DYLIB_PATH", libm)], &[], tmp.path());
    let e = error_of(&out);
    assert!(e.contains(libm) && e.contains("OrtGetApiBase"), "{e}");
}

#[test]
fn the_project_venv_is_found_from_a_subdirectory() {
    // A project whose `.venv` sits two directories above the working directory.
    let venv = tweetflow_test_support::venv()
        .canonicalize()
        .expect("the project venv exists (scripts/setup-venv.sh)");
    let project = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&venv, project.path().join(".venv")).unwrap();
    let sub = project.path().join("a/b");
    std::fs::create_dir_all(&sub).unwrap();
    let out = run_probe(&[], &["ORT_DYLIB_PATH", "TWEETFLOW_VENV"], &sub);
    assert!(
        out.contains("PROBE-OK") && out.contains("onnxruntime/capi/libonnxruntime.so"),
        "{out}"
    );
}

#[test]
fn on_a_cluster_node_the_wheel_of_the_nodes_python_is_found_first() {
    // A node whose only ONNX Runtime is the `onnxruntime` wheel of the Python on its PATH
    // (the project venv's), with a broken ORT_DYLIB_PATH that comes later in the search.
    let venv = tweetflow_test_support::venv();
    let bin = venv.join("bin");
    let tmp = tempfile::tempdir().unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let out = run_probe(
        &[
            ("TWEETFLOW_WORKER", "ray"),
            ("PATH", &path),
            ("ORT_DYLIB_PATH", "/nowhere/libonnxruntime.so"),
        ],
        &["TWEETFLOW_VENV", "TWEETFLOW_ONNXRUNTIME"],
        tmp.path(),
    );
    assert!(
        out.contains("PROBE-OK") && out.contains("onnxruntime/capi/libonnxruntime.so"),
        "{out}"
    );
}

#[test]
fn on_a_cluster_node_without_the_runtime_the_error_names_every_place_in_the_nodes_order() {
    let tmp = tempfile::tempdir().unwrap();
    // A PATH whose only `python3` has no onnxruntime (an empty folder means none at all).
    let empty = tmp.path().join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    let path = empty.display().to_string();
    let out = run_probe(
        &[
            ("TWEETFLOW_WORKER", "ray"),
            ("PATH", &path),
            ("TWEETFLOW_ONNXRUNTIME", "/opt/ort/libonnxruntime.so.1.32.0"),
        ],
        &["TWEETFLOW_VENV", "ORT_DYLIB_PATH"],
        tmp.path(),
    );
    let e = error_of(&out);
    let places = [
        "the onnxruntime wheel of `python3` on PATH: no such program",
        "`onnxruntime` of the executor settings: /opt/ort/libonnxruntime.so.1.32.0: no such file",
        "ORT_DYLIB_PATH: not set",
        "beside the executable",
        "project venv",
        "pip install onnxruntime",
    ];
    let mut at = 0;
    for place in places {
        let i = e[at..]
            .find(place)
            .unwrap_or_else(|| panic!("`{place}` after position {at} in:\n{e}"));
        at += i;
    }
}
