//! A task's `executor:` (`local`, or a registered executor with its settings) and `shards:`.

use super::Loader;
use crate::diagnostic::did_you_mean;
use crate::schema_check;
use crate::spec::ExecutorSpec;
use crate::yaml::{Node, Value};

/// Most shards a task may be split into.
pub(super) const MAX_SHARDS: i64 = 1024;

impl Loader<'_, '_> {
    /// `executor: local` or `executor: { NAME: { ...settings } }`, the settings checked
    /// against the executor's schema with positions and their defaults filled in.
    pub(super) fn executor(&mut self, node: &Node, what: &str) -> Option<ExecutorSpec> {
        let registry = self.options.registry;
        let names: Vec<&str> = std::iter::once(ExecutorSpec::LOCAL)
            .chain(registry.executor_names())
            .collect();
        let example =
            "`executor: local` or `executor: { ray: { address: \"http://127.0.0.1:8265\" } }`";
        let (name_node, settings) = match &node.value {
            Value::Str(_) => (node, None),
            Value::Map(entries) if entries.len() == 1 => (&entries[0].0, Some(&entries[0].1)),
            _ => {
                self.error(
                    node.span,
                    format!(
                        "{what}: `executor` must be a name or a mapping of one name to its settings, found {}",
                        node.kind()
                    ),
                )
                .hint = Some(format!("for example {example}"));
                return None;
            }
        };
        let name = name_node.scalar_text().unwrap_or_default();
        if name == ExecutorSpec::LOCAL {
            if settings.is_some_and(|s| s.value != Value::Null) {
                self.error(
                    node.span,
                    format!("{what}: the `local` executor has no settings"),
                )
                .hint = Some("write `executor: local`".into());
                return None;
            }
            return Some(ExecutorSpec::default());
        }
        let Some(executor) = registry.executor(&name).cloned() else {
            let hint = match did_you_mean(&name, names.iter().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("executors: {}", names.join(", ")),
            };
            self.error(name_node.span, format!("{what}: unknown executor `{name}`"))
                .hint = Some(hint);
            return None;
        };
        let mut settings = settings
            .cloned()
            .unwrap_or_else(|| Node::new(name_node.span, Value::Map(Vec::new())));
        if settings.value == Value::Null {
            settings.value = Value::Map(Vec::new());
        }
        let path = format!("{what}: executor.{name}");
        let Some(entries) = settings.as_map() else {
            self.error(
                settings.span,
                format!("{path} must be a mapping, found {}", settings.kind()),
            )
            .hint = Some(format!("for example {example}"));
            return None;
        };
        let mut schema = executor.schema();
        let known: Vec<String> = schema
            .get("properties")
            .and_then(serde_json::Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let before = self.problems.len();
        self.unknown_keys(entries, &known, &path);
        if let Some(o) = schema.as_object_mut() {
            o.remove("additionalProperties");
        }
        schema_check::check(&settings, &schema, &schema, &path, &mut self.problems);
        if self.problems.len() != before {
            return None;
        }
        match executor.normalize(&settings.to_json()) {
            Ok(config) => Some(ExecutorSpec {
                name: Some(name),
                config,
            }),
            Err(e) => {
                self.error(settings.span, format!("{path}: {e}"));
                None
            }
        }
    }

    /// `shards: N` (1 to [`MAX_SHARDS`]) for a type that can be split.
    pub(super) fn shards(&mut self, node: &Node, id: &str, task_type: Option<&str>) -> u32 {
        let Value::Int(n) = node.value else {
            self.error(
                node.span,
                format!(
                    "task `{id}`: `shards` must be an integer, found {}",
                    node.kind()
                ),
            );
            return 1;
        };
        if !(1..=MAX_SHARDS).contains(&n) {
            self.error(
                node.span,
                format!("task `{id}`: `shards` must be between 1 and {MAX_SHARDS}, found {n}"),
            );
            return 1;
        }
        if n > 1
            && let Some(ty) = task_type
            && let Some(task) = self.options.registry.get(ty)
            && !task.shardable()
        {
            let splittable: Vec<&str> = self
                .options
                .registry
                .iter()
                .filter(|t| t.shardable())
                .map(|t| t.type_name())
                .collect();
            self.error(
                node.span,
                format!("task `{id}`: task type `{ty}` cannot be split into shards"),
            )
            .hint = Some(if splittable.is_empty() {
                "no registered type can be split".into()
            } else {
                format!("types that can: {}", splittable.join(", "))
            });
            return 1;
        }
        n as u32
    }
}
