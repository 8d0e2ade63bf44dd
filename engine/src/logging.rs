//! Tracing set-up: human or JSON logs on stderr, and each run's events in its `log.jsonl`.
//!
//! The executor opens a `run` span (with a `run_id` field) around a run; [`RunLogLayer`]
//! writes every event inside such a span, with the names and fields of its spans, as one JSON
//! line to the log attached to that run id ([`attach_run_log`]). Several runs in one process
//! (the scheduler) each get their own file. Each task attempt's share of the file is capped
//! (see [`crate::log_cap`]). Secrets are masked on stderr and in the run logs (see
//! [`crate::secrets`]).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Map, Value as Json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::log_cap::{AttemptLog, LogCap};

type Writers = HashMap<String, Arc<Mutex<File>>>;
static WRITERS: LazyLock<Mutex<Writers>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The default filter: tweetflow's own events at `info`, libraries' (delta-rs, HTTP) at `warn`.
///
/// A target directive matches every target it is a prefix of, so `tweetflow` covers the
/// binary and every `tweetflow_*` crate (module paths such as `tweetflow_engine::run`)
/// without naming them.
pub const DEFAULT_FILTER: &str = "warn,tweetflow=info";

/// How logs are printed on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber: stderr filtered by `RUST_LOG`, and the run logs filtered
/// by `TWEETFLOW_RUN_LOG` (both default to [`DEFAULT_FILTER`]), and the OTLP trace export
/// when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (see [`crate::telemetry`]). Does nothing if a
/// subscriber is already installed. Call before the async runtime starts.
pub fn init(format: LogFormat) {
    init_with(format, DEFAULT_FILTER, None);
}

/// A layer added beside the stderr and run-log layers (e.g. a console drawing progress bars).
pub type ExtraLayer = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

/// [`init`] with another default for stderr (used when `RUST_LOG` is not set; the run logs
/// keep [`DEFAULT_FILTER`]) and an extra layer with its own filter.
pub fn init_with(format: LogFormat, stderr_default: &str, extra: Option<ExtraLayer>) {
    let stderr_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(stderr_default));
    let result = match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(extra)
            .with(crate::telemetry::layer())
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(masked_stderr)
                    .with_target(false)
                    .with_filter(stderr_filter),
            )
            .with(run_layer())
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(extra)
            .with(crate::telemetry::layer())
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(masked_stderr)
                    .with_filter(stderr_filter),
            )
            .with(run_layer())
            .try_init(),
    };
    let _ = result;
}

/// Standard error, with secrets masked (see [`crate::secrets`]).
fn masked_stderr() -> crate::secrets::MaskingWriter<std::io::Stderr> {
    crate::secrets::MaskingWriter(std::io::stderr())
}

/// Installs the subscriber of a worker (`tweetflow task exec`): one JSON object per event on
/// stdout, with its span fields, filtered by `TWEETFLOW_RUN_LOG` (default
/// [`DEFAULT_FILTER`]), for the engine to copy into the run's log.
pub fn init_worker() {
    let filter = EnvFilter::try_from_env("TWEETFLOW_RUN_LOG")
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::registry()
        .with(crate::telemetry::layer())
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(masked_stdout)
                .with_filter(filter),
        )
        .try_init();
}

/// Standard output, with secrets masked (a worker's log).
fn masked_stdout() -> crate::secrets::MaskingWriter<std::io::Stdout> {
    crate::secrets::MaskingWriter(std::io::stdout())
}

fn run_layer<S: Subscriber + for<'a> LookupSpan<'a>>() -> impl Layer<S> {
    let filter = EnvFilter::try_from_env("TWEETFLOW_RUN_LOG")
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let cap = LogCap::from_env().unwrap_or_else(|e| {
        eprintln!("warning: {e}; using the default cap");
        LogCap::default()
    });
    RunLogLayer::new(cap).with_filter(filter)
}

/// Routes the events of run `run_id` to `path` until the guard is dropped.
pub fn attach_run_log(run_id: &str, path: &Path) -> std::io::Result<RunLogGuard> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    lock_writers().insert(run_id.to_string(), Arc::new(Mutex::new(file)));
    Ok(RunLogGuard {
        run_id: run_id.to_string(),
    })
}

fn lock_writers() -> std::sync::MutexGuard<'static, Writers> {
    WRITERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Detaches a run's log file when dropped.
pub struct RunLogGuard {
    run_id: String,
}

impl Drop for RunLogGuard {
    fn drop(&mut self) {
        lock_writers().remove(&self.run_id);
    }
}

/// Writes events inside `run` spans to the run's log file, each task attempt's within its cap.
pub struct RunLogLayer {
    cap: LogCap,
}

impl RunLogLayer {
    /// A layer capping each attempt's log lines at `cap`.
    pub fn new(cap: LogCap) -> Self {
        RunLogLayer { cap }
    }
}

/// The log state of an `attempt` span: what it wrote and held back, and where it goes.
struct AttemptState {
    log: AttemptLog,
    writer: Arc<Mutex<File>>,
    spans: Json,
}

struct SpanFields(Map<String, Json>);
struct RunId(String);

#[derive(Default)]
struct JsonVisitor(Map<String, Json>);

impl Visit for JsonVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), Json::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), Json::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Json::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Json::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Json::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Json::from(value));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for RunLogLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut visitor = JsonVisitor::default();
        attrs.record(&mut visitor);
        let mut ext = span.extensions_mut();
        if span.name() == "run"
            && let Some(Json::String(run_id)) = visitor.0.get("run_id")
        {
            ext.insert(RunId(run_id.clone()));
        }
        ext.insert(SpanFields(visitor.0));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<SpanFields>() {
            let mut visitor = JsonVisitor(std::mem::take(&mut fields.0));
            values.record(&mut visitor);
            fields.0 = visitor.0;
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let mut run_id = None;
        let mut spans = Vec::new();
        let mut attempt = None;
        for span in scope.from_root() {
            if span.name() == "attempt" {
                attempt = Some(span.id());
            }
            let ext = span.extensions();
            if let Some(RunId(id)) = ext.get::<RunId>() {
                run_id = Some(id.clone());
            }
            let fields = ext
                .get::<SpanFields>()
                .map(|f| f.0.clone())
                .unwrap_or_default();
            spans.push(serde_json::json!({ "name": span.name(), "fields": fields }));
        }
        let Some(run_id) = run_id else { return };
        let Some(writer) = lock_writers().get(&run_id).cloned() else {
            return;
        };
        let mut visitor = JsonVisitor::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        let mut line = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": meta.level().as_str(),
            "target": meta.target(),
            "fields": visitor.0,
            "spans": spans,
        });
        crate::secrets::mask_json(&mut line);
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        if let Some(span) = attempt.and_then(|id| ctx.span(&id)) {
            let mut ext = span.extensions_mut();
            if ext.get_mut::<AttemptState>().is_none() {
                ext.insert(AttemptState {
                    log: AttemptLog::default(),
                    writer: writer.clone(),
                    spans: line["spans"].clone(),
                });
            }
            let Some(state) = ext.get_mut::<AttemptState>() else {
                return;
            };
            match state.log.admit(bytes, self.cap) {
                Some(now) => bytes = now,
                None => return,
            }
        }
        let mut file = writer.lock().unwrap_or_else(|e| e.into_inner());
        let _ = file.write_all(&bytes);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut state) = span.extensions_mut().remove::<AttemptState>() else {
            return;
        };
        let mut out = Vec::new();
        if let Some((bytes, lines)) = state.log.dropped() {
            let note = serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "WARN",
                "target": module_path!(),
                "fields": {
                    "message": format!(
                        "log cap of {} bytes per task attempt: {bytes} bytes in {lines} lines were dropped here (the head and the tail are kept)",
                        self.cap.max_bytes
                    ),
                    "dropped_bytes": bytes,
                    "dropped_lines": lines,
                },
                "spans": state.spans,
            });
            out.extend(note.to_string().into_bytes());
            out.push(b'\n');
        }
        for line in state.log.take_tail() {
            out.extend(line);
        }
        if !out.is_empty() {
            let mut file = state.writer.lock().unwrap_or_else(|e| e.into_inner());
            let _ = file.write_all(&out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the events that pass the filter, by target.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Seen {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            self.0
                .lock()
                .unwrap()
                .push(event.metadata().target().to_string());
        }
    }

    #[test]
    fn the_default_filter_keeps_every_tweetflow_crate_at_info_and_libraries_at_warn() {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry()
            .with(seen.clone().with_filter(EnvFilter::new(DEFAULT_FILTER)));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "tweetflow", "binary");
            tracing::info!(target: "tweetflow_plugin::x", "plugin");
            tracing::info!(target: "tweetflow_engine::run", "engine");
            tracing::debug!(target: "tweetflow_plugin::x", "too detailed");
            tracing::info!(target: "deltalake", "library");
            tracing::warn!(target: "deltalake", "library warning");
        });
        assert_eq!(
            *seen.0.lock().unwrap(),
            [
                "tweetflow",
                "tweetflow_plugin::x",
                "tweetflow_engine::run",
                "deltalake"
            ]
        );
    }

    /// Writes `lines` events in one attempt of run `run_id` (and one after it) through a
    /// layer capped at `cap`; returns the log's lines.
    fn log_attempt(run_id: &str, cap: u64, lines: u64) -> Vec<Json> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let guard = attach_run_log(run_id, &path).unwrap();
        let subscriber =
            tracing_subscriber::registry().with(RunLogLayer::new(LogCap { max_bytes: cap }));
        tracing::subscriber::with_default(subscriber, || {
            let run = tracing::info_span!("run", run_id = %run_id);
            let _run = run.enter();
            let attempt = tracing::info_span!("attempt", number = 1);
            attempt.in_scope(|| {
                for i in 0..lines {
                    tracing::info!(line = i, "output line {i:05}");
                }
            });
            drop(attempt);
            tracing::info!("after the attempt");
        });
        drop(guard);
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn an_attempt_log_keeps_its_head_and_tail_within_the_cap() {
        let lines = 2000;
        let full = log_attempt("cap-0", u64::MAX, lines);
        let size = |l: &Json| l.to_string().len() as u64 + 1;
        let total: u64 = full
            .iter()
            .filter(|l| l["fields"]["line"].is_u64())
            .map(size)
            .sum();
        assert_eq!(full.len() as u64, lines + 1, "no cap: every line");
        // (run, cap, whether lines are dropped)
        for (run_id, cap, capped) in [
            ("cap-1", total, false),
            ("cap-2", 20_000, true),
            ("cap-3", total - 1, true),
        ] {
            let log = log_attempt(run_id, cap, lines);
            let numbers: Vec<u64> = log
                .iter()
                .filter_map(|l| l["fields"]["line"].as_u64())
                .collect();
            let kept: u64 = log
                .iter()
                .filter(|l| l["fields"]["line"].is_u64())
                .map(size)
                .sum();
            let marker = log
                .iter()
                .position(|l| l["fields"]["dropped_bytes"].is_u64());
            assert_eq!(
                log.last().unwrap()["fields"]["message"],
                "after the attempt",
                "{run_id}"
            );
            assert!(kept <= cap, "{run_id}: {kept} bytes kept");
            assert_eq!(numbers.first(), Some(&0), "{run_id}: the head");
            assert_eq!(numbers.last(), Some(&(lines - 1)), "{run_id}: the tail");
            let Some(at) = marker else {
                assert!(!capped, "{run_id}: the drop is said");
                assert_eq!(numbers, (0..lines).collect::<Vec<_>>(), "{run_id}");
                continue;
            };
            assert!(capped, "{run_id}: nothing was dropped");
            let note = &log[at]["fields"];
            let head = &numbers[..at];
            let tail = &numbers[at..];
            assert!(
                head.windows(2).all(|w| w[1] == w[0] + 1),
                "{run_id}: contiguous head"
            );
            assert!(
                tail.windows(2).all(|w| w[1] == w[0] + 1),
                "{run_id}: contiguous tail"
            );
            let dropped_lines = tail[0] - head[head.len() - 1] - 1;
            assert_eq!(note["dropped_lines"], dropped_lines, "{run_id}");
            assert_eq!(
                note["dropped_bytes"].as_u64().unwrap() + kept,
                total,
                "{run_id}"
            );
        }
    }
}
