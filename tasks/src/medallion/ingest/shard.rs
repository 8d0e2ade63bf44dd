//! `ingest` split into shards (`shards: N`): which landing files a shard takes, the batches of
//! each shard, and the commit that keeps every landing file taken once.
//!
//! Shard `i` of `N` takes the landing files whose object name hashes to `i` (see
//! [`crate::shards`], the same hash as `infer`'s and `clean`'s): every shard lists the same
//! landing folder and keeps its part. Each shard numbers its batches in its own application
//! transaction, `tweetflow-ingest/shard-<i>-of-<N>` (the unsharded task keeps
//! `tweetflow-ingest`), and its commits name their shard (`commitInfo.tweetflow.shard`) beside
//! the files they took, so a crashed or re-run shard neither duplicates nor drops a row and
//! the others' work stands.
//!
//! Changing `N` is safe at any time: every commit, of any shard and any `N`, lists the files it
//! took, every run skips the files any commit took, and just before committing a batch the run
//! reads the commits made since it planned and gives the batch up (to plan again) when one of
//! them took one of its files. A file a failed shard of the old `N` left is taken by the shard
//! of the new `N` its name hashes to.

use deltalake::DeltaTable;
use tweetflow_delta::StorageError;
use tweetflow_delta::commit::ConflictError;
use tweetflow_delta::table::{self, CommitRequest};
use tweetflow_engine::task::Shard;

use super::history::{BronzeHistory, read_commits};
use super::state::APP_ID;
use crate::shards::{self, COMMIT_RACES, race_pause};
use crate::table_error::Result;

/// Whether shard `shard` takes the landing file `name` (every file when unsharded).
pub(super) fn takes(name: &str, shard: Option<Shard>) -> bool {
    shards::takes(name, shard)
}

/// The application id numbering `shard`'s batches.
pub(super) fn app_id(shard: Option<Shard>) -> String {
    shards::app_id(APP_ID, shard)
}

/// Commits one batch of `shard` that took `files`, exactly once: on the version it commits on,
/// the shard's batch number is still `planned_after`, no commit since `checked` took one of
/// the files, and, when the batch evolves the schema (`schema_at`: the version whose schema it
/// extends), no commit came after that version. A commit lost to another shard's is tried
/// again on top of it; when a check fails, a conflict sends the run back to planning.
/// `history` and `checked` (the version up to which it holds every commit) follow the commits
/// read.
#[allow(clippy::too_many_arguments)]
pub(super) async fn commit_batch(
    t: &mut DeltaTable,
    loc: &str,
    shard: Option<Shard>,
    planned_after: Option<i64>,
    files: &[String],
    schema_at: Option<i64>,
    history: &mut BronzeHistory,
    checked: &mut i64,
    request: impl Fn() -> CommitRequest,
) -> Result<i64> {
    let app = app_id(shard);
    let conflict = |message: String| StorageError::Conflict {
        table: loc.to_string(),
        message,
    };
    let mut races = 0;
    loop {
        table::refresh(t, loc).await?;
        let latest = table::version(t);
        *checked = read_commits(history, t, loc, *checked).await?;
        if let Some(name) = files.iter().find(|f| history.files.contains(*f)) {
            return Err(
                conflict(format!("landing file `{name}` was taken by another commit")).into(),
            );
        }
        let recorded = table::app_version(t, loc, &app).await?;
        if recorded != planned_after {
            let show = |v: Option<i64>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
            return Err(conflict(format!(
                "`{app}` planned after batch {} but the table records {}",
                show(planned_after),
                show(recorded)
            ))
            .into());
        }
        if let Some(v) = schema_at
            && v != latest
        {
            return Err(conflict(format!(
                "the schema evolved from version {v} and the table is at version {latest}"
            ))
            .into());
        }
        match table::commit(t, loc, request()).await {
            Err(e) if races < COMMIT_RACES && e.as_conflict().is_some() => {
                races += 1;
                race_pause(races).await;
            }
            Ok(v) => {
                *checked = v;
                return Ok(v);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::BatchId;
    use super::*;

    #[test]
    fn batch_keys_name_their_shard_and_read_back() {
        let two = |index| Some(Shard { index, count: 2 });
        let unsharded = BatchId::new(None, 3);
        assert_eq!(unsharded.key(), "3");
        assert_eq!(
            BatchId::new(Some(Shard { index: 0, count: 1 }), 3).key(),
            "3"
        );
        let one_of_two = BatchId::new(two(1), 7);
        assert_eq!(one_of_two.key(), "shard-1-of-2/7");
        assert_eq!(BatchId::parse("shard-1-of-2/7"), Some(one_of_two.clone()));
        assert_eq!(BatchId::parse("3"), Some(unsharded.clone()));
        assert_eq!(BatchId::parse("x"), None);
        assert_eq!(app_id(two(1)), "tweetflow-ingest/shard-1-of-2");
        // Own batches and other counts' batches; not the other shards of the same set.
        assert!(one_of_two.caught_up_by(two(1)));
        assert!(!one_of_two.caught_up_by(two(0)));
        assert!(one_of_two.caught_up_by(None));
        assert!(one_of_two.caught_up_by(Some(Shard { index: 0, count: 3 })));
        assert!(unsharded.caught_up_by(two(0)));
        assert!(unsharded.caught_up_by(None));
    }
}
