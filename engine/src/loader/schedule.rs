//! The `schedule:` section.

use super::{KEYS, Loader};
use crate::diagnostic::closest;
use crate::spec::{Catchup, OnInterrupted, Overlap, ScheduleSpec};
use crate::yaml::{Node, Value};

impl Loader<'_, '_> {
    pub(super) fn schedule(&mut self, node: &Node) -> Option<ScheduleSpec> {
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!("`schedule` must be a mapping, found {}", node.kind()),
            )
            .hint =
                Some("for example `schedule: { cron: \"*/15 * * * *\", timezone: UTC }`".into());
            return None;
        };
        self.unknown_keys(entries, &KEYS.schedule, "schedule");
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v)
        };
        let mut ok = true;
        let cron = match get("cron") {
            Some(c) => match c.as_str() {
                Some(text) => match crate::cron::CronExpr::parse(text) {
                    Ok(_) => text.trim().to_string(),
                    Err(e) => {
                        self.error(c.span, format!("invalid cron expression `{text}`: {e}")).hint = Some(
                            "5 fields `minute hour day month weekday` (6 with seconds first), or @hourly, @daily, @weekly, @monthly"
                                .into(),
                        );
                        ok = false;
                        String::new()
                    }
                },
                None => {
                    self.error(
                        c.span,
                        format!("`cron` must be a string, found {}", c.kind()),
                    )
                    .hint = Some("quote it: `cron: \"*/15 * * * *\"`".into());
                    ok = false;
                    String::new()
                }
            },
            None => {
                self.error(node.span, "`schedule` needs a `cron` expression");
                ok = false;
                String::new()
            }
        };
        let timezone = match get("timezone") {
            Some(z) => match z.as_str() {
                Some(name) if crate::cron::parse_zone(name).is_ok() => name.to_string(),
                other => {
                    let name = other
                        .map(str::to_string)
                        .unwrap_or_else(|| z.scalar_text().unwrap_or_default());
                    let near = closest(&name, crate::cron::zone_names(), 3);
                    let hint = if near.is_empty() {
                        "use an IANA name such as `UTC`, `America/Los_Angeles` or `Europe/Berlin`"
                            .to_string()
                    } else {
                        format!(
                            "did you mean {}?",
                            near.iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    self.error(z.span, format!("unknown time zone `{name}`"))
                        .hint = Some(hint);
                    ok = false;
                    String::new()
                }
            },
            None => "UTC".to_string(),
        };
        let overlap = match get("overlap") {
            Some(o) => self.overlap(o).unwrap_or_else(|| {
                ok = false;
                Overlap::Skip
            }),
            None => Overlap::Skip,
        };
        let catchup = match get("catchup") {
            Some(c) => match c.as_str() {
                Some("none") => Catchup::None,
                Some("last") => Catchup::Last,
                Some("all") => Catchup::All,
                _ => {
                    self.enum_error(c, "catchup", &["none", "last", "all"]);
                    ok = false;
                    Catchup::Last
                }
            },
            None => Catchup::Last,
        };
        let max_catchup = match get("max_catchup") {
            Some(m) => match m.value {
                Value::Int(n) if (1..=10_000).contains(&n) => n as u32,
                _ => {
                    self.error(
                        m.span,
                        format!(
                            "`max_catchup` must be an integer from 1 to 10000, found {}",
                            m.scalar_text().unwrap_or_else(|| m.kind().into())
                        ),
                    );
                    ok = false;
                    10
                }
            },
            None => 10,
        };
        let start_deadline = match get("start_deadline") {
            Some(d) => {
                let parsed = self.duration(d, "start_deadline");
                ok &= parsed.is_some();
                parsed
            }
            None => None,
        };
        let mut resumes_known = true;
        let on_interrupted = match get("on_interrupted") {
            Some(o) => match o.as_str() {
                Some("resume") => OnInterrupted::Resume,
                Some("fail") => OnInterrupted::Fail,
                _ => {
                    self.enum_error(o, "on_interrupted", &["resume", "fail"]);
                    ok = false;
                    resumes_known = false;
                    OnInterrupted::Resume
                }
            },
            None => OnInterrupted::Resume,
        };
        let max_resumes = match get("max_resumes") {
            Some(m) => match m.value {
                Value::Int(0) if on_interrupted == OnInterrupted::Resume && resumes_known => {
                    self.error(
                        m.span,
                        "`max_resumes: 0` with `on_interrupted: resume` would never resume a run",
                    )
                    .hint = Some(
                        "give at least 1 (default 3), or say `on_interrupted: fail` to mark interrupted runs failed"
                            .into(),
                    );
                    ok = false;
                    3
                }
                Value::Int(n) if (0..=1_000).contains(&n) => n as u32,
                _ => {
                    self.error(
                        m.span,
                        format!(
                            "`max_resumes` must be an integer from 0 to 1000, found {}",
                            m.scalar_text().unwrap_or_else(|| m.kind().into())
                        ),
                    )
                    .hint = Some("for example `max_resumes: 3` (the default)".into());
                    ok = false;
                    3
                }
            },
            None => 3,
        };
        ok.then_some(ScheduleSpec {
            cron,
            timezone,
            overlap,
            catchup,
            max_catchup,
            start_deadline,
            on_interrupted,
            max_resumes,
        })
    }
}
