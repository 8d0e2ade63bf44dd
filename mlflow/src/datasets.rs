//! Datasets of runs (`runs/log-inputs`): what a run read and wrote, shown in the Datasets
//! section of the MLflow UI.
//!
//! A [`Dataset`] is identified in its experiment by its name and digest; its `source`,
//! `schema` and `profile` are JSON documents kept as strings, as on the wire. Whether a run
//! read or wrote it is the [`CONTEXT_TAG`] of the [`DatasetInput`].

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::validation;

/// The input tag MLflow's UI shows as a dataset's context (e.g. `training`, `input`, `output`).
pub const CONTEXT_TAG: &str = "mlflow.data.context";

/// Most datasets sent in one `log-inputs` call.
pub const MAX_DATASETS_PER_CALL: usize = 100;

/// A dataset as MLflow stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// Name (e.g. the table's name).
    pub name: String,
    /// Short hash of the content; a new digest is a new dataset.
    pub digest: String,
    /// Kind of source (e.g. `delta_table`, `local`).
    pub source_type: String,
    /// The source as a JSON document (e.g. `{"path": ..., "delta_table_version": 3}`).
    pub source: String,
    /// The schema as a JSON document (`{"mlflow_colspec": [...]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Summary figures as a JSON document (e.g. `{"num_rows": 10}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A tag of a dataset input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTag {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// A dataset attached to a run, with tags such as its context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    /// Tags of the link (e.g. [`CONTEXT_TAG`]).
    #[serde(default)]
    pub tags: Vec<InputTag>,
    /// The dataset.
    pub dataset: Dataset,
}

impl DatasetInput {
    /// `dataset` in the context `context` (`input`, `output`, `training`, ...).
    pub fn with_context(dataset: Dataset, context: &str) -> Self {
        DatasetInput {
            tags: vec![InputTag {
                key: CONTEXT_TAG.to_string(),
                value: context.to_string(),
            }],
            dataset,
        }
    }

    /// The value of the [`CONTEXT_TAG`], if any.
    pub fn context(&self) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == CONTEXT_TAG)
            .map(|t| t.value.as_str())
    }
}

/// The datasets of a run, as `runs/get` returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInputs {
    /// The datasets.
    #[serde(default)]
    pub dataset_inputs: Vec<DatasetInput>,
}

#[derive(Deserialize)]
struct Empty {}

fn check(input: &DatasetInput) -> Result<()> {
    let d = &input.dataset;
    validation::non_empty("dataset name", &d.name)?;
    validation::non_empty("dataset digest", &d.digest)?;
    validation::non_empty("dataset source type", &d.source_type)?;
    for (what, doc) in [
        ("source", Some(&d.source)),
        ("schema", d.schema.as_ref()),
        ("profile", d.profile.as_ref()),
    ] {
        if let Some(doc) = doc
            && serde_json::from_str::<serde_json::Value>(doc).is_err()
        {
            return Err(Error::InvalidInput(format!(
                "dataset {:?}: its {what} must be a JSON document",
                d.name
            )));
        }
    }
    for t in &input.tags {
        validation::key("dataset input tag key", &t.key)?;
    }
    Ok(())
}

impl Client {
    /// Attaches datasets to a run (`runs/log-inputs`), in calls of at most
    /// [`MAX_DATASETS_PER_CALL`]. The server keeps one link per dataset (name and digest) and
    /// run: a dataset already attached keeps its first tags.
    pub async fn log_inputs(&self, run_id: &str, datasets: &[DatasetInput]) -> Result<()> {
        validation::non_empty("run id", run_id)?;
        for d in datasets {
            check(d)?;
        }
        for chunk in datasets.chunks(MAX_DATASETS_PER_CALL) {
            let _: Empty = self
                .call(
                    Method::POST,
                    "runs/log-inputs",
                    &[],
                    Some(&json!({"run_id": run_id, "datasets": chunk})),
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset() -> Dataset {
        Dataset {
            name: "silver".into(),
            digest: "1a2b3c4d".into(),
            source_type: "delta_table".into(),
            source: r#"{"path":"file:///t/silver","delta_table_version":2}"#.into(),
            schema: Some(r#"{"mlflow_colspec":[]}"#.into()),
            profile: None,
        }
    }

    #[test]
    fn inputs_carry_their_context_and_serialize_as_on_the_wire() {
        let input = DatasetInput::with_context(dataset(), "output");
        assert_eq!(input.context(), Some("output"));
        let v = serde_json::to_value(&input).unwrap();
        assert_eq!(v["tags"][0]["key"], CONTEXT_TAG);
        assert_eq!(v["dataset"]["source_type"], "delta_table");
        assert!(v["dataset"].get("profile").is_none());
    }

    #[test]
    fn documents_that_are_not_json_are_refused_before_sending() {
        let mut d = dataset();
        d.source = "file:///t/silver".into();
        let err = check(&DatasetInput::with_context(d, "input")).unwrap_err();
        assert!(err.to_string().contains("source"), "{err}");
        assert!(check(&DatasetInput::with_context(dataset(), "input")).is_ok());
    }
}
