//! OpenTelemetry traces: the engine's `tracing` spans (`run`, `task`, `attempt`, `shard`)
//! exported over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! ```text
//!  tracing spans ──tracing-opentelemetry──▶ SDK spans ──on_end──▶ BoundedExport (queue ≤ 2048)
//!                                                                 │ full: dropped + counted
//!                                         secrets masked ◀────────┘ worker thread, batches
//!                                                │
//!                                                └──▶ OTLP/HTTP POST /v1/traces
//! ```
//!
//! The standard variables apply: `OTEL_EXPORTER_OTLP_ENDPOINT` / `..._TRACES_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_HEADERS` / `..._TRACES_HEADERS` (their values are treated as secrets),
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SERVICE_NAME` (default `tweetflow`),
//! `OTEL_RESOURCE_ATTRIBUTES`, and `OTEL_EXPORTER_OTLP_PROTOCOL` (only `http/protobuf` is
//! built in; another value is warned about and `http/protobuf` is used). `OTEL_SDK_DISABLED=true`
//! turns export off.
//!
//! Export never slows or fails a run: a finished span is put on a bounded queue without
//! waiting; when the queue is full the span is dropped and counted in
//! `tweetflow_trace_spans_dropped_total{reason="queue_full"}`, and spans the collector did not
//! take are counted with `reason="export_failed"`.
//!
//! The W3C trace context travels on (see [`context`]): `command` tasks get `TRACEPARENT`,
//! `tweetflow task exec` (local shards, Ray jobs) continues the trace from the attempt file,
//! and a resumed run's root span links to the first execution's.

pub mod context;
mod export;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

pub use export::{BoundedExport, QUEUE_CAPACITY};

/// Whether new spans are left out of the export (see [`pause_export`]).
static PAUSED: AtomicBool = AtomicBool::new(false);

/// The tracer provider while export is on, for [`shutdown`].
static PROVIDER: OnceLock<Mutex<Option<SdkTracerProvider>>> = OnceLock::new();

/// Why trace export could not be set up (the process goes on without it).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter rejected its configuration (e.g. a malformed endpoint).
    #[error("cannot set up the OTLP trace exporter (check OTEL_EXPORTER_OTLP_*): {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Whether the environment asks for trace export.
pub fn export_requested() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The tracing layer that turns spans into exported OTLP spans, when the environment asks
/// for export (`None` otherwise, or when set-up failed: a warning then says why). Call before
/// the async runtime starts (the HTTP client runs its own).
pub fn layer<S>() -> Option<Box<dyn Layer<S> + Send + Sync>>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    if !export_requested() {
        return None;
    }
    let provider = match provider() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("warning: {e}; traces are not exported");
            return None;
        }
    };
    let tracer = provider.tracer("tweetflow");
    let _ = PROVIDER.set(Mutex::new(Some(provider)));
    let filter = EnvFilter::try_from_env("TWEETFLOW_TRACE")
        .unwrap_or_else(|_| EnvFilter::new(crate::logging::DEFAULT_FILTER));
    let paused =
        tracing_subscriber::filter::dynamic_filter_fn(|_, _| !PAUSED.load(Ordering::Relaxed));
    Some(Box::new(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(filter)
            .with_filter(paused),
    ))
}

/// Whether export is set up in this process.
pub fn exporting() -> bool {
    PROVIDER.get().is_some()
}

/// Stops (`true`) or resumes (`false`) turning new spans into exported ones, e.g. to measure
/// the cost of export within one process (`tweetflow bench engine --trace-export`).
pub fn pause_export(paused: bool) {
    PAUSED.store(paused, Ordering::Relaxed);
}

fn provider() -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    if let Ok(p) = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL")
        && !p.is_empty()
        && p != "http/protobuf"
    {
        eprintln!(
            "warning: OTEL_EXPORTER_OTLP_PROTOCOL={p} is not built in: traces go as http/protobuf (an OTLP/HTTP endpoint, usually port 4318)"
        );
    }
    for name in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        // Header values are credentials (API keys, bearer tokens): never written anywhere.
        if let Ok(headers) = std::env::var(name) {
            for pair in headers.split(',') {
                if let Some((_, value)) = pair.split_once('=') {
                    crate::secrets::register(value.trim());
                }
            }
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "tweetflow".into());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(BoundedExport::new(exporter))
        .with_resource(resource)
        .build())
}

/// Exports the spans still queued (waiting at most a few seconds) and stops export. Call at
/// the end of the process; does nothing when export is off.
pub fn shutdown() {
    let Some(lock) = PROVIDER.get() else { return };
    let provider = lock.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(provider) = provider {
        let _ = provider.shutdown();
    }
}
