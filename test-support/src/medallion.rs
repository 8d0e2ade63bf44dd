//! Small medallion tables made by the real tasks, as the input of later tasks' tests.

use std::path::Path;

use tweetflow_delta::WriteControl;
use tweetflow_tasks::medallion::clean::{CleanParams, clean};
use tweetflow_tasks::medallion::ingest::{IngestParams, ingest};
use tweetflow_tasks::medallion::replay::{ReplayParams, replay};

use crate::fixtures::test_csv;
use crate::tables::p;

/// Replays `limit` test tweets (shuffled with `seed` when given) into `dir/landing` with the
/// file prefix `prefix`, 50 per file, then ingests and cleans them into `dir/bronze` and
/// `dir/silver`. Called again with another prefix, it adds new silver commits.
pub async fn add_silver(dir: &Path, prefix: &str, limit: usize, seed: Option<u64>) {
    let mut rp = ReplayParams::new(test_csv().display().to_string(), p(dir, "landing"));
    rp.tweets_per_file = 50;
    rp.limit = Some(limit);
    rp.prefix = prefix.into();
    rp.seed = seed;
    let o = WriteControl::default();
    replay(&rp, &o).await.expect("replay");
    // Replay renames each file into place: no file is still being written.
    let ip = IngestParams::new(p(dir, "landing"), p(dir, "bronze")).with_settle_time("0s");
    ingest(&ip, &o).await.expect("ingest");
    clean(&CleanParams::new(p(dir, "bronze"), p(dir, "silver")), &o)
        .await
        .expect("clean");
}
