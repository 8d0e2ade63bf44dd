//! Artifacts round trip through the server's proxy.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{client, unique};

/// Every file under `dir` with its bytes, keyed by relative path.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn go(base: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                go(base, &p, out);
            } else {
                let rel = p
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    go(dir, dir, &mut out);
    out
}

/// A small tree with nested dirs, binary content and a name with a space.
pub fn sample_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(
        dir.join("model.bin"),
        (0..=255u8).cycle().take(300_000).collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::write(
        dir.join("config.json"),
        br#"{"id2label": {"0": "NEG", "1": "NEU", "2": "POS"}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("sub/notes with space.txt"), "hello\n").unwrap();
    std::fs::write(dir.join("sub/deeper/empty.txt"), "").unwrap();
}

#[tokio::test]
async fn upload_list_download_round_trip() {
    let c = client();
    let exp = c
        .get_or_create_experiment(&unique("artifacts"))
        .await
        .unwrap();
    let run = c.create_run(&exp.experiment_id, None, &[]).await.unwrap();
    let id = run.info.run_id.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let single = tmp.path().join("metrics.csv");
    std::fs::write(&single, "step,loss\n0,1.0\n").unwrap();

    assert_eq!(c.log_artifacts(id, &src, Some("model")).await.unwrap(), 4);
    c.log_artifact(id, &single, None).await.unwrap();
    c.log_artifact(id, &single, Some("reports/csv"))
        .await
        .unwrap();

    let root = c.list_artifacts(id, None).await.unwrap();
    let names: Vec<(&str, bool)> = root.iter().map(|f| (f.path.as_str(), f.is_dir)).collect();
    assert_eq!(
        names,
        vec![("metrics.csv", false), ("model", true), ("reports", true)]
    );
    let model = c.list_artifacts(id, Some("model")).await.unwrap();
    let names: Vec<&str> = model.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        vec!["model/config.json", "model/model.bin", "model/sub"]
    );
    assert_eq!(model[1].file_size, Some(300_000));
    assert!(
        c.list_artifacts(id, Some("nothing/here"))
            .await
            .unwrap()
            .is_empty()
    );

    // Directory download: same bytes.
    let out = tmp.path().join("out");
    let got = c.download_artifacts(id, "model", &out).await.unwrap();
    assert_eq!(got, out.join("model"));
    assert_eq!(tree(&got), tree(&src));
    // One file.
    let f = c
        .download_artifacts(id, "model/sub/notes with space.txt", &out.join("one"))
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(f).unwrap(), "hello\n");
    // The whole root, and through a runs:/ URI.
    let all = c
        .download_artifacts(id, "", &out.join("all"))
        .await
        .unwrap();
    let t = tree(&all);
    assert_eq!(t.len(), 6, "{:?}", t.keys());
    assert_eq!(
        t["reports/csv/metrics.csv"],
        std::fs::read(&single).unwrap()
    );
    let via = c
        .download_uri(&format!("runs:/{id}/model/sub"), &out.join("via"))
        .await
        .unwrap();
    assert_eq!(tree(&via).len(), 2);

    // Missing artifact: an error, no file left behind.
    let e = c
        .download_artifacts(id, "model/missing.bin", &out.join("missing"))
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(!out.join("missing/missing.bin").exists());
    // Path traversal is refused.
    assert!(c.download_artifacts(id, "../x", &out).await.is_err());
    assert!(c.log_artifacts(id, &src, Some("../up")).await.is_err());
    assert!(
        c.log_artifacts(id, &tmp.path().join("nope"), None)
            .await
            .is_err()
    );
}
