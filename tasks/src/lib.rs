//! # tweetflow-tasks
//!
//! The task plugins shipped with tweetflow. [`register_all`] adds every type to a registry.
//!
//! | type      | does                                                            |
//! |-----------|-----------------------------------------------------------------|
//! | `command` | runs a program with args, env and working dir                  |
//! | `noop`    | does nothing (placeholders, joins, engine benchmarks)           |
//! | `log-metrics` | evaluates the gold predictions and logs metrics, params and a confusion matrix to MLflow ([`metrics`]) |
//! | `mlflow-log` | logs the numbers of JSON files to the pipeline run's MLflow run |
//! | `infer`   | scores new silver tweets with an ONNX sentiment model into a gold Delta table ([`infer`]) |
//! | `report`  | charts of the gold table and a self-contained `report.html` ([`metrics`]) |
//! | `replay`, `ingest`, `clean`, `aggregate`, `profile`, `optimize`, `vacuum`, `reset` | the Delta Lake medallion tasks ([`medallion`]) |
//! | `sql`     | a Delta table from a SQL query over Delta tables, on DataFusion ([`sql`]) |
//!
//! Every task that writes a Delta table applies the task's `expect:` ([`expect`]).

mod command;
pub mod expect;
pub mod infer;
pub mod medallion;
pub mod metrics;
pub mod mlflow_link;
mod mlflow_log;
mod noop;
pub mod observers;
mod run_store_guard;
mod shards;
pub mod sql;
mod storage;
mod table_error;
mod table_watch;

pub use command::{CommandParams, CommandTask};
pub use mlflow_log::{MlflowLogParams, MlflowLogTask};
pub use noop::{NoopParams, NoopTask};
pub use shards::shard_of;
pub use storage::{OptionValue, StorageSection, WithStorage};
pub use table_error::{Result as TableResult, TableTaskError};
pub use table_watch::DeltaWatcher;

use expect::Expecting;

use tweetflow_engine::Registry;

/// Registers every task type tweetflow ships and the
/// pipeline sections of the run observers it ships and the `storage:` section; the tasks
/// that touch tables and landing folders run with the pipeline's storage options in scope.
pub fn register_all(registry: &mut Registry) {
    // Alerts (`notify:`, `sla:`) live in their own crate, with their observer.
    tweetflow_notify::register_sections(registry);
    registry
        .register_section::<mlflow_link::MlflowSection>()
        .register_section::<storage::StorageSection>()
        .set_expect_checker(expect::checker())
        .register(command::CommandTask)
        .register(noop::NoopTask)
        .register(WithStorage(metrics::LogMetricsTask))
        .register(WithStorage(metrics::ReportTask))
        .register(mlflow_log::MlflowLogTask)
        .register(WithStorage(Expecting(infer::InferTask)))
        .register(WithStorage(medallion::replay::ReplayTask))
        .register(WithStorage(Expecting(medallion::ingest::IngestTask)))
        .register(WithStorage(Expecting(medallion::clean::CleanTask)))
        .register(WithStorage(Expecting(medallion::aggregate::AggregateTask)))
        .register(WithStorage(medallion::profile::ProfileTask))
        .register(WithStorage(medallion::maintenance::OptimizeTask))
        .register(WithStorage(medallion::maintenance::VacuumTask))
        .register(WithStorage(medallion::maintenance::ResetTask))
        .register(WithStorage(Expecting(sql::SqlTask)));
}

/// A registry with every built-in task type.
pub fn default_registry() -> Registry {
    let mut registry = Registry::new();
    register_all(&mut registry);
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wrappers (such as the storage scope) keep what a type declares.
    #[test]
    fn registered_types_keep_their_declarations() {
        let registry = default_registry();
        let shardable: Vec<&str> = registry
            .iter()
            .filter(|t| t.shardable())
            .map(|t| t.type_name())
            .collect();
        assert_eq!(shardable, ["clean", "command", "infer", "ingest"]);
        let infer = registry.get("infer").expect("infer registered");
        assert_eq!(
            infer.version(),
            <infer::InferTask as tweetflow_engine::Task>::VERSION
        );
        // The locations a Ray task's validation checks, through both wrappers.
        let params = serde_json::json!({
            "input": "data/silver", "table": "data/gold", "model": "data/model"
        });
        assert_eq!(
            infer.locations(&params),
            [
                ("input", "data/silver".to_string()),
                ("table", "data/gold".to_string()),
                ("model", "data/model".to_string())
            ]
        );
    }
}
