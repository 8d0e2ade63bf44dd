//! `report`: the exploratory charts of the gold table and one self-contained HTML report.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};

use super::chart;
use super::compute::CLASSES;
use super::gold::{self, Wants};
use crate::mlflow_link::{mlflow_error, pipeline_run};

/// How many users and mentions the charts show.
pub const TOP_N: usize = 20;
/// The report page's template (HTML, auto-escaped).
const TEMPLATE: &str = include_str!("../../templates/report.html");
/// The report file.
pub const REPORT_HTML: &str = "report.html";
/// The MLflow artifact folder of the report.
pub const ARTIFACT_DIR: &str = "report";

/// Params of `report`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// The gold Delta table (written by `infer`).
    pub input: String,
    /// A profile JSON file (the `profile.json` of a `profile` task). Default: the output of a
    /// direct upstream `profile` task, if there is one; else the report has no profile section.
    #[serde(default)]
    pub profile: Option<String>,
    /// The report's title (default: `<pipeline> report`).
    #[serde(default)]
    pub title: Option<String>,
}

/// The `report` task.
pub struct ReportTask;

fn show(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// A chart of the report: file, title, and the note shown under it.
struct Chart {
    path: PathBuf,
    title: String,
    note: String,
}

/// What the report template shows.
#[derive(Serialize)]
struct Page<'a> {
    title: &'a str,
    run_id: &'a str,
    generated: String,
    version: &'static str,
    classes: &'static [&'static str],
    profile: Option<ProfileView>,
    metrics: Option<MetricsView>,
    notes: &'a [String],
    charts: Vec<ChartView<'a>>,
    timings: Option<Vec<[String; 5]>>,
}

/// The data profile section: top-level values, and per-column nulls and empties.
#[derive(Serialize)]
struct ProfileView {
    rows: Vec<(String, String)>,
    columns: Option<Vec<[String; 3]>>,
}

/// The model metrics section.
#[derive(Serialize)]
struct MetricsView {
    rows: Vec<(String, String)>,
    confusion: Option<Vec<(&'static str, Vec<String>)>>,
    confusion_png: Option<String>,
}

/// A chart with its image inline.
#[derive(Serialize)]
struct ChartView<'a> {
    title: &'a str,
    note: &'a str,
    src: String,
}

/// The metric keys the report shows, in order.
const METRIC_KEYS: [&str; 14] = [
    "model_name",
    "model_uri",
    "model_version",
    "gold_table_version",
    "silver_table_version",
    "tweets",
    "unscored_tweets",
    "precision",
    "recall",
    "f1",
    "accuracy",
    "binary_support",
    "neutral_predictions_excluded",
    "macro_f1",
];

fn profile_view(profile: Option<&Value>) -> Option<ProfileView> {
    let Some(Value::Object(p)) = profile else {
        return None;
    };
    let rows = p
        .iter()
        .filter(|(_, v)| !v.is_object() && !v.is_array())
        .map(|(k, v)| (k.clone(), show(v)))
        .collect();
    let columns = match p.get("columns") {
        Some(Value::Object(cols)) => Some(
            cols.iter()
                .map(|(c, v)| {
                    [
                        c.clone(),
                        v.get("nulls").map(show).unwrap_or_default(),
                        v.get("empties").map(show).unwrap_or_default(),
                    ]
                })
                .collect(),
        ),
        _ => None,
    };
    Some(ProfileView { rows, columns })
}

fn metrics_view(metrics: Option<&Value>) -> Result<Option<MetricsView>, TaskError> {
    let Some(m) = metrics else {
        return Ok(None);
    };
    let rows = METRIC_KEYS
        .iter()
        .filter_map(|k| m.get(*k).map(|v| (k.to_string(), show(v))))
        .collect();
    let confusion = m
        .get("confusion_matrix")
        .and_then(Value::as_array)
        .map(|cm| {
            CLASSES
                .iter()
                .zip(cm)
                .map(|(c, row)| (*c, row.as_array().into_iter().flatten().map(show).collect()))
                .collect()
        });
    let confusion_png = match m
        .get("confusion_matrix_png")
        .and_then(Value::as_str)
        .map(Path::new)
        .filter(|p| p.is_file())
    {
        Some(png) => Some(img(png)?),
        None => None,
    };
    Ok(Some(MetricsView {
        rows,
        confusion,
        confusion_png,
    }))
}

/// Renders the report page.
fn render(page: &Page<'_>) -> Result<String, TaskError> {
    let mut env = minijinja::Environment::new();
    env.add_template(REPORT_HTML, TEMPLATE)
        .map_err(|e| TaskError::fatal(format!("report template: {e:#}")))?;
    let mut html = env
        .get_template(REPORT_HTML)
        .and_then(|t| t.render(minijinja::value::Serde(page)))
        .map_err(|e| TaskError::fatal(format!("rendering the report: {e:#}")))?;
    html.push('\n');
    Ok(html)
}

fn img(path: &Path) -> Result<String, TaskError> {
    let bytes = std::fs::read(path)
        .map_err(|e| TaskError::retryable(format!("reading `{}`: {e}", path.display())))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Per-task timings of the current run, as the run's view shows it (`None` when the run is
/// not recorded where the task runs).
fn timings(ctx: &TaskContext) -> Option<Vec<[String; 5]>> {
    let tasks = ctx.run.tasks();
    if tasks.is_empty() {
        return None;
    }
    Some(
        tasks
            .into_iter()
            .map(|t| {
                let duration = match t.duration {
                    Some(d) => format!("{:.2} s", d.as_secs_f64()),
                    None if t.id == ctx.task_id => "running".into(),
                    None => "–".into(),
                };
                [
                    t.id,
                    t.task_type,
                    t.status,
                    t.attempts.to_string(),
                    duration,
                ]
            })
            .collect(),
    )
}

impl Task for ReportTask {
    type Params = ReportParams;
    const TYPE: &'static str = "report";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "Charts of the gold table (top users, mentions by predicted sentiment, tweets per hour) and a self-contained report.html";

    async fn run(&self, ctx: &TaskContext, params: ReportParams) -> Result<TaskOutput, TaskError> {
        let scan = gold::scan(&params.input, Wants { report: true }, &ctx.cancel).await?;
        let profile: Option<Value> = match &params.profile {
            Some(p) => {
                let bytes = std::fs::read(p)
                    .map_err(|e| TaskError::config("profile", format!("cannot read `{p}`: {e}")))?;
                Some(
                    serde_json::from_slice(&bytes).map_err(|e| {
                        TaskError::config("profile", format!("`{p}` is not JSON: {e}"))
                    })?,
                )
            }
            None => ctx
                .upstream
                .values()
                .find(|o| o.get("top_mentions").is_some() && o.get("tweets").is_some())
                .map(|o| Value::Object(o.values.clone())),
        };
        let metrics: Option<Value> = ctx
            .upstream
            .values()
            .find(|o| o.get("confusion_matrix").is_some())
            .map(|o| Value::Object(o.values.clone()));

        let path = |name: &str| {
            ctx.artifact_path(name)
                .map_err(|e| TaskError::retryable(format!("artifacts folder: {e}")))
        };
        let mut charts: Vec<Chart> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        let gold_note = format!(
            "gold {} v{} · {} tweets",
            params.input, scan.version, scan.tweets
        );

        // Top tweeters: gold's `user` column, else the silver profile's top users.
        let users: Option<(Vec<(String, u64)>, String)> = match &scan.users {
            Some(u) => Some((gold::top(u, TOP_N), format!("tweets per user · {gold_note}"))),
            None => profile.as_ref().and_then(|p| p.get("top_users")).and_then(Value::as_array).filter(|a| !a.is_empty()).map(|a| {
                let items = a
                    .iter()
                    .filter_map(|e| Some((e.get("user")?.as_str()?.to_string(), e.get("tweets")?.as_u64()?)))
                    .take(TOP_N)
                    .collect();
                let table = profile.as_ref().and_then(|p| p.get("table")).map(show).unwrap_or_default();
                (items, format!("tweets per user · from the profile of `{table}` (gold has no user column)"))
            }),
        };
        match users {
            Some((items, note)) => {
                let p = path("top_users.png")?;
                chart::bars(
                    &p,
                    &format!("Top {TOP_N} tweeters"),
                    &note,
                    &items,
                    chart::BLUE,
                )?;
                charts.push(Chart {
                    path: p,
                    title: format!("Top {TOP_N} tweeters"),
                    note,
                });
            }
            None => notes.push(
                "Top tweeters: skipped, neither gold nor a profile has a `user` column.".into(),
            ),
        }
        for (class, counts, color) in [
            ("positive", &scan.positive_mentions, chart::GREEN),
            ("negative", &scan.negative_mentions, chart::RED),
        ] {
            let p = path(&format!("top_mentions_{class}.png"))?;
            let title = format!("Top {TOP_N} mentions by {class} tweets");
            let note = format!("tweets predicted {class} that mention the account · {gold_note}");
            chart::bars(&p, &title, &note, &gold::top(counts, TOP_N), color)?;
            charts.push(Chart {
                path: p,
                title,
                note,
            });
        }
        let p = path("tweets_per_hour.png")?;
        let note = format!("distinct tweets by hour of their timestamp (UTC) · {gold_note}");
        chart::hours(&p, "Tweets per hour", &note, &scan.hours)?;
        charts.push(Chart {
            path: p,
            title: "Tweets per hour".into(),
            note,
        });

        // The HTML.
        let title = params
            .title
            .clone()
            .unwrap_or_else(|| format!("{} report", ctx.pipeline.name));
        let charts_view = charts
            .iter()
            .map(|c| {
                Ok(ChartView {
                    title: &c.title,
                    note: &c.note,
                    src: img(&c.path)?,
                })
            })
            .collect::<Result<Vec<_>, TaskError>>()?;
        let page = Page {
            title: &title,
            run_id: &ctx.run_id,
            generated: chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            version: env!("CARGO_PKG_VERSION"),
            classes: &CLASSES,
            profile: profile_view(profile.as_ref()),
            metrics: metrics_view(metrics.as_ref())?,
            notes: &notes,
            charts: charts_view,
            timings: timings(ctx),
        };
        let h = render(&page)?;
        let html = path(REPORT_HTML)?;
        std::fs::write(&html, &h)
            .map_err(|e| TaskError::retryable(format!("writing `{}`: {e}", html.display())))?;

        let mut mlflow_run_id = Value::Null;
        if let Some(target) = pipeline_run(ctx)? {
            let mut files: Vec<&Path> = charts.iter().map(|c| c.path.as_path()).collect();
            files.push(&html);
            for f in files {
                target
                    .client
                    .log_artifact(&target.run_id, f, Some(ARTIFACT_DIR))
                    .await
                    .map_err(|e| mlflow_error("log artifact", e))?;
            }
            mlflow_run_id = json!(target.run_id);
        }
        let chart_paths: Vec<String> = charts
            .iter()
            .map(|c| c.path.display().to_string())
            .collect();
        Ok(TaskOutput::new()
            .with("report", html.display().to_string())
            .with("charts", chart_paths)
            .with("notes", notes)
            .with("gold_table_version", scan.version)
            .with("tweets", scan.tweets)
            .with("mlflow_run_id", mlflow_run_id))
    }
}
