//! `report`: the exploratory charts of the gold table and one self-contained HTML report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tweetflow_engine::{RunStore, Task, TaskContext, TaskError, TaskOutput};

use super::compute::CLASSES;
use super::gold::{self, Wants};
use super::{chart, mlflow_error};

/// How many users and mentions the charts show.
pub const TOP_N: usize = 20;
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

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

fn img(path: &Path) -> Result<String, TaskError> {
    let bytes = std::fs::read(path)
        .map_err(|e| TaskError::retryable(format!("reading `{}`: {e}", path.display())))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

fn kv_table(rows: &[(String, String)]) -> String {
    let mut s = String::from("<table class=\"kv\">");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    s.push_str("</table>");
    s
}

/// Per-task timings of the current run, from the run store (`runs/` above the artifacts).
fn timings(ctx: &TaskContext) -> Option<Vec<[String; 5]>> {
    let runs_root = super::run_dir(ctx)?.parent()?.to_path_buf();
    let record = RunStore::new(runs_root).load(&ctx.run_id).ok()?;
    Some(
        record
            .ordered_tasks()
            .map(|(id, t)| {
                let duration = match t.duration() {
                    Some(d) => format!("{:.2} s", d.as_secs_f64()),
                    None if id == ctx.task_id => "running".into(),
                    None => "–".into(),
                };
                [
                    id.to_string(),
                    t.task_type.clone(),
                    t.status.as_str().to_string(),
                    t.attempts.len().to_string(),
                    duration,
                ]
            })
            .collect(),
    )
}

const CSS: &str = "body{font-family:-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px auto;max-width:1060px;color:#212529;padding:0 16px}\
h1{font-size:26px;margin-bottom:4px}h2{font-size:20px;border-bottom:1px solid #dee2e6;padding-bottom:4px;margin-top:32px}\
.sub{color:#6c757d;margin-top:0}table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #dee2e6;padding:4px 10px;text-align:left;font-size:14px}\
table.kv th{background:#f8f9fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:16px 0}figure img{max-width:100%;height:auto;border:1px solid #dee2e6}figcaption{color:#6c757d;font-size:13px}\
.note{background:#fff3cd;border:1px solid #ffe69c;padding:6px 10px;font-size:14px}";

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
                )
                .map_err(TaskError::fatal)?;
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
            chart::bars(&p, &title, &note, &gold::top(counts, TOP_N), color)
                .map_err(TaskError::fatal)?;
            charts.push(Chart {
                path: p,
                title,
                note,
            });
        }
        let p = path("tweets_per_hour.png")?;
        let note = format!("distinct tweets by hour of their timestamp (UTC) · {gold_note}");
        chart::hours(&p, "Tweets per hour", &note, &scan.hours).map_err(TaskError::fatal)?;
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
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>",
            esc(&title)
        );
        let _ = write!(
            h,
            "<h1>{}</h1><p class=\"sub\">run {} · generated {} · tweetflow {}</p>",
            esc(&title),
            esc(&ctx.run_id),
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
            env!("CARGO_PKG_VERSION")
        );
        h.push_str("<h2>Data profile</h2>");
        match &profile {
            Some(Value::Object(p)) => {
                let rows: Vec<(String, String)> =
                    p.iter().filter(|(_, v)| !v.is_object() && !v.is_array()).map(|(k, v)| (k.clone(), show(v))).collect();
                h.push_str(&kv_table(&rows));
                if let Some(Value::Object(cols)) = p.get("columns") {
                    h.push_str("<table><tr><th>column</th><th>nulls</th><th>empty</th></tr>");
                    for (c, v) in cols {
                        let _ = write!(
                            h,
                            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                            esc(c),
                            esc(&v.get("nulls").map(show).unwrap_or_default()),
                            esc(&v.get("empties").map(show).unwrap_or_default())
                        );
                    }
                    h.push_str("</table>");
                }
            }
            _ => h.push_str("<p class=\"note\">No profile: no upstream <code>profile</code> task and no <code>profile</code> param.</p>"),
        }
        h.push_str("<h2>Model metrics</h2>");
        match &metrics {
            Some(m) => {
                let keys = [
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
                let rows: Vec<(String, String)> = keys
                    .iter()
                    .filter_map(|k| m.get(*k).map(|v| (k.to_string(), show(v))))
                    .collect();
                h.push_str(&kv_table(&rows));
                h.push_str("<p class=\"sub\">precision, recall and F1 of the positive class and accuracy over tweets with a positive/negative label and a positive/negative prediction; macro F1 over the three classes when neutral labels exist.</p>");
                if let Some(cm) = m.get("confusion_matrix").and_then(Value::as_array) {
                    h.push_str("<table><tr><th>true \\ predicted</th>");
                    for c in CLASSES {
                        let _ = write!(h, "<th>{c}</th>");
                    }
                    h.push_str("</tr>");
                    for (c, row) in CLASSES.iter().zip(cm) {
                        let _ = write!(h, "<tr><th>{c}</th>");
                        for v in row.as_array().into_iter().flatten() {
                            let _ = write!(h, "<td class=\"n\">{}</td>", show(v));
                        }
                        h.push_str("</tr>");
                    }
                    h.push_str("</table>");
                }
                if let Some(png) = m
                    .get("confusion_matrix_png")
                    .and_then(Value::as_str)
                    .map(Path::new)
                    .filter(|p| p.is_file())
                {
                    let _ = write!(
                        h,
                        "<figure><img alt=\"confusion matrix\" src=\"{}\"></figure>",
                        img(png)?
                    );
                }
            }
            None => h.push_str(
                "<p class=\"note\">No metrics: no upstream <code>log-metrics</code> task.</p>",
            ),
        }
        h.push_str("<h2>Charts</h2>");
        for n in &notes {
            let _ = write!(h, "<p class=\"note\">{}</p>", esc(n));
        }
        for c in &charts {
            let _ = write!(
                h,
                "<figure><img alt=\"{}\" src=\"{}\"><figcaption>{}</figcaption></figure>",
                esc(&c.title),
                img(&c.path)?,
                esc(&c.note)
            );
        }
        h.push_str("<h2>Task timings</h2>");
        match timings(ctx) {
            Some(rows) => {
                h.push_str("<table><tr><th>task</th><th>type</th><th>status</th><th>attempts</th><th>duration</th></tr>");
                for r in rows {
                    let _ = write!(
                        h,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                        esc(&r[0]),
                        esc(&r[1]),
                        esc(&r[2]),
                        esc(&r[3]),
                        esc(&r[4])
                    );
                }
                h.push_str("</table>");
            }
            None => h.push_str("<p class=\"note\">The run record is not readable from here.</p>"),
        }
        h.push_str("</body></html>\n");
        let html = path(REPORT_HTML)?;
        std::fs::write(&html, &h)
            .map_err(|e| TaskError::retryable(format!("writing `{}`: {e}", html.display())))?;

        let mut mlflow_run_id = Value::Null;
        if let Some(target) = super::pipeline_run(ctx)? {
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
