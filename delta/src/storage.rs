//! Where tables and folders live, and how to reach them: locations (a local path, `file://`,
//! `s3://`, `s3a://`, `az://`, `abfss://`, `gs://`), their storage options, the safe commit
//! mode on S3, and turning object-store failures into clear errors.
//!
//! **Storage options** of a URL location are, from lowest to highest precedence: the standard
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ..., read by `deltalake` itself), the
//! options in scope ([`scoped`]: a pipeline's `storage:` section), then this module's defaults
//! for what is not set: `aws_conditional_put = etag` and a short retry budget
//! ([`DEFAULT_MAX_RETRIES`], [`DEFAULT_RETRY_TIMEOUT`]) so a misconfigured endpoint fails in
//! seconds rather than minutes.
//!
//! **Safe commits.** A Delta commit is atomic on object storage only with a put-if-absent. AWS
//! S3 and S3-compatible stores honour `If-None-Match: *` (object_store's `etag` conditional
//! put, the default here). A location whose options disable it (`aws_conditional_put =
//! disabled`, `AWS_S3_ALLOW_UNSAFE_RENAME`) is refused for writing by [`check_safe_commits`]
//! unless [`UNSAFE_COMMITS_OPTION`] is `true` in its options.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Once};

use deltalake::ObjectStore;
use url::Url;

use crate::error::{Result, StorageError};

/// The option that allows writing to an object store without a safe commit mode (a single
/// writer only); it is this crate's own and never passed to the store.
pub const UNSAFE_COMMITS_OPTION: &str = "allow_unsafe_commits";
/// Retries of one object-store request (5xx answers, connection resets) unless set.
pub const DEFAULT_MAX_RETRIES: &str = "4";
/// How long one request is retried at most unless set.
pub const DEFAULT_RETRY_TIMEOUT: &str = "30s";
/// What credential option values are written as wherever they are recorded.
pub const MASK: &str = "***";

/// Storage options by key (lower-case keys as `deltalake` and object_store take them).
pub type StorageOptions = BTreeMap<String, String>;

tokio::task_local! {
    static SCOPED: Arc<StorageOptions>;
}

/// Runs `fut` with `options` (a pipeline's `storage:` section) applying to every URL location
/// it opens.
pub async fn scoped<F: Future>(options: StorageOptions, fut: F) -> F::Output {
    SCOPED.scope(Arc::new(options), fut).await
}

/// The options in scope (empty outside [`scoped`]).
pub fn scoped_options() -> StorageOptions {
    SCOPED.try_with(|o| o.as_ref().clone()).unwrap_or_default()
}

/// Registers the object-store schemes compiled in (once per process).
pub fn register_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        deltalake::aws::register_handlers(None);
        deltalake::azure::register_handlers(None);
        deltalake::gcp::register_handlers(None);
        crate::counting::register();
    });
}

/// The URL schemes this build can read and write.
pub const SCHEMES: [&str; 7] = ["file", "s3", "s3a", "az", "abfss", "azure", "gs"];

/// Whether `key` names a credential: its value is written as [`MASK`] wherever options are
/// recorded or shown.
pub fn is_credential_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "passwd",
        "sas",
        "credential",
        "access_key",
        "account_key",
        "private_key",
        "client_secret",
        "auth",
    ]
    .iter()
    .any(|w| k.contains(w))
        && !k.ends_with("access_key_id")
}

/// `options` with credential values replaced by [`MASK`].
pub fn redacted(options: &StorageOptions) -> StorageOptions {
    options
        .iter()
        .map(|(k, v)| {
            let v = if is_credential_key(k) {
                MASK.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// Turns a location (local path or URL) into a URL; local paths are made absolute. A scheme
/// this build does not know is an error naming the ones it does.
pub fn location_url(location: &str) -> Result<Url> {
    if location.trim().is_empty() {
        return Err(StorageError::InvalidLocation {
            location: location.to_string(),
            message: "empty location".into(),
        });
    }
    if location.contains("://") {
        let url = Url::parse(location).map_err(|e| StorageError::InvalidLocation {
            location: location.to_string(),
            message: format!("`{location}` is not a URL: {e}"),
        })?;
        if !SCHEMES.contains(&url.scheme()) {
            return Err(StorageError::InvalidLocation {
                location: location.to_string(),
                message: format!(
                    "`{location}`: the scheme `{}` is not compiled in (known: a local path, {})",
                    url.scheme(),
                    SCHEMES.map(|s| format!("{s}://")).join(", ")
                ),
            });
        }
        if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) {
            return Err(StorageError::InvalidLocation {
                location: location.to_string(),
                message: format!("`{location}` names no bucket or container"),
            });
        }
        register_handlers();
        return Ok(url);
    }
    let abs = std::path::absolute(location)
        .map_err(|e| StorageError::io(format!("resolving `{location}`"), e))?;
    Url::from_directory_path(&abs).map_err(|_| StorageError::InvalidLocation {
        location: location.to_string(),
        message: format!("`{location}` is not a usable path"),
    })
}

/// Whether the URL is on S3 or an S3-compatible store.
pub fn is_s3(url: &Url) -> bool {
    matches!(url.scheme(), "s3" | "s3a")
}

/// The storage options for `url`: the options in scope over the defaults (the environment is
/// read by `deltalake` and object_store themselves). Empty for local locations.
pub fn options_for(url: &Url) -> HashMap<String, String> {
    if url.scheme() == "file" {
        return HashMap::new();
    }
    let mut options: HashMap<String, String> = scoped_options()
        .into_iter()
        .filter(|(k, _)| k != UNSAFE_COMMITS_OPTION)
        .collect();
    // Resolve the endpoint from the environment too, so that delta-rs sees an S3-compatible
    // store (and does not go looking for AWS instance credentials).
    if is_s3(url) {
        options
            .entry("aws_conditional_put".into())
            .or_insert_with(|| env_or("AWS_CONDITIONAL_PUT", "etag"));
    }
    options
        .entry("max_retries".into())
        .or_insert_with(|| DEFAULT_MAX_RETRIES.into());
    options
        .entry("retry_timeout".into())
        .or_insert_with(|| DEFAULT_RETRY_TIMEOUT.into());
    options
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// The value of option `key` for `url` (lower-case key), from the scope or the upper-case
/// environment variable.
fn option_value(url: &Url, key: &str) -> Option<String> {
    let scoped = scoped_options();
    let from_scope = scoped
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.clone());
    from_scope
        .or_else(|| std::env::var(key.to_ascii_uppercase()).ok())
        .or_else(|| options_for(url).get(key).cloned())
        .filter(|v| !v.is_empty())
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// Refuses a write to `location` when its store has no safe commit mode and the location's
/// options do not opt in with [`UNSAFE_COMMITS_OPTION`].
pub fn check_safe_commits(location: &str) -> Result<()> {
    let url = location_url(location)?;
    if !is_s3(&url) {
        return Ok(());
    }
    let conditional = option_value(&url, "aws_conditional_put").unwrap_or_else(|| "etag".into());
    let unsafe_rename =
        option_value(&url, "aws_s3_allow_unsafe_rename").is_some_and(|v| truthy(&v));
    let reason = if conditional.trim() != "etag" {
        Some(format!("`aws_conditional_put` is `{conditional}`"))
    } else if unsafe_rename {
        Some("`AWS_S3_ALLOW_UNSAFE_RENAME` is set".to_string())
    } else {
        None
    };
    let Some(reason) = reason else {
        return Ok(());
    };
    let opted_in = option_value(&url, UNSAFE_COMMITS_OPTION).is_some_and(|v| truthy(&v));
    if opted_in {
        tracing::warn!(table = %location, %reason,
            "writing without a safe commit mode: concurrent writers can lose commits");
        return Ok(());
    }
    Err(StorageError::Config {
        location: location.to_string(),
        message: format!(
            "refusing to write: {reason}, so two writers could both commit the same table \
             version and one commit would be lost. Use `aws_conditional_put: etag` (S3 and \
             S3-compatible stores honour `If-None-Match`), or, with a single writer only, set \
             `{UNSAFE_COMMITS_OPTION}: true` in the pipeline's `storage:` section"
        ),
    })
}

/// Refuses an S3 location that has no credentials anywhere (options, environment, profile,
/// web identity, container credentials, or unsigned requests).
pub fn check_credentials(location: &str, url: &Url) -> Result<()> {
    if !is_s3(url) {
        return Ok(());
    }
    let has = |k: &str| option_value(url, k).is_some();
    let env = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    let found = (has("aws_access_key_id") && has("aws_secret_access_key"))
        || option_value(url, "aws_skip_signature").is_some_and(|v| truthy(&v))
        || env("AWS_PROFILE")
        || env("AWS_WEB_IDENTITY_TOKEN_FILE")
        || env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || env("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || env("AWS_FORCE_CREDENTIAL_LOAD");
    if found {
        Ok(())
    } else {
        Err(StorageError::Config {
            location: location.to_string(),
            message: "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or \
                      `aws_access_key_id` / `aws_secret_access_key` in the pipeline's \
                      `storage:` section, or AWS_PROFILE)"
                .into(),
        })
    }
}

/// The object store rooted at `location` (a URL location), with its storage options.
pub fn store_for(location: &str) -> Result<Arc<dyn ObjectStore>> {
    let url = location_url(location)?;
    check_credentials(location, &url)?;
    deltalake::logstore::store_for(&url, options_for(&url)).map_err(|e| classify(location, e))
}

/// A delta-rs error on `location`, turned into [`StorageError::Config`] when it is a
/// misconfiguration retrying cannot fix (unknown bucket, rejected credentials, an endpoint
/// that refuses connections or does not resolve), else [`StorageError::Delta`].
pub fn classify(location: &str, err: deltalake::DeltaTableError) -> StorageError {
    match config_cause(&err) {
        Some(message) => StorageError::Config {
            location: location.to_string(),
            message,
        },
        None => StorageError::delta(location, err),
    }
}

/// An object-store error on `location`, classified like [`classify`].
pub fn classify_store(location: &str, err: deltalake::ObjectStoreError) -> StorageError {
    classify(location, err.into())
}

/// The misconfiguration behind an error, if it is one.
pub fn config_cause(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut text = String::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        text.push_str(&e.to_string());
        text.push('\n');
        cur = e.source();
    }
    let t = text.to_ascii_lowercase();
    if t.contains("nosuchbucket") || t.contains("bucket does not exist") {
        Some("the bucket does not exist".into())
    } else if t.contains("invalidaccesskeyid")
        || t.contains("signaturedoesnotmatch")
        || t.contains("accessdenied")
        || t.contains("403 forbidden")
        || t.contains("unauthenticated")
    {
        Some("the store rejected the credentials".into())
    } else if t.contains("connection refused")
        || (t.contains("error sending request") && t.contains("retries"))
        || t.contains("dns error")
        || t.contains("failed to lookup address")
        || t.contains("name or service not known")
    {
        Some(
            "the endpoint is unreachable (connection refused or unknown host, after retries): \
             check AWS_ENDPOINT_URL / `aws_endpoint_url`"
                .into(),
        )
    } else if t.contains("http scheme is not allowed") || t.contains("allow_http") {
        Some(
            "the endpoint is plain http: set AWS_ALLOW_HTTP=true (or `aws_allow_http: true`)"
                .into(),
        )
    } else {
        None
    }
}
