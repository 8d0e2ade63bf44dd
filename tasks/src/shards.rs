//! Tasks split into shards (`shards: N`): which shard a key belongs to, and where a shard of a
//! task that consumes a source table version by version (`clean`, `infer`) records its
//! progress in the table it writes.
//!
//! Shard `i` of `N` takes the keys whose hash is `i` ([`shard_of`]: the first 8 bytes of the
//! BLAKE3 hash of the key's UTF-8 text, little-endian, modulo `N`). Each shard commits with
//! its own application transaction, `<app>/shard-<i>-of-<N>` (the unsharded task keeps
//! `<app>`), so a crashed or re-run shard neither duplicates nor drops a row and the other
//! shards' work stands.
//!
//! Changing `N` stays exactly-once for a [`Consumer`]. The target records the shard count of
//! the latest commit (`<app>/shards`) and, per count, the source version that shard set
//! started from (`<app>/start-of-<N>`). A shard of the current set continues from its own
//! version (or the set's start, when it has not committed yet). A run with another `N` starts
//! a new set only when every shard of the current set has consumed the same source version,
//! and starts from that version: the new `N` applies from the next new data. While the
//! current set is uneven (a shard failed and was not re-run), a run with another `N` is
//! refused with a message naming the set to finish first.

use deltalake::DeltaTable;
use deltalake::kernel::{Action, Transaction};
use tweetflow_delta::commit::{ConflictError, commit_planned};
use tweetflow_delta::table::{self, CommitRequest};
use tweetflow_engine::task::Shard;

use crate::table_error::{Result, TableTaskError};

/// The shard (0-based) of `count` a key belongs to.
pub fn shard_of(key: &str, count: u32) -> u32 {
    let hash = blake3::hash(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) % u64::from(count.max(1))) as u32
}

/// The shard when the task is really split (`None` for no shard or `shards: 1`).
pub fn split(shard: Option<Shard>) -> Option<Shard> {
    shard.filter(|s| s.count > 1)
}

/// Whether `key` belongs to `shard` (every key does when the task is not split).
pub fn takes(key: &str, shard: Option<Shard>) -> bool {
    split(shard).is_none_or(|s| shard_of(key, s.count) == s.index)
}

/// The application id of `shard`'s commits for the task whose id is `app`.
pub fn app_id(app: &str, shard: Option<Shard>) -> String {
    match split(shard) {
        Some(s) => format!("{app}/{}", s.label()),
        None => app.to_string(),
    }
}

/// Most commit races a shard's commit rides out before the run plans again.
pub const COMMIT_RACES: u32 = 40;

/// A task that consumes a source table version by version into a target table it appends to,
/// recording the source version consumed as its application transaction.
#[derive(Clone, Copy, Debug)]
pub struct Consumer {
    /// The task's application id (e.g. `tweetflow-infer`).
    pub app: &'static str,
    /// The task type, in messages.
    pub task: &'static str,
    /// What the target table is called, in messages (e.g. `gold`).
    pub target: &'static str,
    /// What the source table is called, in messages (e.g. `silver`).
    pub source: &'static str,
}

/// Where a shard's run starts: the version its own transaction records (checked again at
/// commit) and the source version it has consumed (its own, or its set's start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// What the target records for the shard's application id.
    pub recorded: Option<i64>,
    /// The source version consumed, after which the run reads.
    pub consumed: Option<i64>,
    /// Whether the target has ever been written by shards (then commits keep the set's records).
    pub sharded_before: bool,
}

impl Consumer {
    /// The application id of `shard`'s commits.
    pub fn app_id(&self, shard: Option<Shard>) -> String {
        app_id(self.app, shard)
    }

    /// The application id recording the shard count of the latest commit.
    pub fn count_app_id(&self) -> String {
        format!("{}/shards", self.app)
    }

    /// The application id recording the source version the set of `count` shards started from.
    pub fn start_app_id(&self, count: u32) -> String {
        format!("{}/start-of-{count}", self.app)
    }

    /// The application ids of the set of `count` shards.
    pub fn members(&self, count: u32) -> impl Iterator<Item = String> + '_ {
        (0..count.max(1)).map(move |index| self.app_id(Some(Shard { index, count })))
    }

    /// Reads a shard's progress from the target (see the module documentation).
    pub async fn progress(
        &self,
        target: &DeltaTable,
        location: &str,
        shard: Option<Shard>,
    ) -> Result<Progress> {
        let count = shard.map_or(1, |s| s.count.max(1));
        let version = |app: String| async move { table::app_version(target, location, &app).await };
        let recorded = version(self.app_id(shard)).await?;
        let current = version(self.count_app_id()).await?;
        let current_count = current.map_or(1, |c| c.max(1) as u32);
        let sharded_before = current.is_some();
        let either = |own: Option<i64>, start: Option<i64>| match (own, start) {
            (Some(o), Some(s)) => Some(o.max(s)),
            (o, s) => o.or(s),
        };
        if current_count == count {
            let start = version(self.start_app_id(count)).await?;
            return Ok(Progress {
                recorded,
                consumed: either(recorded, start),
                sharded_before,
            });
        }
        // Another shard count wrote last: its set must be even before this one starts.
        let start = version(self.start_app_id(current_count)).await?;
        let mut members = Vec::new();
        for app in self.members(current_count) {
            members.push(either(version(app).await?, start));
        }
        let first = members.first().copied().flatten();
        if members.iter().any(|m| *m != first) {
            let show: Vec<String> = members
                .iter()
                .enumerate()
                .map(|(i, v)| format!("shard {i}: {}", v.map_or("none".into(), |v| v.to_string())))
                .collect();
            return Err(TableTaskError::Data(format!(
                "{} `{location}` is being filled by {current_count} shards that have not consumed the same {} version ({}): \
                 run {} with `shards: {current_count}` until they catch up, then change the shard count",
                self.target,
                self.source,
                show.join(", "),
                self.task,
            )));
        }
        Ok(Progress {
            recorded,
            consumed: first,
            sharded_before,
        })
    }

    /// The transactions a shard's commit records besides its own: the shard count and the
    /// set's start (written by every shard of a set, so whichever commits first records them).
    pub fn set_actions(&self, shard: Option<Shard>, progress: &Progress) -> Vec<Action> {
        let count = shard.map_or(1, |s| s.count.max(1));
        if count == 1 && !progress.sharded_before {
            return Vec::new();
        }
        let mut actions = vec![Action::Txn(Transaction::new(
            self.count_app_id(),
            i64::from(count),
        ))];
        if let Some(start) = progress
            .consumed
            .filter(|_| progress.recorded != progress.consumed)
        {
            actions.push(Action::Txn(Transaction::new(
                self.start_app_id(count),
                start,
            )));
        }
        actions
    }

    /// Commits a shard's rows to `table` (the target or a table the task keeps beside it,
    /// under the same application ids). Shards of one run commit side by side: a commit lost
    /// to another shard's is tried again on top of it, as long as the table still records
    /// `recorded` for this shard (the check [`commit_planned`] makes each time); the rows are
    /// appended, so nothing else depends on the version they land on. Unsharded, a lost race
    /// is the caller's to re-plan.
    pub async fn commit(
        &self,
        table: &mut DeltaTable,
        location: &str,
        shard: Option<Shard>,
        recorded: Option<i64>,
        request: impl Fn() -> CommitRequest,
    ) -> Result<i64> {
        let sharded = split(shard).is_some();
        let mut races = 0;
        loop {
            match commit_planned(table, location, recorded, request()).await {
                Err(e) if sharded && races < COMMIT_RACES && e.as_conflict().is_some() => {
                    races += 1;
                    if table::app_version(table, location, &self.app_id(shard)).await? != recorded {
                        return Err(e.into());
                    }
                    race_pause(races).await;
                }
                other => return Ok(other?),
            }
        }
    }
}

/// The pause before the `races`-th try of a commit that lost a race.
pub async fn race_pause(races: u32) {
    tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(races))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_belongs_to_one_shard_and_the_split_is_even_enough() {
        let mut per = [0u32; 4];
        for i in 0..4000 {
            per[shard_of(&format!("{}", 1_467_810_369 + i), 4) as usize] += 1;
        }
        assert!(per.iter().all(|&n| (850..1150).contains(&n)), "{per:?}");
        assert_eq!(shard_of("42", 1), 0);
        assert!(takes("42", None));
        assert!(takes("42", Some(Shard { index: 0, count: 1 })));
        let two = |index| Some(Shard { index, count: 2 });
        assert_ne!(takes("42", two(0)), takes("42", two(1)));
        assert_eq!(app_id("tweetflow-x", None), "tweetflow-x");
        assert_eq!(
            app_id("tweetflow-x", Some(Shard { index: 3, count: 8 })),
            "tweetflow-x/shard-3-of-8"
        );
    }
}
