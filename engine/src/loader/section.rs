//! Plugin-owned top-level sections (see [`crate::section`]).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::Loader;
use crate::diagnostic::Diagnostic;
use crate::schema_check;
use crate::secrets::{self, pointer_token};
use crate::section::DynSection;
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
        if !self.interpolate_checked(&mut node, params, Some(&at)) {
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
        // A section that is a map (its schema types every other key) takes any key.
        let open = schema
            .get("additionalProperties")
            .is_some_and(Json::is_object);
        if !open {
            self.unknown_keys(entries, &known, name);
            // Unknown keys are reported above, in the words of the pipeline's own sections.
            if let Some(o) = schema.as_object_mut() {
                o.remove("additionalProperties");
            }
        }
        schema_check::check(&node, &schema, &schema, name, &mut self.problems);
        if self.problems.len() != before {
            return None;
        }
        let raw = node.to_json();
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
