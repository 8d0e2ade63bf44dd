//! Landing files that changed after ingest took them.
//!
//! Each bronze commit records, besides the names it took, their size, modification time and
//! (object stores) entity tag as listed (`commitInfo.tweetflow.taken`; commits written before
//! this record only names, and their files are not checked). A later run that lists a taken
//! name with another size, time or tag does not read it again (the file is not ingested
//! twice): it logs a warning and adds a quarantine row with the reason `changed_after_ingest`
//! in a quarantine commit that lists the changed state (`commitInfo.tweetflow.changed`). A
//! state already listed there is not reported again: each change is reported once, and a
//! file that changes again is reported again. Files still settling are checked once they
//! settle.

use std::collections::BTreeMap;

use deltalake::kernel::Action;
use deltalake::writer::DeltaWriter;
use serde_json::json;

use super::batch::QuarantineBatch;
use super::params::{IngestParams, quarantine_schema};
use super::quarantine::QuarantineLog;
use super::state::{APP_ID, FileState};
use crate::table_error::{Result, TableTaskError};
use tweetflow_delta::commit::{Replans, append_op};
use tweetflow_delta::folder::Listed;
use tweetflow_delta::table::{self, CommitRequest};

/// The quarantine reason of a changed file.
pub const CHANGED_AFTER_INGEST: &str = "changed_after_ingest";

/// The listed files whose state differs from the one recorded when they were taken and was
/// not reported yet, with the recorded state.
pub(super) fn changed_files(
    listed: &[Listed],
    taken: &BTreeMap<String, FileState>,
    qlog: &QuarantineLog,
) -> Vec<(FileState, FileState)> {
    listed
        .iter()
        .filter_map(|l| {
            let was = taken.get(&l.name)?;
            let now = FileState::from(l);
            (was.differs(&now) && !qlog.changed.contains(&now)).then(|| (was.clone(), now))
        })
        .collect()
}

/// Warns about and quarantines the `changed` files (one quarantine commit); returns the
/// quarantine version, or `None` when every change was already reported.
pub(super) async fn report_changed(
    params: &IngestParams,
    changed: &[(FileState, FileState)],
    qlog: &mut QuarantineLog,
    now_micros: i64,
) -> Result<Option<i64>> {
    if changed.is_empty() {
        return Ok(None);
    }
    let loc = params.quarantine_location();
    let mut rows = QuarantineBatch::new();
    for (was, now) in changed {
        let reason = format!(
            "{CHANGED_AFTER_INGEST}: landing file `{}` changed after it was ingested (then {}; now {}); it is not ingested again",
            now.name,
            was.describe(),
            now.describe()
        );
        tracing::warn!(source = %params.source, file = %now.name, "{reason}");
        rows.push(&[], &now.name, 0, &reason);
    }
    let mut qt = table::open_or_create(&loc, &quarantine_schema()?, &[table::KEEP_LOG]).await?;
    let schema = table::arrow_schema(&qt, &loc)?;
    let mut w = table::writer_for(&qt, &loc, schema.clone())?;
    let batch = rows.finish(&schema, now_micros)?;
    w.write(batch)
        .await
        .map_err(|e| TableTaskError::delta(&loc, e))?;
    let adds = w
        .flush()
        .await
        .map_err(|e| TableTaskError::delta(&loc, e))?;
    let states: Vec<&FileState> = changed.iter().map(|(_, now)| now).collect();
    let actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    let mut replans = Replans::new("ingest quarantine");
    loop {
        table::refresh(&mut qt, &loc).await?;
        qlog.update(&qt, &loc).await?;
        if states.iter().all(|s| qlog.changed.contains(*s)) {
            return Ok(None);
        }
        let request = CommitRequest {
            actions: actions.clone(),
            operation: append_op(),
            txn: None,
            info: json!({
                "app": APP_ID, "kind": "changed", "batches": [], "changed": states,
                "rows": states.len(),
            }),
        };
        match table::commit(&mut qt, &loc, request).await {
            Ok(v) => {
                qlog.changed.extend(states.into_iter().cloned());
                return Ok(Some(v));
            }
            Err(err) if replans.again(&err) => continue,
            Err(err) => return Err(err.into()),
        }
    }
}
