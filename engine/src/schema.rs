//! The JSON Schema of the pipeline format (for editors), with each registered task type's
//! params attached to `with:` by `if`/`then` on `type:` and each registered plugin section as
//! a top-level property, and a readable summary of a task type's params (for `tweetflow
//! tasks`).

use serde_json::{Map, Value as Json, json};

use crate::registry::Registry;

const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h|d))+$";
const INTERPOLATION_PATTERN: &str = "\\$\\{[^}]+\\}";

/// Lets each property of an object schema also be an interpolated string: a typed param
/// (an integer, a boolean, a list) may be written `${params.x}` and is checked once the
/// value is known. Description and default stay on the property, where editors show them.
fn allow_interpolation(schema: &mut Json) {
    let Some(props) = schema.get_mut("properties").and_then(Json::as_object_mut) else {
        return;
    };
    for prop in props.values_mut() {
        let is_plain_string = prop.get("type") == Some(&json!("string"));
        if is_plain_string {
            continue;
        }
        let mut inner = std::mem::take(prop);
        let mut outer = Map::new();
        if let Some(o) = inner.as_object_mut() {
            for key in ["description", "default"] {
                if let Some(v) = o.remove(key) {
                    outer.insert(key.into(), v);
                }
            }
        }
        outer.insert(
            "anyOf".into(),
            json!([inner, {"$ref": "#/$defs/interpolated"}]),
        );
        *prop = Json::Object(outer);
    }
}

/// The JSON Schema (draft 2020-12) of a pipeline file.
pub fn pipeline_schema(registry: &Registry) -> Json {
    let mut defs = Map::new();
    defs.insert(
        "duration".into(),
        json!({
            "type": "string", "pattern": DURATION_PATTERN,
            "description": "A duration such as `10ms`, `1s`, `5m`, `1h` or `1h30m`."
        }),
    );
    defs.insert("retries".into(), json!({
        "description": "How failed attempts are retried (an integer is shorthand for max_attempts).",
        "oneOf": [
            {"type": "integer", "minimum": 1},
            {"type": "object", "additionalProperties": false, "properties": {
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1, "description": "Attempts in all, including the first."},
                "backoff": {"enum": ["exponential", "linear", "fixed"], "default": "exponential"},
                "initial_delay": {"$ref": "#/$defs/duration", "default": "1s"},
                "max_delay": {"$ref": "#/$defs/duration", "default": "1m"},
                "jitter": {"type": "boolean", "default": true, "description": "Full jitter: the delay is drawn from [0, delay]."}
            }}
        ]
    }));
    defs.insert("cache".into(), json!({
        "description": "Reuse results whose cache key (type, version, params, upstream fingerprints) matches.",
        "oneOf": [
            {"type": "boolean"},
            {"type": "object", "additionalProperties": false, "properties": {
                "enabled": {"type": "boolean", "default": true},
                "ttl": {"$ref": "#/$defs/duration"}
            }}
        ]
    }));
    defs.insert(
        "interpolated".into(),
        json!({
            "type": "string", "pattern": INTERPOLATION_PATTERN,
            "description": "A value written as `${params.x}`, `${env.X:-default}`, `${secret.X}`, `${trigger.NAME.FIELD}` or `${upstream.task.key}`, checked once interpolated."
        }),
    );
    defs.insert("schedule".into(), json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["cron"],
        "description": "When `tweetflow schedule` starts the pipeline.",
        "properties": {
            "cron": {"type": "string", "description": "Cron expression: 5 fields `minute hour day month weekday`, 6 with seconds first, or @hourly, @daily, @weekly, @monthly."},
            "timezone": {"type": "string", "default": "UTC", "description": "IANA time zone the expression is read in."},
            "overlap": {"enum": ["skip", "queue", "cancel_running", "allow"], "default": "skip", "description": "What a tick does while a run of the pipeline is active."},
            "catchup": {"enum": ["none", "last", "all"], "default": "last", "description": "Which ticks missed while the scheduler was down are run when it comes back."},
            "max_catchup": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10, "description": "Most missed ticks run with `catchup: all`."},
            "start_deadline": {"$ref": "#/$defs/duration", "description": "A due tick not started by then is recorded as missed."},
            "on_interrupted": {"enum": ["resume", "fail"], "default": "resume", "description": "What the scheduler does with a run whose engine died: resume it (at most `max_resumes` times) or mark it failed."},
            "max_resumes": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 3, "description": "Most resumes of one interrupted run before it is marked failed (at least 1 with `on_interrupted: resume`)."}
        }
    }));
    defs.insert("trigger".into(), json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["tables"],
        "description": "The Delta tables whose new versions start the pipeline (`tweetflow schedule`); each version is covered by exactly one successful run. Tasks read the range as ${trigger.NAME.from_version}, ${trigger.NAME.to_version}, ${trigger.NAME.table} and ${trigger.NAME.lost}.",
        "properties": {
            "tables": {
                "type": "object",
                "minProperties": 1,
                "description": "Name (as in ${trigger.NAME.…}) to the table's location: a local path or an object-store URL.",
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "additionalProperties": {"type": "string"}
            },
            "poll": {"$ref": "#/$defs/duration", "description": "How often each table's log is listed (at least 100ms; default 1s, 10s when a table is on object storage)."},
            "min_interval": {"$ref": "#/$defs/duration", "description": "At most one triggered run starts per interval (default 0s)."},
            "start": {"enum": ["earliest", "latest"], "default": "earliest", "description": "Where a pipeline that never consumed a table starts: version 0, or the version current when the daemon first sees it."},
            "overlap": {"enum": ["skip", "queue", "cancel_running", "allow"], "default": "skip", "description": "What new versions do while another run of the pipeline is active (`skip` leaves them for the next run)."}
        }
    }));
    let mut branches = Vec::new();
    let mut types = Vec::new();
    for task in registry.iter() {
        let name = task.type_name();
        types.push(json!(name));
        let params_def = format!("params.{name}");
        let mut schema = embed(&mut defs, name, task.params_schema(), task.description());
        allow_interpolation(&mut schema);
        defs.insert(params_def.clone(), schema);
        branches.push(json!({
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": {"properties": {"with": {"$ref": format!("#/$defs/{params_def}")}}}
        }));
    }
    let mut sections = Map::new();
    for section in registry.sections() {
        let name = section.name();
        let prefix = format!("section.{name}");
        let mut schema = embed(&mut defs, &prefix, section.schema(), section.description());
        allow_interpolation(&mut schema);
        defs.insert(prefix.clone(), schema);
        // Written with no value, a section takes its defaults.
        sections.insert(
            name.into(),
            json!({"oneOf": [{"$ref": format!("#/$defs/{prefix}")}, {"type": "null"}]}),
        );
    }
    let mut executors = vec![
        json!({"const": "local", "description": "In the engine's process (one child process per shard)."}),
    ];
    for executor in registry
        .executor_names()
        .filter_map(|n| registry.executor(n))
    {
        let name = executor.name();
        let prefix = format!("executor.{name}");
        let schema = embed(
            &mut defs,
            &prefix,
            executor.schema(),
            executor.description(),
        );
        defs.insert(prefix.clone(), schema);
        executors.push(json!({
            "type": "object", "additionalProperties": false, "required": [name],
            "properties": {name: {"oneOf": [{"$ref": format!("#/$defs/{prefix}")}, {"type": "null"}]}}
        }));
    }
    defs.insert(
        "executor".into(),
        json!({
            "description": "Where the task's attempts run.",
            "oneOf": executors
        }),
    );
    defs.insert("task".into(), json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["type"],
        "properties": {
            "type": {"enum": types, "description": "A registered task type (`tweetflow tasks` lists them)."},
            "description": {"type": "string"},
            "depends_on": {"type": "array", "items": {"type": "string"}, "uniqueItems": true, "description": "Tasks that must succeed first."},
            "with": {"type": "object", "description": "The task type's params; strings may use ${params.x}, ${env.X:-default} and ${secret.X}."},
            "retries": {"$ref": "#/$defs/retries"},
            "timeout": {"$ref": "#/$defs/duration"},
            "cache": {"$ref": "#/$defs/cache"},
            "executor": {"$ref": "#/$defs/executor"},
            "shards": {"type": "integer", "minimum": 1, "maximum": 1024, "description": "Split the task into N shards run side by side (types that can be split)."},
            "expect": {
                "type": "object",
                "description": "Data-quality expectations on the rows the task commits to its Delta table (types that write tables).",
                "propertyNames": {"pattern": "^[A-Za-z0-9_-]{1,64}$"},
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["sql"],
                    "properties": {
                        "sql": {"type": "string", "minLength": 1, "description": "A SQL condition over the written columns; a row passes when it is true (false or NULL fail it)."},
                        "on_fail": {"enum": ["warn", "drop", "quarantine", "fail"], "default": "warn", "description": "warn keeps and counts the row, drop leaves it out, quarantine moves it to the task's quarantine table, fail fails the task with nothing committed."}
                    }
                }
            }
        },
        "allOf": branches
    }));
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://tweetflow.dev/schema/pipeline.json",
        "title": "tweetflow pipeline",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "tasks"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
            "description": {"type": "string"},
            "schedule": {"$ref": "#/$defs/schedule"},
            "trigger": {"$ref": "#/$defs/trigger"},
            "params": {
                "type": "object",
                "description": "Named values, typed by their default; override with --param NAME=VALUE.",
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "additionalProperties": {"type": ["string", "number", "boolean"]}
            },
            "defaults": {
                "type": "object",
                "additionalProperties": false,
                "description": "Applied to every task unless the task overrides them.",
                "properties": {
                    "retries": {"$ref": "#/$defs/retries"},
                    "timeout": {"$ref": "#/$defs/duration"},
                    "cache": {"$ref": "#/$defs/cache"},
                    "executor": {"$ref": "#/$defs/executor"}
                }
            },
            "retention": {
                "type": "object",
                "additionalProperties": false,
                "description": "Which runs of the pipeline the run store keeps (`tweetflow runs prune`, and the scheduler after each run). A run is removed only when every limit given lets it go; running runs, runs holding the newest cached output of a task and, with keep_failed, failed runs are always kept. Default from TWEETFLOW_RETENTION_KEEP_LAST / _MAX_AGE / _KEEP_FAILED.",
                "anyOf": [{"required": ["keep_last"]}, {"required": ["max_age"]}],
                "properties": {
                    "keep_last": {"type": "integer", "minimum": 1, "maximum": 100_000_000, "description": "Keep the newest N runs."},
                    "max_age": {"$ref": "#/$defs/duration", "description": "Keep runs whose last activity is younger than this, e.g. `30d`."},
                    "keep_failed": {"type": "boolean", "default": false, "description": "Never remove failed, cancelled or crashed runs."}
                }
            },
            "tasks": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": "^[A-Za-z0-9_-]+$"},
                "additionalProperties": {"$ref": "#/$defs/task"}
            }
        },
        "$defs": defs
    });
    // Sections a pipeline may inherit from `defaults:` are allowed there too.
    let inherited: Map<String, Json> = registry
        .sections()
        .filter(|s| s.in_defaults())
        .filter_map(|s| Some((s.name().to_string(), sections.get(s.name())?.clone())))
        .collect();
    if let Some(props) = schema
        .pointer_mut("/properties/defaults/properties")
        .and_then(Json::as_object_mut)
    {
        props.extend(inherited);
    }
    if let Some(props) = schema.get_mut("properties").and_then(Json::as_object_mut) {
        props.extend(sections);
    }
    schema
}

/// A plugin's own schema made part of the pipeline schema: its `$defs` move into `defs` as
/// `PREFIX.NAME` (and its references follow), `$schema` goes and `description` is set.
fn embed(defs: &mut Map<String, Json>, prefix: &str, mut schema: Json, description: &str) -> Json {
    if let Some(Json::Object(inner)) = schema.as_object_mut().and_then(|o| o.remove("$defs")) {
        for (k, mut v) in inner {
            rewrite_refs(&mut v, prefix);
            defs.insert(format!("{prefix}.{k}"), v);
        }
    }
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
        o.insert("description".into(), json!(description));
    }
    rewrite_refs(&mut schema, prefix);
    schema
}

fn rewrite_refs(value: &mut Json, prefix: &str) {
    match value {
        Json::Object(map) => {
            if let Some(Json::String(r)) = map.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#/$defs/{prefix}.{name}");
            }
            map.values_mut().for_each(|v| rewrite_refs(v, prefix));
        }
        Json::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, prefix)),
        _ => {}
    }
}

/// One param of a task type, for listings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ParamDoc {
    /// The param's name.
    pub name: String,
    /// Its type, e.g. `string`, `list of string`.
    pub kind: String,
    /// Whether it must be given.
    pub required: bool,
    /// Its default, when it has one.
    pub default: Option<Json>,
    /// What it means.
    pub description: String,
}

/// The params of a task type, in declaration order.
pub fn param_docs(schema: &Json) -> Vec<ParamDoc> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Json::as_array)
        .map(|r| r.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Json::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| ParamDoc {
            name: name.clone(),
            kind: describe(prop, schema),
            required: required.contains(&name.as_str()),
            default: prop.get("default").cloned(),
            description: prop
                .get("description")
                .and_then(Json::as_str)
                .unwrap_or("")
                .replace('\n', " "),
        })
        .collect()
}

fn describe(prop: &Json, root: &Json) -> String {
    if let Some(r) = prop.get("$ref").and_then(Json::as_str)
        && let Some(target) = r.strip_prefix('#').and_then(|p| root.pointer(p))
    {
        return describe(target, root);
    }
    if let Some(options) = prop.get("enum").and_then(Json::as_array) {
        return options
            .iter()
            .filter_map(Json::as_str)
            .collect::<Vec<_>>()
            .join("|");
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = prop.get(key).and_then(Json::as_array) {
            let parts: Vec<String> = branches
                .iter()
                .map(|b| describe(b, root))
                .filter(|d| d != "null")
                .collect();
            return parts.join("|");
        }
    }
    if let Some(c) = prop.get("const") {
        return c.as_str().map_or_else(|| c.to_string(), str::to_string);
    }
    let types: Vec<&str> = match prop.get("type") {
        Some(Json::String(t)) => vec![t.as_str()],
        Some(Json::Array(ts)) => ts
            .iter()
            .filter_map(Json::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => vec![],
    };
    let base = types.first().copied().unwrap_or("any");
    match base {
        "array" => format!(
            "list of {}",
            prop.get("items")
                .map_or("any".to_string(), |i| describe(i, root))
        ),
        "object" => match prop.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map of {}", describe(v, root)),
            _ => "mapping".into(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_describes_the_retention_section() {
        let schema = pipeline_schema(&Registry::new());
        let retention = &schema["properties"]["retention"];
        let keys: Vec<&str> = retention["properties"]
            .as_object()
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["keep_last", "max_age", "keep_failed"]);
        assert_eq!(retention["additionalProperties"], false);
        assert_eq!(
            retention["properties"]["max_age"]["$ref"],
            "#/$defs/duration"
        );
    }
}
