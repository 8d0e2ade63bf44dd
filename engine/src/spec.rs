//! The pipeline file's model: a validated [`Pipeline`] and its [`TaskSpec`]s, with their
//! schedule, retry and cache policies. [`crate::loader`] reads and checks a file into it.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::secrets::{self, MissingSecret, SecretSlot};
use crate::section::Section;
use crate::trigger::{TriggerSlot, TriggerSpec, TriggerValues};

/// A validated pipeline, ready to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pipeline {
    /// The pipeline's name.
    pub name: String,
    /// What the pipeline does.
    pub description: Option<String>,
    /// Resolved params: defaults from the file, overridden by `--param`.
    pub params: BTreeMap<String, Json>,
    /// The tasks, in file order.
    pub tasks: Vec<TaskSpec>,
    /// BLAKE3 hash of the file's text.
    pub spec_hash: String,
    /// When the scheduler runs the pipeline.
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
    /// The tables whose new versions start the pipeline (see [`crate::trigger`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerSpec>,
    /// The strings that use `${trigger.…}`, filled in by [`Pipeline::with_trigger`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trigger_slots: Vec<TriggerSlot>,
    /// The strings that hold secrets (see [`crate::secrets`]): in memory they hold the values
    /// tasks need; [`Pipeline::to_plan`] writes `***` there and [`Pipeline::from_plan`] reads
    /// them from the environment again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretSlot>,
    /// Which of its finished runs the run store keeps (see [`crate::store::prune`]).
    #[serde(default)]
    pub retention: Option<RetentionPolicy>,
    /// Top-level sections that plugins own, by name, as JSON with the section's defaults
    /// filled in (see [`crate::section`]). Stored flattened, beside the other fields.
    #[serde(flatten, deserialize_with = "crate::section::flattened::deserialize")]
    pub sections: BTreeMap<String, Json>,
}

/// A plan that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A secret is no longer in the environment.
    #[error(transparent)]
    MissingSecret(#[from] MissingSecret),
    /// The plan does not decode.
    #[error("{0}")]
    Decode(#[from] serde_json::Error),
}

/// What the scheduler does when a tick comes while a run of the same pipeline is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Skip the tick (recorded as skipped).
    Skip,
    /// Start it when the active run ends (within `start_deadline`).
    Queue,
    /// Cancel the active run, then start.
    CancelRunning,
    /// Start it alongside.
    Allow,
}

/// Which ticks missed while the scheduler was down are run when it comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Catchup {
    /// None: missed ticks are recorded as missed.
    None,
    /// Only the latest missed tick.
    Last,
    /// Every missed tick, oldest first, at most `max_catchup` (the latest ones).
    All,
}

/// What the scheduler does with a run of the pipeline whose engine died (`interrupted`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnInterrupted {
    /// Resume it (re-running only what did not succeed), at most `max_resumes` times.
    #[default]
    Resume,
    /// Mark it failed, with the reason `engine died` and the time of its last event.
    Fail,
}

/// The `schedule:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleSpec {
    /// Cron expression (5 fields, 6 with seconds, or an alias such as `@hourly`).
    pub cron: String,
    /// IANA time zone the expression is read in (default `UTC`).
    pub timezone: String,
    /// Overlap policy (default `skip`).
    pub overlap: Overlap,
    /// Catch-up policy (default `last`).
    pub catchup: Catchup,
    /// Most missed ticks run with `catchup: all` (default 10).
    pub max_catchup: u32,
    /// A due tick not started by then is recorded as missed (default: no deadline).
    #[serde(with = "opt_duration")]
    #[schemars(with = "Option<u64>")]
    pub start_deadline: Option<Duration>,
    /// What to do with an interrupted run (default `resume`).
    #[serde(default)]
    pub on_interrupted: OnInterrupted,
    /// Most resumes of one run before it is marked failed (default 3).
    #[serde(default = "default_max_resumes")]
    pub max_resumes: u32,
}

fn default_max_resumes() -> u32 {
    3
}

/// The `retention:` section: which runs of the pipeline the run store keeps. A run is
/// removed only when every limit given lets it go; see [`crate::store::prune`] for the runs
/// that are always kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetentionPolicy {
    /// Keep the newest N runs of the pipeline.
    pub keep_last: Option<u32>,
    /// Keep runs whose last activity (start, resume or end) is younger than this.
    #[serde(with = "opt_duration")]
    #[schemars(with = "Option<u64>")]
    pub max_age: Option<Duration>,
    /// Never remove failed, cancelled or crashed runs (default `false`).
    #[serde(default)]
    pub keep_failed: bool,
}

/// One task of a pipeline, with defaults applied and params interpolated.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TaskSpec {
    /// The task's id (its key under `tasks:`).
    pub id: String,
    /// The registered task type.
    #[serde(rename = "type")]
    pub task_type: String,
    /// What the task does, for humans.
    pub description: Option<String>,
    /// Ids of the tasks that must succeed first.
    pub depends_on: Vec<String>,
    /// The type's params, interpolated.
    pub with: Json,
    /// How failed attempts are retried.
    pub retries: RetryPolicy,
    /// Limit per attempt.
    #[serde(with = "opt_duration")]
    #[schemars(with = "Option<u64>")]
    pub timeout: Option<Duration>,
    /// Whether and for how long results are reused.
    pub cache: CachePolicy,
    /// Where the task's attempts run (default `local`: in the engine's process).
    #[serde(default)]
    #[schemars(with = "Json")]
    pub executor: ExecutorSpec,
    /// Into how many shards the task is split, for types that can be split (default 1).
    #[serde(default = "one")]
    pub shards: u32,
    /// Data-quality expectations on the rows the task commits to its table (see
    /// [`crate::expect`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub expect: crate::expect::Expectations,
}

fn one() -> u32 {
    1
}

/// The `executor:` of a task: `local` (the engine's machine) or a registered executor with
/// its settings, written `{ NAME: { ... } }` (e.g. `ray: { address: ... }`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecutorSpec {
    /// The executor's name; `None` is `local`.
    pub name: Option<String>,
    /// Its settings, with defaults filled in (`null` for `local`).
    pub config: Json,
}

impl ExecutorSpec {
    /// The name of the built-in executor.
    pub const LOCAL: &'static str = "local";

    /// Whether attempts run on the engine's machine.
    pub fn is_local(&self) -> bool {
        self.name.is_none()
    }
}

impl Serialize for ExecutorSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.name {
            None => s.serialize_str(Self::LOCAL),
            Some(name) => {
                let mut map = serde_json::Map::new();
                map.insert(name.clone(), self.config.clone());
                map.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for ExecutorSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Json::deserialize(d)? {
            Json::Null => Ok(ExecutorSpec::default()),
            Json::String(s) if s == Self::LOCAL => Ok(ExecutorSpec::default()),
            Json::Object(map) if map.len() == 1 => {
                let (name, config) = map.into_iter().next().unwrap_or_default();
                Ok(ExecutorSpec {
                    name: Some(name),
                    config,
                })
            }
            other => Err(serde::de::Error::custom(format!(
                "an executor is `local` or `{{ NAME: {{...}} }}`, found {other}"
            ))),
        }
    }
}

/// How delays between attempts grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// `initial_delay * 2^(attempt-1)`, capped by `max_delay`.
    Exponential,
    /// `initial_delay * attempt`, capped by `max_delay`.
    Linear,
    /// Always `initial_delay`.
    Fixed,
}

/// The retry policy of a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (default 1: no retry).
    pub max_attempts: u32,
    /// Growth of the delay between attempts (default `exponential`).
    pub backoff: Backoff,
    /// Delay before the second attempt (default `1s`).
    #[serde(with = "duration_ms")]
    #[schemars(with = "u64")]
    pub initial_delay: Duration,
    /// Cap on any delay (default `1m`).
    #[serde(with = "duration_ms")]
    #[schemars(with = "u64")]
    pub max_delay: Duration,
    /// Full jitter: the delay is drawn uniformly from `[0, delay]` (default `true`).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Backoff::Exponential,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter: true,
        }
    }
}

/// The caching policy of a task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CachePolicy {
    /// Whether results are cached and reused (default `false`).
    pub enabled: bool,
    /// How long an entry stays valid (default: forever).
    #[serde(with = "opt_duration")]
    #[schemars(with = "Option<u64>")]
    pub ttl: Option<Duration>,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

impl Pipeline {
    /// The pipeline as written to the run store (`plan.json`): every secret replaced by `***`.
    pub fn to_plan(&self) -> serde_json::Result<Json> {
        let mut plan = serde_json::to_value(self)?;
        secrets::redact_slots(&mut plan, &self.secrets);
        secrets::mask_json(&mut plan);
        Ok(plan)
    }

    /// Reads a plan written by [`Pipeline::to_plan`], taking the secrets from `env`.
    pub fn from_plan(
        mut plan: Json,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Pipeline, PlanError> {
        let slots: Vec<SecretSlot> = match plan.get("secrets") {
            Some(s) => serde_json::from_value(s.clone())?,
            None => Vec::new(),
        };
        secrets::fill_slots(&mut plan, &slots, env)?;
        Ok(serde_json::from_value(plan)?)
    }

    /// The pipeline with its secrets read from `env` again (the scheduler does this before
    /// each run, so a secret changed or removed since the pipeline was loaded is seen).
    pub fn with_secrets_from(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Pipeline, PlanError> {
        if self.secrets.is_empty() {
            return Ok(self.clone());
        }
        Pipeline::from_plan(serde_json::to_value(self)?, env)
    }

    /// The pipeline with its `${trigger.…}` strings filled in from `values` (the scheduler
    /// does this before a triggered run). A table missing from `values` gets the empty range
    /// of [`crate::trigger::VersionRange::untriggered`], which is also what the loaded
    /// pipeline holds (for `tweetflow run` and cron ticks).
    pub fn with_trigger(&self, values: &TriggerValues) -> Result<Pipeline, PlanError> {
        if self.trigger_slots.is_empty() {
            return Ok(self.clone());
        }
        let mut all = values.clone();
        for (name, table) in self.trigger.iter().flat_map(|t| t.tables.iter()) {
            all.entry(name.clone())
                .or_insert_with(|| crate::trigger::VersionRange::untriggered(table));
        }
        let mut plan = serde_json::to_value(self)?;
        for slot in &self.trigger_slots {
            if let Some(v) = plan.pointer_mut(&slot.at) {
                *v = slot.resolve(&all);
            }
        }
        Ok(serde_json::from_value(plan)?)
    }

    /// The params with every secret replaced by `***` (for run records and trackers).
    pub fn redacted_params(&self) -> BTreeMap<String, Json> {
        let mut params = self.params.clone();
        for slot in &self.secrets {
            if let Some(name) = slot.at.strip_prefix("/params/")
                && let Some(v) = params.get_mut(&name.replace("~1", "/").replace("~0", "~"))
            {
                *v = Json::from(secrets::MASK);
            }
        }
        params
    }

    /// The secrets of an attempt file of task `task_id` (see
    /// [`crate::executor::ResolvedAttempt::secrets`]): the plan's slots in the task's params, the
    /// pipeline's params and the plugin sections, at their places in that file.
    pub fn attempt_secrets(&self, task_id: &str) -> Vec<SecretSlot> {
        let index = self.tasks.iter().position(|t| t.id == task_id);
        let with = index.map(|i| format!("/tasks/{i}/with"));
        let mut out = Vec::new();
        for slot in &self.secrets {
            let at = if let Some(rest) = slot.at.strip_prefix("/params/") {
                format!("/pipeline_params/{rest}")
            } else if let Some(rest) = with.as_deref().and_then(|w| slot.at.strip_prefix(w)) {
                if !(rest.is_empty() || rest.starts_with('/')) {
                    continue;
                }
                format!("/params{rest}")
            } else if slot.at.starts_with("/tasks/") {
                continue;
            } else {
                format!("/sections{}", slot.at)
            };
            out.push(SecretSlot {
                at,
                pieces: slot.pieces.clone(),
            });
        }
        out
    }

    /// Task `index`'s params with every secret replaced by `***` (for cache keys).
    pub fn redacted_with(&self, index: usize) -> Json {
        let mut with = self.tasks.get(index).map_or(Json::Null, |t| t.with.clone());
        let prefix = format!("/tasks/{index}/with");
        for slot in &self.secrets {
            if let Some(inner) = slot.at.strip_prefix(&prefix)
                && (inner.is_empty() || inner.starts_with('/'))
                && let Some(v) = with.pointer_mut(inner)
            {
                *v = Json::from(secrets::MASK);
            }
        }
        with
    }

    /// The task with id `id`.
    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The plugin section `S`, when the pipeline has it.
    pub fn section<S: Section>(&self) -> Option<S> {
        crate::section::read(&self.sections)
    }
}
