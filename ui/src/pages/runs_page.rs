//! `/runs`: the runs list, newest first, filtered by pipeline and status, paginated.

use super::*;

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
            format!(
                "`{s}` is not a run status (running, interrupted, succeeded, failed, cancelled)"
            ),
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
        statuses: vec!["running", "interrupted", "succeeded", "failed", "cancelled"],
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
