//! The actions: `POST /pipelines/{name}/run`, `POST /runs/{id}/cancel`, `POST /runs/{id}/resume`.

use super::*;

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
