//! The MLflow benchmark against the real test server.
#![allow(clippy::unwrap_used)]

use tweetflow_bench::mlflow as bench;
use tweetflow_test_support::mlflow_server::client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_log_metrics_10k() {
    let c = client();
    let r = bench::log_metrics(&c, 10_000).await.unwrap();
    eprintln!("bench: {r}");
    assert_eq!(r.points, 10_000);
    assert_eq!(r.verified_points, 10_000);
    assert_eq!(r.requests, 10);
    let run = c.get_run(&r.run_id).await.unwrap();
    assert!(run.info.status.is_terminal());
}
