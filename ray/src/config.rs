//! The settings of `executor: { ray: { ... } }`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where and with what resources a task's attempts run on Ray.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RayConfig {
    /// The Ray dashboard's address (Jobs REST API). Default: `$RAY_ADDRESS`, else
    /// `http://127.0.0.1:8265`.
    #[serde(default = "default_address")]
    pub address: String,
    /// CPUs reserved for each attempt (`entrypoint_num_cpus`, default 1).
    #[serde(default = "one")]
    pub num_cpus: f64,
    /// Memory reserved for each attempt (`entrypoint_memory`), e.g. `2GB`, `512MiB` or bytes
    /// (stored in bytes).
    #[serde(default, deserialize_with = "memory")]
    #[schemars(with = "Option<Value>")]
    pub memory: Option<u64>,
    /// Custom resources each attempt needs (`entrypoint_resources`).
    #[serde(default)]
    pub resources: BTreeMap<String, f64>,
    /// The job's Ray runtime environment (e.g. `env_vars`).
    #[serde(default)]
    pub runtime_env: Option<Value>,
    /// The `tweetflow` binary on the workers (default: this binary's path, which suits a
    /// cluster whose nodes share the disk).
    #[serde(default)]
    pub tweetflow: Option<String>,
    /// How often a job's status is polled, in milliseconds (default 250).
    #[serde(default = "poll_ms")]
    pub poll_ms: u64,
    /// The cluster's token (token authentication, `RAY_AUTH_MODE=token`), e.g.
    /// `${secret.RAY_TOKEN}`. Default: as Ray's clients find it: `RAY_AUTH_TOKEN`, the file
    /// named by `RAY_AUTH_TOKEN_PATH`, `~/.ray/auth_token`. Sent as `Authorization: Bearer`,
    /// never to the jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// Local folders that the engine and every node see at the same path (a shared file
    /// system). Local-path params of a task on Ray must lie under one of them; by default
    /// none: tables, landing folders and models are object-store URLs (`s3://`, ...) or
    /// `models:/` URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_paths: Vec<String>,
    /// The ONNX Runtime library on the nodes (`libonnxruntime.so...`), tried after the
    /// `onnxruntime` wheel of the node's Python and before the node's `ORT_DYLIB_PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnxruntime: Option<String>,
}

impl Default for RayConfig {
    fn default() -> Self {
        RayConfig {
            address: default_address(),
            num_cpus: 1.0,
            memory: None,
            resources: BTreeMap::new(),
            runtime_env: None,
            tweetflow: None,
            poll_ms: poll_ms(),
            auth_token: None,
            shared_paths: Vec::new(),
            onnxruntime: None,
        }
    }
}

fn default_address() -> String {
    std::env::var("RAY_ADDRESS")
        .ok()
        .filter(|a| a.starts_with("http"))
        .unwrap_or_else(|| "http://127.0.0.1:8265".into())
}

fn memory<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("`memory` must be a whole number of bytes")),
        Some(Value::String(s)) => parse_bytes(&s).map(Some).map_err(serde::de::Error::custom),
        Some(other) => Err(serde::de::Error::custom(format!(
            "`memory` must be a size such as `2GB`, found {other}"
        ))),
    }
}

fn one() -> f64 {
    1.0
}

fn poll_ms() -> u64 {
    250
}

/// A size that cannot be read (in `memory:` and the like).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The text does not start with a number.
    #[error("`{text}` is not a size such as `2GB` or `512MiB`")]
    NotASize {
        /// The size as written.
        text: String,
    },
    /// A unit that is not one of B, KB, MB, GB, TB, KiB, MiB, GiB.
    #[error("`{text}`: unknown unit `{unit}` (use B, KB, MB, GB, KiB, MiB, GiB)")]
    UnknownUnit {
        /// The size as written.
        text: String,
        /// The unit as written.
        unit: String,
    },
}

/// Bytes of a size such as `2GB`, `512MiB`, `100k` or `1048576`.
pub fn parse_bytes(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| SizeError::NotASize { text: text.into() })?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(SizeError::UnknownUnit {
                text: text.into(),
                unit: unit.into(),
            });
        }
    };
    Ok((number * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("512MiB"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert!(parse_bytes("2 parsecs").is_err());
    }
}
