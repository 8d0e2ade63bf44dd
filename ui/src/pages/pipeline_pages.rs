//! `/` (every pipeline file) and `/pipelines/{name}` (one pipeline: DAG, schedule, start form).

use super::*;

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
