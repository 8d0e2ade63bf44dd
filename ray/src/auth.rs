//! The token of a Ray cluster with token authentication (`RAY_AUTH_MODE=token`), found as
//! Ray's own clients find it.
//!
//! Search order, first match wins:
//! 1. `auth_token:` in the executor's settings (e.g. `${secret.RAY_TOKEN}`);
//! 2. the `RAY_AUTH_TOKEN` environment variable;
//! 3. the file named by `RAY_AUTH_TOKEN_PATH`;
//! 4. `~/.ray/auth_token` (written by a local `ray.init()` or `ray start`).
//!
//! A cluster without token authentication ignores the header, so a token found is always
//! sent. The token is registered with the process-wide masker ([`tweetflow_engine::secrets`]),
//! so no record, log line or error of the run shows it.

use std::path::PathBuf;

/// A token and where it came from.
#[derive(Clone)]
pub struct AuthToken {
    /// The token itself (never printed: see the `Debug` implementation).
    value: String,
    /// Where it was found, e.g. `RAY_AUTH_TOKEN` or `~/.ray/auth_token (/root/.ray/auth_token)`.
    pub source: String,
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthToken")
            .field("value", &tweetflow_engine::secrets::MASK)
            .field("source", &self.source)
            .finish()
    }
}

impl AuthToken {
    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        format!("Bearer {}", self.value)
    }
}

/// The outcome of the search: the token (if any) and every place looked at, in order.
#[derive(Clone, Debug, Default)]
pub struct TokenSearch {
    /// The token found.
    pub token: Option<AuthToken>,
    /// Each place looked at and what was there (`RAY_AUTH_TOKEN: not set`, ...).
    pub looked: Vec<String>,
}

impl TokenSearch {
    /// One line naming where the search looked, for error messages.
    pub fn describe(&self) -> String {
        match &self.token {
            Some(t) => format!(
                "the token sent came from {} (looked in order at: {})",
                t.source,
                self.looked.join("; ")
            ),
            None => format!("no token was found (looked at: {})", self.looked.join("; ")),
        }
    }
}

/// Finds the token: `configured` (the executor's `auth_token`), then the environment and
/// files as Ray's clients do (see the module documentation).
pub fn find_token(configured: Option<&str>) -> TokenSearch {
    find_token_with(configured, &|name| std::env::var(name).ok(), home_dir())
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn found(value: &str, source: String, looked: Vec<String>) -> TokenSearch {
    let value = value.trim().to_string();
    tweetflow_engine::secrets::register(&value);
    TokenSearch {
        token: Some(AuthToken { value, source }),
        looked,
    }
}

fn find_token_with(
    configured: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<PathBuf>,
) -> TokenSearch {
    let mut looked = Vec::new();
    match configured.map(str::trim) {
        Some(t) if !t.is_empty() => {
            looked.push("`auth_token` in the executor settings: set".into());
            return found(t, "`auth_token` in the executor settings".into(), looked);
        }
        Some(_) => looked.push("`auth_token` in the executor settings: empty".into()),
        None => looked.push("`auth_token` in the executor settings: not set".into()),
    }
    match env("RAY_AUTH_TOKEN") {
        Some(t) if !t.trim().is_empty() => {
            looked.push("RAY_AUTH_TOKEN: set".into());
            return found(&t, "RAY_AUTH_TOKEN".into(), looked);
        }
        _ => looked.push("RAY_AUTH_TOKEN: not set".into()),
    }
    let mut files = Vec::new();
    match env("RAY_AUTH_TOKEN_PATH").filter(|p| !p.is_empty()) {
        Some(p) => files.push((PathBuf::from(&p), format!("RAY_AUTH_TOKEN_PATH={p}"))),
        None => looked.push("RAY_AUTH_TOKEN_PATH: not set".into()),
    }
    match home {
        Some(h) => {
            let path = h.join(".ray").join("auth_token");
            let label = format!("~/.ray/auth_token ({})", path.display());
            files.push((path, label));
        }
        None => looked.push("~/.ray/auth_token: HOME is not set".into()),
    }
    for (path, label) in files {
        match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => {
                looked.push(format!("{label}: found"));
                return found(&t, label, looked);
            }
            Ok(_) => looked.push(format!("{label}: empty")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                looked.push(format!("{label}: no such file"))
            }
            Err(e) => looked.push(format!("{label}: {e}")),
        }
    }
    TokenSearch {
        token: None,
        looked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn search(
        configured: Option<&str>,
        vars: &[(&str, &str)],
        home: Option<&std::path::Path>,
    ) -> TokenSearch {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        find_token_with(
            configured,
            &|n| vars.get(n).cloned(),
            home.map(|h| h.to_path_buf()),
        )
    }

    #[test]
    fn the_search_follows_rays_order_and_says_where_it_looked() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ray")).unwrap();
        std::fs::write(home.path().join(".ray/auth_token"), "home-token-123\n").unwrap();
        let file = home.path().join("token-file");
        std::fs::write(&file, "file-token-456").unwrap();
        let file_var = file.display().to_string();

        let s = search(
            Some("configured-token"),
            &[("RAY_AUTH_TOKEN", "env-token-789")],
            Some(home.path()),
        );
        assert_eq!(
            s.token.unwrap().source,
            "`auth_token` in the executor settings"
        );

        let s = search(
            None,
            &[
                ("RAY_AUTH_TOKEN", "env-token-789"),
                ("RAY_AUTH_TOKEN_PATH", &file_var),
            ],
            Some(home.path()),
        );
        assert_eq!(s.token.unwrap().header(), "Bearer env-token-789");

        let s = search(
            None,
            &[("RAY_AUTH_TOKEN_PATH", &file_var)],
            Some(home.path()),
        );
        let t = s.token.clone().unwrap();
        assert_eq!(t.header(), "Bearer file-token-456");
        assert!(t.source.starts_with("RAY_AUTH_TOKEN_PATH="), "{}", t.source);

        let s = search(None, &[], Some(home.path()));
        assert_eq!(s.token.unwrap().header(), "Bearer home-token-123");

        let empty = tempfile::tempdir().unwrap();
        let s = search(None, &[], Some(empty.path()));
        assert!(s.token.is_none());
        let text = s.describe();
        for place in [
            "auth_token",
            "RAY_AUTH_TOKEN: not set",
            "RAY_AUTH_TOKEN_PATH: not set",
            "~/.ray/auth_token",
            "no such file",
        ] {
            assert!(text.contains(place), "{text}");
        }
    }

    #[test]
    fn the_token_is_never_in_debug_output_and_is_masked() {
        let s = search(Some("a-very-secret-ray-token"), &[], None);
        let debug = format!("{s:?}");
        assert!(!debug.contains("a-very-secret-ray-token"), "{debug}");
        assert_eq!(
            tweetflow_engine::secrets::mask("x a-very-secret-ray-token y"),
            "x *** y"
        );
    }
}
