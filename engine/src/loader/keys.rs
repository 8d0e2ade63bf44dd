//! The keys each part of a pipeline file accepts, derived from the structs the loader fills:
//! the properties of their JSON Schema, in declaration order. A field added to one of them is
//! a key the loader accepts (and suggests), so the lists cannot drift from the model.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use schemars::JsonSchema;
use serde_json::Value as Json;

use super::TaskDefaults;
use crate::spec::{CachePolicy, RetentionPolicy, RetryPolicy, ScheduleSpec, TaskSpec};
use crate::trigger::TriggerSpec;

/// The top level of a pipeline file, plugin sections aside: what the loader reads into a
/// [`crate::Pipeline`] (`defaults` is folded into each task).
#[derive(JsonSchema)]
#[allow(dead_code)] // describes the file; the loader reads it node by node
struct PipelineFile {
    name: String,
    description: Option<String>,
    params: BTreeMap<String, Json>,
    defaults: TaskDefaults,
    tasks: BTreeMap<String, TaskSpec>,
    schedule: Option<ScheduleSpec>,
    trigger: Option<TriggerSpec>,
    retention: Option<RetentionPolicy>,
}

/// The accepted keys of each mapping of a pipeline file.
pub(super) struct Keys {
    /// The top level (plugin sections are added by the loader).
    pub top: Vec<String>,
    /// `schedule:`.
    pub schedule: Vec<String>,
    /// `trigger:`.
    pub trigger: Vec<String>,
    /// `retention:`.
    pub retention: Vec<String>,
    /// `defaults:`.
    pub defaults: Vec<String>,
    /// A task (its id is its key under `tasks:`, not a key of its own).
    pub task: Vec<String>,
    /// `retries:`.
    pub retry: Vec<String>,
    /// `cache:`.
    pub cache: Vec<String>,
}

/// The keys, derived once.
pub(super) static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    top: of::<PipelineFile>(),
    schedule: of::<ScheduleSpec>(),
    trigger: of::<TriggerSpec>(),
    retention: of::<RetentionPolicy>(),
    defaults: of::<TaskDefaults>(),
    task: of::<TaskSpec>().into_iter().filter(|k| k != "id").collect(),
    retry: of::<RetryPolicy>(),
    cache: of::<CachePolicy>(),
});

/// The property names of `T`'s JSON Schema (its serde field names), in declaration order.
pub(super) fn of<T: JsonSchema>() -> Vec<String> {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    schema
        .get("properties")
        .and_then(Json::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_follow_the_structs_in_declaration_order() {
        let k = &*KEYS;
        assert_eq!(
            k.top,
            [
                "name",
                "description",
                "params",
                "defaults",
                "tasks",
                "schedule",
                "trigger",
                "retention"
            ]
        );
        assert_eq!(
            k.trigger,
            ["tables", "poll", "min_interval", "start", "overlap"]
        );
        assert_eq!(k.retention, ["keep_last", "max_age", "keep_failed"]);
        assert_eq!(
            k.schedule,
            [
                "cron",
                "timezone",
                "overlap",
                "catchup",
                "max_catchup",
                "start_deadline",
                "on_interrupted",
                "max_resumes"
            ]
        );
        assert_eq!(k.defaults, ["retries", "timeout", "cache", "executor"]);
        assert_eq!(
            k.task,
            [
                "type",
                "description",
                "depends_on",
                "with",
                "retries",
                "timeout",
                "cache",
                "executor",
                "shards",
                "expect"
            ]
        );
        assert_eq!(
            k.retry,
            [
                "max_attempts",
                "backoff",
                "initial_delay",
                "max_delay",
                "jitter"
            ]
        );
        assert_eq!(k.cache, ["enabled", "ttl"]);
    }

    #[test]
    fn a_field_added_to_a_struct_is_an_accepted_key() {
        #[derive(JsonSchema)]
        #[allow(dead_code)]
        struct RetryPolicyPlus {
            #[serde(flatten)]
            policy: RetryPolicy,
            #[serde(rename = "give_up_after")]
            deadline: Option<String>,
        }
        let keys = of::<RetryPolicyPlus>();
        assert_eq!(keys[..KEYS.retry.len()], KEYS.retry[..]);
        assert_eq!(keys.last().map(String::as_str), Some("give_up_after"));
    }
}
