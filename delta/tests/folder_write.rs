//! Landing-folder writes: many writers of the same local file at once (runs of a pipeline
//! replaying into one landing folder) all succeed and leave no temporary file behind; the
//! same bytes written again leave the file untouched.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use tweetflow_delta::StorageError;
use tweetflow_delta::folder::Folder;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_of_the_same_local_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let folder = Arc::new(Folder::open(&dir.path().display().to_string()).unwrap());
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let folder = folder.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    folder.write("same.jsonl", vec![b'x'; 4096]).await?;
                }
                Ok::<_, StorageError>(())
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap().unwrap();
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["same.jsonl"], "no temporary file left behind");
    assert_eq!(
        std::fs::read(dir.path().join("same.jsonl")).unwrap().len(),
        4096
    );
}

#[tokio::test]
async fn writing_the_same_bytes_again_leaves_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let folder = Folder::open(&dir.path().display().to_string()).unwrap();
    let path = dir.path().join("a.jsonl");
    folder.write("a.jsonl", b"one\n".to_vec()).await.unwrap();
    let first = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    folder.write("a.jsonl", b"one\n".to_vec()).await.unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        first,
        "the same bytes again: not rewritten (ingest would see a change)"
    );
    folder.write("a.jsonl", b"two\n".to_vec()).await.unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"two\n",
        "other bytes replace it"
    );
    assert_ne!(std::fs::metadata(&path).unwrap().modified().unwrap(), first);
}
