//! Checks a YAML [`Node`] against the JSON Schema of a task's params, reporting every problem
//! with its position.
//!
//! Supports the subset `schemars` emits for serde structs: `type` (one or a list),
//! `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`, `$ref` to
//! `$defs`, `anyOf` / `oneOf` / `allOf`, `minimum` / `maximum`.

use serde_json::Value as Json;

use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::yaml::{Node, Value};

/// Checks `node` against `schema` (whose `$defs` live in `root`); `path` names the node in
/// messages (e.g. `with.argv`).
pub fn check(node: &Node, schema: &Json, root: &Json, path: &str, out: &mut Vec<Diagnostic>) {
    let schema = resolve_ref(schema, root);
    if schema.as_bool() == Some(true) {
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Json::as_array) {
        for s in all {
            check(node, s, root, path, out);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Json::as_array) {
            check_alternatives(node, branches, root, path, out);
        }
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Json::String(t) => vec![t.as_str()],
            Json::Array(ts) => ts.iter().filter_map(Json::as_str).collect(),
            _ => vec![],
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| matches_type(node, t)) {
            out.push(Diagnostic::new(
                node.span,
                format!(
                    "{path}: expected {}, found {}",
                    describe_types(&allowed),
                    node.kind()
                ),
            ));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Json::as_array) {
        let value = node.to_json();
        if !options.contains(&value) {
            let names: Vec<String> = options.iter().map(render).collect();
            let hint = node.as_str().and_then(|s| {
                did_you_mean(s, options.iter().filter_map(Json::as_str))
                    .map(|c| format!("did you mean `{c}`?"))
            });
            out.push(
                Diagnostic::new(
                    node.span,
                    format!(
                        "{path}: `{}` is not one of {}",
                        render(&value),
                        names.join(", ")
                    ),
                )
                .with_hint_opt(hint),
            );
        }
    }
    if let Some(expected) = schema.get("const")
        && &node.to_json() != expected
    {
        out.push(Diagnostic::new(
            node.span,
            format!("{path}: expected `{}`", render(expected)),
        ));
    }
    check_bounds(node, schema, path, out);
    match &node.value {
        Value::Map(entries) => check_object(node, entries, schema, root, path, out),
        Value::Seq(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, item_schema, root, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    node: &Node,
    entries: &[(Node, Node)],
    schema: &Json,
    root: &Json,
    path: &str,
    out: &mut Vec<Diagnostic>,
) {
    let properties = schema.get("properties").and_then(Json::as_object);
    let additional = schema.get("additionalProperties");
    for (key, value) in entries {
        let name = key.scalar_text().unwrap_or_default();
        let child_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        if let Some(prop) = properties.and_then(|p| p.get(&name)) {
            check(value, prop, root, &child_path, out);
        } else {
            match additional {
                Some(Json::Bool(false)) => {
                    let known: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let hint = match did_you_mean(&name, known.iter().copied()) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None if known.is_empty() => "this task takes no params".to_string(),
                        None => format!("known params: {}", known.join(", ")),
                    };
                    out.push(
                        Diagnostic::new(key.span, format!("{path}: unknown param `{name}`"))
                            .with_hint(hint),
                    );
                }
                Some(extra) if extra.is_object() => check(value, extra, root, &child_path, out),
                _ => {}
            }
        }
    }
    if let Some(required) = schema.get("required").and_then(Json::as_array) {
        for name in required.iter().filter_map(Json::as_str) {
            if !entries
                .iter()
                .any(|(k, _)| k.scalar_text().as_deref() == Some(name))
            {
                let description = properties
                    .and_then(|p| p.get(name))
                    .map(|p| resolve_ref(p, root))
                    .and_then(|p| p.get("description"))
                    .and_then(Json::as_str)
                    .map(|d| format!("`{name}`: {}", first_line(d)));
                out.push(
                    Diagnostic::new(
                        node.span,
                        format!("{path}: missing required param `{name}`"),
                    )
                    .with_hint_opt(description),
                );
            }
        }
    }
}

fn check_alternatives(
    node: &Node,
    branches: &[Json],
    root: &Json,
    path: &str,
    out: &mut Vec<Diagnostic>,
) {
    let mut best: Option<Vec<Diagnostic>> = None;
    for branch in branches {
        let mut errors = Vec::new();
        check(node, branch, root, path, &mut errors);
        if errors.is_empty() {
            return;
        }
        // Prefer the branch whose type fits: its errors are about the contents.
        let type_fits = !errors
            .iter()
            .any(|e| e.span == node.span && e.message.contains(": expected "));
        if type_fits || best.is_none() {
            let replace = match &best {
                None => true,
                Some(_) => type_fits,
            };
            if replace {
                best = Some(errors);
            }
        }
    }
    if let Some(errors) = best {
        out.extend(errors);
    }
}

fn check_bounds(node: &Node, schema: &Json, path: &str, out: &mut Vec<Diagnostic>) {
    let value = match node.value {
        Value::Int(i) => i as f64,
        Value::Float(f) => f,
        _ => return,
    };
    if let Some(min) = schema.get("minimum").and_then(Json::as_f64)
        && value < min
    {
        out.push(Diagnostic::new(
            node.span,
            format!("{path}: must be at least {min}, found {value}"),
        ));
    }
    if let Some(max) = schema.get("maximum").and_then(Json::as_f64)
        && value > max
    {
        out.push(Diagnostic::new(
            node.span,
            format!("{path}: must be at most {max}, found {value}"),
        ));
    }
}

fn resolve_ref<'a>(schema: &'a Json, root: &'a Json) -> &'a Json {
    let mut current = schema;
    for _ in 0..32 {
        let Some(reference) = current.get("$ref").and_then(Json::as_str) else {
            break;
        };
        let Some(pointer) = reference.strip_prefix('#') else {
            break;
        };
        match root.pointer(pointer) {
            Some(target) => current = target,
            None => break,
        }
    }
    current
}

fn matches_type(node: &Node, ty: &str) -> bool {
    matches!(
        (&node.value, ty),
        (Value::Null, "null")
            | (Value::Bool(_), "boolean")
            | (Value::Int(_), "integer" | "number")
            | (Value::Float(_), "number")
            | (Value::Str(_), "string")
            | (Value::Seq(_), "array")
            | (Value::Map(_), "object")
    )
}

fn describe_types(types: &[&str]) -> String {
    let names: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "boolean" => "a boolean",
            "integer" => "an integer",
            "number" => "a number",
            "string" => "a string",
            "array" => "a list",
            "object" => "a mapping",
            _ => "a value",
        })
        .collect();
    if names.is_empty() {
        "null".into()
    } else {
        names.join(" or ")
    }
}

fn render(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;
    use serde_json::json;

    fn errors(yaml: &str, schema: Json) -> Vec<String> {
        let node = parse(yaml).unwrap().0.unwrap();
        let mut out = Vec::new();
        check(&node, &schema, &schema, "with", &mut out);
        out.into_iter()
            .map(|d| format!("{}:{} {}", d.span.line, d.span.column, d.message))
            .collect()
    }

    #[test]
    fn reports_every_problem() {
        let schema = json!({
            "type": "object",
            "properties": {
                "argv": {"type": "array", "items": {"type": "string"}},
                "mode": {"$ref": "#/$defs/Mode"},
                "n": {"type": ["integer", "null"], "minimum": 0}
            },
            "required": ["argv"],
            "additionalProperties": false,
            "$defs": {"Mode": {"type": "string", "enum": ["fast", "slow"]}}
        });
        assert_eq!(
            errors("mode: fats\nn: -1\nextra: 1\n", schema.clone()),
            vec![
                "1:7 with.mode: `fats` is not one of fast, slow",
                "2:4 with.n: must be at least 0, found -1",
                "3:1 with: unknown param `extra`",
                "1:1 with: missing required param `argv`",
            ]
        );
        assert_eq!(
            errors("argv: [a, [b]]\n", schema.clone()),
            vec!["1:11 with.argv[1]: expected a string, found a list"]
        );
        assert!(errors("argv: [a]\nn: null\n", schema).is_empty());
    }
}
