use tweetflow_delta::WriteControl;
use tweetflow_tasks::medallion::clean::{CleanParams, clean};
use tweetflow_tasks::medallion::ingest::{IngestParams, ingest};
use tweetflow_tasks::medallion::replay::{ReplayParams, replay};

use crate::common::*;

#[tokio::test]
async fn replay_ingest_clean_test_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rp = ReplayParams::new(test_csv().display().to_string(), p(d, "landing"));
    rp.tweets_per_file = 100;
    let r = replay(&rp, &WriteControl::default()).await.unwrap();
    assert_eq!(r.tweets, 498);
    assert_eq!(r.files, 5);
    let s = ingest(
        &IngestParams::new(p(d, "landing"), p(d, "bronze")).with_settle_time("0s"),
        &WriteControl::default(),
    )
    .await
    .unwrap();
    assert_eq!(s.rows, 498, "{s:?}");
    let c = clean(
        &CleanParams::new(p(d, "bronze"), p(d, "silver")),
        &WriteControl::default(),
    )
    .await
    .unwrap();
    println!("{c:?}");
    assert_eq!(c.tweets, 498);
    assert_eq!(c.tweets_with_mentions, 110);
    let silver = rows_of(&p(d, "silver"), &["mention"]).await;
    assert_eq!(silver.len() as u64, c.rows);
}
