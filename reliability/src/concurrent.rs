//! Many runs of the main pipeline started at once on the same landing folder and tables,
//! with `overlap: allow`: every run succeeds and the tables hold each row exactly once.

use crate::runner::{Sandbox, shipped_text, without_mlflow};
use crate::tables::diff;
use crate::{Ctx, Row, SuiteError};

/// Starts [`crate::Config::concurrent_runs`] runs at once and compares the tables.
pub fn run(ctx: &Ctx) -> Result<Vec<Row>, SuiteError> {
    let n = ctx.config.concurrent_runs;
    let mut row = Row::new(format!(
        "{n} runs of the main pipeline at once on the same tables (overlap: allow)"
    ));
    let sb = Sandbox::new(&ctx.tf)?;
    let text = without_mlflow(&shipped_text()?);
    // The main pipeline with a schedule section that allows overlapping runs.
    let pipeline = sb.path().join("overlapping.yaml");
    std::fs::write(
        &pipeline,
        format!("{text}\nschedule: {{ cron: \"0 0 1 1 *\", overlap: allow }}\n"),
    )
    .map_err(SuiteError::io("write the pipeline"))?;
    let args = sb.main_run_args(Some(&pipeline));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let children = (0..n)
        .map(|i| sb.spawn(sb.cmd(&args), &format!("run{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut succeeded = 0;
    for (i, child) in children.into_iter().enumerate() {
        let out = sb.finish(child, &format!("run{i}"))?;
        if out.succeeded() {
            succeeded += 1;
        } else {
            row.fail(format!("run {i}: {}", out.describe()));
        }
    }
    let d = diff(&ctx.reference, &ctx.snapshot(&sb.data()));
    row.injected = 1;
    row.lost = d.lost;
    row.duplicated = d.duplicated;
    for detail in d.details {
        row.fail(detail);
    }
    if row.failures.is_empty() {
        row.survived = 1;
    }
    row.note = format!("{succeeded}/{n} runs succeeded");
    Ok(vec![row])
}
