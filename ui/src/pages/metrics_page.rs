//! `GET /metrics`: the run store's metrics in the Prometheus text format, for a scraper that
//! presents the token (`X-Tweetflow-Token` header, the cookie, or `Authorization: Bearer`).

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Shared;

/// Serves the metrics (see [`tweetflow_engine::metrics::StoreMetrics`]) to a caller with the
/// token; 401 otherwise.
pub async fn metrics(state: Shared, headers: HeaderMap) -> Response {
    if !(state.guard.has_token(&headers) || state.guard.has_bearer_token(&headers)) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "metrics need the token printed when `tweetflow ui` started (Authorization: Bearer TOKEN, or the X-Tweetflow-Token header)",
        )
            .into_response();
    }
    let store_metrics = state.metrics.clone();
    let text = tokio::task::spawn_blocking(move || store_metrics.encode())
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            tweetflow_engine::metrics::CONTENT_TYPE,
        )],
        text,
    )
        .into_response()
}
