//! The benchmarks of tweetflow, each reached through `tweetflow bench ...`:
//!
//! * [`engine`]: generated DAGs of no-op tasks against a bare tokio spawn-and-join.
//! * [`medallion`]: replay → ingest → clean throughput and memory.
//! * [`infer`]: the bare ONNX Runtime loop ([`bare_loop`]) against the whole infer task.
//! * [`mlflow`]: batched metric logging against an MLflow server.
//! * [`trigger`]: Delta commit → triggered run start latency, and a daemon watching many
//!   tables.
//!
//! Every benchmark returns a report whose `Display` is what the command prints. Heap figures
//! come from a [`HeapCounter`] the binary supplies (its counting global allocator); resident
//! memory from [`peak_rss_mib`].

#![warn(missing_docs)]

pub mod bare_loop;
pub mod engine;
pub mod error;
pub mod heap;
pub mod infer;
pub mod medallion;
pub mod mlflow;
pub mod rss;
pub mod trace_export;
pub mod trigger;

pub use bare_loop::{BareLoopBench, bench_bare_loop, bench_bare_sessions};
pub use engine::{EngineBenchReport, bench_engine};
pub use error::BenchError;
pub use heap::{HeapCounter, NoHeapCounter};
pub use rss::peak_rss_mib;
