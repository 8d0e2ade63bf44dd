//! The pipeline file: its model ([`Pipeline`], [`TaskSpec`]) and its loader, which checks
//! everything at once and reports each problem with its position.
//!
//! ```text
//! YAML text ──yaml::parse──▶ Node tree ──interpolate──▶ checked sections ──▶ Pipeline
//!                                               │                      │
//!                                               └──── Diagnostics ◀────┘ (all problems, sorted)
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::diagnostic::{Diagnostic, Diagnostics, Span, closest, did_you_mean};
use crate::duration::parse_duration;
use crate::graph::find_cycles;
use crate::interpolate::{Interpolated, Scope, interpolate};
use crate::registry::Registry;
use crate::schema_check;
use crate::section::{DynSection, Section};
use crate::yaml::{self, Node, Value};

/// A validated pipeline, ready to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pipeline {
    /// The pipeline's name.
    pub name: String,
    /// What the pipeline does.
    pub description: Option<String>,
    /// Resolved params: defaults from the file, overridden by `--param`.
    pub params: BTreeMap<String, Json>,
    /// The tasks, in file order.
    pub tasks: Vec<TaskSpec>,
    /// BLAKE3 hash of the file's text.
    pub spec_hash: String,
    /// When the scheduler runs the pipeline.
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
    /// Top-level sections that plugins own, by name, as JSON with the section's defaults
    /// filled in (see [`crate::section`]). Stored flattened, beside the other fields.
    #[serde(flatten, deserialize_with = "crate::section::flattened::deserialize")]
    pub sections: BTreeMap<String, Json>,
}

/// What the scheduler does when a tick comes while a run of the same pipeline is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Skip the tick (recorded as skipped).
    Skip,
    /// Start it when the active run ends (within `start_deadline`).
    Queue,
    /// Cancel the active run, then start.
    CancelRunning,
    /// Start it alongside.
    Allow,
}

/// Which ticks missed while the scheduler was down are run when it comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Catchup {
    /// None: missed ticks are recorded as missed.
    None,
    /// Only the latest missed tick.
    Last,
    /// Every missed tick, oldest first, at most `max_catchup` (the latest ones).
    All,
}

/// The `schedule:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Cron expression (5 fields, 6 with seconds, or an alias such as `@hourly`).
    pub cron: String,
    /// IANA time zone the expression is read in (default `UTC`).
    pub timezone: String,
    /// Overlap policy (default `skip`).
    pub overlap: Overlap,
    /// Catch-up policy (default `last`).
    pub catchup: Catchup,
    /// Most missed ticks run with `catchup: all` (default 10).
    pub max_catchup: u32,
    /// A due tick not started by then is recorded as missed (default: no deadline).
    #[serde(with = "opt_duration")]
    pub start_deadline: Option<Duration>,
}

/// One task of a pipeline, with defaults applied and params interpolated.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The task's id (its key under `tasks:`).
    pub id: String,
    /// The registered task type.
    #[serde(rename = "type")]
    pub task_type: String,
    /// The type's params, interpolated.
    pub with: Json,
    /// Ids of the tasks that must succeed first.
    pub depends_on: Vec<String>,
    /// How failed attempts are retried.
    pub retries: RetryPolicy,
    /// Limit per attempt.
    #[serde(with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Whether and for how long results are reused.
    pub cache: CachePolicy,
    /// What the task does, for humans.
    pub description: Option<String>,
}

/// How delays between attempts grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// `initial_delay * 2^(attempt-1)`, capped by `max_delay`.
    Exponential,
    /// `initial_delay * attempt`, capped by `max_delay`.
    Linear,
    /// Always `initial_delay`.
    Fixed,
}

/// The retry policy of a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (default 1: no retry).
    pub max_attempts: u32,
    /// Growth of the delay between attempts (default `exponential`).
    pub backoff: Backoff,
    /// Delay before the second attempt (default `1s`).
    #[serde(with = "duration_ms")]
    pub initial_delay: Duration,
    /// Cap on any delay (default `1m`).
    #[serde(with = "duration_ms")]
    pub max_delay: Duration,
    /// Full jitter: the delay is drawn uniformly from `[0, delay]` (default `true`).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Backoff::Exponential,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter: true,
        }
    }
}

/// The caching policy of a task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachePolicy {
    /// Whether results are cached and reused (default `false`).
    pub enabled: bool,
    /// How long an entry stays valid (default: forever).
    #[serde(with = "opt_duration")]
    pub ttl: Option<Duration>,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

impl Pipeline {
    /// The task with id `id`.
    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The plugin section `S`, when the pipeline has it.
    pub fn section<S: Section>(&self) -> Option<S> {
        crate::section::read(&self.sections)
    }
}

/// What the loader needs besides the file.
pub struct LoadOptions<'a> {
    /// The task types pipelines may use.
    pub registry: &'a Registry,
    /// `--param NAME=VALUE` overrides, in order.
    pub param_overrides: &'a [(String, String)],
    /// Environment lookup for `${env.X}` (the process environment by default).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// The process environment, for [`LoadOptions::env`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "params",
    "defaults",
    "tasks",
    "schedule",
];
const SCHEDULE_KEYS: &[&str] = &[
    "cron",
    "timezone",
    "overlap",
    "catchup",
    "max_catchup",
    "start_deadline",
];
const DEFAULT_KEYS: &[&str] = &["retries", "timeout", "cache"];
const TASK_KEYS: &[&str] = &[
    "type",
    "description",
    "depends_on",
    "with",
    "retries",
    "timeout",
    "cache",
];
const RETRY_KEYS: &[&str] = &[
    "max_attempts",
    "backoff",
    "initial_delay",
    "max_delay",
    "jitter",
];
const CACHE_KEYS: &[&str] = &["enabled", "ttl"];

/// Reads and validates the pipeline file at `path`.
pub fn load_file(path: &Path, options: &LoadOptions<'_>) -> Result<Pipeline, Diagnostics> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&file, &text, options),
        Err(e) => Err(Diagnostics {
            file,
            items: vec![Diagnostic::new(
                Span::new(1, 1),
                format!("cannot read the pipeline file: {e}"),
            )],
        }),
    }
}

/// Validates pipeline `text` (named `file` in messages).
pub fn load_str(
    file: &str,
    text: &str,
    options: &LoadOptions<'_>,
) -> Result<Pipeline, Diagnostics> {
    let mut loader = Loader {
        options,
        problems: Vec::new(),
    };
    let pipeline = loader.load(text);
    let mut items = loader.problems;
    if items.is_empty() {
        if let Some(p) = pipeline {
            return Ok(p);
        }
        items.push(
            Diagnostic::new(Span::new(1, 1), "the pipeline is empty")
                .with_hint("start with `name:` and `tasks:`"),
        );
    }
    items.sort_by(|a, b| a.span.cmp(&b.span).then_with(|| a.message.cmp(&b.message)));
    items.dedup();
    Err(Diagnostics {
        file: file.to_string(),
        items,
    })
}

struct Loader<'a, 'o> {
    options: &'a LoadOptions<'o>,
    problems: Vec<Diagnostic>,
}

impl Loader<'_, '_> {
    fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.problems.push(Diagnostic::new(span, message));
        self.problems.last_mut().expect("just pushed")
    }

    fn load(&mut self, text: &str) -> Option<Pipeline> {
        let (root, problems) = match yaml::parse(text) {
            Ok(parsed) => parsed,
            Err(d) => {
                self.problems.push(d);
                return None;
            }
        };
        self.problems.extend(problems);
        let root = root?;
        let Some(entries) = root.as_map() else {
            self.error(
                root.span,
                format!("a pipeline must be a mapping, found {}", root.kind()),
            )
            .hint = Some("start with `name:` and `tasks:`".into());
            return None;
        };
        let registry = self.options.registry;
        let top_keys: Vec<&str> = TOP_KEYS
            .iter()
            .copied()
            .chain(registry.sections().map(|s| s.name()))
            .collect();
        self.unknown_keys(entries, &top_keys, "pipeline");
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v)
        };

        let name = match get("name") {
            Some(n) => self.name(n),
            None => {
                self.error(root.span, "missing `name`").hint =
                    Some("add `name: my_pipeline` at the top".into());
                None
            }
        };
        let description = get("description").and_then(|d| self.string(d, "description"));
        let params = get("params").map(|p| self.params(p)).unwrap_or_default();
        let params = self.apply_overrides(params, get("params").map_or(root.span, |p| p.span));
        let defaults = match get("defaults") {
            Some(d) => self.defaults(d, &params),
            None => TaskDefaults::default(),
        };
        let tasks = match get("tasks") {
            Some(t) => self.tasks(t, &params, &defaults),
            None => {
                self.error(root.span, "missing `tasks`").hint =
                    Some("add a `tasks:` mapping of task ids to tasks".into());
                Vec::new()
            }
        };
        let schedule = get("schedule").and_then(|s| self.schedule(s));
        let plain: BTreeMap<String, Json> = params
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        let mut sections = BTreeMap::new();
        for section in registry.sections() {
            if let Some(node) = get(section.name())
                && let Some(value) = self.section(&**section, node, &plain)
            {
                sections.insert(section.name().to_string(), value);
            }
        }
        Some(Pipeline {
            sections,
            schedule,
            name: name?,
            description,
            params: params.into_iter().map(|(k, (v, _))| (k, v)).collect(),
            tasks,
            spec_hash: blake3::hash(text.as_bytes()).to_hex().to_string(),
        })
    }

    fn unknown_keys(&mut self, entries: &[(Node, Node)], known: &[&str], what: &str) {
        for (key, _) in entries {
            let Some(name) = key.scalar_text() else {
                continue;
            };
            if !known.contains(&name.as_str()) {
                let hint = match did_you_mean(&name, known.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!("expected one of: {}", known.join(", ")),
                };
                self.error(key.span, format!("unknown key `{name}` in {what}"))
                    .hint = Some(hint);
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.error(
                    node.span,
                    format!("`{what}` must be a string, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn name(&mut self, node: &Node) -> Option<String> {
        let name = self.string(node, "name")?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            self.error(node.span, format!("invalid pipeline name `{name}`"))
                .hint = Some("use letters, digits, `_`, `-` and `.`".into());
            return None;
        }
        Some(name)
    }

    /// Params: name -> (typed default, span).
    fn params(&mut self, node: &Node) -> BTreeMap<String, (Json, Span)> {
        let mut out = BTreeMap::new();
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!(
                    "`params` must be a mapping of names to default values, found {}",
                    node.kind()
                ),
            );
            return out;
        };
        for (key, value) in entries {
            let Some(name) = key.scalar_text() else {
                continue;
            };
            if !is_identifier(&name) {
                self.error(key.span, format!("invalid param name `{name}`"))
                    .hint =
                    Some("use letters, digits and `_`, starting with a letter or `_`".into());
                continue;
            }
            let value = match &value.value {
                Value::Str(s) => {
                    let env = self.options.env;
                    match interpolate(s, &Scope { params: None, env }) {
                        Ok(Interpolated::Unchanged) => Json::String(s.clone()),
                        Ok(Interpolated::Text(t)) => Json::String(t),
                        Ok(Interpolated::Typed(v)) => v,
                        Err(e) => {
                            self.error(value.span, e.message).hint = e.hint;
                            continue;
                        }
                    }
                }
                Value::Seq(_) | Value::Map(_) | Value::Null => {
                    self.error(
                        value.span,
                        format!(
                            "param `{name}` must default to a string, number or boolean, found {}",
                            value.kind()
                        ),
                    )
                    .hint = Some("params are typed by their default value".into());
                    continue;
                }
                _ => value.to_json(),
            };
            out.insert(name, (value, key.span));
        }
        out
    }

    fn apply_overrides(
        &mut self,
        mut params: BTreeMap<String, (Json, Span)>,
        span: Span,
    ) -> BTreeMap<String, (Json, Span)> {
        for (name, raw) in self.options.param_overrides {
            let Some((current, _)) = params.get(name) else {
                let hint = match did_you_mean(name, params.keys().map(String::as_str)) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => "declare it under `params:` with a default".to_string(),
                };
                self.error(
                    span,
                    format!("--param {name}: the pipeline has no param `{name}`"),
                )
                .hint = Some(hint);
                continue;
            };
            let parsed = match current {
                Json::Bool(_) => raw
                    .parse::<bool>()
                    .map(Json::Bool)
                    .map_err(|_| "a boolean (true or false)"),
                Json::Number(n) if n.is_i64() => {
                    raw.parse::<i64>().map(Json::from).map_err(|_| "an integer")
                }
                Json::Number(_) => raw.parse::<f64>().map(Json::from).map_err(|_| "a number"),
                _ => Ok(Json::String(raw.clone())),
            };
            match parsed {
                Ok(v) => {
                    if let Some(entry) = params.get_mut(name) {
                        entry.0 = v;
                    }
                }
                Err(expected) => {
                    self.error(span, format!("--param {name}={raw}: expected {expected}, as the default `{current}` is"));
                }
            }
        }
        params
    }

    /// Interpolates every string below `node` in place.
    fn interpolate_tree(&mut self, node: &mut Node, params: &BTreeMap<String, Json>) {
        match &mut node.value {
            Value::Str(s) => {
                let env = self.options.env;
                match interpolate(
                    s,
                    &Scope {
                        params: Some(params),
                        env,
                    },
                ) {
                    Ok(Interpolated::Unchanged) => {}
                    Ok(Interpolated::Text(t)) => node.value = Value::Str(t),
                    Ok(Interpolated::Typed(v)) => node.value = json_to_value(&v),
                    Err(e) => self.error(node.span, e.message).hint = e.hint,
                }
            }
            Value::Seq(items) => items
                .iter_mut()
                .for_each(|n| self.interpolate_tree(n, params)),
            Value::Map(entries) => entries
                .iter_mut()
                .for_each(|(_, v)| self.interpolate_tree(v, params)),
            _ => {}
        }
    }

    /// Interpolates `node`; false if that reported a problem (the value is then not checked
    /// further, to avoid a second error about the same text).
    fn interpolate_checked(&mut self, node: &mut Node, params: &BTreeMap<String, Json>) -> bool {
        let before = self.problems.len();
        self.interpolate_tree(node, params);
        self.problems.len() == before
    }

    fn defaults(&mut self, node: &Node, params: &BTreeMap<String, (Json, Span)>) -> TaskDefaults {
        let mut defaults = TaskDefaults::default();
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!("`defaults` must be a mapping, found {}", node.kind()),
            );
            return defaults;
        };
        self.unknown_keys(entries, DEFAULT_KEYS, "defaults");
        let plain: BTreeMap<String, Json> = params
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        for (key, value) in entries {
            let mut value = value.clone();
            if !self.interpolate_checked(&mut value, &plain) {
                continue;
            }
            match key.as_str() {
                Some("retries") => self.retries(&value, &mut defaults.retries),
                Some("timeout") => defaults.timeout = self.duration(&value, "timeout"),
                Some("cache") => self.cache(&value, &mut defaults.cache),
                _ => {}
            }
        }
        defaults
    }

    fn schedule(&mut self, node: &Node) -> Option<ScheduleSpec> {
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!("`schedule` must be a mapping, found {}", node.kind()),
            )
            .hint =
                Some("for example `schedule: { cron: \"*/15 * * * *\", timezone: UTC }`".into());
            return None;
        };
        self.unknown_keys(entries, SCHEDULE_KEYS, "schedule");
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v)
        };
        let mut ok = true;
        let cron = match get("cron") {
            Some(c) => match c.as_str() {
                Some(text) => match crate::cron::CronExpr::parse(text) {
                    Ok(_) => text.trim().to_string(),
                    Err(e) => {
                        self.error(c.span, format!("invalid cron expression `{text}`: {e}")).hint = Some(
                            "5 fields `minute hour day month weekday` (6 with seconds first), or @hourly, @daily, @weekly, @monthly"
                                .into(),
                        );
                        ok = false;
                        String::new()
                    }
                },
                None => {
                    self.error(
                        c.span,
                        format!("`cron` must be a string, found {}", c.kind()),
                    )
                    .hint = Some("quote it: `cron: \"*/15 * * * *\"`".into());
                    ok = false;
                    String::new()
                }
            },
            None => {
                self.error(node.span, "`schedule` needs a `cron` expression");
                ok = false;
                String::new()
            }
        };
        let timezone = match get("timezone") {
            Some(z) => match z.as_str() {
                Some(name) if crate::cron::parse_zone(name).is_ok() => name.to_string(),
                other => {
                    let name = other
                        .map(str::to_string)
                        .unwrap_or_else(|| z.scalar_text().unwrap_or_default());
                    let near = closest(&name, crate::cron::zone_names(), 3);
                    let hint = if near.is_empty() {
                        "use an IANA name such as `UTC`, `America/Los_Angeles` or `Europe/Berlin`"
                            .to_string()
                    } else {
                        format!(
                            "did you mean {}?",
                            near.iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    self.error(z.span, format!("unknown time zone `{name}`"))
                        .hint = Some(hint);
                    ok = false;
                    String::new()
                }
            },
            None => "UTC".to_string(),
        };
        let overlap = match get("overlap") {
            Some(o) => match o.as_str() {
                Some("skip") => Overlap::Skip,
                Some("queue") => Overlap::Queue,
                Some("cancel_running") => Overlap::CancelRunning,
                Some("allow") => Overlap::Allow,
                _ => {
                    self.enum_error(o, "overlap", &["skip", "queue", "cancel_running", "allow"]);
                    ok = false;
                    Overlap::Skip
                }
            },
            None => Overlap::Skip,
        };
        let catchup = match get("catchup") {
            Some(c) => match c.as_str() {
                Some("none") => Catchup::None,
                Some("last") => Catchup::Last,
                Some("all") => Catchup::All,
                _ => {
                    self.enum_error(c, "catchup", &["none", "last", "all"]);
                    ok = false;
                    Catchup::Last
                }
            },
            None => Catchup::Last,
        };
        let max_catchup = match get("max_catchup") {
            Some(m) => match m.value {
                Value::Int(n) if (1..=10_000).contains(&n) => n as u32,
                _ => {
                    self.error(
                        m.span,
                        format!(
                            "`max_catchup` must be an integer from 1 to 10000, found {}",
                            m.scalar_text().unwrap_or_else(|| m.kind().into())
                        ),
                    );
                    ok = false;
                    10
                }
            },
            None => 10,
        };
        let start_deadline = match get("start_deadline") {
            Some(d) => {
                let parsed = self.duration(d, "start_deadline");
                ok &= parsed.is_some();
                parsed
            }
            None => None,
        };
        ok.then_some(ScheduleSpec {
            cron,
            timezone,
            overlap,
            catchup,
            max_catchup,
            start_deadline,
        })
    }

    /// A plugin's section: interpolated, checked against its schema, with defaults filled in.
    fn section(
        &mut self,
        section: &dyn DynSection,
        node: &Node,
        params: &BTreeMap<String, Json>,
    ) -> Option<Json> {
        let name = section.name();
        let mut node = node.clone();
        if !self.interpolate_checked(&mut node, params) {
            return None;
        }
        if node.value == Value::Null {
            node.value = Value::Map(Vec::new());
        }
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!("`{name}` must be a mapping, found {}", node.kind()),
            )
            .hint = Some(format!("for example `{}`", section.example()));
            return None;
        };
        let mut schema = section.schema();
        let known: Vec<String> = schema
            .get("properties")
            .and_then(Json::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let before = self.problems.len();
        self.unknown_keys(
            entries,
            &known.iter().map(String::as_str).collect::<Vec<_>>(),
            name,
        );
        // Unknown keys are reported above, in the words of the pipeline's own sections.
        if let Some(o) = schema.as_object_mut() {
            o.remove("additionalProperties");
        }
        schema_check::check(&node, &schema, &schema, name, &mut self.problems);
        if self.problems.len() != before {
            return None;
        }
        match section.normalize(&node.to_json()) {
            Ok(value) => Some(value),
            Err(e) => {
                self.error(node.span, format!("`{name}`: {e}"));
                None
            }
        }
    }

    fn enum_error(&mut self, node: &Node, what: &str, options: &[&str]) {
        let text = node
            .scalar_text()
            .unwrap_or_else(|| node.kind().to_string());
        let hint = did_you_mean(&text, options.iter().copied())
            .map(|c| format!("did you mean `{c}`?"))
            .unwrap_or_else(|| format!("use one of: {}", options.join(", ")));
        self.error(node.span, format!("invalid `{what}` `{text}`"))
            .hint = Some(hint);
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let Some(text) = node.as_str() else {
            self.error(
                node.span,
                format!(
                    "`{what}` must be a duration such as `30s` or `5m`, found {}",
                    node.kind()
                ),
            );
            return None;
        };
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(node.span, format!("invalid duration for `{what}`: {e}"))
                    .hint = Some("write durations like `10ms`, `1s`, `5m`, `1h` or `1h30m`".into());
                None
            }
        }
    }

    fn retries(&mut self, node: &Node, policy: &mut RetryPolicy) {
        if let Value::Int(n) = node.value {
            // Shorthand: `retries: 3` means three attempts in all.
            return self.max_attempts(node, n, policy);
        }
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!("`retries` must be a mapping, found {}", node.kind()),
            )
            .hint = Some("for example `retries: { max_attempts: 3, backoff: exponential }`".into());
            return;
        };
        self.unknown_keys(entries, RETRY_KEYS, "retries");
        for (key, value) in entries {
            match key.as_str() {
                Some("max_attempts") => match value.value {
                    Value::Int(n) => self.max_attempts(value, n, policy),
                    _ => {
                        self.error(
                            value.span,
                            format!("`max_attempts` must be an integer, found {}", value.kind()),
                        );
                    }
                },
                Some("backoff") => match value.as_str() {
                    Some("exponential") => policy.backoff = Backoff::Exponential,
                    Some("linear") => policy.backoff = Backoff::Linear,
                    Some("fixed") => policy.backoff = Backoff::Fixed,
                    other => {
                        let hint = other
                            .and_then(|o| did_you_mean(o, ["exponential", "linear", "fixed"]))
                            .map(|c| format!("did you mean `{c}`?"))
                            .unwrap_or_else(|| "use exponential, linear or fixed".into());
                        self.error(
                            value.span,
                            format!(
                                "invalid `backoff` `{}`",
                                value.scalar_text().unwrap_or_default()
                            ),
                        )
                        .hint = Some(hint);
                    }
                },
                Some("initial_delay") => {
                    if let Some(d) = self.duration(value, "initial_delay") {
                        policy.initial_delay = d;
                    }
                }
                Some("max_delay") => {
                    if let Some(d) = self.duration(value, "max_delay") {
                        policy.max_delay = d;
                    }
                }
                Some("jitter") => match value.value {
                    Value::Bool(b) => policy.jitter = b,
                    _ => {
                        self.error(
                            value.span,
                            format!("`jitter` must be true or false, found {}", value.kind()),
                        );
                    }
                },
                _ => {}
            }
        }
    }

    fn max_attempts(&mut self, node: &Node, n: i64, policy: &mut RetryPolicy) {
        if (1..=1000).contains(&n) {
            policy.max_attempts = n as u32;
        } else {
            self.error(
                node.span,
                format!("`max_attempts` must be between 1 and 1000, found {n}"),
            )
            .hint = Some("1 means no retry".into());
        }
    }

    fn cache(&mut self, node: &Node, policy: &mut CachePolicy) {
        match &node.value {
            Value::Bool(b) => {
                policy.enabled = *b;
            }
            Value::Map(entries) => {
                policy.enabled = true;
                self.unknown_keys(entries, CACHE_KEYS, "cache");
                for (key, value) in entries {
                    match key.as_str() {
                        Some("enabled") => match value.value {
                            Value::Bool(b) => policy.enabled = b,
                            _ => {
                                self.error(
                                    value.span,
                                    format!(
                                        "`enabled` must be true or false, found {}",
                                        value.kind()
                                    ),
                                );
                            }
                        },
                        Some("ttl") => policy.ttl = self.duration(value, "ttl"),
                        _ => {}
                    }
                }
            }
            _ => {
                self.error(
                    node.span,
                    format!(
                        "`cache` must be true, false or a mapping, found {}",
                        node.kind()
                    ),
                )
                .hint = Some("for example `cache: true` or `cache: { ttl: 1h }`".into());
            }
        }
    }

    fn tasks(
        &mut self,
        node: &Node,
        params: &BTreeMap<String, (Json, Span)>,
        defaults: &TaskDefaults,
    ) -> Vec<TaskSpec> {
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!(
                    "`tasks` must be a mapping of task ids to tasks, found {}",
                    node.kind()
                ),
            );
            return Vec::new();
        };
        if entries.is_empty() {
            self.error(node.span, "the pipeline has no tasks");
        }
        let plain: BTreeMap<String, Json> = params
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        let ids: Vec<String> = entries
            .iter()
            .filter_map(|(k, _)| k.scalar_text())
            .collect();
        let mut tasks = Vec::new();
        // For cycle reporting: (from, to, span of the depends_on entry).
        let mut edges: Vec<(String, String, Span)> = Vec::new();
        for (key, body) in entries {
            let Some(id) = key.scalar_text() else {
                continue;
            };
            if !is_task_id(&id) {
                self.error(key.span, format!("invalid task id `{id}`")).hint =
                    Some("use letters, digits, `_` and `-`".into());
            }
            if let Some(task) = self.task(&id, body, &ids, &plain, defaults, &mut edges) {
                tasks.push(task);
            }
        }
        for cycle in find_cycles(
            ids.iter().map(String::as_str),
            edges.iter().map(|(a, b, _)| (b.as_str(), a.as_str())),
        ) {
            // `cycle` lists tasks in dependency order a -> b (b depends on a); report at the
            // depends_on entry that closes it.
            let path = cycle.join(" -> ");
            let from = &cycle[cycle.len() - 2];
            let to = &cycle[cycle.len() - 1];
            let span = edges
                .iter()
                .find(|(task, dep, _)| task == to && dep == from)
                .map_or(node.span, |(_, _, s)| *s);
            self.error(span, format!("dependency cycle: {path}")).hint =
                Some("a task cannot depend, directly or through others, on itself; remove one of these dependencies".into());
        }
        tasks
    }

    fn task(
        &mut self,
        id: &str,
        body: &Node,
        ids: &[String],
        params: &BTreeMap<String, Json>,
        defaults: &TaskDefaults,
        edges: &mut Vec<(String, String, Span)>,
    ) -> Option<TaskSpec> {
        let Some(entries) = body.as_map() else {
            self.error(
                body.span,
                format!("task `{id}` must be a mapping, found {}", body.kind()),
            )
            .hint = Some("for example `{ type: command, with: { argv: [echo, hi] } }`".into());
            return None;
        };
        self.unknown_keys(entries, TASK_KEYS, &format!("task `{id}`"));
        let get = |key: &str| entries.iter().find(|(k, _)| k.as_str() == Some(key));
        let mut ok = true;

        let task_type = match get("type") {
            Some((_, t)) => match t.as_str() {
                Some(name) if self.options.registry.get(name).is_some() => Some(name.to_string()),
                Some(name) => {
                    let near = closest(name, self.options.registry.names(), 3);
                    let hint = if near.is_empty() {
                        format!(
                            "registered types: {}",
                            self.options.registry.names().collect::<Vec<_>>().join(", ")
                        )
                    } else {
                        format!(
                            "did you mean {}? (`tweetflow tasks` lists every type)",
                            near.iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    self.error(t.span, format!("task `{id}`: unknown task type `{name}`"))
                        .hint = Some(hint);
                    None
                }
                None => {
                    self.error(
                        t.span,
                        format!("task `{id}`: `type` must be a string, found {}", t.kind()),
                    );
                    None
                }
            },
            None => {
                self.error(body.span, format!("task `{id}`: missing `type`"))
                    .hint = Some(format!(
                    "registered types: {}",
                    self.options.registry.names().collect::<Vec<_>>().join(", ")
                ));
                None
            }
        };

        let mut with = match get("with") {
            Some((_, w)) => w.clone(),
            None => Node::new(body.span, Value::Map(Vec::new())),
        };
        let interpolation_ok = self.interpolate_checked(&mut with, params);
        if let Some(ty) = &task_type
            && let Some(task) = self.options.registry.get(ty)
        {
            let schema = task.params_schema();
            let before = self.problems.len();
            schema_check::check(
                &with,
                &schema,
                &schema,
                &format!("task `{id}`: with"),
                &mut self.problems,
            );
            if self.problems.len() == before
                && interpolation_ok
                && let Err(e) = task.check_params(&with.to_json())
            {
                self.error(with.span, format!("task `{id}`: invalid params: {e}"));
            }
        }

        let mut depends_on = Vec::new();
        if let Some((_, deps)) = get("depends_on") {
            match &deps.value {
                Value::Seq(items) => {
                    let mut seen = HashSet::new();
                    for item in items {
                        let Some(dep) = item.as_str() else {
                            self.error(
                                item.span,
                                format!(
                                    "task `{id}`: dependencies must be task ids, found {}",
                                    item.kind()
                                ),
                            );
                            ok = false;
                            continue;
                        };
                        if dep == id {
                            self.error(item.span, format!("task `{id}` depends on itself"))
                                .hint = Some("remove it from its own `depends_on`".into());
                            ok = false;
                        } else if !ids.iter().any(|i| i == dep) {
                            let hint = did_you_mean(
                                dep,
                                ids.iter().map(String::as_str).filter(|i| *i != id),
                            )
                            .map(|c| format!("did you mean `{c}`?"))
                            .unwrap_or_else(|| {
                                format!("tasks in this pipeline: {}", ids.join(", "))
                            });
                            self.error(
                                item.span,
                                format!("task `{id}` depends on unknown task `{dep}`"),
                            )
                            .hint = Some(hint);
                            ok = false;
                        } else if !seen.insert(dep.to_string()) {
                            self.error(
                                item.span,
                                format!("task `{id}` lists dependency `{dep}` twice"),
                            )
                            .hint = Some("remove the duplicate".into());
                        } else {
                            depends_on.push(dep.to_string());
                            edges.push((id.to_string(), dep.to_string(), item.span));
                        }
                    }
                }
                _ => {
                    self.error(
                        deps.span,
                        format!(
                            "task `{id}`: `depends_on` must be a list of task ids, found {}",
                            deps.kind()
                        ),
                    )
                    .hint = Some("for example `depends_on: [ingest]`".into());
                    ok = false;
                }
            }
        }

        let mut retries = defaults.retries.clone();
        let mut timeout = defaults.timeout;
        let mut cache = defaults.cache.clone();
        let description = get("description").and_then(|(_, d)| self.string(d, "description"));
        for key in ["retries", "timeout", "cache"] {
            if let Some((_, value)) = get(key) {
                let mut value = value.clone();
                if !self.interpolate_checked(&mut value, params) {
                    continue;
                }
                match key {
                    "retries" => self.retries(&value, &mut retries),
                    "timeout" => timeout = self.duration(&value, "timeout"),
                    _ => self.cache(&value, &mut cache),
                }
            }
        }
        if !ok {
            return None;
        }
        Some(TaskSpec {
            id: id.to_string(),
            task_type: task_type?,
            with: with.to_json(),
            depends_on,
            retries,
            timeout,
            cache,
            description,
        })
    }
}

#[derive(Default)]
struct TaskDefaults {
    retries: RetryPolicy,
    timeout: Option<Duration>,
    cache: CachePolicy,
}

fn json_to_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Int),
        Json::String(s) => Value::Str(s.clone()),
        // Params are scalars; collections never reach here.
        Json::Array(_) | Json::Object(_) => Value::Str(v.to_string()),
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_task_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
