//! `infer` split into shards (`shards: N`): which rows a shard scores and where its progress
//! is recorded.
//!
//! Shard `i` of `N` scores the silver rows whose `tweet_id` hashes to `i` ([`shard_of`]):
//! every shard reads the same new silver commits and keeps its part. Each shard commits its
//! gold rows with its own application transaction, `tweetflow-infer/shard-<i>-of-<N>` (the
//! unsharded task keeps `tweetflow-infer`); gold records the shard count of its latest infer
//! commit and where each shard set started, so changing `N` stays exactly-once (see
//! [`crate::shards`]).

use deltalake::arrow::array::{AsArray, BooleanArray};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::datatypes::DataType as ArrowType;
use deltalake::arrow::record_batch::RecordBatch;
use tweetflow_engine::task::Shard;

use super::error::InferResult;
use super::gold::APP_ID;
use super::gold::column_as;
use crate::shards::{Consumer, split};
pub use crate::shards::{Progress, shard_of};
use crate::table_error::TableTaskError;

/// Where infer shards record their progress in gold.
pub const GOLD: Consumer = Consumer {
    app: APP_ID,
    task: "infer",
    target: "gold",
    source: "silver",
};

/// The application id of shard `shard`'s commits (`tweetflow-infer` when unsharded).
pub fn app_id(shard: Option<Shard>) -> String {
    GOLD.app_id(shard)
}

/// The rows of `batch` that belong to `shard` (all of them when unsharded).
pub fn keep(batch: RecordBatch, shard: Option<Shard>) -> InferResult<RecordBatch> {
    let Some(shard) = split(shard) else {
        return Ok(batch);
    };
    let ids = column_as(&batch, "tweet_id", &ArrowType::Utf8)?;
    let mask: BooleanArray = ids
        .as_string::<i32>()
        .iter()
        .map(|id| Some(shard_of(id.unwrap_or(""), shard.count) == shard.index))
        .collect();
    filter_record_batch(&batch, &mask)
        .map_err(|e| TableTaskError::Data(format!("selecting shard {}: {e}", shard.label())).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infer_shards_keep_their_application_ids() {
        assert_eq!(app_id(None), "tweetflow-infer");
        assert_eq!(
            app_id(Some(Shard { index: 3, count: 8 })),
            "tweetflow-infer/shard-3-of-8"
        );
        assert_eq!(GOLD.count_app_id(), "tweetflow-infer/shards");
        assert_eq!(GOLD.start_app_id(4), "tweetflow-infer/start-of-4");
    }
}
