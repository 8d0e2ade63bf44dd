//! `infer` split into shards (`shards: N`): which rows a shard scores and where its progress
//! is recorded.
//!
//! Shard `i` of `N` scores the silver rows whose `tweet_id` hashes to `i` (the first 8 bytes
//! of the BLAKE3 hash of its UTF-8 text, little-endian, modulo `N`): every shard reads the
//! same new silver commits and keeps its part. Each shard commits its gold rows with its own
//! application transaction, `tweetflow-infer/shard-<i>-of-<N>` (the unsharded task keeps
//! `tweetflow-infer`), so a crashed or re-run shard neither duplicates nor drops a row and
//! the other shards' work stands.
//!
//! Changing `N` stays exactly-once. Gold records the shard count of its latest infer commit
//! (`tweetflow-infer/shards`) and, per count, the silver version that shard set started from
//! (`tweetflow-infer/start-of-<N>`). A shard of the current set continues from its own
//! version (or the set's start, when it has not committed yet). A run with another `N`
//! starts a new set only when every shard of the current set has consumed the same silver
//! version, and starts from that version: the new `N` applies from the next new data. While
//! the current set is uneven (a shard failed and was not re-run), a run with another `N` is
//! refused with a message naming the set to finish first.

use deltalake::DeltaTable;
use deltalake::arrow::array::{AsArray, BooleanArray};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::datatypes::DataType as ArrowType;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::{Action, Transaction};
use tweetflow_delta::commit::{ConflictError, commit_planned};
use tweetflow_delta::table::{self, CommitRequest};
use tweetflow_engine::task::Shard;

use super::APP_ID;
use super::error::InferResult;
use super::gold::column_as;
use crate::medallion::MedallionError;

/// The application id of shard `shard`'s commits (`tweetflow-infer` when unsharded).
pub fn app_id(shard: Option<Shard>) -> String {
    match shard.filter(|s| s.count > 1) {
        Some(s) => format!("{APP_ID}/{}", s.label()),
        None => APP_ID.to_string(),
    }
}

/// The application id recording the shard count of the latest infer commit.
pub fn count_app_id() -> String {
    format!("{APP_ID}/shards")
}

/// The application id recording the silver version the set of `count` shards started from.
pub fn start_app_id(count: u32) -> String {
    format!("{APP_ID}/start-of-{count}")
}

/// The shard (0-based) of `count` a tweet id belongs to.
pub fn shard_of(tweet_id: &str, count: u32) -> u32 {
    let hash = blake3::hash(tweet_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) % u64::from(count.max(1))) as u32
}

/// The rows of `batch` that belong to `shard` (all of them when unsharded).
pub fn keep(batch: RecordBatch, shard: Option<Shard>) -> InferResult<RecordBatch> {
    let Some(shard) = shard.filter(|s| s.count > 1) else {
        return Ok(batch);
    };
    let ids = column_as(&batch, "tweet_id", &ArrowType::Utf8)?;
    let mask: BooleanArray = ids
        .as_string::<i32>()
        .iter()
        .map(|id| Some(shard_of(id.unwrap_or(""), shard.count) == shard.index))
        .collect();
    filter_record_batch(&batch, &mask)
        .map_err(|e| MedallionError::Data(format!("selecting shard {}: {e}", shard.label())).into())
}

/// Where a shard's run starts: the version its own transaction records (checked again at
/// commit) and the silver version it has consumed (its own, or its set's start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// What gold records for the shard's application id.
    pub recorded: Option<i64>,
    /// The silver version consumed, after which the run reads.
    pub consumed: Option<i64>,
    /// Whether gold has ever been written by shards (then commits keep the set's records).
    pub sharded_before: bool,
}

/// Reads a shard's progress from gold (see the module documentation).
pub async fn progress(
    gold: &DeltaTable,
    location: &str,
    shard: Option<Shard>,
) -> InferResult<Progress> {
    let count = shard.map_or(1, |s| s.count.max(1));
    let version = |app: String| async move { table::app_version(gold, location, &app).await };
    let recorded = version(app_id(shard)).await?;
    let current = version(count_app_id()).await?;
    let current_count = current.map_or(1, |c| c.max(1) as u32);
    let sharded_before = current.is_some();
    if current_count == count {
        let start = version(start_app_id(count)).await?;
        let consumed = match (recorded, start) {
            (Some(own), Some(start)) => Some(own.max(start)),
            (own, start) => own.or(start),
        };
        return Ok(Progress {
            recorded,
            consumed,
            sharded_before,
        });
    }
    // Another shard count wrote last: its set must be even before this one starts.
    let start = version(start_app_id(current_count)).await?;
    let mut members = Vec::new();
    for index in 0..current_count {
        let member = Shard {
            index,
            count: current_count,
        };
        let own = version(app_id(Some(member))).await?;
        let effective = match (own, start) {
            (Some(o), Some(s)) => Some(o.max(s)),
            (o, s) => o.or(s),
        };
        members.push((index, effective));
    }
    let first = members.first().and_then(|m| m.1);
    if members.iter().any(|m| m.1 != first) {
        let show: Vec<String> = members
            .iter()
            .map(|(i, v)| format!("shard {i}: {}", v.map_or("none".into(), |v| v.to_string())))
            .collect();
        return Err(MedallionError::Data(format!(
            "gold `{location}` is being filled by {current_count} shards that have not consumed the same silver version ({}): \
             run infer with `shards: {current_count}` until they catch up, then change the shard count",
            show.join(", ")
        ))
        .into());
    }
    Ok(Progress {
        recorded,
        consumed: first,
        sharded_before,
    })
}

/// The transactions a shard's commit records besides its own: the shard count and the set's
/// start (written by every shard of a set, so whichever commits first records them).
pub fn set_actions(shard: Option<Shard>, progress: &Progress) -> Vec<Action> {
    let count = shard.map_or(1, |s| s.count.max(1));
    if count == 1 && !progress.sharded_before {
        return Vec::new();
    }
    let mut actions = vec![Action::Txn(Transaction::new(
        count_app_id(),
        i64::from(count),
    ))];
    if let Some(start) = progress
        .consumed
        .filter(|_| progress.recorded != progress.consumed)
    {
        actions.push(Action::Txn(Transaction::new(start_app_id(count), start)));
    }
    actions
}

/// Most commit races a shard's commit rides out before the run plans again.
const COMMIT_RACES: u32 = 40;

/// Commits a shard's gold rows. Shards of one run commit side by side: a commit lost to
/// another shard's is tried again on top of it, as long as gold still records `recorded` for
/// this shard (the check [`commit_planned`] makes each time); the rows are appended, so
/// nothing else depends on the version they land on. Unsharded, a lost race is the caller's
/// to re-plan.
pub async fn commit(
    gold: &mut DeltaTable,
    location: &str,
    shard: Option<Shard>,
    recorded: Option<i64>,
    request: impl Fn() -> CommitRequest,
) -> InferResult<i64> {
    let sharded = shard.is_some_and(|s| s.count > 1);
    let mut races = 0;
    loop {
        match commit_planned(gold, location, recorded, request()).await {
            Err(e) if sharded && races < COMMIT_RACES && e.as_conflict().is_some() => {
                races += 1;
                if table::app_version(gold, location, &app_id(shard)).await? != recorded {
                    return Err(e.into());
                }
                tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(races))).await;
            }
            other => return Ok(other?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tweet_belongs_to_one_shard_and_the_split_is_even_enough() {
        let mut per = [0u32; 4];
        for i in 0..4000 {
            per[shard_of(&format!("{}", 1_467_810_369 + i), 4) as usize] += 1;
        }
        assert!(per.iter().all(|&n| (850..1150).contains(&n)), "{per:?}");
        assert_eq!(shard_of("42", 1), 0);
        assert_eq!(app_id(None), "tweetflow-infer");
        assert_eq!(
            app_id(Some(Shard { index: 3, count: 8 })),
            "tweetflow-infer/shard-3-of-8"
        );
    }
}
