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
    /// A Delta table of the benchmark could not be written.
    #[error(transparent)]
    Table(#[from] tweetflow_delta::StorageError),
    /// The pipeline of the benchmark did not load.
    #[error("the bench pipeline did not load: {0}")]
    Pipeline(String),
    /// The scheduler stopped or refused.
    #[error(transparent)]
    Scheduler(#[from] tweetflow_engine::scheduler::SchedulerError),
    /// Something the benchmark waits for did not happen in time.
    #[error("timed out waiting until {0}")]
    Timeout(String),
}
