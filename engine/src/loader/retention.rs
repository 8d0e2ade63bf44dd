//! The `retention:` section.

use super::{KEYS, Loader};
use crate::spec::RetentionPolicy;
use crate::yaml::{Node, Value};

/// The largest `keep_last` accepted.
const MAX_KEEP_LAST: i64 = 100_000_000;

impl Loader<'_, '_> {
    pub(super) fn retention(&mut self, node: &Node) -> Option<RetentionPolicy> {
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!("`retention` must be a mapping, found {}", node.kind()),
            )
            .hint = Some("for example `retention: { keep_last: 100, max_age: 30d }`".into());
            return None;
        };
        self.unknown_keys(entries, &KEYS.retention, "retention");
        let mut policy = RetentionPolicy::default();
        let mut ok = true;
        for (key, value) in entries {
            match key.as_str() {
                Some("keep_last") => match value.value {
                    Value::Int(n) if (1..=MAX_KEEP_LAST).contains(&n) => {
                        policy.keep_last = Some(n as u32);
                    }
                    _ => {
                        self.error(
                            value.span,
                            format!(
                                "`keep_last` must be an integer from 1 to {MAX_KEEP_LAST}, found {}",
                                value.scalar_text().unwrap_or_else(|| value.kind().into())
                            ),
                        );
                        ok = false;
                    }
                },
                Some("max_age") => match self.duration(value, "max_age") {
                    Some(d) if !d.is_zero() => policy.max_age = Some(d),
                    Some(_) => {
                        self.error(value.span, "`max_age` must be longer than zero")
                            .hint = Some("for example `max_age: 30d` or `max_age: 12h`".into());
                        ok = false;
                    }
                    None => ok = false,
                },
                Some("keep_failed") => match value.value {
                    Value::Bool(b) => policy.keep_failed = b,
                    _ => {
                        self.error(
                            value.span,
                            format!(
                                "`keep_failed` must be true or false, found {}",
                                value.kind()
                            ),
                        );
                        ok = false;
                    }
                },
                _ => {}
            }
        }
        if ok && policy.keep_last.is_none() && policy.max_age.is_none() {
            self.error(
                node.span,
                "`retention` needs `keep_last`, `max_age` or both",
            )
            .hint = Some("for example `retention: { keep_last: 100, max_age: 30d }`".into());
            ok = false;
        }
        ok.then_some(policy)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::loader::{LoadOptions, load_str};
    use crate::registry::Registry;
    use crate::spec::RetentionPolicy;
    use crate::task::{Task, TaskContext, TaskError, TaskOutput};

    struct Nothing;

    impl Task for Nothing {
        type Params = serde_json::Value;
        const TYPE: &'static str = "nothing";
        const VERSION: &'static str = "1";
        const DESCRIPTION: &'static str = "does nothing";
        async fn run(&self, _: &TaskContext, _: Self::Params) -> Result<TaskOutput, TaskError> {
            Ok(TaskOutput::new())
        }
    }

    fn load(retention: &str) -> Result<Option<RetentionPolicy>, Vec<String>> {
        let mut registry = Registry::new();
        registry.register(Nothing);
        let env = |_: &str| None;
        let options = LoadOptions {
            registry: &registry,
            param_overrides: &[],
            env: &env,
        };
        let text = format!("name: p\n{retention}\ntasks: {{ a: {{ type: nothing }} }}\n");
        load_str("p.yaml", &text, &options)
            .map(|p| p.retention)
            .map_err(|d| {
                d.items
                    .iter()
                    .map(|i| format!("{}:{} {}", i.span.line, i.span.column, i.message))
                    .collect()
            })
    }

    #[test]
    fn valid_sections_are_read() {
        let cases: &[(&str, Option<RetentionPolicy>)] = &[
            ("", None),
            (
                "retention: { keep_last: 5 }",
                Some(RetentionPolicy {
                    keep_last: Some(5),
                    ..Default::default()
                }),
            ),
            (
                "retention: { max_age: 30d, keep_failed: true }",
                Some(RetentionPolicy {
                    max_age: Some(Duration::from_secs(30 * 86_400)),
                    keep_failed: true,
                    ..Default::default()
                }),
            ),
            (
                "retention:\n  keep_last: 100\n  max_age: 12h\n  keep_failed: false",
                Some(RetentionPolicy {
                    keep_last: Some(100),
                    max_age: Some(Duration::from_secs(12 * 3600)),
                    keep_failed: false,
                }),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(load(text).as_ref(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn problems_are_reported_with_their_position() {
        let cases: &[(&str, &[&str])] = &[
            (
                "retention: { keep_last: 0 }",
                &["2:25 `keep_last` must be an integer from 1 to 100000000, found 0"],
            ),
            (
                "retention: { max_age: 30x }",
                &[
                    "2:23 invalid duration for `max_age`: `30x` is not a duration: `x` is not a unit",
                ],
            ),
            (
                "retention: { max_age: 0s }",
                &["2:23 `max_age` must be longer than zero"],
            ),
            (
                "retention: { keep_failed: yes please, keep_last: 3 }",
                &["2:27 `keep_failed` must be true or false, found a string"],
            ),
            (
                "retention: { keep_faild: true }",
                &[
                    "2:12 `retention` needs `keep_last`, `max_age` or both",
                    "2:14 unknown key `keep_faild` in retention",
                ],
            ),
            (
                "retention: 5",
                &["2:12 `retention` must be a mapping, found an integer"],
            ),
        ];
        for (text, expected) in cases {
            let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            assert_eq!(load(text), Err(expected), "{text}");
        }
    }
}
