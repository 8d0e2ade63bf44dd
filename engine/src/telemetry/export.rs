//! The span processor between the tracer and the OTLP exporter: a bounded queue that never
//! blocks the span's thread, a worker thread that exports in batches, and secret masking of
//! every string the spans carry.

use std::borrow::Cow;
use std::fmt;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::trace::Status;
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

/// Spans waiting for export at most; more are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 2048;
/// Spans sent in one export request at most.
const MAX_BATCH: usize = 512;
/// How long a finished span waits for its batch at most.
const EXPORT_DELAY: Duration = Duration::from_secs(1);

enum Message {
    Span(Box<SpanData>),
    Resource(Box<Resource>),
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

/// A span processor with a bounded queue (see the module docs).
pub struct BoundedExport {
    sender: SyncSender<Message>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for BoundedExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedExport").finish_non_exhaustive()
    }
}

impl BoundedExport {
    /// A processor exporting through `exporter` on its own thread.
    pub fn new<E: SpanExporter + 'static>(exporter: E) -> Self {
        Self::with_capacity(exporter, QUEUE_CAPACITY)
    }

    /// A processor whose queue holds `capacity` spans.
    pub fn with_capacity<E: SpanExporter + 'static>(exporter: E, capacity: usize) -> Self {
        let (sender, receiver) = sync_channel(capacity);
        let worker = std::thread::Builder::new()
            .name("tweetflow-otlp".into())
            .spawn(move || work(exporter, receiver))
            .ok();
        BoundedExport {
            sender,
            worker: Mutex::new(worker),
        }
    }

    fn ask(&self, make: impl FnOnce(SyncSender<()>) -> Message, wait: Duration) -> OTelSdkResult {
        let (tx, rx) = sync_channel(1);
        self.sender
            .send(make(tx))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        rx.recv_timeout(wait)
            .map_err(|_| OTelSdkError::Timeout(wait))
    }
}

impl SpanProcessor for BoundedExport {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        match self.sender.try_send(Message::Span(Box::new(span))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => crate::metrics::global().spans_dropped("queue_full", 1),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Message::Flush, Duration::from_secs(5))
    }

    fn set_resource(&mut self, resource: &Resource) {
        // The provider sets it once, before any span ends.
        let _ = self
            .sender
            .send(Message::Resource(Box::new(resource.clone())));
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.ask(Message::Shutdown, timeout);
        if result.is_ok()
            && let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            let _ = worker.join();
        }
        result
    }
}

fn work<E: SpanExporter>(mut exporter: E, receiver: Receiver<Message>) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(MAX_BATCH);
    let mut oldest: Option<Instant> = None;
    loop {
        let wait = oldest.map_or(EXPORT_DELAY, |t| EXPORT_DELAY.saturating_sub(t.elapsed()));
        match receiver.recv_timeout(wait) {
            Ok(Message::Span(span)) => {
                batch.push(masked(*span));
                oldest.get_or_insert_with(Instant::now);
                if batch.len() >= MAX_BATCH {
                    export(&exporter, &mut batch);
                    oldest = None;
                }
            }
            Ok(Message::Resource(resource)) => exporter.set_resource(&resource),
            Ok(Message::Flush(done)) => {
                export(&exporter, &mut batch);
                oldest = None;
                let _ = done.send(());
            }
            Ok(Message::Shutdown(done)) => {
                // Spans queued before the shutdown message are still in the channel.
                while let Ok(Message::Span(span)) = receiver.try_recv() {
                    batch.push(masked(*span));
                }
                export(&exporter, &mut batch);
                let _ = exporter.shutdown();
                let _ = done.send(());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                export(&exporter, &mut batch);
                oldest = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                export(&exporter, &mut batch);
                return;
            }
        }
    }
}

fn export<E: SpanExporter>(exporter: &E, batch: &mut Vec<SpanData>) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::take(batch);
    let n = spans.len() as u64;
    if futures::executor::block_on(exporter.export(spans)).is_err() {
        crate::metrics::global().spans_dropped("export_failed", n);
    }
}

/// The span with every string it carries masked (see [`crate::secrets`]).
pub(crate) fn masked(mut span: SpanData) -> SpanData {
    span.name = mask_cow(span.name);
    mask_attributes(&mut span.attributes);
    for event in span.events.events.iter_mut() {
        event.name = mask_cow(std::mem::take(&mut event.name));
        mask_attributes(&mut event.attributes);
    }
    for link in span.links.links.iter_mut() {
        mask_attributes(&mut link.attributes);
    }
    if let Status::Error { description } = &mut span.status {
        *description = mask_cow(std::mem::take(description));
    }
    span
}

fn mask_cow(text: Cow<'static, str>) -> Cow<'static, str> {
    match crate::secrets::mask(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(masked) => Cow::Owned(masked),
    }
}

fn mask_attributes(attributes: &mut [KeyValue]) {
    for kv in attributes.iter_mut() {
        match &mut kv.value {
            Value::String(s) => {
                if let Cow::Owned(m) = crate::secrets::mask(s.as_str()) {
                    *s = StringValue::from(m);
                }
            }
            Value::Array(Array::String(items)) => {
                for s in items.iter_mut() {
                    if let Cow::Owned(m) = crate::secrets::mask(s.as_str()) {
                        *s = StringValue::from(m);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An exporter that takes a while and counts what it got.
    #[derive(Debug, Clone)]
    struct Slow(Arc<AtomicUsize>, Duration);

    impl SpanExporter for Slow {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            std::thread::sleep(self.1);
            self.0.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    fn span(name: &'static str) -> SpanData {
        use opentelemetry::trace::{
            SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState,
        };
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1u128),
                SpanId::from(1u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: vec![KeyValue::new("error", "login with pw-s3cr3t-value failed")],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[test]
    fn a_full_queue_drops_spans_without_waiting_and_counts_them() {
        let got = Arc::new(AtomicUsize::new(0));
        let p = BoundedExport::with_capacity(Slow(got.clone(), Duration::from_millis(300)), 4);
        let before = dropped("queue_full");
        let start = Instant::now();
        for _ in 0..200 {
            p.on_end(span("s"));
        }
        assert!(
            start.elapsed() < Duration::from_millis(250),
            "on_end waited for the exporter: {:?}",
            start.elapsed()
        );
        p.shutdown_with_timeout(Duration::from_secs(10)).unwrap();
        let lost = dropped("queue_full") - before;
        assert!(lost > 0, "nothing was dropped");
        assert_eq!(got.load(Ordering::SeqCst) as u64 + lost, 200);
    }

    #[test]
    fn secrets_are_masked_in_attributes() {
        crate::secrets::register("pw-s3cr3t-value");
        let s = masked(span("s"));
        let text = format!("{:?}", s.attributes);
        assert!(!text.contains("pw-s3cr3t-value"), "{text}");
    }

    fn dropped(reason: &str) -> u64 {
        let text = crate::metrics::global().encode();
        let prefix = format!("tweetflow_trace_spans_dropped_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.parse().unwrap())
    }
}
