//! Data-quality expectations of a table-writing task (`expect:` in a task):
//!
//! ```yaml
//! clean:
//!   type: clean
//!   expect:
//!     has_text: { sql: "length(cleaned_text) > 0", on_fail: drop }   # warn | drop | quarantine | fail
//! ```
//!
//! The engine reads and checks the section (names, `sql`, `on_fail`) and hands each task its
//! expectations ([`crate::TaskContext::expectations`]); the plugin that writes tables evaluates
//! them on the rows about to be committed. The SQL itself is checked at load time by the
//! [`ExpectChecker`] a plugin registers ([`crate::Registry::set_expect_checker`]), against the
//! columns the task type says it writes ([`crate::Task::output_columns`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What happens to a row that fails an expectation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// Keep the row and count it (the default).
    #[default]
    Warn,
    /// Leave the row out of the commit and count it.
    Drop,
    /// Move the row to the task's quarantine table, with reason `expectation <name>`.
    Quarantine,
    /// Fail the task: nothing is committed.
    Fail,
}

impl OnFail {
    /// The name used in pipeline files and outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFail::Warn => "warn",
            OnFail::Drop => "drop",
            OnFail::Quarantine => "quarantine",
            OnFail::Fail => "fail",
        }
    }

    /// Every action, as written in pipeline files.
    pub const NAMES: [&'static str; 4] = ["warn", "drop", "quarantine", "fail"];
}

/// One expectation: a SQL condition each committed row must meet, and what to do otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// A SQL boolean expression over the columns the task writes, e.g. `length(mention) > 1`.
    /// A row passes when it is true; false or NULL fails it.
    pub sql: String,
    /// What happens to a failing row (default `warn`).
    #[serde(default)]
    pub on_fail: OnFail,
}

/// A task's expectations by name, in name order.
pub type Expectations = BTreeMap<String, Expectation>;

/// A problem with an expectation's SQL found at load time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlProblem {
    /// 1-based character offset in the SQL text where the problem is, when known.
    pub offset: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it (e.g. the columns available).
    pub hint: Option<String>,
}

/// Checks one expectation's SQL; `columns` are the `(name, type)` pairs the task writes when
/// the task type knows them (types as Delta type names: `string`, `long`, `timestamp`, ...).
pub type ExpectChecker =
    Arc<dyn Fn(&str, Option<&[(String, String)]>) -> Result<(), SqlProblem> + Send + Sync>;

/// Whether `name` can name an expectation (it appears in metric names and outputs).
pub fn is_expectation_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
