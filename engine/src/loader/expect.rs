//! `expect:` of a task: the data-quality expectations on the rows it commits (see
//! [`crate::expect`]). The shape is checked here; the SQL by the registry's checker, against
//! the columns the task type writes when it knows them.

use serde_json::Value as Json;

use super::Loader;
use crate::diagnostic::did_you_mean;
use crate::expect::{Expectation, Expectations, OnFail, is_expectation_name};
use crate::yaml::Node;

impl Loader<'_, '_> {
    /// Reads a task's `expect:` mapping; problems are reported and the entry is left out.
    pub(super) fn expectations(
        &mut self,
        node: &Node,
        id: &str,
        task_type: Option<&str>,
        with: &Json,
    ) -> Expectations {
        let mut out = Expectations::new();
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!(
                    "task `{id}`: `expect` must be a mapping of names to expectations, found {}",
                    node.kind()
                ),
            )
            .hint = Some(
                "for example `expect: { has_text: { sql: \"length(cleaned_text) > 0\", on_fail: drop } }`"
                    .into(),
            );
            return out;
        };
        let task = task_type.and_then(|t| self.options.registry.get(t).cloned());
        if let Some(task) = &task
            && !task.writes_table()
        {
            let writers: Vec<&str> = self
                .options
                .registry
                .iter()
                .filter(|t| t.writes_table())
                .map(|t| t.type_name())
                .collect();
            self.error(
                node.span,
                format!(
                    "task `{id}`: task type `{}` writes no Delta table, so `expect` cannot apply to it",
                    task.type_name()
                ),
            )
            .hint = Some(format!("types that write tables: {}", writers.join(", ")));
            return out;
        }
        let columns = task.as_ref().and_then(|t| t.output_columns(with));
        for (key, body) in entries {
            let Some(name) = key.scalar_text() else {
                continue;
            };
            if !is_expectation_name(&name) {
                self.error(
                    key.span,
                    format!("task `{id}`: invalid expectation name `{name}`"),
                )
                .hint = Some("use 1 to 64 letters, digits, `_` and `-`".into());
                continue;
            }
            if let Some(e) = self.expectation(body, id, &name, columns.as_deref()) {
                out.insert(name, e);
            }
        }
        out
    }

    fn expectation(
        &mut self,
        body: &Node,
        id: &str,
        name: &str,
        columns: Option<&[(String, String)]>,
    ) -> Option<Expectation> {
        let what = format!("task `{id}`: expectation `{name}`");
        let Some(entries) = body.as_map() else {
            self.error(
                body.span,
                format!("{what} must be a mapping, found {}", body.kind()),
            )
            .hint = Some("for example `{ sql: \"length(mention) > 1\", on_fail: fail }`".into());
            return None;
        };
        self.unknown_keys(entries, &["sql", "on_fail"], &what);
        let get = |key: &str| entries.iter().find(|(k, _)| k.as_str() == Some(key));
        let on_fail = match get("on_fail") {
            None => OnFail::default(),
            Some((_, v)) => match v
                .as_str()
                .and_then(|s| OnFail::NAMES.iter().position(|n| *n == s))
            {
                Some(0) => OnFail::Warn,
                Some(1) => OnFail::Drop,
                Some(2) => OnFail::Quarantine,
                Some(_) => OnFail::Fail,
                None => {
                    let text = v.scalar_text().unwrap_or_else(|| v.kind().to_string());
                    let hint = did_you_mean(&text, OnFail::NAMES.iter().copied())
                        .map(|c| format!("did you mean `{c}`?"))
                        .unwrap_or_else(|| format!("use one of: {}", OnFail::NAMES.join(", ")));
                    self.error(v.span, format!("{what}: invalid `on_fail` `{text}`"))
                        .hint = Some(hint);
                    return None;
                }
            },
        };
        let Some((_, sql_node)) = get("sql") else {
            self.error(body.span, format!("{what}: missing `sql`")).hint = Some(
                "a SQL condition each row must meet, e.g. `sql: \"length(mention) > 1\"`".into(),
            );
            return None;
        };
        let Some(sql) = sql_node.as_str().map(str::to_string) else {
            self.error(
                sql_node.span,
                format!("{what}: `sql` must be a string, found {}", sql_node.kind()),
            );
            return None;
        };
        if sql.trim().is_empty() {
            self.error(sql_node.span, format!("{what}: `sql` is empty"));
            return None;
        }
        if let Some(checker) = self.options.registry.expect_checker().cloned()
            && let Err(problem) = checker(&sql, columns)
        {
            let at = problem
                .offset
                .map(|o| format!(" (at character {o} of the expression)"))
                .unwrap_or_default();
            self.error(sql_node.span, format!("{what}: {}{at}", problem.message))
                .hint = problem.hint;
            return None;
        }
        Some(Expectation { sql, on_fail })
    }
}
