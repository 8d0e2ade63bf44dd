//! The incremental read of a table that another one consumes: the data files the commits after
//! a recorded version added.
//!
//! A consuming table records, as its application transaction, the upstream version it has
//! consumed. The next run reads the upstream commits after that version up to the latest one
//! and takes the files they added with `dataChange = true` (an `optimize` rewrite is not new
//! data).

use deltalake::DeltaTable;
use deltalake::kernel::{Action, Add};

use crate::error::Result;
use crate::table;

/// A data file a commit added, with that commit's version.
#[derive(Clone, Debug)]
pub struct NewFile {
    /// The commit that added the file.
    pub version: i64,
    /// Its `add` action.
    pub add: Add,
}

impl NewFile {
    /// Rows in the file, from its statistics (0 when it has none).
    pub fn rows(&self) -> u64 {
        self.add
            .get_stats()
            .ok()
            .flatten()
            .map_or(0, |s| s.num_records as u64)
    }
}

/// The files commits `after + 1 ..= upto` of `table` added as new data, in commit order.
/// Files removed as data are logged and otherwise ignored: the consumer keeps the rows it
/// already derived from them.
pub async fn new_files(
    table: &DeltaTable,
    location: &str,
    after: i64,
    upto: i64,
) -> Result<Vec<NewFile>> {
    let mut files = Vec::new();
    for version in (after + 1)..=upto {
        for action in table::commit_actions(table, location, version).await? {
            match action {
                Action::Add(add) if add.data_change => files.push(NewFile { version, add }),
                Action::Remove(remove) if remove.data_change => {
                    tracing::warn!(table = %location, version, file = %remove.path,
                        "upstream removed data; the consuming table keeps the rows it already derived from it");
                }
                _ => {}
            }
        }
    }
    Ok(files)
}
