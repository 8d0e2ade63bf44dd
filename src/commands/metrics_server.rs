//! `tweetflow schedule --metrics-listen ADDR`: the daemon's Prometheus endpoint, `/metrics`.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tweetflow_engine::{RunStore, metrics};

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsServerError {
    /// The address is taken or not ours.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The running endpoint; dropping it stops the server.
pub struct MetricsServer {
    stop: CancellationToken,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Binds `addr`, then in the background seeds the process's counters from the finished runs of
/// `store` (so a restarted daemon goes on counting from what the store holds) and serves them
/// at `http://addr/metrics`. The scheduler does not wait for the seeding; scrapes do (the
/// endpoint answers once it is done), so Prometheus never sees the counters start low.
pub async fn start(addr: SocketAddr, store: RunStore) -> Result<MetricsServer, MetricsServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsServerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| MetricsServerError::Bind { addr, source })?;
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let now = chrono::Utc::now();
    tokio::spawn(async move {
        let started = Instant::now();
        let seeded = tokio::task::spawn_blocking(move || metrics::seed_from_store(&store, now))
            .await
            .unwrap_or(0);
        tracing::info!(
            runs = seeded,
            seconds = started.elapsed().as_secs_f64(),
            "metrics seeded from the run store"
        );
        let app = Router::new().route(
            "/metrics",
            get(|| async {
                (
                    [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
                    metrics::global().encode(),
                )
            }),
        );
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    });
    eprintln!("metrics: http://{bound}/metrics");
    Ok(MetricsServer { stop })
}
