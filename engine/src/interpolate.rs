//! `${...}` interpolation in pipeline strings.
//!
//! Supported forms: `${params.NAME}`, `${env.NAME}`, `${env.NAME:-default}` and
//! `${secret.NAME}` (an environment variable that is always a secret, see [`crate::secrets`]),
//! and `${trigger.TABLE.FIELD}` (known only when a triggered run starts: left empty here and
//! recorded as a [`TriggerSlot`] piece list, see [`crate::trigger`]);
//! `$${` writes a literal `${`. Anything else inside `${}` is an error. A string that is
//! exactly one `${params.NAME}` takes the param's type (so `batch_size: ${params.batch}` stays
//! an integer).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::diagnostic::did_you_mean;
use crate::secrets::{self, Piece};
use crate::trigger::{TriggerField, TriggerPiece};

/// Where interpolated values come from.
pub struct Scope<'a> {
    /// Resolved pipeline params; `None` where params may not be referenced (in `params:` itself).
    pub params: Option<&'a BTreeMap<String, Json>>,
    /// Looks up an environment variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The pieces of the params that hold secrets.
    pub secret_params: Option<&'a BTreeMap<String, Vec<Piece>>>,
    /// The pipeline's trigger tables; `None` where `${trigger.…}` may not be used.
    pub triggers: Option<&'a [String]>,
}

/// An interpolated string with what it is made of.
#[derive(Debug, PartialEq)]
pub struct Tracked {
    /// The result.
    pub value: Interpolated,
    /// Its pieces when it holds a secret.
    pub secret: Option<Vec<Piece>>,
    /// Its pieces when it uses `${trigger.…}`.
    pub trigger: Option<Vec<TriggerPiece>>,
}

/// The result of interpolating one string.
#[derive(Debug, PartialEq)]
pub enum Interpolated {
    /// The string did not change.
    Unchanged,
    /// A new string.
    Text(String),
    /// The whole string was one param reference: its typed value.
    Typed(Json),
}

/// An interpolation problem: message and optional hint.
#[derive(Debug, PartialEq)]
pub struct InterpolationError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

const FORMS_HINT: &str = "use ${params.NAME}, ${env.NAME}, ${env.NAME:-default}, ${secret.NAME} or ${trigger.TABLE.FIELD}; write $${ for a literal ${";

/// Interpolates `text`.
#[cfg(test)]
pub(crate) fn interpolate(
    text: &str,
    scope: &Scope<'_>,
) -> Result<Interpolated, InterpolationError> {
    interpolate_tracked(text, scope).map(|t| t.value)
}

/// Interpolates `text`; also returns the pieces of the result when it holds a secret or a
/// trigger value.
pub fn interpolate_tracked(text: &str, scope: &Scope<'_>) -> Result<Tracked, InterpolationError> {
    if !text.contains("${") {
        return Ok(Tracked {
            value: Interpolated::Unchanged,
            secret: None,
            trigger: None,
        });
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut only_reference: Option<Json> = None;
    let mut pieces = 0;
    let mut parts = Parts::default();
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            parts.text(&rest[..pos - 1]);
            parts.text("${");
            rest = &rest[pos + 2..];
            pieces += 2;
            continue;
        }
        out.push_str(&rest[..pos]);
        parts.text(&rest[..pos]);
        if pos > 0 {
            pieces += 1;
        }
        let after = &rest[pos + 2..];
        let end = after.find('}').ok_or_else(|| InterpolationError {
            message: format!("unterminated `${{` in `{text}`"),
            hint: Some("close the reference with `}`".into()),
        })?;
        let expr = after[..end].trim();
        if let Some(reference) = expr.strip_prefix("trigger.") {
            let (trigger, field) = trigger_ref(reference, scope)?;
            parts.trigger(trigger, field);
            pieces += 1;
            only_reference = None;
            rest = &after[end + 1..];
            continue;
        }
        let value = resolve(expr, scope)?;
        pieces += 1;
        let value_text = match &value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&value_text);
        match secret_pieces(expr, scope) {
            Some(secret) => parts.secret(secret),
            None => parts.text(&value_text),
        }
        only_reference = expr.starts_with("params.").then_some(value);
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        pieces += 1;
    }
    out.push_str(rest);
    parts.text(rest);
    if parts.has_secret && parts.has_trigger {
        return Err(InterpolationError {
            message: format!("`{text}` mixes a secret and a trigger value"),
            hint: Some("put the secret and the trigger value in separate strings".into()),
        });
    }
    let secret = parts.has_secret.then_some(parts.pieces);
    let trigger = parts.has_trigger.then_some(parts.trigger_pieces);
    let value = match only_reference {
        Some(value) if pieces == 1 => Interpolated::Typed(value),
        _ => Interpolated::Text(out),
    };
    Ok(Tracked {
        value,
        secret,
        trigger,
    })
}

/// Checks `${trigger.REFERENCE}`: a trigger table of the pipeline and a known field.
fn trigger_ref(
    reference: &str,
    scope: &Scope<'_>,
) -> Result<(String, TriggerField), InterpolationError> {
    let expr = format!("trigger.{reference}");
    let Some(names) = scope.triggers else {
        return Err(InterpolationError {
            message: format!("`${{{expr}}}` cannot be used here"),
            hint: Some(
                "trigger values go in a task's `with` or a plugin section, not in `params`".into(),
            ),
        });
    };
    if names.is_empty() {
        return Err(InterpolationError {
            message: format!("`${{{expr}}}`: the pipeline has no `trigger:` section"),
            hint: Some("add `trigger: { tables: { NAME: LOCATION } }` to name the tables".into()),
        });
    }
    let fields: Vec<&str> = TriggerField::ALL.iter().map(|(n, _)| *n).collect();
    let Some((name, field)) = reference.split_once('.') else {
        return Err(InterpolationError {
            message: format!("`${{{expr}}}` names no field"),
            hint: Some(format!(
                "write ${{trigger.TABLE.FIELD}} with FIELD one of: {}",
                fields.join(", ")
            )),
        });
    };
    if !names.iter().any(|n| n == name) {
        let hint = match did_you_mean(name, names.iter().map(String::as_str)) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("the trigger tables are: {}", names.join(", ")),
        };
        return Err(InterpolationError {
            message: format!("`${{{expr}}}`: `{name}` is not a trigger table"),
            hint: Some(hint),
        });
    }
    let Some(f) = TriggerField::parse(field) else {
        let hint = match did_you_mean(field, fields.iter().copied()) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("use one of: {}", fields.join(", ")),
        };
        return Err(InterpolationError {
            message: format!("`${{{expr}}}`: unknown field `{field}`"),
            hint: Some(hint),
        });
    };
    Ok((name.to_string(), f))
}

/// The pieces of a string being interpolated.
#[derive(Default)]
struct Parts {
    pieces: Vec<Piece>,
    has_secret: bool,
    trigger_pieces: Vec<TriggerPiece>,
    has_trigger: bool,
}

impl Parts {
    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(TriggerPiece::Text { text: last }) = self.trigger_pieces.last_mut() {
            last.push_str(text);
        } else {
            self.trigger_pieces
                .push(TriggerPiece::Text { text: text.into() });
        }
        if let Some(Piece::Text { text: last }) = self.pieces.last_mut() {
            last.push_str(text);
        } else {
            self.pieces.push(Piece::Text { text: text.into() });
        }
    }

    fn trigger(&mut self, trigger: String, field: TriggerField) {
        self.has_trigger = true;
        self.trigger_pieces
            .push(TriggerPiece::Ref { trigger, field });
    }

    fn secret(&mut self, pieces: Vec<Piece>) {
        self.has_secret = true;
        for piece in pieces {
            match piece {
                Piece::Text { text } => self.text(&text),
                env => self.pieces.push(env),
            }
        }
    }
}

/// The pieces of reference `expr` when its value is a secret.
fn secret_pieces(expr: &str, scope: &Scope<'_>) -> Option<Vec<Piece>> {
    if let Some(name) = expr.strip_prefix("params.") {
        return scope.secret_params?.get(name).cloned();
    }
    let (sensitive, spec) = if let Some(spec) = expr.strip_prefix("secret.") {
        (true, spec)
    } else {
        let spec = expr.strip_prefix("env.")?;
        let name = spec.split_once(":-").map_or(spec, |(n, _)| n);
        (secrets::is_sensitive_name(name), spec)
    };
    if !sensitive {
        return None;
    }
    let (name, default) = match spec.split_once(":-") {
        Some((name, default)) => (name, Some(default.to_string())),
        None => (spec, None),
    };
    if let Some(v) = (scope.env)(name) {
        secrets::register(&v);
    }
    Some(vec![Piece::Env {
        env: name.to_string(),
        default,
    }])
}

fn resolve(expr: &str, scope: &Scope<'_>) -> Result<Json, InterpolationError> {
    if let Some(name) = expr.strip_prefix("params.") {
        let Some(params) = scope.params else {
            return Err(InterpolationError {
                message: format!("`${{{expr}}}`: params cannot refer to other params"),
                hint: Some("use a literal default or ${env.NAME:-default}".into()),
            });
        };
        return params.get(name).cloned().ok_or_else(|| {
            let hint = match did_you_mean(name, params.keys().map(String::as_str)) {
                Some(close) => format!("did you mean `${{params.{close}}}`?"),
                None if params.is_empty() => {
                    "the pipeline declares no params; add it under `params:`".into()
                }
                None => format!(
                    "declared params: {}",
                    params
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            InterpolationError {
                message: format!("unknown param `{name}`"),
                hint: Some(hint),
            }
        });
    }
    let secret = expr.strip_prefix("secret.");
    if let Some(spec) = secret.or_else(|| expr.strip_prefix("env.")) {
        let (name, default) = match spec.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (spec, None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(InterpolationError {
                message: format!("`${{{expr}}}`: `{name}` is not an environment variable name"),
                hint: Some(FORMS_HINT.into()),
            });
        }
        return match ((scope.env)(name), default) {
            (Some(v), _) => Ok(Json::String(v)),
            (None, Some(d)) => Ok(Json::String(d.to_string())),
            (None, None) if secret.is_some() => Err(InterpolationError {
                message: format!("the secret `{name}` is not set in the environment"),
                hint: Some(format!(
                    "`${{secret.{name}}}` reads the environment variable `{name}`; set it"
                )),
            }),
            (None, None) => Err(InterpolationError {
                message: format!("environment variable `{name}` is not set"),
                hint: Some(format!("set it, or give a default: ${{env.{name}:-value}}")),
            }),
        };
    }
    Err(InterpolationError {
        message: format!("unknown interpolation `${{{expr}}}`"),
        hint: Some(FORMS_HINT.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_test(text: &str) -> Result<Interpolated, InterpolationError> {
        let mut params = BTreeMap::new();
        params.insert("landing".to_string(), Json::from("data/landing"));
        params.insert("batch".to_string(), Json::from(32));
        let env = |k: &str| (k == "HOME").then(|| "/home/u".to_string());
        let triggers = ["gold".to_string()];
        interpolate(
            text,
            &Scope {
                params: Some(&params),
                env: &env,
                secret_params: None,
                triggers: Some(&triggers),
            },
        )
    }

    #[test]
    fn table() {
        let cases: &[(&str, Result<Interpolated, &str>)] = &[
            ("plain", Ok(Interpolated::Unchanged)),
            (
                "${params.landing}/x",
                Ok(Interpolated::Text("data/landing/x".into())),
            ),
            ("${params.batch}", Ok(Interpolated::Typed(Json::from(32)))),
            ("n=${params.batch}", Ok(Interpolated::Text("n=32".into()))),
            ("${env.HOME}", Ok(Interpolated::Text("/home/u".into()))),
            ("${env.NOPE:-d}", Ok(Interpolated::Text("d".into()))),
            ("$${literal}", Ok(Interpolated::Text("${literal}".into()))),
            ("${env.NOPE}", Err("environment variable `NOPE` is not set")),
            ("${params.landin}", Err("unknown param `landin`")),
            ("${foo}", Err("unknown interpolation `${foo}`")),
            ("${params.x", Err("unterminated `${` in `${params.x`")),
            (
                "${trigger.gold.from_version}",
                Ok(Interpolated::Text(String::new())),
            ),
            (
                "v${trigger.gold.to_version}-${params.batch}",
                Ok(Interpolated::Text("v-32".into())),
            ),
            (
                "${trigger.glod.from_version}",
                Err("`${trigger.glod.from_version}`: `glod` is not a trigger table"),
            ),
            (
                "${trigger.gold.from}",
                Err("`${trigger.gold.from}`: unknown field `from`"),
            ),
            ("${trigger.gold}", Err("`${trigger.gold}` names no field")),
        ];
        for (input, want) in cases {
            let got = scope_test(input);
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(&g, w, "{input}"),
                (Err(w), Err(g)) => assert_eq!(&g.message, w, "{input}"),
                (w, g) => panic!("{input}: wanted {w:?}, got {g:?}"),
            }
        }
    }
}
