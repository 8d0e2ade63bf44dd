//! What a bronze commit records about the landing files and batches it took: the ingest
//! application id, a landing file's listed state and the id of a batch. The other ingest
//! modules build on these; this one depends on none of them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tweetflow_delta::folder::Listed;
use tweetflow_engine::task::Shard;

use crate::shards;

/// Application id of ingest commits (bronze and its quarantine table).
pub const APP_ID: &str = "tweetflow-ingest";

/// A landing file's state as listed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct FileState {
    pub(super) name: String,
    pub(super) size: u64,
    #[serde(default)]
    pub(super) modified_ms: Option<i64>,
    #[serde(default)]
    pub(super) etag: Option<String>,
}

impl From<&Listed> for FileState {
    fn from(l: &Listed) -> Self {
        FileState {
            name: l.name.clone(),
            size: l.size,
            modified_ms: l.modified_ms,
            etag: l.etag.clone(),
        }
    }
}

impl FileState {
    /// Whether `now` is another content than `self` (sizes differ, or both have a time or a
    /// tag and they differ).
    pub(super) fn differs(&self, now: &FileState) -> bool {
        fn differ<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
            matches!((a, b), (Some(a), Some(b)) if a != b)
        }
        self.size != now.size
            || differ(&self.modified_ms, &now.modified_ms)
            || differ(&self.etag, &now.etag)
    }

    /// The state in words: size, modification time, entity tag.
    pub(super) fn describe(&self) -> String {
        let mut s = format!("{} bytes", self.size);
        if let Some(ms) = self.modified_ms
            && let Some(t) = chrono::DateTime::from_timestamp_millis(ms)
        {
            s.push_str(&format!(
                ", modified {}",
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            ));
        }
        if let Some(tag) = &self.etag {
            s.push_str(&format!(", etag {tag}"));
        }
        s
    }
}

/// One ingest batch: the shard that committed it (its label, `None` when unsharded) and its
/// number in that shard's sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BatchId {
    /// The shard's label (`shard-<i>-of-<N>`).
    pub(super) shard: Option<String>,
    /// The batch number.
    pub(super) number: i64,
}

impl BatchId {
    /// Batch `number` of `shard`.
    pub(super) fn new(shard: Option<Shard>, number: i64) -> Self {
        BatchId {
            shard: shards::split(shard).map(|s| s.label()),
            number,
        }
    }

    /// Batch `number` of the shard a commit's `commitInfo.tweetflow` names.
    pub(super) fn of_commit(info: &Value, number: i64) -> Self {
        BatchId {
            shard: info
                .get("shard")
                .and_then(Value::as_str)
                .map(str::to_string),
            number,
        }
    }

    /// The batch as a map key: `<number>` unsharded (as before shards), `<label>/<number>`.
    pub(super) fn key(&self) -> String {
        match &self.shard {
            Some(label) => format!("{label}/{}", self.number),
            None => self.number.to_string(),
        }
    }

    /// The batch a [`BatchId::key`] names.
    pub(super) fn parse(key: &str) -> Option<Self> {
        match key.rsplit_once('/') {
            Some((label, n)) => Some(BatchId {
                shard: Some(label.to_string()),
                number: n.parse().ok()?,
            }),
            None => Some(BatchId {
                shard: None,
                number: key.parse().ok()?,
            }),
        }
    }

    /// The shard count of the set that committed the batch (1 unsharded).
    fn count(&self) -> Option<u32> {
        match &self.shard {
            Some(label) => label.rsplit_once("-of-")?.1.parse().ok(),
            None => Some(1),
        }
    }

    /// Whether a run of `shard` rebuilds this batch's missing quarantine rows: its own batches
    /// and those of other shard counts (the shards of its own set, running beside it, see to
    /// theirs).
    pub(super) fn caught_up_by(&self, shard: Option<Shard>) -> bool {
        let own = BatchId::new(shard, self.number);
        self.shard == own.shard || self.count() != Some(shard.map_or(1, |s| s.count.max(1)))
    }
}
