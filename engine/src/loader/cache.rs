//! A task's `cache:` (a boolean or a mapping).

use super::{KEYS, Loader};
use crate::spec::CachePolicy;
use crate::yaml::{Node, Value};

impl Loader<'_, '_> {
    pub(super) fn cache(&mut self, node: &Node, policy: &mut CachePolicy) {
        match &node.value {
            Value::Bool(b) => {
                policy.enabled = *b;
            }
            Value::Map(entries) => {
                policy.enabled = true;
                self.unknown_keys(entries, &KEYS.cache, "cache");
                for (key, value) in entries {
                    match key.as_str() {
                        Some("enabled") => match value.value {
                            Value::Bool(b) => policy.enabled = b,
                            _ => {
                                self.error(
                                    value.span,
                                    format!(
                                        "`enabled` must be true or false, found {}",
                                        value.kind()
                                    ),
                                );
                            }
                        },
                        Some("ttl") => policy.ttl = self.duration(value, "ttl"),
                        _ => {}
                    }
                }
            }
            _ => {
                self.error(
                    node.span,
                    format!(
                        "`cache` must be true, false or a mapping, found {}",
                        node.kind()
                    ),
                )
                .hint = Some("for example `cache: true` or `cache: { ttl: 1h }`".into());
            }
        }
    }
}
