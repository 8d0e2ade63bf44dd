//! `tasks:` (each task's type, params, dependencies and policies) and `defaults:`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use schemars::JsonSchema;
use serde_json::Value as Json;

use super::{KEYS, Loader};
use crate::diagnostic::{Span, closest, did_you_mean};
use crate::graph::find_cycles;
use crate::schema_check;
use crate::spec::{CachePolicy, ExecutorSpec, RetryPolicy, TaskSpec};
use crate::yaml::{Node, Value};

impl Loader<'_, '_> {
    pub(super) fn defaults(
        &mut self,
        node: &Node,
        params: &BTreeMap<String, (Json, Span)>,
    ) -> TaskDefaults {
        let mut defaults = TaskDefaults::default();
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!("`defaults` must be a mapping, found {}", node.kind()),
            );
            return defaults;
        };
        // Sections that may be inherited (`defaults: { notify: [...] }`) are read with the
        // pipeline's own sections.
        let inherited: Vec<&str> = self
            .options
            .registry
            .sections()
            .filter(|s| s.in_defaults())
            .map(|s| s.name())
            .collect();
        let known: Vec<&str> = KEYS
            .defaults
            .iter()
            .map(String::as_str)
            .chain(inherited.iter().copied())
            .collect();
        self.unknown_keys(entries, &known, "defaults");
        let plain: BTreeMap<String, Json> = params
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        for (key, value) in entries {
            if key.as_str().is_some_and(|k| inherited.contains(&k)) {
                continue;
            }
            let mut value = value.clone();
            // An executor's settings may hold secrets (a cluster's token): recorded here, and
            // for each task that inherits them, at its own executor.
            let at = (key.as_str() == Some("executor")).then_some(DEFAULTS_EXECUTOR);
            let before = self.slots.len();
            let interpolated = self.interpolate_checked(&mut value, &plain, at);
            defaults.executor_slots.extend(self.slots.drain(before..));
            if !interpolated {
                continue;
            }
            match key.as_str() {
                Some("retries") => self.retries(&value, &mut defaults.retries),
                Some("timeout") => defaults.timeout = self.duration(&value, "timeout"),
                Some("cache") => self.cache(&value, &mut defaults.cache),
                Some("executor") => {
                    if let Some(e) = self.executor(&value, "defaults") {
                        defaults.executor = e;
                    }
                }
                _ => {}
            }
        }
        defaults
    }

    pub(super) fn tasks(
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
        if entries.len() > MAX_TASKS {
            self.error(
                node.span,
                format!(
                    "the pipeline has {} tasks; a pipeline may have at most {MAX_TASKS}",
                    entries.len()
                ),
            )
            .hint = Some("split it into several pipelines".into());
            return Vec::new();
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
            let index = tasks.len();
            if let Some(task) = self.task(&id, index, body, &ids, &plain, defaults, &mut edges) {
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

    #[allow(clippy::too_many_arguments)]
    pub(super) fn task(
        &mut self,
        id: &str,
        index: usize,
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
        self.unknown_keys(entries, &KEYS.task, &format!("task `{id}`"));
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
        let at = format!("/tasks/{index}/with");
        let interpolation_ok = self.interpolate_checked(&mut with, params, Some(&at));
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
        let mut executor = defaults.executor.clone();
        let mut shards = 1;
        let description = get("description").and_then(|(_, d)| self.string(d, "description"));
        let executor_at = format!("/tasks/{index}/executor");
        if get("executor").is_none() {
            for slot in &defaults.executor_slots {
                if let Some(rest) = slot.at.strip_prefix(DEFAULTS_EXECUTOR) {
                    self.slots.push(crate::secrets::SecretSlot {
                        at: format!("{executor_at}{rest}"),
                        pieces: slot.pieces.clone(),
                    });
                }
            }
        }
        for key in ["retries", "timeout", "cache", "executor", "shards"] {
            if let Some((_, value)) = get(key) {
                let mut value = value.clone();
                let at = (key == "executor").then_some(executor_at.as_str());
                if !self.interpolate_checked(&mut value, params, at) {
                    continue;
                }
                match key {
                    "retries" => self.retries(&value, &mut retries),
                    "timeout" => timeout = self.duration(&value, "timeout"),
                    "executor" => match self.executor(&value, &format!("task `{id}`")) {
                        Some(e) => executor = e,
                        None => ok = false,
                    },
                    "shards" => shards = self.shards(&value, id, task_type.as_deref()),
                    _ => self.cache(&value, &mut cache),
                }
            }
        }
        let expect = match get("expect") {
            Some((_, node)) => {
                let mut node = node.clone();
                if self.interpolate_checked(&mut node, params, None) {
                    self.expectations(&node, id, task_type.as_deref(), &with.to_json())
                } else {
                    Default::default()
                }
            }
            None => Default::default(),
        };
        if !ok {
            return None;
        }
        if interpolation_ok && let Some(ty) = &task_type {
            self.check_locations(id, ty, &with, &executor);
        }
        Some(TaskSpec {
            expect,
            id: id.to_string(),
            task_type: task_type?,
            with: with.to_json(),
            depends_on,
            retries,
            timeout,
            cache,
            description,
            executor,
            shards,
        })
    }
}

/// Most tasks in one pipeline.
pub const MAX_TASKS: usize = 2_000;

/// `defaults:`, applied to every task unless the task overrides them.
#[derive(Default, JsonSchema)]
pub(super) struct TaskDefaults {
    /// See [`TaskSpec::retries`].
    retries: RetryPolicy,
    /// See [`TaskSpec::timeout`].
    #[schemars(with = "Option<u64>")]
    timeout: Option<Duration>,
    /// See [`TaskSpec::cache`].
    cache: CachePolicy,
    /// See [`TaskSpec::executor`].
    #[schemars(with = "Json")]
    executor: ExecutorSpec,
    /// The secrets of `executor`'s settings, at [`DEFAULTS_EXECUTOR`].
    #[schemars(skip)]
    executor_slots: Vec<crate::secrets::SecretSlot>,
}

/// Where the secrets of `defaults.executor` are recorded until a task inherits them.
const DEFAULTS_EXECUTOR: &str = "/defaults/executor";

impl Loader<'_, '_> {
    /// Refuses the task's local locations that its executor's nodes do not see (see
    /// [`crate::executor::Executor::shared_paths`]).
    fn check_locations(&mut self, id: &str, ty: &str, with: &Node, executor: &ExecutorSpec) {
        let registry = self.options.registry;
        let Some(name) = &executor.name else {
            return;
        };
        let (Some(exec), Some(task)) = (registry.executor(name), registry.get(ty)) else {
            return;
        };
        let Some(shared) = exec.shared_paths(&executor.config) else {
            return;
        };

        let absolute = |p: &str| {
            let p = p.strip_prefix("file://").unwrap_or(p);
            std::path::absolute(p).unwrap_or_else(|_| std::path::PathBuf::from(p))
        };
        let shared: Vec<std::path::PathBuf> = shared.iter().map(|p| absolute(p)).collect();
        for (param, location) in task.locations(&with.to_json()) {
            let is_local = location.starts_with("file://") || !location.contains("://");
            if !is_local || shared.iter().any(|s| absolute(&location).starts_with(s)) {
                continue;
            }
            let span = with
                .as_map()
                .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(param)))
                .map_or(with.span, |(_, v)| v.span);
            self.error(
                span,
                format!(
                    "task `{id}`: `{param}: {location}` is a local path, but the attempts of executor `{name}` run on nodes that do not see the engine's files"
                ),
            )
            .hint = Some(format!(
                "give an object-store location (s3://..., az://..., gs://...), or, if every node mounts it at the same path, list the folder in `executor: {{ {name}: {{ shared_paths: [\"/mnt/shared\"] }} }}`"
            ));
        }
    }
}

fn is_task_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
