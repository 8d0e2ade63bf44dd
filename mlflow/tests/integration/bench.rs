//! The benchmark helper against the real server.

use tweetflow_mlflow::bench;

use crate::common::client;

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
