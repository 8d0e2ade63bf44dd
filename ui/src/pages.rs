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
use tweetflow_engine::scheduler::{ScheduleState, Scheduler, TickAction, TickRecord};
use tweetflow_engine::store::is_run_id;
use tweetflow_engine::{EngineError, RunRecord, RunStatus, TaskError};

use crate::actions::{self, Outcome};
use crate::dag::{self, Dag};
use crate::gantt::{Gantt, gantt};
use crate::log_stream::{self, LogLine};
use crate::pipelines::{self, ParamField, PipelineFile, Problem, ScheduleView};
use crate::render::{page, wants_json};
use crate::run_index::{RunPage, RunQuery, RunSummary, is_run_status};
use crate::security::TOKEN_COOKIE;
use crate::server::AppState;

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

/// Whether a param's value must not be shown (it names a secret).
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "api_key",
        "apikey",
        "credential",
    ]
    .iter()
    .any(|s| n.contains(s))
}

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
        "app.css" => (include_str!("../assets/app.css"), "text/css; charset=utf-8"),
        "app.js" => (
            include_str!("../assets/app.js"),
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

/// A run as a coloured dot.
#[derive(Debug, Serialize)]
pub struct RunDot {
    /// The run id.
    pub run_id: String,
    /// Its status.
    pub status: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A pipeline in the list.
#[derive(Debug, Serialize)]
pub struct PipelineCard {
    /// The name pages use.
    pub name: String,
    /// The file.
    pub file: String,
    /// What it does.
    pub description: Option<String>,
    /// Whether it validates.
    pub valid: bool,
    /// How many tasks it has.
    pub task_count: usize,
    /// Its schedule.
    pub schedule: Option<ScheduleView>,
    /// Its last runs, newest first.
    pub last_runs: Vec<RunDot>,
    /// Why it does not validate.
    pub problems: Vec<Problem>,
}

fn card(state: &AppState, file: &PipelineFile) -> PipelineCard {
    let (description, task_count, schedule, problems) = match &file.loaded {
        Ok(p) => (
            p.description.clone(),
            p.tasks.len(),
            pipelines::schedule_view(p, NEXT_FIRES),
            Vec::new(),
        ),
        Err(d) => (None, 0, None, pipelines::problems(d)),
    };
    let last_runs = if file.loaded.is_ok() {
        recent_runs(state, &file.key, LAST_RUNS)
    } else {
        Vec::new()
    };
    PipelineCard {
        name: file.key.clone(),
        file: file.file.display().to_string(),
        description,
        valid: file.loaded.is_ok(),
        task_count,
        schedule,
        last_runs,
        problems,
    }
}

fn recent_runs(state: &AppState, pipeline: &str, n: usize) -> Vec<RunDot> {
    let query = RunQuery {
        pipeline: Some(pipeline.to_string()),
        status: None,
        page: 1,
        per_page: n,
        max_scan: Some(LAST_RUNS_SCAN),
    };
    state
        .index
        .page(&state.store, &query)
        .map(|p| {
            p.runs
                .into_iter()
                .map(|r| RunDot {
                    run_id: r.run_id,
                    status: r.status,
                    created_at: r.created_at,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The pipelines page.
#[derive(Debug, Serialize)]
pub struct PipelinesPage {
    /// Every pipeline file found.
    pub pipelines: Vec<PipelineCard>,
    /// Where they were looked for.
    pub paths: Vec<String>,
}

/// `GET /`.
pub async fn pipelines(State(state): Shared, headers: HeaderMap) -> Response {
    let view = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || PipelinesPage {
            pipelines: pipelines::load_all(&state.registry, &state.paths)
                .iter()
                .map(|f| card(&state, f))
                .collect(),
            paths: state
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        })
        .await
    };
    match view {
        Ok(view) => page(
            &state.templates,
            &headers,
            StatusCode::OK,
            "pipelines.html",
            &view,
            state.guard.has_token(&headers),
        ),
        Err(e) => internal(&state, &headers, e),
    }
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

/// A task of a pipeline.
#[derive(Debug, Serialize)]
pub struct TaskRow {
    /// The task id.
    pub id: String,
    /// Its type.
    pub task_type: String,
    /// Its dependencies.
    pub depends_on: Vec<String>,
    /// What it does.
    pub description: Option<String>,
}

/// One pipeline's page.
#[derive(Debug, Serialize)]
pub struct PipelinePage {
    /// The summary.
    #[serde(flatten)]
    pub card: PipelineCard,
    /// The tasks, in file order.
    pub tasks: Vec<TaskRow>,
    /// The laid-out DAG.
    pub dag: Option<Dag>,
    /// The DAG as SVG (tasks coloured by the last run).
    pub dag_svg: Option<String>,
    /// The start form's fields.
    pub params: Vec<ParamField>,
}

/// `GET /pipelines/{name}`.
pub async fn pipeline(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let file = pipelines::find(&state.registry, &state.paths, &name)?;
            let card = card(&state, &file);
            let last = card
                .last_runs
                .first()
                .and_then(|r| state.store.load(&r.run_id).ok());
            let statuses: BTreeMap<String, String> = last
                .map(|r| {
                    r.tasks
                        .iter()
                        .map(|(k, t)| (k.clone(), t.status.as_str().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let (tasks, dag, params) = match &file.loaded {
                Ok(p) => (
                    p.tasks
                        .iter()
                        .map(|t| TaskRow {
                            id: t.id.clone(),
                            task_type: t.task_type.clone(),
                            depends_on: t.depends_on.clone(),
                            description: t.description.clone(),
                        })
                        .collect(),
                    Some(dag::layout(p)),
                    pipelines::param_fields(p),
                ),
                Err(_) => (Vec::new(), None, Vec::new()),
            };
            Some(PipelinePage {
                card,
                tasks,
                dag_svg: dag.as_ref().map(|d| dag::svg(d, &statuses)),
                dag,
                params,
            })
        })
        .await
    };
    match found {
        Ok(Some(view)) => page(
            &state.templates,
            &headers,
            StatusCode::OK,
            "pipeline.html",
            &view,
            state.guard.has_token(&headers),
        ),
        Ok(None) => not_found(State(state), headers).await,
        Err(e) => internal(&state, &headers, e),
    }
}

/// `?pipeline=&status=&page=` of the runs list.
#[derive(Debug, Default, Deserialize)]
pub struct RunsParams {
    /// Only this pipeline's runs.
    pub pipeline: Option<String>,
    /// Only runs with this status.
    pub status: Option<String>,
    /// 1-based page.
    pub page: Option<usize>,
}

/// The runs page.
#[derive(Debug, Serialize)]
pub struct RunsPage {
    /// The rows and paging.
    #[serde(flatten)]
    pub list: RunPage,
    /// The pipeline filter.
    pub pipeline: Option<String>,
    /// The status filter.
    pub status: Option<String>,
    /// Pipeline names for the filter.
    pub pipelines: Vec<String>,
    /// Status names for the filter.
    pub statuses: Vec<&'static str>,
    /// Whether a shown run is still running (the page refreshes itself).
    pub any_running: bool,
    /// The previous page's URL.
    pub prev_url: Option<String>,
    /// The next page's URL.
    pub next_url: Option<String>,
}

fn runs_url(pipeline: &Option<String>, status: &Option<String>, page: usize) -> String {
    let mut parts = Vec::new();
    if let Some(p) = pipeline {
        parts.push(format!("pipeline={}", url_encode(p)));
    }
    if let Some(s) = status {
        parts.push(format!("status={}", url_encode(s)));
    }
    parts.push(format!("page={page}"));
    format!("/runs?{}", parts.join("&"))
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /runs`.
pub async fn runs(
    State(state): Shared,
    Query(params): Query<RunsParams>,
    headers: HeaderMap,
) -> Response {
    let pipeline = params.pipeline.filter(|p| !p.is_empty());
    let status = params.status.filter(|s| !s.is_empty());
    if let Some(s) = &status
        && !is_run_status(s)
    {
        return message(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            "Bad filter",
            format!("`{s}` is not a run status (running, succeeded, failed, cancelled)"),
            Some(("/runs".into(), "All runs".into())),
            None,
        );
    }
    let query = RunQuery {
        pipeline: pipeline.clone(),
        status: status.clone(),
        page: params.page.unwrap_or(1).max(1),
        per_page: RUNS_PER_PAGE,
        max_scan: None,
    };
    let listed = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let names: Vec<String> = pipelines::load_all(&state.registry, &state.paths)
                .into_iter()
                .map(|p| p.key)
                .collect();
            state.index.page(&state.store, &query).map(|l| (l, names))
        })
        .await
    };
    let (list, mut names) = match listed {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return internal(&state, &headers, e),
        Err(e) => return internal(&state, &headers, e),
    };
    if let Some(p) = &pipeline
        && !names.contains(p)
    {
        names.push(p.clone());
    }
    let view = RunsPage {
        any_running: list.runs.iter().any(|r| r.status == "running"),
        prev_url: (list.page > 1).then(|| runs_url(&pipeline, &status, list.page - 1)),
        next_url: list
            .has_next
            .then(|| runs_url(&pipeline, &status, list.page + 1)),
        list,
        pipeline,
        status,
        pipelines: names,
        statuses: vec!["running", "succeeded", "failed", "cancelled"],
    };
    page(
        &state.templates,
        &headers,
        StatusCode::OK,
        "runs.html",
        &view,
        state.guard.has_token(&headers),
    )
}

/// One attempt of a task.
#[derive(Debug, Serialize)]
pub struct AttemptView {
    /// 1-based number.
    pub number: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<i64>,
    /// Why it failed.
    pub error: Option<TaskError>,
}

/// A task of a run.
#[derive(Debug, Serialize)]
pub struct TaskDetail {
    /// The task id.
    pub id: String,
    /// Its type.
    pub task_type: String,
    /// Its status.
    pub status: String,
    /// Its attempts.
    pub attempts: Vec<AttemptView>,
    /// Start to end, in milliseconds.
    pub duration_ms: Option<i64>,
    /// Its cache key.
    pub cache_key: Option<String>,
    /// Its outputs, as pretty JSON.
    pub outputs: Option<String>,
    /// Its output's fingerprint.
    pub fingerprint: Option<String>,
    /// The error that ended it.
    pub error: Option<TaskError>,
}

/// The link to a run's MLflow run.
#[derive(Debug, Serialize)]
pub struct MlflowLink {
    /// The page in the MLflow UI.
    pub url: String,
    /// The MLflow run id.
    pub run_id: Option<String>,
    /// The experiment id.
    pub experiment_id: Option<String>,
}

/// One run's page.
#[derive(Debug, Serialize)]
pub struct RunView {
    /// The summary.
    pub summary: RunSummary,
    /// The record (secrets masked).
    pub record: RunRecord,
    /// The run's params (secrets masked).
    pub params: BTreeMap<String, Json>,
    /// Whether its process is alive.
    pub executing: bool,
    /// Recorded as running, but no process holds it (it died): resume it.
    pub stale: bool,
    /// Whether it can be cancelled.
    pub can_cancel: bool,
    /// Whether it can be resumed.
    pub can_resume: bool,
    /// A cancel request is pending.
    pub cancel_requested: bool,
    /// Its MLflow run.
    pub mlflow: Option<MlflowLink>,
    /// The timeline.
    pub gantt: Gantt,
    /// The tasks, in pipeline order.
    pub tasks: Vec<TaskDetail>,
    /// The first log lines.
    pub log: Vec<LogLine>,
    /// Where the live log continues.
    pub log_offset: u64,
}

fn mlflow_link(dir: &std::path::Path) -> Option<MlflowLink> {
    let value: Json = serde_json::from_slice(&std::fs::read(dir.join("mlflow.json")).ok()?).ok()?;
    let url = value["url"].as_str()?.to_string();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return None;
    }
    Some(MlflowLink {
        url,
        run_id: value["run_id"].as_str().map(str::to_string),
        experiment_id: value["experiment_id"].as_str().map(str::to_string),
    })
}

fn run_view(state: &AppState, run_id: &str) -> Result<RunView, EngineError> {
    let mut record = state.store.load(run_id)?;
    record.params = mask_params(&record.params);
    let executing = state.store.is_executing(run_id);
    let running = record.status == RunStatus::Running;
    let dir = state.store.run_dir(run_id);
    let (log, log_offset) = log_stream::read_all(&dir.join("log.jsonl"), 0, LOG_LINES);
    let tasks = record
        .ordered_tasks()
        .map(|(id, t)| TaskDetail {
            id: id.to_string(),
            task_type: t.task_type.clone(),
            status: t.status.as_str().to_string(),
            attempts: t
                .attempts
                .iter()
                .map(|a| AttemptView {
                    number: a.number,
                    started_at: a.started_at,
                    ended_at: a.ended_at,
                    duration_ms: a.ended_at.map(|e| (e - a.started_at).num_milliseconds()),
                    error: a.error.clone(),
                })
                .collect(),
            duration_ms: t.duration().map(|d| d.as_millis() as i64),
            cache_key: t.cache_key.clone(),
            outputs: t
                .output
                .as_ref()
                .filter(|o| !o.values.is_empty())
                .and_then(|o| serde_json::to_string_pretty(&o.values).ok()),
            fingerprint: t
                .output
                .as_ref()
                .map(|o| o.fingerprint.clone())
                .filter(|f| !f.is_empty()),
            error: t.error.clone(),
        })
        .collect();
    Ok(RunView {
        summary: RunSummary::of(&record),
        params: record.params.clone(),
        executing,
        stale: running && !executing,
        can_cancel: executing,
        can_resume: !executing && record.status != RunStatus::Succeeded,
        cancel_requested: state.store.cancel_requested(run_id),
        mlflow: mlflow_link(&dir),
        gantt: gantt(&record, Utc::now()),
        tasks,
        log,
        log_offset,
        record,
    })
}

fn run_not_found(state: &AppState, headers: &HeaderMap, id: &str) -> Response {
    message(
        state,
        headers,
        StatusCode::NOT_FOUND,
        "No such run",
        format!("There is no run `{id}` in the run store."),
        Some(("/runs".into(), "All runs".into())),
        None,
    )
}

/// `GET /runs/{id}`.
pub async fn run(State(state): Shared, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if !is_run_id(&id) {
        return run_not_found(&state, &headers, &id);
    }
    let view = {
        let state = state.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || run_view(&state, &id)).await
    };
    match view {
        Ok(Ok(view)) => page(
            &state.templates,
            &headers,
            StatusCode::OK,
            "run.html",
            &view,
            state.guard.has_token(&headers),
        ),
        Ok(Err(EngineError::RunNotFound { .. })) => run_not_found(&state, &headers, &id),
        Ok(Err(e)) => internal(&state, &headers, e),
        Err(e) => internal(&state, &headers, e),
    }
}

/// `?from=` of the log: a byte offset.
#[derive(Debug, Default, Deserialize)]
pub struct LogParams {
    /// Where to start reading.
    pub from: Option<u64>,
}

/// The log page.
#[derive(Debug, Serialize)]
pub struct LogPage {
    /// The run.
    pub run_id: String,
    /// Whether its process is alive (more lines may come).
    pub executing: bool,
    /// The lines.
    pub lines: Vec<LogLine>,
    /// Where the next read starts.
    pub offset: u64,
}

/// `GET /runs/{id}/log`: HTML, JSON, or server-sent events (`Accept: text/event-stream`),
/// which follow the log while the run runs.
pub async fn log(
    State(state): Shared,
    Path(id): Path<String>,
    Query(params): Query<LogParams>,
    headers: HeaderMap,
) -> Response {
    if !is_run_id(&id) || !state.store.run_dir(&id).join("run.json").is_file() {
        return run_not_found(&state, &headers, &id);
    }
    let from = params.from.unwrap_or(0).max(
        headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if sse {
        return log_stream::follow(state.store.clone(), id, from).into_response();
    }
    let path = state.store.run_dir(&id).join("log.jsonl");
    let max = if wants_json(&headers) {
        usize::MAX
    } else {
        LOG_LINES
    };
    let (lines, offset) =
        tokio::task::spawn_blocking(move || log_stream::read_all(&path, from, max))
            .await
            .unwrap_or_default();
    let view = LogPage {
        executing: state.store.is_executing(&id),
        run_id: id,
        lines,
        offset,
    };
    page(
        &state.templates,
        &headers,
        StatusCode::OK,
        "log.html",
        &view,
        state.guard.has_token(&headers),
    )
}

fn refused(state: &AppState, headers: &HeaderMap, why: impl std::fmt::Display) -> Response {
    message(
        state,
        headers,
        StatusCode::FORBIDDEN,
        "Refused",
        why.to_string(),
        None,
        None,
    )
}

fn outcome_response(state: &AppState, headers: &HeaderMap, outcome: Outcome) -> Response {
    let json = wants_json(headers);
    match &outcome {
        Outcome::Started { run_id } | Outcome::CancelRequested { run_id } => {
            if json {
                let status = if matches!(outcome, Outcome::Started { .. }) {
                    StatusCode::CREATED
                } else {
                    StatusCode::ACCEPTED
                };
                return (status, axum::Json(&outcome)).into_response();
            }
            Redirect::to(&format!("/runs/{run_id}")).into_response()
        }
        Outcome::NotStarted {
            exit_code,
            message: said,
        } => message(
            state,
            headers,
            StatusCode::CONFLICT,
            "Not started",
            format!(
                "tweetflow exited{} without starting the run:\n{said}",
                exit_code
                    .map(|c| format!(" with code {c}"))
                    .unwrap_or_default()
            ),
            Some(("/runs".into(), "Runs".into())),
            Some(outcome.clone()),
        ),
        Outcome::Waiting { message: said } => message(
            state,
            headers,
            StatusCode::ACCEPTED,
            "Waiting",
            said.clone(),
            Some(("/runs".into(), "Runs".into())),
            Some(outcome.clone()),
        ),
    }
}

/// `POST /pipelines/{name}/run`: form fields `param.NAME` (only values that differ from the
/// default are passed).
pub async fn start_run(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    if let Err(why) = state
        .guard
        .check_action(&headers, form.get("token").map(String::as_str))
    {
        return refused(&state, &headers, why);
    }
    let found = {
        let state = state.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || pipelines::find(&state.registry, &state.paths, &name))
            .await
            .ok()
            .flatten()
    };
    let Some(file) = found else {
        return not_found(State(state), headers).await;
    };
    let pipeline = match &file.loaded {
        Ok(p) => p,
        Err(d) => {
            return message(
                &state,
                &headers,
                StatusCode::CONFLICT,
                "Invalid pipeline",
                d.render(),
                Some((format!("/pipelines/{name}"), name.clone())),
                None,
            );
        }
    };
    let defaults: HashMap<String, String> = pipelines::param_fields(pipeline)
        .into_iter()
        .map(|f| (f.name, f.value))
        .collect();
    let mut params: Vec<(String, String)> = form
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("param.")?.to_string(), v.clone())))
        .filter(|(k, v)| {
            defaults.get(k).is_some_and(|d| d != v) && !(is_secret_name(k) && v.is_empty())
        })
        .collect();
    params.sort();
    match state
        .launcher
        .start(&state.store, &file.file, &pipeline.name, &params)
        .await
    {
        Ok(outcome) => outcome_response(&state, &headers, outcome),
        Err(e) => internal(&state, &headers, format!("cannot start tweetflow: {e}")),
    }
}

/// The `token` field of an action's form, if any.
fn form_token(body: &str) -> Option<String> {
    form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// `POST /runs/{id}/cancel`.
pub async fn cancel_run(
    State(state): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let token = form_token(&body);
    if let Err(why) = state.guard.check_action(&headers, token.as_deref()) {
        return refused(&state, &headers, why);
    }
    if !is_run_id(&id) || !state.store.run_dir(&id).join("run.json").is_file() {
        return run_not_found(&state, &headers, &id);
    }
    if !state.store.is_executing(&id) {
        return message(
            &state,
            &headers,
            StatusCode::CONFLICT,
            "Not running",
            format!("Run {id} is not running."),
            Some((format!("/runs/{id}"), id.clone())),
            None,
        );
    }
    match actions::cancel(&state.store, &id) {
        Ok(outcome) => outcome_response(&state, &headers, outcome),
        Err(e) => internal(&state, &headers, e),
    }
}

/// `POST /runs/{id}/resume`.
pub async fn resume_run(
    State(state): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let token = form_token(&body);
    if let Err(why) = state.guard.check_action(&headers, token.as_deref()) {
        return refused(&state, &headers, why);
    }
    if !is_run_id(&id) {
        return run_not_found(&state, &headers, &id);
    }
    let record = match state.store.load(&id) {
        Ok(r) => r,
        Err(EngineError::RunNotFound { .. }) => return run_not_found(&state, &headers, &id),
        Err(e) => return internal(&state, &headers, e),
    };
    match state
        .launcher
        .resume(&state.store, &record.pipeline, &id)
        .await
    {
        Ok(outcome) => outcome_response(&state, &headers, outcome),
        Err(e) => internal(&state, &headers, format!("cannot start tweetflow: {e}")),
    }
}

/// Counts of tick decisions.
#[derive(Debug, Default, Serialize)]
pub struct TickCounts {
    /// Runs started.
    pub fired: usize,
    /// Ticks skipped by policy.
    pub skipped: usize,
    /// Ticks missed.
    pub missed: usize,
}

/// A pipeline's scheduler state.
#[derive(Debug, Serialize)]
pub struct ScheduleRow {
    /// The pipeline.
    pub pipeline: String,
    /// Its file, when found under the UI's paths.
    pub file: Option<String>,
    /// Its schedule.
    pub schedule: Option<ScheduleView>,
    /// The latest tick handled.
    pub last_tick: Option<DateTime<Utc>>,
    /// The latest run started.
    pub last_fired: Option<TickRecord>,
    /// Decisions in the kept history.
    pub counts: TickCounts,
    /// The latest decisions, newest first.
    pub recent: Vec<TickRecord>,
    /// Why the state file could not be read.
    pub error: Option<String>,
}

/// The schedules page.
#[derive(Debug, Serialize)]
pub struct SchedulesPage {
    /// Scheduled pipelines, and pipelines with a scheduler state.
    pub schedules: Vec<ScheduleRow>,
}

fn schedules_view(state: &AppState) -> SchedulesPage {
    let mut rows: BTreeMap<String, (Option<String>, Option<ScheduleView>)> = BTreeMap::new();
    for f in pipelines::load_all(&state.registry, &state.paths) {
        if let Ok(p) = &f.loaded
            && p.schedule.is_some()
        {
            rows.insert(
                p.name.clone(),
                (
                    Some(f.file.display().to_string()),
                    pipelines::schedule_view(p, NEXT_FIRES),
                ),
            );
        }
    }
    let dir = state.store.root().join(".schedules");
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json")
            && let Some(stem) = path.file_stem()
        {
            rows.entry(stem.to_string_lossy().to_string())
                .or_insert((None, None));
        }
    }
    let schedules = rows
        .into_iter()
        .map(|(pipeline, (file, schedule))| {
            let (st, error) = match Scheduler::load_state(&state.store, &pipeline) {
                Ok(s) => (s, None),
                Err(e) => (ScheduleState::default(), Some(e.to_string())),
            };
            let mut counts = TickCounts::default();
            for t in &st.history {
                match t.action {
                    TickAction::Fired => counts.fired += 1,
                    TickAction::Skipped => counts.skipped += 1,
                    TickAction::Missed => counts.missed += 1,
                }
            }
            ScheduleRow {
                pipeline,
                file,
                schedule,
                last_tick: st.last_tick,
                last_fired: st.last_fired.clone(),
                counts,
                recent: st.history.iter().rev().take(20).cloned().collect(),
                error,
            }
        })
        .collect();
    SchedulesPage { schedules }
}

/// `GET /schedules`.
pub async fn schedules(State(state): Shared, headers: HeaderMap) -> Response {
    let view = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || schedules_view(&state)).await
    };
    match view {
        Ok(view) => page(
            &state.templates,
            &headers,
            StatusCode::OK,
            "schedules.html",
            &view,
            state.guard.has_token(&headers),
        ),
        Err(e) => internal(&state, &headers, e),
    }
}
