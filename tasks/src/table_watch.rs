//! The Delta table watcher of the scheduler's table triggers: lists a table's `_delta_log/`
//! (see [`tweetflow_delta::log_versions`]) without loading the table.

use tweetflow_delta::{LogLister, LogVersions};
use tweetflow_engine::{BoxFuture, TableVersions, TableWatcher, WatchError};

/// Lists Delta tables' logs for [`tweetflow_engine::scheduler::Scheduler::with_table_watcher`],
/// keeping one object store per location.
#[derive(Default)]
pub struct DeltaWatcher(LogLister);

impl TableWatcher for DeltaWatcher {
    fn versions<'a>(
        &'a self,
        location: &'a str,
        after: Option<i64>,
    ) -> BoxFuture<'a, Result<TableVersions, WatchError>> {
        Box::pin(async move {
            match self.0.versions(location, after).await {
                Ok(LogVersions::Missing) => Ok(TableVersions::Missing),
                Ok(LogVersions::NotATable(reason)) => Ok(TableVersions::NotATable { reason }),
                Ok(LogVersions::Versions { latest, earliest }) => {
                    Ok(TableVersions::Versions { latest, earliest })
                }
                Err(e) => Err(WatchError {
                    table: location.to_string(),
                    message: e.to_string(),
                }),
            }
        })
    }
}
