//! Tracing set-up: human or JSON logs on stderr, and each run's events in its `log.jsonl`.
//!
//! The executor opens a `run` span (with a `run_id` field) around a run; [`RunLogLayer`]
//! writes every event inside such a span, with the names and fields of its spans, as one JSON
//! line to the log attached to that run id ([`attach_run_log`]). Several runs in one process
//! (the scheduler) each get their own file. Secrets are masked in both (see [`crate::secrets`]).

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

type Writers = HashMap<String, Arc<Mutex<File>>>;
static WRITERS: LazyLock<Mutex<Writers>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The default filter: tweetflow's own events at `info`, libraries' (delta-rs, HTTP) at `warn`.
///
/// A target directive matches every target it is a prefix of, so `tweetflow` covers the
/// binary and every `tweetflow_*` crate (module paths such as `tweetflow_engine::executor`)
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
/// by `TWEETFLOW_RUN_LOG` (both default to [`DEFAULT_FILTER`]). Does nothing if a subscriber
/// is already installed.
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
    RunLogLayer.with_filter(filter)
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

/// Writes events inside `run` spans to the run's log file.
pub struct RunLogLayer;

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
        for span in scope.from_root() {
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
        let mut file = writer.lock().unwrap_or_else(|e| e.into_inner());
        let _ = file.write_all(&bytes);
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
            tracing::info!(target: "tweetflow_engine::executor", "engine");
            tracing::debug!(target: "tweetflow_plugin::x", "too detailed");
            tracing::info!(target: "deltalake", "library");
            tracing::warn!(target: "deltalake", "library warning");
        });
        assert_eq!(
            *seen.0.lock().unwrap(),
            [
                "tweetflow",
                "tweetflow_plugin::x",
                "tweetflow_engine::executor",
                "deltalake"
            ]
        );
    }
}
