//! The pipeline's `storage:` section: storage options for the object-store locations its
//! tasks read and write, and the wrapper that puts them in scope while a task runs.
//!
//! ```yaml
//! storage:
//!   aws_endpoint_url: http://127.0.0.1:9000
//!   aws_region: us-east-1
//!   aws_secret_access_key: "${env.LAKE_SECRET}"
//!   allow_unsafe_commits: false
//! ```
//!
//! Keys are `deltalake` / object_store storage options (`aws_*`, `azure_*`, `google_*`,
//! `max_retries`, ...) plus [`tweetflow_delta::storage::UNSAFE_COMMITS_OPTION`]; they override
//! the standard environment variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, ...).
//!
//! **Credentials are never recorded.** The value of a key that names a credential
//! ([`tweetflow_delta::storage::is_credential_key`]: secret keys, session tokens, passwords,
//! account keys, ...) is written as `***` wherever the pipeline is recorded (`plan.json`,
//! `run.json`, logs, errors, the editor schema). The loading process keeps the real value in
//! memory for its tasks; a process that reads the pipeline back from the run store (`--resume`)
//! takes it from the environment variable of the same name in upper case
//! (`AWS_SECRET_ACCESS_KEY`), else the task fails with a config error naming the key.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tweetflow_delta::storage::{self as delta_storage, MASK, StorageOptions, is_credential_key};
use tweetflow_engine::{Section, Task, TaskContext, TaskError, TaskOutput};

/// One option value: a string, or a boolean or number written as one.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OptionValue {
    /// A string.
    Text(String),
    /// `true` / `false`.
    Flag(bool),
    /// A number.
    Number(f64),
}

impl OptionValue {
    fn text(&self) -> String {
        match self {
            OptionValue::Text(s) => s.clone(),
            OptionValue::Flag(b) => b.to_string(),
            OptionValue::Number(n) => n.to_string(),
        }
    }
}

/// The `storage:` section: storage options by key.
#[derive(Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(transparent)]
pub struct StorageSection(pub BTreeMap<String, OptionValue>);

/// Credential values read by this process, by key (the recorded pipeline holds `***`).
fn vault() -> &'static Mutex<HashMap<String, String>> {
    static VAULT: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    VAULT.get_or_init(|| Mutex::new(HashMap::new()))
}

impl<'de> Deserialize<'de> for StorageSection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, OptionValue>::deserialize(d)?;
        let mut kept = vault().lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in &map {
            let text = v.text();
            if is_credential_key(k) && text != MASK {
                kept.insert(k.to_ascii_lowercase(), text);
            }
        }
        Ok(StorageSection(map))
    }
}

impl Serialize for StorageSection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let shown: BTreeMap<&String, String> = self
            .0
            .iter()
            .map(|(k, v)| {
                let text = if is_credential_key(k) {
                    MASK.to_string()
                } else {
                    v.text()
                };
                (k, text)
            })
            .collect();
        shown.serialize(s)
    }
}

impl Section for StorageSection {
    const NAME: &'static str = "storage";
    const DESCRIPTION: &'static str = "Storage options (credentials, endpoint, region, commit mode) for the pipeline's object-store locations (s3://, az://, gs://); credentials are recorded as ***.";
    const EXAMPLE: &'static str =
        "storage: { aws_endpoint_url: \"http://127.0.0.1:9000\", aws_region: us-east-1 }";
}

impl StorageSection {
    /// The options with every credential resolved (see the module docs); an error names a
    /// credential that was recorded as `***` and is available nowhere.
    pub fn resolve(&self) -> Result<StorageOptions, TaskError> {
        let kept = vault().lock().unwrap_or_else(|e| e.into_inner());
        let mut out = StorageOptions::new();
        for (k, v) in &self.0 {
            let mut text = v.text();
            if text == MASK && is_credential_key(k) {
                let key = k.to_ascii_lowercase();
                text = match kept
                    .get(&key)
                    .cloned()
                    .or_else(|| std::env::var(key.to_ascii_uppercase()).ok())
                {
                    Some(v) => v,
                    None => {
                        return Err(TaskError::config(
                            &format!("storage.{k}"),
                            format!(
                                "the credential is recorded as {MASK} and this process has no value for it: set {} in the environment",
                                key.to_ascii_uppercase()
                            ),
                        ));
                    }
                };
            }
            out.insert(k.clone(), text);
        }
        Ok(out)
    }
}

/// A task whose run sees the pipeline's `storage:` options (for the tasks that read and write
/// tables and landing folders).
pub struct WithStorage<T>(pub T);

impl<T: Task> Task for WithStorage<T> {
    type Params = T::Params;
    const TYPE: &'static str = T::TYPE;
    const VERSION: &'static str = T::VERSION;
    const DESCRIPTION: &'static str = T::DESCRIPTION;
    const SHARDABLE: bool = T::SHARDABLE;
    const WRITES_TABLE: bool = T::WRITES_TABLE;

    async fn run(&self, ctx: &TaskContext, params: T::Params) -> Result<TaskOutput, TaskError> {
        let options = match ctx.pipeline.section::<StorageSection>() {
            Some(section) => section.resolve()?,
            None => StorageOptions::new(),
        };
        delta_storage::scoped(options, self.0.run(ctx, params)).await
    }

    fn output_columns(&self, params: &T::Params) -> Option<Vec<(String, String)>> {
        self.0.output_columns(params)
    }

    async fn output_still_valid(&self, params: &T::Params, output: &TaskOutput) -> bool {
        self.0.output_still_valid(params, output).await
    }

    fn watch_paths(&self, params: &T::Params) -> Vec<PathBuf> {
        self.0.watch_paths(params)
    }

    fn cache_inputs(&self, params: &T::Params) -> Vec<PathBuf> {
        self.0.cache_inputs(params)
    }

    fn locations(&self, params: &T::Params) -> Vec<(&'static str, String)> {
        self.0.locations(params)
    }
}
