//! Plugin-owned top-level sections (see [`crate::section`]).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::Loader;
use crate::schema_check;
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
        if !self.interpolate_checked(&mut node, params) {
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
        match section.normalize(&node.to_json()) {
            Ok(value) => Some(value),
            Err(e) => {
                self.error(node.span, format!("`{name}`: {e}"));
                None
            }
        }
    }
}
