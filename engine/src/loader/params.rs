//! `params:`, `--param` overrides and `${params.X}` / `${env.X}` interpolation.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::Loader;
use crate::diagnostic::{Span, did_you_mean};
use crate::interpolate::{Interpolated, Scope, Tracked, interpolate_tracked};
use crate::secrets::{SecretSlot, pointer_token};
use crate::trigger::{TriggerSlot, TriggerValues, VersionRange};
use crate::yaml::{Node, Value};

impl Loader<'_, '_> {
    /// Params: name -> (typed default, span).
    pub(super) fn params(&mut self, node: &Node) -> BTreeMap<String, (Json, Span)> {
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
                    let scope = Scope {
                        params: None,
                        env,
                        secret_params: None,
                        triggers: None,
                    };
                    let result = interpolate_tracked(s, &scope);
                    if let Ok(Tracked {
                        secret: Some(pieces),
                        ..
                    }) = &result
                    {
                        self.secret_params.insert(name.clone(), pieces.clone());
                    }
                    match result.map(|t| t.value) {
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

    pub(super) fn apply_overrides(
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
                    // A value given on the command line is not read from a secret.
                    self.secret_params.remove(name);
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

    /// Interpolates every string below `node` in place. `at` is the JSON pointer of `node` in
    /// the plan, where the strings that hold secrets are recorded; `None` where secrets may
    /// not be used.
    pub(super) fn interpolate_tree(
        &mut self,
        node: &mut Node,
        params: &BTreeMap<String, Json>,
        at: Option<&str>,
    ) {
        match &mut node.value {
            Value::Str(s) => {
                let env = self.options.env;
                let scope = Scope {
                    params: Some(params),
                    env,
                    secret_params: Some(&self.secret_params),
                    triggers: Some(&self.trigger_names),
                };
                match interpolate_tracked(s, &scope) {
                    Ok(Tracked {
                        value,
                        secret,
                        trigger,
                    }) => {
                        let mut value = value;
                        if let Some(pieces) = trigger {
                            match at {
                                Some(at) => {
                                    let slot = TriggerSlot {
                                        at: at.to_string(),
                                        pieces,
                                    };
                                    // Until a trigger fills it: the empty range, typed as the
                                    // run will get it (a lone version is a number).
                                    let untriggered: TriggerValues = self
                                        .trigger_tables
                                        .iter()
                                        .map(|(n, t)| (n.clone(), VersionRange::untriggered(t)))
                                        .collect();
                                    value = Interpolated::Typed(slot.resolve(&untriggered));
                                    self.trigger_slots.push(slot);
                                }
                                None => {
                                    self.error(node.span, "a trigger value cannot be used here").hint = Some(
                                        "trigger values (`${trigger.TABLE.FIELD}`) go in a task's `with` or a plugin section".into(),
                                    )
                                }
                            }
                        }
                        match value {
                            Interpolated::Unchanged => {}
                            Interpolated::Text(t) => node.value = Value::Str(t),
                            Interpolated::Typed(v) => node.value = json_to_value(&v),
                        }
                        if let Some(pieces) = secret {
                            match at {
                                Some(at) => self.slots.push(SecretSlot {
                                    at: at.to_string(),
                                    pieces,
                                }),
                                None => {
                                    self.error(node.span, "a secret cannot be used here").hint = Some(
                                        "secrets (`${secret.NAME}`, `${env.NAME}` with a sensitive NAME) go in `params`, a task's `with` or a plugin section".into(),
                                    )
                                }
                            }
                        }
                    }
                    Err(e) => self.error(node.span, e.message).hint = e.hint,
                }
            }
            Value::Seq(items) => {
                for (i, n) in items.iter_mut().enumerate() {
                    let at = at.map(|at| format!("{at}/{i}"));
                    self.interpolate_tree(n, params, at.as_deref());
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    let at = at.map(|at| {
                        format!(
                            "{at}/{}",
                            pointer_token(&k.scalar_text().unwrap_or_default())
                        )
                    });
                    self.interpolate_tree(v, params, at.as_deref());
                }
            }
            _ => {}
        }
    }

    /// Interpolates `node` (at JSON pointer `at` of the plan, see
    /// [`Loader::interpolate_tree`]); false if that reported a problem (the value is then not
    /// checked further, to avoid a second error about the same text).
    pub(super) fn interpolate_checked(
        &mut self,
        node: &mut Node,
        params: &BTreeMap<String, Json>,
        at: Option<&str>,
    ) -> bool {
        let before = self.problems.len();
        self.interpolate_tree(node, params, at);
        self.problems.len() == before
    }
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
