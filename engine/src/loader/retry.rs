//! A task's `retries:` (or its shorthand, an integer).

use super::{KEYS, Loader};
use crate::diagnostic::did_you_mean;
use crate::spec::{Backoff, RetryPolicy};
use crate::yaml::{Node, Value};

impl Loader<'_, '_> {
    pub(super) fn retries(&mut self, node: &Node, policy: &mut RetryPolicy) {
        if let Value::Int(n) = node.value {
            // Shorthand: `retries: 3` means three attempts in all.
            return self.max_attempts(node, n, policy);
        }
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!("`retries` must be a mapping, found {}", node.kind()),
            )
            .hint = Some("for example `retries: { max_attempts: 3, backoff: exponential }`".into());
            return;
        };
        self.unknown_keys(entries, &KEYS.retry, "retries");
        for (key, value) in entries {
            match key.as_str() {
                Some("max_attempts") => match value.value {
                    Value::Int(n) => self.max_attempts(value, n, policy),
                    _ => {
                        self.error(
                            value.span,
                            format!("`max_attempts` must be an integer, found {}", value.kind()),
                        );
                    }
                },
                Some("backoff") => match value.as_str() {
                    Some("exponential") => policy.backoff = Backoff::Exponential,
                    Some("linear") => policy.backoff = Backoff::Linear,
                    Some("fixed") => policy.backoff = Backoff::Fixed,
                    other => {
                        let hint = other
                            .and_then(|o| did_you_mean(o, ["exponential", "linear", "fixed"]))
                            .map(|c| format!("did you mean `{c}`?"))
                            .unwrap_or_else(|| "use exponential, linear or fixed".into());
                        self.error(
                            value.span,
                            format!(
                                "invalid `backoff` `{}`",
                                value.scalar_text().unwrap_or_default()
                            ),
                        )
                        .hint = Some(hint);
                    }
                },
                Some("initial_delay") => {
                    if let Some(d) = self.duration(value, "initial_delay") {
                        policy.initial_delay = d;
                    }
                }
                Some("max_delay") => {
                    if let Some(d) = self.duration(value, "max_delay") {
                        policy.max_delay = d;
                    }
                }
                Some("jitter") => match value.value {
                    Value::Bool(b) => policy.jitter = b,
                    _ => {
                        self.error(
                            value.span,
                            format!("`jitter` must be true or false, found {}", value.kind()),
                        );
                    }
                },
                _ => {}
            }
        }
    }

    pub(super) fn max_attempts(&mut self, node: &Node, n: i64, policy: &mut RetryPolicy) {
        if (1..=1000).contains(&n) {
            policy.max_attempts = n as u32;
        } else {
            self.error(
                node.span,
                format!("`max_attempts` must be between 1 and 1000, found {n}"),
            )
            .hint = Some("1 means no retry".into());
        }
    }
}
