//! Refusing output locations inside the run store.
//!
//! The run store (`runs/` by default) holds run records, artifacts and cache entries, and
//! `runs prune` / `runs delete` remove what is in it. A task that writes a table, a landing
//! folder or a cache there would have its output deleted with the runs (or a `reset` would
//! delete the runs): such a param is a config error naming it, before anything is written.
//!
//! The run store is the one the attempt's run view names ([`tweetflow_engine::RunView`]); a
//! run recorded nowhere (a task called outside the engine) has no run store to protect.
//! Object-store URLs are never inside it.

use std::path::{Component, Path, PathBuf};

use tweetflow_engine::{TaskContext, TaskError};

/// The run store of `ctx`'s run, when it has one this process sees.
fn run_store_root(ctx: &TaskContext) -> Option<PathBuf> {
    ctx.run.store_root().map(|root| resolve(&root))
}

/// `location` as a local path, when it is one (a plain path or a `file://` URL).
fn local_path(location: &str) -> Option<PathBuf> {
    if let Some(rest) = location.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    (!location.contains("://")).then(|| PathBuf::from(location))
}

/// `path` made absolute, with symbolic links of its existing part resolved and `.`/`..` of
/// the rest applied.
fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut normal = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    // Resolve links on the longest existing ancestor, keep the rest as written.
    let mut existing = normal.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match existing.file_name() {
            Some(name) => rest.push(name.to_os_string()),
            None => break,
        }
        if !existing.pop() {
            break;
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        out.push(name);
    }
    out
}

/// Fails with a config error naming the first of `params` (`(param, location)`) whose
/// location is the run store or inside it.
pub fn refuse_run_store(ctx: &TaskContext, params: &[(&str, &str)]) -> Result<(), TaskError> {
    let Some(root) = run_store_root(ctx) else {
        return Ok(());
    };
    for (param, location) in params {
        if location.is_empty() {
            continue;
        }
        let Some(path) = local_path(location) else {
            continue;
        };
        if resolve(&path).starts_with(&root) {
            return Err(TaskError::config(
                param,
                format!(
                    "`{location}` is inside the run store `{}`, which holds run records only \
                     (`runs prune` and `runs delete` remove what is there): choose a location outside it",
                    root.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tweetflow_engine::ErrorKind;

    fn context(store: &Path) -> TaskContext {
        let artifacts = store.join("r1").join("artifacts").join("t");
        tweetflow_test_support::TaskContextBuilder::new(artifacts)
            .run_id("r1")
            .run_store(store)
            .build()
    }

    #[test]
    fn locations_inside_the_run_store_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("runs");
        std::fs::create_dir_all(store.join("r1")).unwrap();
        let ctx = context(&store);
        let inside = store.join("bronze").display().to_string();
        let err = refuse_run_store(&ctx, &[("source", "landing"), ("table", &inside)]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(
            err.message.starts_with("param `table`: "),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("inside the run store"),
            "{}",
            err.message
        );
        let sneaky = format!("{}/../runs/x", store.join("r1").display());
        assert!(refuse_run_store(&ctx, &[("table", &sneaky)]).is_err());
        let file_url = format!("file://{}", store.display());
        assert!(refuse_run_store(&ctx, &[("table", &file_url)]).is_err());
        let beside = dir.path().join("runs-bronze").display().to_string();
        assert!(refuse_run_store(&ctx, &[("table", &beside)]).is_ok());
        assert!(refuse_run_store(&ctx, &[("table", "s3://b/runs/x")]).is_ok());
    }

    #[test]
    fn a_context_outside_the_engine_has_no_run_store() {
        let ctx = tweetflow_test_support::TaskContextBuilder::new("/tmp/x/artifacts").build();
        assert!(refuse_run_store(&ctx, &[("table", "/tmp/x/t")]).is_ok());
    }
}
