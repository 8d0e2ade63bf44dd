//! Tables and objects on a real S3 API server (moto, started by the tests): the conditional
//! put that makes commits safe, the commit path, the refusal of unsafe commit modes, and
//! misconfigurations as clear config errors.
#![allow(clippy::unwrap_used)]

use deltalake::ObjectStoreError;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::logstore::object_store::{PutMode, PutOptions, PutPayload};
use deltalake::{ObjectStore, Path};
use tweetflow_delta::commit::ConflictError;
use tweetflow_delta::storage::{self, StorageOptions};
use tweetflow_delta::{StorageError, table};
use tweetflow_test_support::s3_server;

mod common;

use common::{APP, append};

fn options() -> StorageOptions {
    s3_server::server().options().into_iter().collect()
}

fn with(mut options: StorageOptions, key: &str, value: &str) -> StorageOptions {
    options.insert(key.into(), value.into());
    options
}

#[tokio::test]
async fn the_server_honours_if_none_match_through_object_store() {
    let bucket = s3_server::bucket("cput");
    storage::scoped(options(), async {
        let store = storage::store_for(&format!("s3://{bucket}/log")).unwrap();
        let path = Path::from("_delta_log/00000000000000000000.json");
        let create = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        store
            .put_opts(&path, PutPayload::from("first"), create())
            .await
            .unwrap();
        let second = store
            .put_opts(&path, PutPayload::from("second"), create())
            .await
            .unwrap_err();
        assert!(
            matches!(second, ObjectStoreError::AlreadyExists { .. }),
            "{second:?}"
        );
        let body = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&body[..], b"first");
        // An update conditional on a stale etag is refused too.
        let stale = store
            .put_opts(
                &path,
                PutPayload::from("third"),
                PutOptions {
                    mode: PutMode::Update(deltalake::logstore::object_store::UpdateVersion {
                        e_tag: Some("\"not-the-etag\"".into()),
                        version: None,
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(stale, ObjectStoreError::Precondition { .. }),
            "{stale:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn commits_on_s3_check_the_application_transaction_and_lose_races_cleanly() {
    let bucket = s3_server::bucket("commit");
    let loc = format!("s3://{bucket}/tables/words");
    storage::scoped(options(), async {
        let v1 = append(&loc, &["a", "b"], None, 1).await.unwrap();
        let t = table::open_table(&loc).await.unwrap().unwrap();
        assert_eq!(table::app_version(&t, &loc, APP).await.unwrap(), Some(1));
        let err = append(&loc, &["c"], None, 1).await.unwrap_err();
        assert!(err.as_conflict().is_some(), "{err}");
        // Two writers planned after the same version: exactly one commits.
        let (x, y) = tokio::join!(
            append(&loc, &["x"], Some(1), 2),
            append(&loc, &["y"], Some(1), 2)
        );
        assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
        let lost = x.err().or(y.err()).unwrap();
        assert!(
            lost.as_conflict().is_some() && lost.is_retryable(),
            "{lost}"
        );
        let t = table::open_table(&loc).await.unwrap().unwrap();
        assert_eq!(table::version(&t), v1 + 1);
        assert_eq!(table::row_count(&t, &loc).unwrap(), Some(3));
    })
    .await;
}

#[tokio::test]
async fn a_write_without_a_safe_commit_mode_is_refused_unless_opted_in() {
    let bucket = s3_server::bucket("unsafe");
    let loc = format!("s3://{bucket}/t");
    let unsafe_options = with(options(), "aws_conditional_put", "disabled");
    let err = storage::scoped(unsafe_options.clone(), append(&loc, &["a"], None, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Config { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("aws_conditional_put"), "{text}");
    assert!(text.contains("allow_unsafe_commits"), "{text}");
    assert!(!err.is_retryable());
    // delta-rs's unsafe rename mode is refused the same way, and the explicit opt-in writes.
    let rename = with(options(), "aws_s3_allow_unsafe_rename", "true");
    let err = storage::scoped(rename.clone(), append(&loc, &["a"], None, 1))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("AWS_S3_ALLOW_UNSAFE_RENAME"),
        "{err}"
    );
    let opted = with(rename, storage::UNSAFE_COMMITS_OPTION, "true");
    storage::scoped(opted, append(&loc, &["a"], None, 1))
        .await
        .unwrap();
}

async fn open_error(loc: &str, options: StorageOptions) -> StorageError {
    storage::scoped(options, table::open_table(loc))
        .await
        .expect_err("a misconfiguration")
}

#[tokio::test]
async fn misconfigurations_are_config_errors_naming_the_cause() {
    let err = open_error("s3://no-such-bucket-here/t", options()).await;
    assert!(matches!(err, StorageError::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("bucket does not exist"), "{err}");

    let port = tweetflow_test_support::mlflow_server::free_port();
    let closed = with(
        options(),
        "aws_endpoint_url",
        &format!("http://127.0.0.1:{port}"),
    );
    let started = std::time::Instant::now();
    let err = open_error("s3://any-bucket/t", closed).await;
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());

    // No credentials anywhere (the test process has no AWS_* variables).
    let mut bare = options();
    bare.remove("aws_access_key_id");
    bare.remove("aws_secret_access_key");
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() && std::env::var_os("AWS_PROFILE").is_none()
    {
        let err = open_error("s3://any-bucket/t", bare).await;
        assert!(err.to_string().contains("no credentials"), "{err}");
    }

    let err = table::open_table("hdfs://namenode/t").await.unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidLocation { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("not compiled in"), "{err}");
}

#[test]
fn credential_options_are_masked() {
    let shown = storage::redacted(&options());
    assert_eq!(shown["aws_secret_access_key"], storage::MASK);
    assert_eq!(shown["aws_access_key_id"], s3_server::ACCESS_KEY_ID);
    assert_eq!(shown["aws_endpoint_url"], s3_server::server().endpoint);
    assert!(storage::is_credential_key("AWS_SESSION_TOKEN"));
    assert!(storage::is_credential_key("azure_storage_account_key"));
    assert!(storage::is_credential_key("google_service_account_key"));
    assert!(!storage::is_credential_key("aws_region"));
}
