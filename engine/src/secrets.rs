//! Secrets: values from the environment that tasks use and the engine never writes.
//!
//! A value is a secret when it comes from `${secret.NAME}` (always) or from `${env.NAME}`
//! where NAME looks sensitive: it contains, in any case, one of [`SENSITIVE_WORDS`] (`TOKEN`,
//! `SECRET`, `PASSWORD`, `PASSWD`, `KEY`, `CREDENTIAL`, `AUTH`), e.g. `MY_API_TOKEN`,
//! `AWS_SECRET_ACCESS_KEY`, `DB_PASSWORD`.
//!
//! Two mechanisms keep secrets out of every file, log and tracking server:
//! - **Structure.** The loader records each string that holds a secret as a [`SecretSlot`]:
//!   where it sits in the plan (a JSON pointer such as `/tasks/0/with/env/TOKEN`) and how to
//!   rebuild it from the environment ([`Piece`]s). The plan (`plan.json`), the run record's
//!   params and cache keys hold `***` there; `--resume` and the scheduler rebuild the values
//!   from the environment at run time, and a variable that is gone is an error naming it.
//! - **Masking.** Every secret value seen by the process, and the value of every environment
//!   variable with a sensitive name, is registered with a process-wide masker; whatever the
//!   engine writes (run record, events, run log, cache entries, console logs, MLflow params
//!   and tags) has those values replaced by `***`. So a `command` printing a token, or an
//!   error message quoting one, leaves `***` in the run log. Values shorter than
//!   [`MIN_MASKED_LEN`] characters (or [`MIN_MASKED_ENV_LEN`] for environment variables the
//!   pipeline does not use) are not masked in free text, where they would hide common words.
//!   The password of a URL in the environment (`https://user:PASSWORD@host`, e.g. in
//!   `MLFLOW_TRACKING_URI`) is masked too.

use std::borrow::Cow;
use std::sync::{LazyLock, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Words that make an environment variable's name sensitive (matched case-insensitively
/// anywhere in the name).
pub const SENSITIVE_WORDS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "KEY",
    "CREDENTIAL",
    "AUTH",
];

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Shortest secret value masked in free text (logs, messages, outputs).
pub const MIN_MASKED_LEN: usize = 5;

/// Shortest value of a sensitive environment variable masked in free text when the pipeline
/// does not use it.
pub const MIN_MASKED_ENV_LEN: usize = 8;

/// The process environment: the lookup for `${env.X}` and `${secret.X}` when loading a
/// pipeline ([`crate::LoadOptions::env`]) and when rebuilding its secrets at run time.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Whether an environment variable named `name` holds a secret (see [`SENSITIVE_WORDS`]).
pub fn is_sensitive_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SENSITIVE_WORDS.iter().any(|w| upper.contains(w))
}

/// One piece of a string that holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Piece {
    /// Literal text.
    Text {
        /// The text.
        text: String,
    },
    /// The value of an environment variable.
    Env {
        /// The variable's name.
        env: String,
        /// Used when the variable is not set (`${env.NAME:-default}`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<String>,
    },
}

/// A string of the plan that holds a secret: where it is and how it is rebuilt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSlot {
    /// JSON pointer to the string in the plan (the pipeline as JSON), e.g. `/params/token`.
    pub at: String,
    /// The string's pieces, in order.
    pub pieces: Vec<Piece>,
}

/// A secret the environment no longer provides.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the secret `{name}` is not set in the environment (it is read again at run time and never stored; set it and retry)"
)]
pub struct MissingSecret {
    /// The environment variable.
    pub name: String,
}

impl SecretSlot {
    /// Rebuilds the string from `env`, registering the secret values with the masker.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String, MissingSecret> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text { text } => out.push_str(text),
                Piece::Env { env: name, default } => match (env(name), default) {
                    (Some(v), _) => {
                        register(&v);
                        out.push_str(&v);
                    }
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => return Err(MissingSecret { name: name.clone() }),
                },
            }
        }
        Ok(out)
    }

    /// The names of the environment variables the string is built from.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Env { env, .. } => Some(env.as_str()),
            Piece::Text { .. } => None,
        })
    }
}

/// Writes `***` at every slot of `plan` (a pipeline as JSON).
pub fn redact_slots(plan: &mut Json, slots: &[SecretSlot]) {
    for slot in slots {
        if let Some(v) = plan.pointer_mut(&slot.at) {
            *v = Json::from(MASK);
        }
    }
}

/// Fills every slot of `plan` (a pipeline as JSON) from `env`.
pub fn fill_slots(
    plan: &mut Json,
    slots: &[SecretSlot],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), MissingSecret> {
    for slot in slots {
        let value = slot.resolve(env)?;
        if let Some(v) = plan.pointer_mut(&slot.at) {
            *v = Json::from(value);
        }
    }
    Ok(())
}

/// Escapes a key for a JSON pointer.
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

static MASKED: LazyLock<RwLock<Vec<String>>> = LazyLock::new(|| RwLock::new(Vec::new()));

/// Masks `value` from now on wherever the engine writes text (if it is at least
/// [`MIN_MASKED_LEN`] long).
pub fn register(value: &str) {
    if value.chars().count() < MIN_MASKED_LEN {
        return;
    }
    let mut masked = MASKED.write().unwrap_or_else(|e| e.into_inner());
    if masked.iter().any(|m| m == value) {
        return;
    }
    masked.push(value.to_string());
    // Longest first, so a secret containing another is replaced whole.
    masked.sort_by_key(|m| std::cmp::Reverse(m.len()));
}

/// Registers the value of every environment variable with a sensitive name (cloud and
/// tracking-server credentials, tokens), at least [`MIN_MASKED_ENV_LEN`] long, and the
/// password of every URL in the environment that carries one (`MLFLOW_TRACKING_URI=
/// https://user:PASSWORD@host`).
pub fn register_sensitive_env() {
    for (name, value) in std::env::vars_os() {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        if is_sensitive_name(name) && value.chars().count() >= MIN_MASKED_ENV_LEN {
            register(value);
        }
        if let Some(password) = url_password(value) {
            register(password);
        }
    }
}

/// The password in a URL's user information (`scheme://user:PASSWORD@host/...`), if any.
pub fn url_password(text: &str) -> Option<&str> {
    let rest = &text[text.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let password = &userinfo[userinfo.find(':')? + 1..];
    (!password.is_empty()).then_some(password)
}

/// `text` with every registered secret replaced by `***`.
pub fn mask(text: &str) -> Cow<'_, str> {
    let masked = MASKED.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in masked.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// Masks every string (and object key) in `value`.
pub fn mask_json(value: &mut Json) {
    if MASKED.read().unwrap_or_else(|e| e.into_inner()).is_empty() {
        return;
    }
    mask_json_inner(value);
}

fn mask_json_inner(value: &mut Json) {
    match value {
        Json::String(s) => {
            if let Cow::Owned(m) = mask(s) {
                *s = m;
            }
        }
        Json::Array(items) => items.iter_mut().for_each(mask_json_inner),
        Json::Object(map) => {
            let needs_key_mask = map.keys().any(|k| matches!(mask(k), Cow::Owned(_)));
            if needs_key_mask {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    mask_json_inner(&mut v);
                    map.insert(mask(&k).into_owned(), v);
                }
            } else {
                map.values_mut().for_each(mask_json_inner);
            }
        }
        _ => {}
    }
}

/// `value` serialized as JSON, with registered secrets masked.
pub fn masked_json<T: Serialize>(value: &T) -> serde_json::Result<Json> {
    let mut json = serde_json::to_value(value)?;
    mask_json(&mut json);
    Ok(json)
}

/// `value` with registered secrets masked (unchanged if it does not round-trip through JSON).
pub fn masked<T: Serialize + serde::de::DeserializeOwned>(value: T) -> T {
    if MASKED.read().unwrap_or_else(|e| e.into_inner()).is_empty() {
        return value;
    }
    match masked_json(&value).and_then(serde_json::from_value) {
        Ok(v) => v,
        Err(_) => value,
    }
}

/// Masks raw bytes written to a console or file: registered secrets appear in them as they
/// are, or escaped inside a JSON string.
pub fn mask_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let masked = MASKED.read().unwrap_or_else(|e| e.into_inner());
    if masked.is_empty() {
        return Cow::Borrowed(bytes);
    }
    let mut out = Cow::Borrowed(bytes);
    for secret in masked.iter() {
        let escaped = serde_json::to_string(secret).unwrap_or_default();
        let escaped = escaped
            .strip_prefix('"')
            .and_then(|e| e.strip_suffix('"'))
            .unwrap_or_default()
            .to_string();
        for needle in [secret.as_bytes(), escaped.as_bytes()] {
            if !needle.is_empty() && contains(&out, needle) {
                out = Cow::Owned(replace(&out, needle, MASK.as_bytes()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// A writer that masks registered secrets in what is written to it (for console logs).
pub struct MaskingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for MaskingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&mask_bytes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords() {
        assert_eq!(
            url_password("https://me:s3cret@host:5000/x"),
            Some("s3cret")
        );
        assert_eq!(url_password("http://me:p%40ss@h/a@b"), Some("p%40ss"));
        assert_eq!(url_password("http://me@host/"), None);
        assert_eq!(url_password("http://host/?q=a:b@c"), None);
        assert_eq!(url_password("not a url"), None);
    }

    #[test]
    fn sensitive_names() {
        for name in [
            "MY_TOKEN",
            "aws_secret_access_key",
            "DB_PASSWORD",
            "PASSWD",
            "API_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "BASIC_AUTH",
        ] {
            assert!(is_sensitive_name(name), "{name}");
        }
        for name in ["HOME", "PATH", "MLFLOW_TRACKING_URI", "USER"] {
            assert!(!is_sensitive_name(name), "{name}");
        }
    }

    #[test]
    fn slots_resolve_and_mask() {
        let slot = SecretSlot {
            at: "/tasks/0/with/env/T".into(),
            pieces: vec![
                Piece::Text {
                    text: "Bearer ".into(),
                },
                Piece::Env {
                    env: "T".into(),
                    default: None,
                },
            ],
        };
        let env = |k: &str| (k == "T").then(|| "s3cr3t-slot-value".to_string());
        assert_eq!(slot.resolve(&env).unwrap(), "Bearer s3cr3t-slot-value");
        assert_eq!(mask("x s3cr3t-slot-value y"), "x *** y");
        let mut j = serde_json::json!({"a": ["s3cr3t-slot-value\"q"], "s3cr3t-slot-value": 1});
        mask_json(&mut j);
        assert_eq!(j, serde_json::json!({"a": ["***\"q"], "***": 1}));
        assert_eq!(
            &*mask_bytes(b"{\"m\":\"s3cr3t-slot-value\"}"),
            b"{\"m\":\"***\"}"
        );
        let none = |_: &str| None;
        assert_eq!(
            slot.resolve(&none).unwrap_err().name,
            "T",
            "a missing secret names its variable"
        );
        let round = serde_json::to_string(&slot).unwrap();
        assert_eq!(
            round,
            r#"{"at":"/tasks/0/with/env/T","pieces":[{"text":"Bearer "},{"env":"T"}]}"#
        );
        assert_eq!(serde_json::from_str::<SecretSlot>(&round).unwrap(), slot);
    }
}
