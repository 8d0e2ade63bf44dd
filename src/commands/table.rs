//! `tweetflow table show|optimize|vacuum|reset`: the Delta maintenance operations by hand.

use std::fmt::Write;
use tweetflow_delta::WriteControl;

use serde_json::json;
use tweetflow_tasks::medallion::maintenance::{self, OptimizeParams, TableInfo, VacuumParams};

use crate::cli::TableCommand;
use crate::exit;

/// Runs a table command.
pub async fn table(command: TableCommand) -> anyhow::Result<u8> {
    match command {
        TableCommand::Show { table, history } => {
            print!("{}", show(&maintenance::table_info(&table, history).await?));
        }
        TableCommand::Optimize {
            table,
            target_size_mb,
            zorder_by,
        } => {
            let mut params = OptimizeParams::new(table);
            params.target_size_mb = target_size_mb;
            params.zorder_by = zorder_by;
            let summary = maintenance::optimize(&params, &WriteControl::default()).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        TableCommand::Vacuum {
            table,
            retention,
            dry_run,
        } => {
            let mut params = VacuumParams::new(table);
            params.retention = retention;
            params.dry_run = dry_run;
            let summary = maintenance::vacuum(&params).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        TableCommand::Reset { tables, confirm } => {
            if !confirm {
                eprintln!(
                    "error: reset deletes {} and their progress records; add --confirm to do it",
                    tables.join(", ")
                );
                return Ok(exit::INVALID);
            }
            for (table, what) in maintenance::reset(&tables, true).await? {
                println!("{table}: {what}");
            }
        }
    }
    Ok(exit::OK)
}

/// `tweetflow table show`'s text: location, version, rows, files, schema, recorded progress
/// and history, one fact a line.
fn show(info: &TableInfo) -> String {
    let mut out = String::new();
    // Writing to a `String` cannot fail.
    let _ = write_info(&mut out, info);
    out
}

fn write_info(f: &mut String, info: &TableInfo) -> std::fmt::Result {
    writeln!(f, "table    {} ({})", info.location, info.url)?;
    writeln!(f, "version  {}", info.version)?;
    match info.rows {
        Some(r) => writeln!(f, "rows     {r}")?,
        None => writeln!(f, "rows     unknown (files without statistics)")?,
    }
    writeln!(f, "files    {} ({} bytes)", info.files, info.size_bytes)?;
    writeln!(f, "schema")?;
    for (name, ty, nullable) in &info.schema {
        writeln!(
            f,
            "  {name}: {ty}{}",
            if *nullable { "" } else { " not null" }
        )?;
    }
    if !info.app_transactions.is_empty() {
        writeln!(f, "progress")?;
        for (app, v) in &info.app_transactions {
            writeln!(f, "  {app}: {v}")?;
        }
    }
    writeln!(f, "history")?;
    for h in &info.history {
        let when = h
            .timestamp
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let extra = h.tweetflow.as_ref().map(|v| {
            let mut v = v.clone();
            if let Some(files) = v.get_mut("files")
                && let Some(a) = files.as_array()
            {
                *files = json!(a.len());
            }
            v.to_string()
        });
        writeln!(
            f,
            "  {:>4}  {when}  {}  {}",
            h.version,
            h.operation.clone().unwrap_or_default(),
            extra.unwrap_or_default()
        )?;
    }
    Ok(())
}
