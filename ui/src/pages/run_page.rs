//! `/runs/{id}` (Gantt timeline, tasks, params, MLflow link) and `/runs/{id}/log` (live log).

use super::*;

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
    /// The shard it processed, when the task is split into shards.
    pub shard: Option<u32>,
    /// The executor's job id (e.g. the Ray submission id), when not run locally.
    pub job: Option<String>,
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
    /// Its data-quality expectations (`expectations` in its output).
    pub expectations: Vec<ExpectationView>,
    /// What it left undone and why, in words (`left` in its output, see
    /// [`tweetflow_engine::TaskOutput::left`]).
    pub left: Vec<String>,
    /// Its output's fingerprint.
    pub fingerprint: Option<String>,
    /// The error that ended it.
    pub error: Option<TaskError>,
}

/// One expectation of a task and the rows that failed it.
#[derive(Debug, Serialize)]
pub struct ExpectationView {
    /// Its name.
    pub name: String,
    /// Rows that failed it.
    pub failed: u64,
    /// What happened to them (`warn`, `drop`, `quarantine`, `fail`).
    pub action: String,
}

fn expectations_of(output: Option<&tweetflow_engine::TaskOutput>) -> Vec<ExpectationView> {
    output
        .and_then(|o| o.get("expectations"))
        .and_then(|v| v.as_object())
        .map(|tallies| {
            tallies
                .iter()
                .map(|(name, t)| ExpectationView {
                    name: name.clone(),
                    failed: t.get("failed").and_then(|v| v.as_u64()).unwrap_or(0),
                    action: t
                        .get("action")
                        .and_then(|v| v.as_str())
                        .unwrap_or("-")
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
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
    /// Its engine died (`interrupted`): resume it.
    pub stale: bool,
    /// Whether it can be cancelled.
    pub can_cancel: bool,
    /// Whether it can be resumed.
    pub can_resume: bool,
    /// A cancel request is pending.
    pub cancel_requested: bool,
    /// Its MLflow run.
    pub mlflow: Option<MlflowLink>,
    /// The alerts it sent.
    pub alerts: Vec<super::run_alerts::AlertDelivery>,
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
    let interrupted = record.status == RunStatus::Interrupted;
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
                    shard: a.shard,
                    job: a.job.clone(),
                })
                .collect(),
            duration_ms: t.duration().map(|d| d.as_millis() as i64),
            cache_key: t.cache_key.clone(),
            expectations: expectations_of(t.output.as_ref()),
            left: t.output.as_ref().map(|o| o.left()).unwrap_or_default(),
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
        stale: interrupted && !executing,
        can_cancel: executing,
        can_resume: !executing && record.status != RunStatus::Succeeded,
        cancel_requested: state.store.cancel_requested(run_id),
        mlflow: mlflow_link(&dir),
        alerts: super::run_alerts::deliveries(&dir),
        gantt: gantt(&record, Utc::now()),
        tasks,
        log,
        log_offset,
        record,
    })
}

pub(super) fn run_not_found(state: &AppState, headers: &HeaderMap, id: &str) -> Response {
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
