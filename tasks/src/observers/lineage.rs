//! What an MLflow run shows of a pipeline run beyond its numbers: the Delta tables it read
//! and wrote as MLflow datasets, MLflow's system tags (source, user, description) and the
//! registered model version its inference resolved.
//!
//! - A table written by a task (its output has `table` and `table_version`) is a dataset in
//!   the context `output`; a table a task reads (`with.input`) that the run did not write is
//!   one in the context `input` (a `sql` task's `tables` too). Each has a `delta_table` source (URL and version), a digest
//!   of URL and version (a new version is a new dataset), the schema as MLflow column specs
//!   and the row count as the profile.
//! - `mlflow.source.name` is the pipeline file, `mlflow.source.type` `LOCAL`, `mlflow.user`
//!   the user running the engine, `mlflow.note.content` the pipeline's description with a
//!   link to the `report.html` artifact when a `report` task succeeded.
//! - An `infer` task's model: `model_uri`, `model_name`, `model_version`, `model_alias`, as
//!   tags (`tweetflow.` prefix) and params (the names `log-metrics` uses).

use serde_json::{Value, json};
use tweetflow_engine::{Pipeline, RunRecord};
use tweetflow_mlflow::datasets::{Dataset, DatasetInput};
use tweetflow_mlflow::{ModelUri, Param, RunTag};

/// Context of a table the run wrote.
pub const OUTPUT: &str = "output";
/// Context of a table the run only read.
pub const INPUT: &str = "input";
/// The `source_type` of the Delta table datasets.
pub const DELTA_SOURCE: &str = "delta_table";

/// The user for `mlflow.user`: `USER`, else `LOGNAME`, else the name of the process's user
/// (`id -un`), else `unknown`.
fn user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .or_else(|| {
            let out = std::process::Command::new("id").arg("-un").output().ok()?;
            let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (out.status.success() && !name.is_empty()).then_some(name)
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// The system tags set when the MLflow run is created: source name and type, and user.
pub fn source_tags(record: &RunRecord) -> Vec<RunTag> {
    vec![
        RunTag::new("mlflow.source.name", record.pipeline_file.clone()),
        RunTag::new("mlflow.source.type", "LOCAL"),
        RunTag::new("mlflow.user", user()),
    ]
}

/// The run's description (`mlflow.note.content`, Markdown): the pipeline's description and,
/// when a `report` task succeeded, a link to its `report.html` in the run's artifacts
/// (`run_url` is the run's page in the MLflow UI).
pub fn note(pipeline: &Pipeline, record: &RunRecord, run_url: &str) -> String {
    let mut out = pipeline
        .description
        .clone()
        .unwrap_or_else(|| format!("Pipeline {}", pipeline.name));
    let reported = pipeline.tasks.iter().any(|t| {
        t.task_type == "report"
            && record
                .tasks
                .get(&t.id)
                .is_some_and(|r| r.status.is_success())
    });
    if reported {
        let path = format!(
            "{}/{}",
            crate::metrics::REPORT_ARTIFACT_DIR,
            crate::metrics::REPORT_HTML
        );
        out.push_str(&format!(
            "\n\nReport: [{path}]({}/artifacts/{path})",
            run_url.trim_end_matches('/')
        ));
    }
    out
}

/// A table of the run and how it was used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableUse {
    /// Where the table is (as the pipeline names it).
    pub location: String,
    /// The version the run wrote (outputs) or found at its end (inputs; `None`: latest).
    pub version: Option<i64>,
    /// [`OUTPUT`] or [`INPUT`].
    pub context: &'static str,
}

/// The tables of a run: the ones tasks wrote, then the ones tasks read and no task wrote.
pub fn table_uses(pipeline: &Pipeline, record: &RunRecord) -> Vec<TableUse> {
    let mut out: Vec<TableUse> = Vec::new();
    for task in &pipeline.tasks {
        let Some(output) = record.tasks.get(&task.id).and_then(|t| t.output.as_ref()) else {
            continue;
        };
        if let (Some(Value::String(table)), Some(version)) = (
            output.get("table"),
            output.get("table_version").and_then(Value::as_i64),
        ) && version >= 0
            && !out.iter().any(|u| &u.location == table)
        {
            out.push(TableUse {
                location: table.clone(),
                version: Some(version),
                context: OUTPUT,
            });
        }
    }
    for task in &pipeline.tasks {
        // `input` of the medallion tasks, the `tables` a `sql` task reads.
        let single = task.with.get("input").into_iter();
        let named = task
            .with
            .get("tables")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values());
        for input in single.chain(named).filter_map(Value::as_str) {
            if !out.iter().any(|u| u.location == input) {
                out.push(TableUse {
                    location: input.to_string(),
                    version: None,
                    context: INPUT,
                });
            }
        }
    }
    out
}

/// MLflow's column type for a Delta type (complex types are shown as strings).
fn colspec_type(t: &deltalake::kernel::DataType) -> &'static str {
    let name = serde_json::to_value(t).unwrap_or(Value::Null);
    match name.as_str() {
        Some("string") => "string",
        Some("long") => "long",
        Some("integer" | "short" | "byte") => "integer",
        Some("double") => "double",
        Some("float") => "float",
        Some("boolean") => "boolean",
        Some("binary") => "binary",
        Some("timestamp" | "timestamp_ntz" | "date") => "datetime",
        Some(s) if s.starts_with("decimal") => "double",
        _ => "string",
    }
}

/// The short digest of a table version: the first 8 hex digits of BLAKE3(`url@version`).
pub fn digest(url: &str, version: i64) -> String {
    blake3::hash(format!("{url}@{version}").as_bytes()).to_hex()[..8].to_string()
}

/// The name of a table's dataset: the last segment of its location.
fn table_name(location: &str) -> String {
    location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(location)
        .to_string()
}

/// The dataset of one table use, read from the table (schema, row count); `None` when the
/// table does not exist.
pub async fn table_dataset(
    use_: &TableUse,
) -> Result<Option<DatasetInput>, tweetflow_delta::StorageError> {
    use tweetflow_delta::table;
    let Some(mut t) = table::open_table(&use_.location).await? else {
        return Ok(None);
    };
    if let Some(v) = use_.version
        && v != table::version(&t)
        && let Ok(v) = u64::try_from(v)
    {
        t.load_version(v)
            .await
            .map_err(|e| tweetflow_delta::StorageError::delta(&use_.location, e))?;
    }
    let version = table::version(&t);
    let url = table::table_url(&use_.location)?.to_string();
    let schema = table::delta_schema(&t, &use_.location)?;
    let columns: Vec<Value> = schema
        .fields()
        .map(|f| {
            json!({
                "type": colspec_type(f.data_type()),
                "name": f.name(),
                "required": !f.is_nullable(),
            })
        })
        .collect();
    let mut profile = json!({});
    if let Some(rows) = table::row_count(&t, &use_.location)? {
        profile["num_rows"] = json!(rows);
    }
    let dataset = Dataset {
        name: table_name(&use_.location),
        digest: digest(&url, version),
        source_type: DELTA_SOURCE.to_string(),
        source: json!({"path": url, "delta_table_version": version}).to_string(),
        schema: Some(json!({ "mlflow_colspec": columns }).to_string()),
        profile: Some(profile.to_string()),
    };
    Ok(Some(DatasetInput::with_context(dataset, use_.context)))
}

/// The datasets of a run's tables; a table that cannot be read is left out (with a warning).
pub async fn datasets(pipeline: &Pipeline, record: &RunRecord) -> Vec<DatasetInput> {
    let mut out = Vec::new();
    for u in table_uses(pipeline, record) {
        match table_dataset(&u).await {
            Ok(Some(d)) => out.push(d),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(table = %u.location, error = %e, "table left out of the MLflow datasets")
            }
        }
    }
    out
}

/// The registered model an `infer` task resolved: `(key, value)` pairs `model_uri`,
/// `model_name`, `model_version` and, for an alias URI, `model_alias`.
pub fn model_fields(pipeline: &Pipeline, record: &RunRecord) -> Vec<(String, String)> {
    let output = pipeline
        .tasks
        .iter()
        .filter(|t| t.task_type == "infer")
        .find_map(|t| record.tasks.get(&t.id).and_then(|r| r.output.as_ref()));
    let Some(output) = output else {
        return Vec::new();
    };
    let field = |k: &str| {
        output
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let Some(uri) = field("model_uri") else {
        return Vec::new();
    };
    let mut out = vec![("model_uri".to_string(), uri.clone())];
    match ModelUri::parse(&uri) {
        Ok(ModelUri::Alias { name, alias }) => {
            out.push(("model_name".into(), name));
            out.push(("model_alias".into(), alias));
        }
        Ok(ModelUri::Version { name, .. })
        | Ok(ModelUri::Latest { name })
        | Ok(ModelUri::Stage { name, .. }) => out.push(("model_name".into(), name)),
        Err(_) => {}
    }
    if let Some(version) = field("model_version") {
        out.push(("model_version".into(), version));
    }
    out
}

/// [`model_fields`] as tags (`tweetflow.model_*`) and params (`model_*`).
pub fn model_tags_and_params(pipeline: &Pipeline, record: &RunRecord) -> (Vec<RunTag>, Vec<Param>) {
    let fields = model_fields(pipeline, record);
    let tags = fields
        .iter()
        .map(|(k, v)| RunTag::new(format!("tweetflow.{k}"), v.clone()))
        .collect();
    let params = fields.into_iter().map(|(k, v)| Param::new(k, v)).collect();
    (tags, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_change_with_the_version_and_names_are_the_last_segment() {
        let a = digest("file:///d/silver/", 1);
        assert_eq!(a.len(), 8);
        assert_ne!(a, digest("file:///d/silver/", 2));
        assert_eq!(table_name("data/demo/silver/"), "silver");
        assert_eq!(table_name("s3://b/gold"), "gold");
    }

    #[test]
    fn delta_types_map_to_mlflow_column_types() {
        use deltalake::kernel::DataType;
        assert_eq!(colspec_type(&DataType::STRING), "string");
        assert_eq!(colspec_type(&DataType::LONG), "long");
        assert_eq!(colspec_type(&DataType::TIMESTAMP), "datetime");
    }
}
