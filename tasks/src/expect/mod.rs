//! Data-quality expectations (`expect:`) for every task that writes a Delta table: the attempt
//! runs with its expectations in scope ([`tweetflow_delta::expect`] evaluates them on the one
//! write path, before each commit), and its output gets `expectations: { NAME: { failed,
//! action } }`. The load-time check of the SQL ([`checker`]) is registered with the engine.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType as ArrowDataType, Field, Schema as ArrowSchema};
use deltalake::datafusion::sql::sqlparser::dialect::GenericDialect;
use deltalake::datafusion::sql::sqlparser::parser::Parser;
use deltalake::datafusion::sql::sqlparser::tokenizer::Token;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::{DataType, StructType};
use tweetflow_delta::expect::{self as delta_expect, OnFail as DeltaOnFail, Rule, Scope};
use tweetflow_engine::{ExpectChecker, Expectations, OnFail, SqlProblem};
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};

/// Key of the expectation tallies in a task's output.
pub const OUTPUT_KEY: &str = "expectations";

/// The delta rules of a task's expectations.
pub fn rules(expectations: &Expectations) -> Vec<Rule> {
    expectations
        .iter()
        .map(|(name, e)| Rule {
            name: name.clone(),
            sql: e.sql.clone(),
            on_fail: match e.on_fail {
                OnFail::Warn => DeltaOnFail::Warn,
                OnFail::Drop => DeltaOnFail::Drop,
                OnFail::Quarantine => DeltaOnFail::Quarantine,
                OnFail::Fail => DeltaOnFail::Fail,
            },
        })
        .collect()
}

/// A task type that writes one Delta table through the shared write path.
pub trait WritesTable: Task {
    /// The table the task writes and its quarantine table.
    fn tables(params: &Self::Params) -> (String, String);
}

/// A table-writing task whose attempts apply the task's `expect:` (see the module docs).
pub struct Expecting<T>(pub T);

impl<T: WritesTable> Task for Expecting<T> {
    type Params = T::Params;
    const TYPE: &'static str = T::TYPE;
    const VERSION: &'static str = T::VERSION;
    const DESCRIPTION: &'static str = T::DESCRIPTION;
    const SHARDABLE: bool = T::SHARDABLE;
    const WRITES_TABLE: bool = true;

    async fn run(&self, ctx: &TaskContext, params: T::Params) -> Result<TaskOutput, TaskError> {
        let (table, quarantine) = T::tables(&params);
        run_expecting(ctx, &table, &quarantine, self.0.run(ctx, params)).await
    }

    async fn output_still_valid(&self, params: &T::Params, output: &TaskOutput) -> bool {
        self.0.output_still_valid(params, output).await
    }

    fn watch_paths(&self, params: &T::Params) -> Vec<std::path::PathBuf> {
        self.0.watch_paths(params)
    }

    fn cache_inputs(&self, params: &T::Params) -> Vec<std::path::PathBuf> {
        self.0.cache_inputs(params)
    }

    fn locations(&self, params: &T::Params) -> Vec<(&'static str, String)> {
        self.0.locations(params)
    }

    fn output_columns(&self, params: &T::Params) -> Option<Vec<(String, String)>> {
        self.0.output_columns(params)
    }
}

/// Runs `attempt` with the task's expectations in scope and adds their tallies to its output.
/// First commits the quarantine rows an interrupted earlier attempt left recorded in `table`.
pub async fn run_expecting<F>(
    ctx: &TaskContext,
    table: &str,
    quarantine: &str,
    attempt: F,
) -> Result<TaskOutput, TaskError>
where
    F: Future<Output = Result<TaskOutput, TaskError>>,
{
    let expectations = ctx.expectations();
    if expectations.is_empty() {
        return attempt.await;
    }
    let scope = Scope::with_control(
        ctx.task_id.clone(),
        rules(expectations),
        crate::medallion::write_control(ctx),
    );
    // Boxed: the task's future is large, and this adds two layers around it.
    let attempt = Box::pin(attempt);
    let output = Box::pin(delta_expect::scoped(scope.clone(), async {
        delta_expect::recover(table, quarantine)
            .await
            .map_err(crate::table_error::TableTaskError::from)?;
        attempt.await
    }))
    .await?;
    if !scope.used() {
        tracing::info!(task = %ctx.task_id, "no rows were written, so no expectation was evaluated");
    }
    let tallies = serde_json::to_value(scope.tallies())
        .map_err(|e| TaskError::fatal(format!("serialising expectation counts: {e}")))?;
    for (name, tally) in scope.tallies() {
        if tally.failed > 0 {
            tracing::warn!(task = %ctx.task_id, expectation = %name, failed = tally.failed,
                action = ?tally.action, "rows failed an expectation");
        }
    }
    Ok(output.with(OUTPUT_KEY, tallies))
}

/// The `(name, type)` columns of a Delta schema, as [`tweetflow_engine::Task::output_columns`]
/// gives them (types as Delta type names).
pub fn columns_of(schema: &StructType) -> Vec<(String, String)> {
    schema
        .fields()
        .map(|f| {
            let ty = serde_json::to_value(f.data_type())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "struct".into());
            (f.name().clone(), ty)
        })
        .collect()
}

/// The load-time checker of `expect:` SQL: parsed, and planned against the task's columns
/// when they are known.
pub fn checker() -> ExpectChecker {
    Arc::new(|sql, columns| match columns {
        Some(columns) => check_against(sql, columns),
        None => check_syntax(sql),
    })
}

fn check_syntax(sql: &str) -> Result<(), SqlProblem> {
    let dialect = GenericDialect {};
    let parsed = Parser::new(&dialect).try_with_sql(sql).and_then(|mut p| {
        p.parse_expr()?;
        match p.peek_token().token {
            Token::EOF => Ok(()),
            other => Err(
                deltalake::datafusion::sql::sqlparser::parser::ParserError::ParserError(format!(
                    "unexpected `{other}` after the condition"
                )),
            ),
        }
    });
    parsed.map_err(|e| problem(sql, &e.to_string(), None))
}

fn check_against(sql: &str, columns: &[(String, String)]) -> Result<(), SqlProblem> {
    check_syntax(sql)?;
    let mut fields = Vec::new();
    for (name, ty) in columns {
        let Ok(dt) = serde_json::from_value::<DataType>(serde_json::Value::String(ty.clone()))
        else {
            return Ok(()); // a type this check cannot model: checked at run time
        };
        let Ok(arrow): Result<ArrowDataType, _> = (&dt).try_into_arrow() else {
            return Ok(());
        };
        fields.push(Field::new(name, arrow, true));
    }
    let described = columns
        .iter()
        .map(|(n, t)| format!("{n} ({t})"))
        .collect::<Vec<_>>()
        .join(", ");
    delta_expect::check_sql(sql, Arc::new(ArrowSchema::new(fields))).map_err(|e| {
        problem(
            sql,
            &e.message,
            Some(format!("the columns the task writes: {described}")),
        )
    })
}

/// A problem with its position in `sql`: DataFusion's `Line: L, Column: C`, or where the
/// unknown column is named.
fn problem(sql: &str, message: &str, hint: Option<String>) -> SqlProblem {
    let offset = position_of(message, "Column: ").or_else(|| {
        let name = message
            .split("No field named ")
            .nth(1)?
            .split(['.', ' '])
            .next()?
            .trim_matches(['"', '`', '\'']);
        sql.to_ascii_lowercase()
            .find(&name.to_ascii_lowercase())
            .map(|i| sql[..i].chars().count() + 1)
    });
    // One line; the columns go in the hint.
    let message = message.split("; columns: ").next().unwrap_or(message);
    SqlProblem {
        offset,
        message: message.split_whitespace().collect::<Vec<_>>().join(" "),
        hint,
    }
}

fn position_of(message: &str, marker: &str) -> Option<usize> {
    let rest = message.split(marker).nth(1)?;
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<(String, String)> {
        vec![
            ("mention".into(), "string".into()),
            ("timestamp".into(), "timestamp".into()),
            ("total".into(), "long".into()),
        ]
    }

    #[test]
    fn known_columns_pass_and_unknown_ones_are_named_with_their_position() {
        let check = checker();
        assert_eq!(
            check("length(mention) > 1 AND total >= 0", Some(&cols())),
            Ok(())
        );
        assert_eq!(
            check("timestamp >= TIMESTAMP '2009-01-01'", Some(&cols())),
            Ok(())
        );
        let p = check("length(mentions) > 1", Some(&cols())).unwrap_err();
        assert!(p.message.contains("mentions"), "{p:?}");
        assert_eq!(p.offset, Some(8), "{p:?}");
        assert!(p.hint.unwrap().contains("mention (string)"));
    }

    #[test]
    fn syntax_errors_and_non_conditions_are_refused() {
        let check = checker();
        let p = check("length(mention) >", None).unwrap_err();
        assert!(p.message.contains("sql parser error"), "{p:?}");
        let p = check("length(mention) > 1 garbage", None).unwrap_err();
        assert!(p.message.contains("garbage"), "{p:?}");
        let p = check("length(mention)", Some(&cols())).unwrap_err();
        assert!(p.message.contains("true or false"), "{p:?}");
        assert_eq!(check("anything_goes > 1", None), Ok(()));
    }
}
