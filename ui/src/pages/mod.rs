//! The request handlers: one view struct per page, rendered as HTML or JSON.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tweetflow_engine::scheduler::{ScheduleState, TickAction, TickRecord};
use tweetflow_engine::store::is_run_id;
use tweetflow_engine::{EngineError, RunRecord, RunStatus, TaskError};

use crate::actions::{self, Outcome};
use crate::dag::{self, Dag};
use crate::gantt::{Gantt, gantt};
use crate::log_stream::{self, LogLine};
use crate::pipelines::{self, ParamField, PipelineFile, Problem, ScheduleView, is_secret_name};
use crate::render::{page, wants_json};
use crate::run_index::{RunPage, RunQuery, RunSummary, is_run_status};
use crate::security::TOKEN_COOKIE;
use crate::state::AppState;

mod metrics_page;
mod pipeline_pages;
mod run_actions;
mod run_alerts;
mod run_page;
mod runs_page;
mod schedules_page;

pub use metrics_page::*;
pub use pipeline_pages::*;
pub use run_actions::*;
pub use run_page::*;
pub use runs_page::*;
pub use schedules_page::*;

type Shared = State<Arc<AppState>>;

/// Rows of the runs list per page.
pub const RUNS_PER_PAGE: usize = 50;
/// Status dots shown per pipeline.
const LAST_RUNS: usize = 10;
/// Newest runs looked at for the dots.
const LAST_RUNS_SCAN: usize = 1_000;
/// Log lines rendered with a page (more arrive as events).
const LOG_LINES: usize = 5_000;
/// Next fire times shown.
const NEXT_FIRES: usize = 5;

fn mask_params(params: &BTreeMap<String, Json>) -> BTreeMap<String, Json> {
    params
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_name(k) {
                Json::String("••••••".into())
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// Checks `Host` on every request, trades a `?token=` for a cookie, and sets the headers that
/// keep the pages from being framed or loading foreign scripts.
pub async fn check_request(State(state): Shared, request: Request, next: Next) -> Response {
    if let Err(refusal) = state.guard.check_host(request.headers()) {
        return (StatusCode::FORBIDDEN, refusal.to_string()).into_response();
    }
    let query_token = request.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| v.to_string())
    });
    let mut response = match query_token {
        Some(t) if state.guard.is_token(&t) => {
            let rest: Vec<&str> = request
                .uri()
                .query()
                .unwrap_or_default()
                .split('&')
                .filter(|kv| !kv.starts_with("token="))
                .collect();
            let target = if rest.is_empty() {
                request.uri().path().to_string()
            } else {
                format!("{}?{}", request.uri().path(), rest.join("&"))
            };
            let mut r = Redirect::to(&target).into_response();
            let cookie = format!("{TOKEN_COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        _ => next.run(request).await,
    };
    let h = response.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    response
}

/// A message page (an action's result, a refusal, a missing page).
#[derive(Debug, Serialize)]
pub struct Message {
    /// The heading.
    pub title: String,
    /// The text.
    pub message: String,
    /// Where to go next.
    pub link: Option<(String, String)>,
    /// The action's outcome.
    pub outcome: Option<Outcome>,
}

fn message(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    title: &str,
    text: impl Into<String>,
    link: Option<(String, String)>,
    outcome: Option<Outcome>,
) -> Response {
    let view = Message {
        title: title.to_string(),
        message: text.into(),
        link,
        outcome,
    };
    page(
        &state.templates,
        headers,
        status,
        "message.html",
        &view,
        state.guard.has_token(headers),
    )
}

/// Answers any unknown path.
pub async fn not_found(State(state): Shared, headers: HeaderMap) -> Response {
    message(
        &state,
        &headers,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page.",
        Some(("/".into(), "Pipelines".into())),
        None,
    )
}

/// The embedded stylesheet and script.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static str, &'static str) = match file.as_str() {
        "app.css" => (
            include_str!("../../assets/app.css"),
            "text/css; charset=utf-8",
        ),
        "app.js" => (
            include_str!("../../assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn internal(state: &AppState, headers: &HeaderMap, e: impl std::fmt::Display) -> Response {
    message(
        state,
        headers,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        e.to_string(),
        None,
        None,
    )
}
