//! One landed JSON line: the four required string fields and the others, or the reason the
//! line is quarantined.

use std::borrow::Cow;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// The four landed fields, all required strings.
pub const REQUIRED: [&str; 4] = ["date", "user", "text", "sentiment"];
/// Bronze columns added by ingest.
pub const META_COLUMNS: [&str; 4] = ["source_file", "line", "processing_time", RESCUED];
/// The rescued-data column (`schema_evolution: rescue`).
pub const RESCUED: &str = "_rescued_data";
/// Accepted sentiment labels.
pub const SENTIMENTS: [&str; 3] = ["negative", "neutral", "positive"];

/// Whether an unknown field would clash with a bronze column (Delta names are case-insensitive).
pub fn collides(key: &str) -> bool {
    REQUIRED
        .iter()
        .chain(META_COLUMNS.iter())
        .any(|c| c.eq_ignore_ascii_case(key))
}

/// One landed JSON object, borrowed from its line: `(key, raw value)` in order.
pub struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

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
    /// The raw value of `key` (the last one when the object repeats it).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// The JSON type of a raw value, as an error message names it.
pub fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "string",
        Some(b'n') => "null",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't') | Some(b'f') => "boolean",
        _ => "number",
    }
}

/// A raw JSON string value, unescaped (`None`: not a valid string).
pub fn raw_string(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Key>(raw.get()).ok().map(|k| k.0)
}

/// How one line was judged.
pub enum Parsed<'a> {
    /// A tweet.
    Row {
        /// The [`REQUIRED`] fields, in that order.
        values: [Cow<'a, str>; 4],
        /// The other fields in order of first appearance (a repeated key keeps its last value).
        extras: Vec<(Cow<'a, str>, &'a RawValue)>,
    },
    /// Not a tweet: why (the quarantine's `reason`).
    Bad(String),
    /// A blank line.
    Skip,
}

/// Judges one line (without its line break). Compiled here, at full optimization, with the
/// JSON parser's code for [`Fields`] (docs/build.md).
pub fn parse_line(line: &[u8]) -> Parsed<'_> {
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
