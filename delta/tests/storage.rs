//! The commit path and the incremental read on real tables in temporary folders.
#![allow(clippy::unwrap_used)]

use tweetflow_delta::commit::{ConflictError, Replans};
use tweetflow_delta::incremental::new_files;
use tweetflow_delta::table;
use tweetflow_delta::{CONFLICT_REPLANS, StorageError};

mod common;

use common::{APP, append};

#[tokio::test]
async fn commit_planned_checks_the_recorded_application_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("t").to_string_lossy().into_owned();
    let v1 = append(&loc, &["a", "b"], None, 1).await.unwrap();
    let t = table::open_table(&loc).await.unwrap().unwrap();
    assert_eq!(table::app_version(&t, &loc, APP).await.unwrap(), Some(1));
    // A run that planned before the first commit lost the race.
    let err = append(&loc, &["c"], None, 1).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.as_conflict().is_some(), "{err}");
    // Planned after the recorded version: commits.
    let v2 = append(&loc, &["c"], Some(1), 2).await.unwrap();
    assert_eq!(v2, v1 + 1);
    let t = table::open_table(&loc).await.unwrap().unwrap();
    assert_eq!(table::row_count(&t, &loc).unwrap(), Some(3));
    assert!(table::is_at_version(&loc, v2).await);
    assert_eq!(table::latest_version(&loc).await, Some(v2));
}

#[tokio::test]
async fn new_files_lists_the_files_added_after_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("t").to_string_lossy().into_owned();
    let v1 = append(&loc, &["a", "b"], None, 1).await.unwrap();
    let v2 = append(&loc, &["c"], Some(1), 2).await.unwrap();
    let t = table::open_table(&loc).await.unwrap().unwrap();
    let all = new_files(&t, &loc, -1, v2).await.unwrap();
    let versions: Vec<i64> = all.iter().map(|f| f.version).collect();
    assert_eq!(versions, [v1, v2]);
    assert_eq!(all.iter().map(|f| f.rows()).sum::<u64>(), 3);
    let after_first = new_files(&t, &loc, v1, v2).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].rows(), 1);
    assert!(new_files(&t, &loc, v2, v2).await.unwrap().is_empty());
}

#[test]
fn replans_are_bounded_and_only_for_conflicts() {
    let conflict = StorageError::Conflict {
        table: "t".into(),
        message: "lost".into(),
    };
    let mut replans = Replans::new("test");
    for _ in 0..CONFLICT_REPLANS {
        assert!(replans.again(&conflict));
    }
    assert!(!replans.again(&conflict));
    let mut replans = Replans::new("test");
    assert!(!replans.again(&StorageError::Cancelled));
}
