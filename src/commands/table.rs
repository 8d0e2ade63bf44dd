//! `tweetflow table show|optimize|vacuum|reset`: the Delta maintenance operations by hand.

use tweetflow_delta::WriteControl;
use tweetflow_tasks::medallion::maintenance::{self, OptimizeParams, VacuumParams};

use crate::cli::TableCommand;
use crate::exit;

/// Runs a table command.
pub async fn table(command: TableCommand) -> anyhow::Result<u8> {
    match command {
        TableCommand::Show { table, history } => {
            print!("{}", maintenance::show(&table, history).await?);
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
