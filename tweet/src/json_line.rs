//! Parsing one landed JSON line into bronze values, or the reason it is quarantined.

use std::borrow::Cow;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::params::{META_COLUMNS, REQUIRED, SENTIMENTS};

/// Whether an unknown field would clash with a bronze column (Delta names are case-insensitive).
pub(super) fn collides(key: &str) -> bool {
    REQUIRED
        .iter()
        .chain(META_COLUMNS.iter())
        .any(|c| c.eq_ignore_ascii_case(key))
}

/// One landed JSON object, borrowed from its line: `(key, raw value)` in order.
pub(super) struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

#[derive(Deserialize)]
pub(super) struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(4);
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    out.push((k, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Fields<'a> {
    pub(super) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

pub(super) fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "string",
        Some(b'n') => "null",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't') | Some(b'f') => "boolean",
        _ => "number",
    }
}

pub(super) fn raw_string(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Key>(raw.get()).ok().map(|k| k.0)
}

/// How one line was judged.
pub(super) enum Parsed<'a> {
    Row {
        values: [Cow<'a, str>; 4],
        extras: Vec<(Cow<'a, str>, &'a RawValue)>,
    },
    Bad(String),
    Skip,
}

pub(super) fn parse_line(line: &[u8]) -> Parsed<'_> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Parsed::Bad("not valid UTF-8".into());
    };
    if text.trim().is_empty() {
        return Parsed::Skip;
    }
    let fields: Fields = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Parsed::Bad(format!("not a JSON object: {e}"));
        }
        Err(e) => return Parsed::Bad(format!("not valid JSON: {e}")),
    };
    let mut values: [Cow<str>; 4] = Default::default();
    for (i, name) in REQUIRED.iter().enumerate() {
        match fields.get(name) {
            None => return Parsed::Bad(format!("missing required field `{name}`")),
            Some(raw) => match json_kind(raw) {
                "string" => match raw_string(raw) {
                    Some(s) => values[i] = s,
                    None => return Parsed::Bad(format!("field `{name}`: bad string")),
                },
                "null" => return Parsed::Bad(format!("missing required field `{name}` (null)")),
                kind => {
                    return Parsed::Bad(format!(
                        "field `{name}` has the wrong type: expected string, found {kind}"
                    ));
                }
            },
        }
    }
    if !SENTIMENTS.contains(&values[3].as_ref()) {
        return Parsed::Bad(format!(
            "field `sentiment` has the invalid value `{}` (expected negative, neutral or positive)",
            values[3]
        ));
    }
    let mut extras: Vec<(Cow<str>, &RawValue)> = Vec::new();
    for (k, v) in fields.0 {
        if REQUIRED.contains(&k.as_ref()) {
            continue;
        }
        if let Some(existing) = extras.iter_mut().find(|(ek, _)| *ek == k) {
            existing.1 = v;
        } else {
            extras.push((k, v));
        }
    }
    Parsed::Row { values, extras }
}
