//! Pages as HTML (templates embedded in the binary) or, for `Accept: application/json`, as
//! the JSON of the same view.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use minijinja::value::{Serde, Value};
use serde::Serialize;

use crate::error::UiError;
use crate::gantt::elapsed;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    (
        "pipelines.html",
        include_str!("../templates/pipelines.html"),
    ),
    ("pipeline.html", include_str!("../templates/pipeline.html")),
    ("runs.html", include_str!("../templates/runs.html")),
    ("run.html", include_str!("../templates/run.html")),
    ("log.html", include_str!("../templates/log.html")),
    (
        "log_lines.html",
        include_str!("../templates/log_lines.html"),
    ),
    (
        "schedules.html",
        include_str!("../templates/schedules.html"),
    ),
    ("message.html", include_str!("../templates/message.html")),
];

/// The page templates.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Parses the embedded templates.
    pub fn new() -> Result<Self, UiError> {
        let mut env = Environment::new();
        for (name, text) in TEMPLATES {
            env.add_template(name, text)
                .map_err(|source| UiError::Render {
                    template: name.to_string(),
                    source,
                })?;
        }
        env.add_filter("elapsed", |ms: i64| elapsed(ms));
        env.add_filter("when", |rfc3339: String| when(&rfc3339));
        Ok(Templates { env })
    }

    /// Renders template `name` with `page` (the view) and `has_token` (whether the viewer may
    /// act).
    pub fn render(
        &self,
        name: &str,
        page: &impl Serialize,
        has_token: bool,
    ) -> Result<String, UiError> {
        let render = |name: &str| -> Result<String, minijinja::Error> {
            self.env.get_template(name)?.render(minijinja::context! {
                page => Value::from(Serde(page)),
                has_token => has_token,
                nav => nav(name),
            })
        };
        render(name).map_err(|source| UiError::Render {
            template: name.to_string(),
            source,
        })
    }
}

/// The navigation entry a template belongs to.
fn nav(template: &str) -> &'static str {
    match template {
        "pipelines.html" | "pipeline.html" => "pipelines",
        "runs.html" | "run.html" | "log.html" => "runs",
        "schedules.html" => "schedules",
        _ => "",
    }
}

/// `2026-01-02 03:04:05` from an RFC 3339 time (UTC).
fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// Whether the client asked for JSON.
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

/// The page `template` for `view`, or its JSON.
pub fn page(
    templates: &Templates,
    headers: &HeaderMap,
    status: StatusCode,
    template: &str,
    view: &impl Serialize,
    has_token: bool,
) -> Response {
    if wants_json(headers) {
        return (status, Json(view)).into_response();
    }
    match templates.render(template, view, has_token) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}")).into_response()
        }
    }
}
