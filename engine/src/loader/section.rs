//! Plugin-owned top-level sections (see [`crate::section`]).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::Loader;
use crate::diagnostic::Diagnostic;
use crate::schema_check;
use crate::secrets::{self, pointer_token};
use crate::section::{DynSection, pointer_matches};
use crate::yaml::{Node, Value};

impl Loader<'_, '_> {
    /// A plugin's section: interpolated, checked against its schema, with defaults filled in.
    pub(super) fn section(
        &mut self,
        section: &dyn DynSection,
        node: &Node,
        params: &BTreeMap<String, Json>,
    ) -> Option<Json> {
        let name = section.name();
        let mut node = node.clone();
        let at = format!("/{}", pointer_token(name));
        let first_slot = self.slots.len();
        env_as_secret(&mut node, "", section.secret_fields());
        if !self.interpolate_checked(&mut node, params, Some(&at)) {
            return None;
        }
        let mut schema = section.schema();
        // A section whose schema is a list (`notify: [...]`) takes a list.
        let is_list = schema.get("type").and_then(Json::as_str) == Some("array");
        if node.value == Value::Null {
            node.value = if is_list {
                Value::Seq(Vec::new())
            } else {
                Value::Map(Vec::new())
            };
        }
        let is_seq = matches!(node.value, Value::Seq(_));
        let entries: &[(Node, Node)] = match (is_list, node.as_map(), is_seq) {
            (false, Some(entries), _) => entries,
            (true, _, true) => &[],
            _ => {
                let expected = if is_list { "a list" } else { "a mapping" };
                self.error(
                    node.span,
                    format!("`{name}` must be {expected}, found {}", node.kind()),
                )
                .hint = Some(format!("for example `{}`", section.example()));
                return None;
            }
        };
        let known: Vec<String> = schema
            .get("properties")
            .and_then(Json::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let before = self.problems.len();
        // A section that is a map (its schema types every other key) takes any key.
        let open = schema
            .get("additionalProperties")
            .is_some_and(Json::is_object);
        if !open && !is_list {
            self.unknown_keys(entries, &known, name);
            // Unknown keys are reported above, in the words of the pipeline's own sections.
            if let Some(o) = schema.as_object_mut() {
                o.remove("additionalProperties");
            }
        }
        schema_check::check(&node, &schema, &schema, name, &mut self.problems);
        // The schema check speaks of a task's params; a section has keys.
        for p in &mut self.problems[before..] {
            p.message = p.message.replace(": unknown param `", ": unknown key `");
            if let Some(hint) = &mut p.hint {
                *hint = hint
                    .replace("known params: ", "known keys: ")
                    .replace("this task takes no params", "this part takes no keys");
            }
        }
        let raw = node.to_json();
        for p in section.problems(&raw) {
            let span = deepest(&node, &p.at).span;
            let message = format!("{name}{}: {}", dotted(&p.at), p.message);
            self.problems
                .push(Diagnostic::new(span, message).with_hint_opt(p.hint));
        }
        if self.problems.len() != before {
            return None;
        }
        match section.normalize(&raw) {
            Ok(value) => {
                // Secrets are found again in the plan by their place: the section must keep
                // them where the file put them (as they are, or masked by the section itself).
                for slot in &self.slots[first_slot..] {
                    let inner = &slot.at[at.len()..];
                    let kept = value.pointer(inner).is_some_and(|v| {
                        Some(v) == raw.pointer(inner) || v.as_str() == Some(secrets::MASK)
                    });
                    if !kept {
                        let message = format!("`{name}`: a secret cannot be used at `{inner}`");
                        self.problems.push(Diagnostic::new(node.span, message));
                        return None;
                    }
                }
                Some(value)
            }
            Err(e) => {
                self.error(node.span, format!("`{name}`: {e}"));
                None
            }
        }
    }
}

/// Turns each `${env.NAME}` at a credential place of a section into `${secret.NAME}`, so the
/// value is handled as a secret whatever NAME looks like (see `Section::SECRET_FIELDS`).
fn env_as_secret(node: &mut Node, at: &str, fields: &[&str]) {
    if fields.is_empty() {
        return;
    }
    match &mut node.value {
        Value::Str(s) if s.contains("${env.") && fields.iter().any(|f| pointer_matches(f, at)) => {
            let mut out = String::with_capacity(s.len() + 8);
            let mut rest = s.as_str();
            while let Some(pos) = rest.find("${env.") {
                let escaped = pos > 0 && rest.as_bytes()[pos - 1] == b'$';
                out.push_str(&rest[..pos]);
                out.push_str(if escaped { "${env." } else { "${secret." });
                rest = &rest[pos + "${env.".len()..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Seq(items) => {
            for (i, n) in items.iter_mut().enumerate() {
                env_as_secret(n, &format!("{at}/{i}"), fields);
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let key = pointer_token(&k.scalar_text().unwrap_or_default());
                env_as_secret(v, &format!("{at}/{key}"), fields);
            }
        }
        _ => {}
    }
}

/// The deepest node on the way to JSON pointer `at` below `node`.
fn deepest<'n>(node: &'n Node, at: &str) -> &'n Node {
    let mut current = node;
    for token in at.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        let next = match &current.value {
            Value::Seq(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text().as_deref() == Some(token.as_str()))
                .map(|(_, v)| v),
            _ => None,
        };
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    current
}

/// JSON pointer `/0/email/to` as `[0].email.to`, as schema problems name places.
fn dotted(at: &str) -> String {
    let mut out = String::new();
    for token in at.split('/').skip(1) {
        if token.parse::<usize>().is_ok() {
            out.push_str(&format!("[{token}]"));
        } else {
            out.push('.');
            out.push_str(&token.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}
