//! The `trigger:` section: the Delta tables whose new versions start the pipeline.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{KEYS, Loader};
use crate::diagnostic::Span;
use crate::spec::Overlap;
use crate::trigger::{
    DEFAULT_POLL_LOCAL, DEFAULT_POLL_REMOTE, MIN_POLL, TriggerSpec, TriggerStart,
};
use crate::yaml::Node;

const EXAMPLE: &str = "for example `trigger: { tables: { gold: data/gold }, poll: 1s }`";

impl Loader<'_, '_> {
    /// Reads `trigger:` (its strings may use `${params.X}` and `${env.X}`); remembers the
    /// table names for `${trigger.NAME.…}`.
    pub(super) fn trigger(
        &mut self,
        node: &Node,
        params: &BTreeMap<String, (Json, Span)>,
    ) -> Option<TriggerSpec> {
        let plain: BTreeMap<String, Json> = params
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        let mut node = node.clone();
        if !self.interpolate_checked(&mut node, &plain, None) {
            return None;
        }
        let node = &node;
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!("`trigger` must be a mapping, found {}", node.kind()),
            )
            .hint = Some(EXAMPLE.into());
            return None;
        };
        self.unknown_keys(entries, &KEYS.trigger, "trigger");
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v)
        };
        let mut ok = true;
        let mut tables = BTreeMap::new();
        match get("tables") {
            Some(t) => {
                match t.as_map() {
                    Some(items) if !items.is_empty() => {
                        for (key, value) in items {
                            let Some(name) = key.scalar_text() else {
                                continue;
                            };
                            if !is_trigger_name(&name) {
                                self.error(key.span, format!("invalid trigger table name `{name}`"))
                                .hint = Some(
                                "use letters, digits and `_`, starting with a letter or `_` (it is used as ${trigger.NAME.…})".into(),
                            );
                                ok = false;
                                continue;
                            }
                            match value.as_str().map(str::trim) {
                                Some(location) if !location.is_empty() => {
                                    self.trigger_names.push(name.clone());
                                    self.trigger_tables
                                        .insert(name.clone(), location.to_string());
                                    tables.insert(name, location.to_string());
                                }
                                _ => {
                                    self.error(
                                    value.span,
                                    format!(
                                        "trigger table `{name}` must be a location string, found {}",
                                        value.kind()
                                    ),
                                )
                                .hint = Some(
                                    "a local path or an object-store URL of a Delta table, e.g. `s3://lake/gold`".into(),
                                );
                                    ok = false;
                                }
                            }
                        }
                    }
                    _ => {
                        self.error(t.span, "`trigger.tables` must be a non-empty mapping of names to table locations")
                        .hint = Some(EXAMPLE.into());
                        ok = false;
                    }
                }
            }
            None => {
                self.error(node.span, "`trigger` needs `tables`").hint = Some(EXAMPLE.into());
                ok = false;
            }
        }
        let remote = tables
            .values()
            .any(|l| l.contains("://") && !l.starts_with("file://"));
        let poll = match get("poll") {
            Some(p) => match self.duration(p, "poll") {
                Some(d) if d < MIN_POLL => {
                    self.error(
                        p.span,
                        format!(
                            "`poll` must be at least {}ms, found {}ms",
                            MIN_POLL.as_millis(),
                            d.as_millis()
                        ),
                    )
                    .hint = Some(
                        "each poll lists every watched table's log: use `100ms` or more (`1s` is the default)".into(),
                    );
                    ok = false;
                    MIN_POLL
                }
                Some(d) => d,
                None => {
                    ok = false;
                    MIN_POLL
                }
            },
            None if remote => DEFAULT_POLL_REMOTE,
            None => DEFAULT_POLL_LOCAL,
        };
        let min_interval = match get("min_interval") {
            Some(m) => self.duration(m, "min_interval").unwrap_or_else(|| {
                ok = false;
                Default::default()
            }),
            None => Default::default(),
        };
        let start = match get("start") {
            Some(s) => match s.as_str() {
                Some("earliest") => TriggerStart::Earliest,
                Some("latest") => TriggerStart::Latest,
                _ => {
                    self.enum_error(s, "start", &["earliest", "latest"]);
                    ok = false;
                    TriggerStart::Earliest
                }
            },
            None => TriggerStart::Earliest,
        };
        let overlap = match get("overlap") {
            Some(o) => self.overlap(o).unwrap_or_else(|| {
                ok = false;
                Overlap::Skip
            }),
            None => Overlap::Skip,
        };
        ok.then_some(TriggerSpec {
            tables,
            poll,
            min_interval,
            start,
            overlap,
        })
    }
}

fn is_trigger_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
