//! The pipeline files the UI shows: found under the paths given, each loaded and validated
//! exactly as `tweetflow validate` does (the same loader, registry and environment).

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Serialize;
use serde_json::Value as Json;
use tweetflow_engine::process_env;
use tweetflow_engine::{CronExpr, parse_zone};
use tweetflow_engine::{Diagnostics, LoadOptions, Pipeline, Registry, load_file};

use crate::cron_words;

/// A pipeline file and what loading it gave.
#[derive(Debug)]
pub struct PipelineFile {
    /// The name pages use: the pipeline's name, or the file's stem when it does not load.
    pub key: String,
    /// The file.
    pub file: PathBuf,
    /// The validated pipeline, or every problem found.
    pub loaded: Result<Pipeline, Diagnostics>,
}

/// Pipeline files named by `paths`: files as given; directories give their `*.yaml` and
/// `*.yml` files, sorted.
pub fn discover(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    files
}

/// Loads `file` with `registry`.
pub fn load(registry: &Registry, file: &Path) -> PipelineFile {
    let options = LoadOptions {
        registry,
        param_overrides: &[],
        env: &process_env,
    };
    let loaded = load_file(file, &options);
    let key = match &loaded {
        Ok(p) => p.name.clone(),
        Err(_) => file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default(),
    };
    PipelineFile {
        key,
        file: file.to_path_buf(),
        loaded,
    }
}

/// Every pipeline file under `paths`, loaded.
pub fn load_all(registry: &Registry, paths: &[PathBuf]) -> Vec<PipelineFile> {
    discover(paths).iter().map(|f| load(registry, f)).collect()
}

/// The pipeline named `key` under `paths`.
pub fn find(registry: &Registry, paths: &[PathBuf], key: &str) -> Option<PipelineFile> {
    load_all(registry, paths).into_iter().find(|p| p.key == key)
}

/// A validation problem, as `file:line:column`.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// `file:line:column`.
    pub location: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// The problems of a pipeline that does not validate.
pub fn problems(diagnostics: &Diagnostics) -> Vec<Problem> {
    diagnostics
        .items
        .iter()
        .map(|d| Problem {
            location: format!("{}:{}:{}", diagnostics.file, d.span.line, d.span.column),
            message: d.message.clone(),
            hint: d.hint.clone(),
        })
        .collect()
}

/// A fire time, in the schedule's zone and in UTC.
#[derive(Clone, Debug, Serialize)]
pub struct FireTime {
    /// In the schedule's zone.
    pub local: String,
    /// In UTC (RFC 3339).
    pub utc: String,
}

/// A pipeline's schedule, for people.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleView {
    /// The cron expression.
    pub cron: String,
    /// Its zone.
    pub timezone: String,
    /// The expression in words.
    pub words: String,
    /// The overlap policy.
    pub overlap: Json,
    /// The catch-up policy.
    pub catchup: Json,
    /// The next fire times.
    pub next: Vec<FireTime>,
}

/// The schedule of `pipeline` with its next `n` fire times.
pub fn schedule_view(pipeline: &Pipeline, n: usize) -> Option<ScheduleView> {
    let spec = pipeline.schedule.as_ref()?;
    let mut next = Vec::new();
    if let (Ok(cron), Ok(tz)) = (CronExpr::parse(&spec.cron), parse_zone(&spec.timezone)) {
        let mut t = Utc::now();
        for _ in 0..n {
            let Some(fire) = cron.next_after(t, &tz) else {
                break;
            };
            next.push(FireTime {
                local: fire
                    .with_timezone(&tz)
                    .format("%a %Y-%m-%d %H:%M:%S %Z")
                    .to_string(),
                utc: fire.to_rfc3339(),
            });
            t = fire;
        }
    }
    Some(ScheduleView {
        cron: spec.cron.clone(),
        timezone: spec.timezone.clone(),
        words: format!("{} ({})", cron_words::describe(&spec.cron), spec.timezone),
        overlap: serde_json::to_value(spec.overlap).unwrap_or(Json::Null),
        catchup: serde_json::to_value(spec.catchup).unwrap_or(Json::Null),
        next,
    })
}

/// A param of the start form, typed by its default.
#[derive(Clone, Debug, Serialize)]
pub struct ParamField {
    /// The param's name.
    pub name: String,
    /// `number`, `integer`, `boolean`, `string` or `json` (lists, maps, null).
    pub kind: String,
    /// The default as the form shows it.
    pub value: String,
}

/// The start form's fields of `pipeline`.
pub fn param_fields(pipeline: &Pipeline) -> Vec<ParamField> {
    pipeline
        .params
        .iter()
        .map(|(name, default)| {
            let (kind, value) = match default {
                Json::Bool(b) => ("boolean", b.to_string()),
                Json::Number(n) if n.is_i64() || n.is_u64() => ("integer", n.to_string()),
                Json::Number(n) => ("number", n.to_string()),
                Json::String(s) => ("string", s.clone()),
                other => ("json", other.to_string()),
            };
            ParamField {
                name: name.clone(),
                kind: kind.to_string(),
                value: if is_secret_name(name) {
                    String::new()
                } else {
                    value
                },
            }
        })
        .collect()
}

/// Whether a param's value must not be shown (it names a secret).
pub(crate) fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "api_key",
        "apikey",
        "credential",
    ]
    .iter()
    .any(|s| n.contains(s))
}
