//! Top-level pipeline sections that plugins own.
//!
//! A plugin (a run observer, a task type) may read its own top-level section of the pipeline
//! file, e.g. a tracking server's address. It declares the section with a typed struct
//! implementing [`Section`] (serde, with `deny_unknown_fields`, documented fields and
//! defaults) and registers it in the [`crate::Registry`]. The loader then checks the section
//! against the struct's JSON Schema, reporting problems with their position as it does for a
//! task's `with:`, interpolates `${params.X}` / `${env.X}` in it, and keeps it as JSON in
//! [`crate::Pipeline::sections`] and [`crate::PipelineInfo::sections`]. An empty section
//! (`name:` with no value) is read as an empty mapping.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::SettingsError;

/// A top-level section of the pipeline file, owned by a plugin.
pub trait Section: DeserializeOwned + Serialize + JsonSchema + Send + Sync + 'static {
    /// The section's key at the top of the pipeline file.
    const NAME: &'static str;
    /// One line on what the section configures.
    const DESCRIPTION: &'static str;
    /// An example of the section, shown when it is not a mapping.
    const EXAMPLE: &'static str;
    /// Places in the section whose values are credentials whatever their source (JSON
    /// pointers inside the section, `*` standing for any list index or key, e.g.
    /// `/*/slack/webhook_url`): an `${env.NAME}` there is a secret even when NAME does not
    /// look sensitive, so it is kept out of every file like `${secret.NAME}`.
    const SECRET_FIELDS: &'static [&'static str] = &[];
    /// Whether the section may also be given under `defaults:`, where a pipeline without
    /// its own takes it from.
    const IN_DEFAULTS: bool = false;

    /// Problems the schema cannot express (a URL without host, an address that is not
    /// one), each at a place inside the section. `value` is the section as written (after
    /// interpolation, before defaults): the loader asks even when the schema check found
    /// problems, so every problem is reported at once. The default finds none.
    fn problems(_value: &Value) -> Vec<SectionProblem> {
        Vec::new()
    }
}

/// A problem of a section's value found by [`Section::problems`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionProblem {
    /// JSON pointer inside the section (`/0/email/to/1`); the loader reports the position
    /// of the deepest part of it that the file has.
    pub at: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl SectionProblem {
    /// A problem at `at` (a JSON pointer inside the section).
    pub fn new(at: impl Into<String>, message: impl Into<String>) -> Self {
        SectionProblem {
            at: at.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// The same problem with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Whether JSON pointer `pointer` matches `pattern`, where a `*` token stands for any one
/// token (see [`Section::SECRET_FIELDS`]).
pub fn pointer_matches(pattern: &str, pointer: &str) -> bool {
    let mut p = pattern.split('/');
    let mut q = pointer.split('/');
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == "*" || a == b => {}
            _ => return false,
        }
    }
}

/// A section with its type erased, as the registry stores it.
pub trait DynSection: Send + Sync {
    /// See [`Section::NAME`].
    fn name(&self) -> &'static str;
    /// See [`Section::DESCRIPTION`].
    fn description(&self) -> &'static str;
    /// See [`Section::EXAMPLE`].
    fn example(&self) -> &'static str;
    /// JSON Schema of the section.
    fn schema(&self) -> Value;
    /// Reads `value` as the section's type and writes it back with every default filled in.
    fn normalize(&self, value: &Value) -> Result<Value, SettingsError>;
    /// See [`Section::SECRET_FIELDS`].
    fn secret_fields(&self) -> &'static [&'static str];
    /// See [`Section::IN_DEFAULTS`].
    fn in_defaults(&self) -> bool;
    /// See [`Section::problems`].
    fn problems(&self, value: &Value) -> Vec<SectionProblem>;
}

/// Wraps a [`Section`] type as a [`DynSection`].
pub(crate) struct Erased<S>(std::marker::PhantomData<fn() -> S>);

impl<S> Erased<S> {
    pub(crate) fn new() -> Self {
        Erased(std::marker::PhantomData)
    }
}

impl<S: Section> DynSection for Erased<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn description(&self) -> &'static str {
        S::DESCRIPTION
    }

    fn example(&self) -> &'static str {
        S::EXAMPLE
    }

    fn schema(&self) -> Value {
        let settings = schemars::generate::SchemaSettings::draft2020_12();
        settings
            .into_generator()
            .into_root_schema_for::<S>()
            .to_value()
    }

    fn normalize(&self, value: &Value) -> Result<Value, SettingsError> {
        let typed: S = serde_json::from_value(value.clone())?;
        Ok(serde_json::to_value(typed)?)
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        S::SECRET_FIELDS
    }

    fn in_defaults(&self) -> bool {
        S::IN_DEFAULTS
    }

    fn problems(&self, value: &Value) -> Vec<SectionProblem> {
        S::problems(value)
    }
}

/// Reads section `S` out of a map of sections; `None` when absent (or unreadable, which the
/// loader rules out).
pub(crate) fn read<S: Section>(sections: &std::collections::BTreeMap<String, Value>) -> Option<S> {
    sections
        .get(S::NAME)
        .filter(|v| !v.is_null())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Serde helpers for the flattened sections of a stored pipeline: a `null` section (written
/// by older versions for an absent one) is absent.
pub(crate) mod flattened {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Value>, D::Error> {
        let mut map = BTreeMap::<String, Value>::deserialize(d)?;
        map.retain(|_, v| !v.is_null());
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use crate::loader::{LoadOptions, load_str};
    use crate::task::{Task, TaskContext, TaskError, TaskOutput};
    use crate::{Registry, Section};

    /// Where results are announced.
    #[derive(Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Announce {
        /// The channel.
        #[serde(default)]
        channel: Option<String>,
        /// How many messages at most.
        #[serde(default = "three")]
        limit: u32,
    }

    fn three() -> u32 {
        3
    }

    impl Section for Announce {
        const NAME: &'static str = "announce";
        const DESCRIPTION: &'static str = "Announces runs.";
        const EXAMPLE: &'static str = "announce: { channel: ops }";
    }

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

    fn load(text: &str) -> Result<crate::Pipeline, Vec<String>> {
        let mut registry = Registry::new();
        registry.register(Nothing).register_section::<Announce>();
        let env = |name: &str| (name == "CHANNEL").then(|| "ops".to_string());
        let options = LoadOptions {
            registry: &registry,
            param_overrides: &[],
            env: &env,
        };
        load_str("p.yaml", text, &options).map_err(|d| {
            d.items
                .iter()
                .map(|i| {
                    let hint = i.hint.as_deref().unwrap_or("");
                    format!("{}:{} {} | {hint}", i.span.line, i.span.column, i.message)
                })
                .collect()
        })
    }

    #[test]
    fn a_section_is_interpolated_and_stored_with_its_defaults() {
        let p = load(
            "name: p\nparams: { n: 5 }\nannounce: { channel: \"${env.CHANNEL}\", limit: \"${params.n}\" }\ntasks: { a: { type: nothing } }\n",
        )
        .unwrap();
        assert_eq!(
            p.sections["announce"],
            json!({"channel": "ops", "limit": 5})
        );
        assert_eq!(
            p.section::<Announce>(),
            Some(Announce {
                channel: Some("ops".into()),
                limit: 5
            })
        );
        let empty = load("name: p\nannounce:\ntasks: { a: { type: nothing } }\n").unwrap();
        assert_eq!(
            empty.section::<Announce>(),
            Some(Announce {
                channel: None,
                limit: 3
            })
        );
        let absent = load("name: p\ntasks: { a: { type: nothing } }\n").unwrap();
        assert_eq!(absent.section::<Announce>(), None);
    }

    #[test]
    fn a_section_is_checked_against_its_schema_with_positions() {
        assert_eq!(
            load(
                "name: p\nannounce: { chanel: ops, limit: many }\ntasks: { a: { type: nothing } }\n"
            )
            .unwrap_err(),
            [
                "2:13 unknown key `chanel` in announce | did you mean `channel`?",
                "2:33 announce.limit: expected an integer, found a string | ",
            ]
        );
        assert_eq!(
            load("name: p\nannounce: [ops]\ntasks: { a: { type: nothing } }\n").unwrap_err(),
            [
                "2:11 `announce` must be a mapping, found a list | for example `announce: { channel: ops }`"
            ]
        );
    }

    #[test]
    fn unknown_top_level_keys_suggest_registered_sections() {
        assert_eq!(
            load("name: p\nanounce: {}\ntasks: { a: { type: nothing } }\n").unwrap_err(),
            ["2:1 unknown key `anounce` in pipeline | did you mean `announce`?"]
        );
    }

    #[test]
    fn the_editor_schema_has_every_registered_section() {
        let mut registry = Registry::new();
        registry.register(Nothing).register_section::<Announce>();
        let schema = crate::schema::pipeline_schema(&registry);
        let section = &schema["$defs"]["section.announce"];
        assert_eq!(section["description"], "Announces runs.");
        assert_eq!(section["properties"]["limit"]["default"], 3);
        assert_eq!(
            schema["properties"]["announce"]["oneOf"][0]["$ref"],
            "#/$defs/section.announce"
        );
    }

    #[test]
    fn a_stored_pipeline_keeps_its_sections_flattened() {
        let p =
            load("name: p\nannounce: { channel: ops }\ntasks: { a: { type: nothing } }\n").unwrap();
        let stored = serde_json::to_value(&p).unwrap();
        assert_eq!(stored["announce"], json!({"channel": "ops", "limit": 3}));
        let mut older = stored.clone();
        older["announce"] = serde_json::Value::Null;
        let back: crate::Pipeline = serde_json::from_value(older).unwrap();
        assert!(back.sections.is_empty());
        let back: crate::Pipeline = serde_json::from_value(stored).unwrap();
        assert_eq!(back.sections, p.sections);
    }
}
