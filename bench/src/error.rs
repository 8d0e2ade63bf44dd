//! Errors of the benchmarks.

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The engine refused or failed a run.
    #[error(transparent)]
    Engine(#[from] tweetflow_engine::EngineError),
    /// A run of the benchmark did not succeed.
    #[error("bench run {pipeline} did not succeed")]
    RunFailed {
        /// The generated pipeline's name.
        pipeline: String,
    },
    /// The temporary run store could not be created.
    #[error("creating a temporary folder")]
    TempDir(#[source] std::io::Error),
    /// `--trace-export` without an OTLP endpoint to export to.
    #[error(
        "--trace-export measures the OTLP trace export: set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://127.0.0.1:4318) to a receiver"
    )]
    NoTraceExport,
}
