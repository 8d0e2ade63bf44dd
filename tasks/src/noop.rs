//! `noop`: a task that does nothing and succeeds (a join point, a placeholder, or the unit of
//! the engine benchmark).

use schemars::JsonSchema;
use serde::Deserialize;
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};

/// The `noop` task type.
pub struct NoopTask;

/// Params of `noop`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoopParams {
    /// A value passed through as the output `value` (default: none).
    #[serde(default)]
    pub value: Option<serde_json::Value>,
}

impl Task for NoopTask {
    type Params = NoopParams;
    const TYPE: &'static str = "noop";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Does nothing and succeeds; passes `value` through as its output";

    async fn run(&self, _ctx: &TaskContext, params: NoopParams) -> Result<TaskOutput, TaskError> {
        let output = TaskOutput::new();
        Ok(match params.value {
            Some(v) => output.with("value", v),
            None => output,
        })
    }
}
