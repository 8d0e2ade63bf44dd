//! The loader of pipeline files: checks everything at once and reports each problem with its
//! position.
//!
//! ```text
//! YAML text ──yaml::parse──▶ Node tree ──interpolate──▶ checked sections ──▶ Pipeline
//!                                               │                      │
//!                                               └──── Diagnostics ◀────┘ (all problems, sorted)
//! ```
//!
//! One file per part of the pipeline file: `params` (params, `--param` overrides and
//! interpolation), `task` (tasks and `defaults`), `expect` (data-quality expectations), `retry`, `cache`, `schedule`, `retention`
//! and `section` (plugin-owned sections); `keys` derives the keys each part accepts from the
//! structs it fills.

mod cache;
mod expect;
mod keys;
mod params;
mod placement;
mod retention;
mod retry;
mod schedule;
mod section;
mod task;
mod trigger;

pub use task::MAX_TASKS;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value as Json;

use crate::diagnostic::{Diagnostic, Diagnostics, Span, did_you_mean};
use crate::duration::parse_duration;
use crate::registry::Registry;
use crate::secrets::{self, Piece, SecretSlot, pointer_token};
use crate::spec::Pipeline;
use crate::trigger::TriggerSlot;
use crate::yaml::{self, Node};

use keys::KEYS;
use task::TaskDefaults;

/// What the loader needs besides the file.
pub struct LoadOptions<'a> {
    /// The task types pipelines may use.
    pub registry: &'a Registry,
    /// `--param NAME=VALUE` overrides, in order.
    pub param_overrides: &'a [(String, String)],
    /// Environment lookup for `${env.X}` (the process environment by default).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Reads and validates the pipeline file at `path`.
pub fn load_file(path: &Path, options: &LoadOptions<'_>) -> Result<Pipeline, Diagnostics> {
    let file = path.display().to_string();
    match read_bounded(path) {
        Ok(text) => load_str(&file, &text, options),
        Err(ReadError::TooLarge(len)) => Err(Diagnostics {
            file,
            items: vec![yaml::too_large(len)],
        }),
        Err(ReadError::Io(e)) => Err(Diagnostics {
            file,
            items: vec![Diagnostic::new(
                Span::new(1, 1),
                format!("cannot read the pipeline file: {e}"),
            )],
        }),
    }
}

enum ReadError {
    TooLarge(usize),
    Io(std::io::Error),
}

/// Reads a pipeline file, never more than [`yaml::MAX_FILE_BYTES`] and one byte.
fn read_bounded(path: &Path) -> Result<String, ReadError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(yaml::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() > yaml::MAX_FILE_BYTES {
        let len = std::fs::metadata(path).map_or(bytes.len(), |m| m.len() as usize);
        return Err(ReadError::TooLarge(len));
    }
    String::from_utf8(bytes)
        .map_err(|e| ReadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
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
        secret_params: BTreeMap::new(),
        slots: Vec::new(),
        trigger_names: Vec::new(),
        trigger_tables: BTreeMap::new(),
        trigger_slots: Vec::new(),
    };
    let pipeline = loader.load(text);
    let mut items = loader.problems;
    // A message may quote a value: never a secret's.
    for item in &mut items {
        item.message = secrets::mask(&item.message).into_owned();
        if let Some(hint) = &mut item.hint {
            *hint = secrets::mask(hint).into_owned();
        }
    }
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
    /// The params whose values hold secrets, with their pieces.
    secret_params: BTreeMap<String, Vec<Piece>>,
    /// Every string of the plan that holds a secret.
    slots: Vec<SecretSlot>,
    /// The names of the trigger tables (empty without a `trigger:` section).
    trigger_names: Vec<String>,
    /// The trigger tables: name → location.
    trigger_tables: BTreeMap<String, String>,
    /// Every string of the plan that uses `${trigger.…}`.
    trigger_slots: Vec<TriggerSlot>,
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
        let top_keys: Vec<&str> = KEYS
            .top
            .iter()
            .map(String::as_str)
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
        for (name, pieces) in &self.secret_params {
            self.slots.push(SecretSlot {
                at: format!("/params/{}", pointer_token(name)),
                pieces: pieces.clone(),
            });
        }
        // Before the tasks: their strings may use `${trigger.NAME.…}`.
        let trigger = get("trigger").and_then(|t| self.trigger(t, &params));
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
        let retention = get("retention").and_then(|r| self.retention(r));
        let plain: BTreeMap<String, Json> = params
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        let mut sections = BTreeMap::new();
        let from_defaults = |name: &str| {
            get("defaults")
                .and_then(Node::as_map)
                .and_then(|d| d.iter().find(|(k, _)| k.as_str() == Some(name)))
                .map(|(_, v)| v)
        };
        for section in registry.sections() {
            let own = get(section.name());
            let inherited = section
                .in_defaults()
                .then(|| from_defaults(section.name()))
                .flatten();
            if let Some(node) = own.or(inherited)
                && let Some(value) = self.section(&**section, node, &plain)
            {
                sections.insert(section.name().to_string(), value);
            }
        }
        Some(Pipeline {
            sections,
            schedule,
            trigger,
            trigger_slots: std::mem::take(&mut self.trigger_slots),
            retention,
            name: name?,
            description,
            params: params.into_iter().map(|(k, (v, _))| (k, v)).collect(),
            tasks,
            spec_hash: blake3::hash(text.as_bytes()).to_hex().to_string(),
            secrets: std::mem::take(&mut self.slots),
        })
    }

    fn unknown_keys<K: AsRef<str>>(&mut self, entries: &[(Node, Node)], known: &[K], what: &str) {
        let known: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
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

    /// An `overlap:` policy (of `schedule:` or `trigger:`); `None` after reporting it.
    fn overlap(&mut self, node: &Node) -> Option<crate::spec::Overlap> {
        use crate::spec::Overlap;
        match node.as_str() {
            Some("skip") => Some(Overlap::Skip),
            Some("queue") => Some(Overlap::Queue),
            Some("cancel_running") => Some(Overlap::CancelRunning),
            Some("allow") => Some(Overlap::Allow),
            _ => {
                self.enum_error(
                    node,
                    "overlap",
                    &["skip", "queue", "cancel_running", "allow"],
                );
                None
            }
        }
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
}
