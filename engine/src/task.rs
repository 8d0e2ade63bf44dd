//! The task plugin API: what every task type implements and what it receives.
//!
//! A task type is a Rust struct implementing [`Task`]: a type name, a version (part of the
//! cache key: bump it when behaviour changes), a typed params struct (serde, with
//! `deny_unknown_fields` and documented defaults; its JSON Schema drives validation, `tweetflow
//! tasks` and `tweetflow schema`), and an async [`Task::run`]. The engine erases the type
//! behind [`DynTask`] so a [`crate::Registry`] can hold every type.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a task produced: named values for downstream tasks and a fingerprint of the result.
///
/// The fingerprint (e.g. a Delta table version, a file hash) feeds the cache keys of
/// downstream tasks: when it changes, they re-run. Left empty, the engine fills it with a
/// hash of `values`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskOutput {
    /// Named outputs, readable by downstream tasks.
    #[serde(default)]
    pub values: serde_json::Map<String, Value>,
    /// Identifies the result; equal fingerprints mean equal results.
    #[serde(default)]
    pub fingerprint: String,
}

impl TaskOutput {
    /// An empty output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named value.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.values.insert(key.to_string(), value.into());
        self
    }

    /// An output made of a summary struct's fields, in declaration order.
    ///
    /// A task describes what it did with one `#[derive(Serialize)]` struct; its fields become
    /// the named outputs. A summary that is not a JSON object is a fatal (programming) error.
    pub fn from_summary(summary: &impl Serialize) -> Result<Self, TaskError> {
        match serde_json::to_value(summary) {
            Ok(Value::Object(values)) => Ok(Self {
                values,
                fingerprint: String::new(),
            }),
            Ok(other) => Err(TaskError::fatal(format!(
                "a task summary must serialise to a JSON object, not `{other}`"
            ))),
            Err(e) => Err(TaskError::fatal(format!("serialising a task summary: {e}"))),
        }
    }

    /// Adds every named value of `values` (a later key replaces an earlier one).
    pub fn with_all(mut self, values: serde_json::Map<String, Value>) -> Self {
        self.values.extend(values);
        self
    }

    /// Sets the fingerprint.
    pub fn with_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = fingerprint.into();
        self
    }

    /// A named value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// What the task left undone and why, in words ([`LEFT_OUTPUT`]). For a task split into
    /// shards (a `shards` list of each shard's values), each shard's items, prefixed with
    /// `shard <i>: `.
    pub fn left(&self) -> Vec<String> {
        fn items(values: Option<&Value>) -> Vec<String> {
            values
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        }
        match self.values.get("shards").and_then(Value::as_array) {
            Some(shards) => shards
                .iter()
                .enumerate()
                .flat_map(|(i, shard)| {
                    items(shard.get(LEFT_OUTPUT))
                        .into_iter()
                        .map(move |item| format!("shard {i}: {item}"))
                })
                .collect(),
            None => items(self.values.get(LEFT_OUTPUT)),
        }
    }
}

/// The output key under which a task says, in words, what it left undone and why: a list of
/// strings such as `4 files waiting: modified in the last 5s (settle_time)`. The console's task
/// line, `runs show` and the run page show it (see [`TaskOutput::left`]).
pub const LEFT_OUTPUT: &str = "left";

/// How a task failure should be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A transient failure: the attempt may be retried.
    Retryable,
    /// A failure that retrying cannot fix (bad data, missing input).
    Fatal,
    /// The task's configuration is wrong; never retried.
    Config,
    /// The attempt ran past its timeout (retryable).
    Timeout,
    /// The run was cancelled.
    Cancelled,
}

impl ErrorKind {
    /// Whether another attempt may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Retryable | ErrorKind::Timeout)
    }
}

/// A task failure: its kind, a message naming what went wrong, the param at fault (if one is)
/// and the error that caused it (if any).
///
/// Run records keep the kind, the message and the param. The source stays in memory: callers
/// in the same process can walk it ([`std::error::Error::source`]), and the engine writes its
/// chain to the run's log; it is never serialised, so it does not cross to another process or
/// into a record. Two errors are equal when their kind, message and param are.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskError {
    /// Whether and how the engine retries.
    pub kind: ErrorKind,
    /// What went wrong, for the user.
    pub message: String,
    /// The param at fault (`with:` key), when the error is a param's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The error that caused this one (in memory only).
    #[serde(skip)]
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for TaskError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message && self.param == other.param
    }
}

impl Eq for TaskError {}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl TaskError {
    /// A failure of kind `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        TaskError {
            kind,
            message: message.into(),
            param: None,
            source: None,
        }
    }

    /// A transient failure, retried according to the task's policy.
    pub fn retryable(message: impl Into<String>) -> Self {
        TaskError::new(ErrorKind::Retryable, message)
    }

    /// A failure that is not retried.
    pub fn fatal(message: impl Into<String>) -> Self {
        TaskError::new(ErrorKind::Fatal, message)
    }

    /// A configuration error of the param `field`: the message says `param `field`: message`
    /// and [`TaskError::param`] names it.
    pub fn config(field: &str, message: impl std::fmt::Display) -> Self {
        TaskError::new(ErrorKind::Config, format!("param `{field}`: {message}")).with_param(field)
    }

    /// The attempt was cancelled.
    pub fn cancelled() -> Self {
        TaskError::new(ErrorKind::Cancelled, "cancelled")
    }

    /// The same error, blaming the param `param`.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// The same error, caused by `source` (kept in memory and logged, not recorded).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The causes below this error, outermost first, joined by `: ` (`None` without a
    /// source), as the run's log shows them. A cause that says what the level above it says
    /// (a wrapper that shows its source's text) is shown once.
    pub fn source_chain(&self) -> Option<String> {
        let mut causes: Vec<String> = Vec::new();
        let mut above = self.message.clone();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let text = cause.to_string();
            if text != above {
                causes.push(text.clone());
            }
            above = text;
            next = cause.source();
        }
        (!causes.is_empty()).then(|| causes.join(": "))
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// Facts about the pipeline a task runs in.
#[derive(Clone, Debug, Default)]
pub struct PipelineInfo {
    /// The pipeline's name.
    pub name: String,
    /// Hash of the pipeline file.
    pub spec_hash: String,
    /// The resolved pipeline params.
    pub params: BTreeMap<String, Value>,
    /// Top-level sections that plugins own, by name, as JSON (see [`crate::section`]).
    pub sections: BTreeMap<String, Value>,
    /// The `expect:` of each task that has one, by task id (see [`crate::expect`]).
    pub expectations: BTreeMap<String, crate::expect::Expectations>,
}

impl PipelineInfo {
    /// The plugin section `S`, when the pipeline has it.
    pub fn section<S: crate::section::Section>(&self) -> Option<S> {
        crate::section::read(&self.sections)
    }
}

/// Which part of a task's input an attempt processes, when the task is split into shards
/// (`shards: N`): shard `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based index of the shard.
    pub index: u32,
    /// How many shards the task is split into.
    pub count: u32,
}

impl Shard {
    /// The shard's name in ids and transactions: `shard-<index>-of-<count>`.
    pub fn label(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

/// Something another part of tweetflow attached to a run for its tasks to read, e.g. the
/// tracking-server run an observer logs the run to (see [`RunLinks`]).
///
/// The engine knows no link type: a plugin defines one, an observer returns it from
/// [`crate::observer::RunObserver::run_started`], and tasks read it with [`RunLinks::get`].
/// Links cross process boundaries with the attempt (executors), so they are JSON.
pub trait RunLink: Serialize + DeserializeOwned {
    /// The link's name, unique among link types (e.g. `mlflow`).
    const NAME: &'static str;
}

/// The links attached to a run, by name (see [`RunLink`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunLinks(BTreeMap<String, Value>);

impl RunLinks {
    /// No links.
    pub fn new() -> Self {
        Self::default()
    }

    /// The link of type `L`, when the run has one (a link that does not read as `L` is
    /// treated as missing).
    pub fn get<L: RunLink>(&self) -> Option<L> {
        serde_json::from_value(self.0.get(L::NAME)?.clone()).ok()
    }

    /// Attaches `link` (replacing one of the same type). A link that does not serialise to
    /// JSON is left out.
    pub fn insert<L: RunLink>(&mut self, link: &L) {
        if let Ok(value) = serde_json::to_value(link) {
            self.0.insert(L::NAME.to_string(), value);
        }
    }

    /// Adds every link of `other` (a later one replaces an earlier one of the same name).
    pub fn extend(&mut self, other: RunLinks) {
        self.0.extend(other.0);
    }

    /// Whether there is no link.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a task of a run stands, as [`RunView::tasks`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskState {
    /// The task's id.
    pub id: String,
    /// Its registered type.
    pub task_type: String,
    /// Its status (`pending`, `running`, `succeeded`, ...).
    pub status: String,
    /// How many attempts it made so far.
    pub attempts: usize,
    /// How long it took, once it ended.
    pub duration: Option<Duration>,
}

/// A read-only view of the run an attempt belongs to: what a task may know about its run
/// beyond its own inputs.
pub trait RunView: Send + Sync {
    /// The root of the run store the run is recorded in (run records, artifacts, cache), when
    /// this process sees it. Tasks refuse to write their outputs inside it.
    fn store_root(&self) -> Option<PathBuf>;
    /// The run's tasks as recorded so far, in pipeline order (empty when the run is not
    /// recorded where this process sees it).
    fn tasks(&self) -> Vec<TaskState>;
}

impl std::fmt::Debug for dyn RunView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunView")
            .field("store_root", &self.store_root())
            .finish_non_exhaustive()
    }
}

/// The view of a run that is not recorded anywhere: a task called outside the engine.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnrecordedRun;

impl RunView for UnrecordedRun {
    fn store_root(&self) -> Option<PathBuf> {
        None
    }

    fn tasks(&self) -> Vec<TaskState> {
        Vec::new()
    }
}

/// Everything a task attempt receives besides its params.
#[derive(Clone, Debug)]
pub struct TaskContext {
    /// The run this attempt belongs to.
    pub run_id: String,
    /// The task's id in the pipeline.
    pub task_id: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// The pipeline.
    pub pipeline: Arc<PipelineInfo>,
    /// Outputs of the task's direct dependencies, by task id.
    pub upstream: Arc<BTreeMap<String, TaskOutput>>,
    /// Cancelled when the run is cancelled or the attempt times out.
    pub cancel: CancellationToken,
    /// The attempt's tracing span (already entered around `run`).
    pub span: tracing::Span,
    /// Directory for the task's artifacts (created on first use by [`TaskContext::artifact_path`]).
    pub artifacts_dir: PathBuf,
    /// The part of the input this attempt processes (`None`: all of it).
    pub shard: Option<Shard>,
    /// A read-only view of the run (its store, its tasks so far).
    pub run: Arc<dyn RunView>,
    /// What observers attached to the run (e.g. its MLflow run), see [`RunLinks`].
    pub links: Arc<RunLinks>,
}

impl TaskContext {
    /// The path of an artifact named `name`, creating the artifacts directory.
    pub fn artifact_path(&self, name: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.artifacts_dir)?;
        Ok(self.artifacts_dir.join(name))
    }

    /// The task's data-quality expectations (`expect:`), empty when it has none.
    pub fn expectations(&self) -> &crate::expect::Expectations {
        static NONE: crate::expect::Expectations = BTreeMap::new();
        self.pipeline
            .expectations
            .get(&self.task_id)
            .unwrap_or(&NONE)
    }

    /// The output of the direct dependency `task_id`.
    pub fn upstream_output(&self, task_id: &str) -> Option<&TaskOutput> {
        self.upstream.get(task_id)
    }

    /// The link of type `L` attached to the run, when there is one.
    pub fn link<L: RunLink>(&self) -> Option<L> {
        self.links.get()
    }
}

/// A task type. Implement this and register it in a [`crate::Registry`].
pub trait Task: Send + Sync + 'static {
    /// The typed params (`with:` in YAML). Use `#[serde(deny_unknown_fields)]`, document each
    /// field and give defaults with `#[serde(default = ...)]`.
    type Params: DeserializeOwned + JsonSchema + Send + Sync + 'static;

    /// The name pipelines use in `type:`.
    const TYPE: &'static str;
    /// Part of the cache key; bump it when the task's behaviour changes.
    const VERSION: &'static str;
    /// One line for `tweetflow tasks`.
    const DESCRIPTION: &'static str;
    /// Whether the type can be split (`shards: N`): each attempt then processes the part of
    /// the input [`TaskContext::shard`] names, and commits it on its own.
    const SHARDABLE: bool = false;
    /// Whether the type writes a Delta table through the shared write path, so that
    /// `expect:` applies to it.
    const WRITES_TABLE: bool = false;

    /// Runs one attempt.
    fn run(
        &self,
        ctx: &TaskContext,
        params: Self::Params,
    ) -> impl Future<Output = Result<TaskOutput, TaskError>> + Send;

    /// Whether a cached output is still usable (e.g. the table it names still exists).
    /// A `false` turns a cache hit into a miss.
    fn output_still_valid(
        &self,
        _params: &Self::Params,
        _output: &TaskOutput,
    ) -> impl Future<Output = bool> + Send {
        async { true }
    }

    /// Directories whose new files are this task's new input (e.g. a landing folder). In
    /// `run --watch` mode, a change there starts the next micro-batch early.
    fn watch_paths(&self, _params: &Self::Params) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Files or directories whose contents are part of the task's cache key (e.g. the script
    /// a command runs): editing one of them turns a cache hit into a miss.
    fn cache_inputs(&self, _params: &Self::Params) -> Vec<PathBuf> {
        Vec::new()
    }

    /// The data the task reads and writes, as `(param, location)`: a table, a landing folder,
    /// a model directory; each a local path or a URL (`s3://...`). An executor whose nodes
    /// do not see the engine's files refuses local ones at validation.
    fn locations(&self, _params: &Self::Params) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// The `(name, type)` columns of the table the task writes, when they are known before it
    /// runs (types as Delta type names); `expect:` SQL is checked against them at load time.
    fn output_columns(&self, _params: &Self::Params) -> Option<Vec<(String, String)>> {
        None
    }
}

/// A task type with its params type erased, as the registry stores it.
pub trait DynTask: Send + Sync {
    /// See [`Task::TYPE`].
    fn type_name(&self) -> &'static str;
    /// See [`Task::VERSION`].
    fn version(&self) -> &'static str;
    /// See [`Task::DESCRIPTION`].
    fn description(&self) -> &'static str;
    /// See [`Task::SHARDABLE`].
    fn shardable(&self) -> bool;
    /// See [`Task::WRITES_TABLE`].
    fn writes_table(&self) -> bool;
    /// See [`Task::output_columns`] (`None` also when the params do not parse).
    fn output_columns(&self, params: &Value) -> Option<Vec<(String, String)>>;
    /// JSON Schema of the params.
    fn params_schema(&self) -> Value;
    /// Checks that `params` deserialize into the params type.
    fn check_params(&self, params: &Value) -> Result<(), ParamsError>;
    /// Runs one attempt with JSON params.
    fn run<'a>(
        &'a self,
        ctx: &'a TaskContext,
        params: &'a Value,
    ) -> BoxFuture<'a, Result<TaskOutput, TaskError>>;
    /// See [`Task::output_still_valid`].
    fn output_still_valid<'a>(
        &'a self,
        params: &'a Value,
        output: &'a TaskOutput,
    ) -> BoxFuture<'a, bool>;
    /// See [`Task::watch_paths`].
    fn watch_paths(&self, params: &Value) -> Vec<PathBuf>;
    /// See [`Task::cache_inputs`].
    fn cache_inputs(&self, params: &Value) -> Vec<PathBuf>;
    /// See [`Task::locations`].
    fn locations(&self, params: &Value) -> Vec<(&'static str, String)>;
}

/// Wraps a [`Task`] as a [`DynTask`].
pub(crate) struct Erased<T>(pub T);

/// Params that do not deserialize into a task type's params type (the serde error says which
/// field and why).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ParamsError(#[from] serde_json::Error);

fn parse_params<P: DeserializeOwned>(params: &Value) -> Result<P, ParamsError> {
    Ok(serde_json::from_value(params.clone())?)
}

impl<T: Task> DynTask for Erased<T> {
    fn type_name(&self) -> &'static str {
        T::TYPE
    }

    fn version(&self) -> &'static str {
        T::VERSION
    }

    fn description(&self) -> &'static str {
        T::DESCRIPTION
    }

    fn shardable(&self) -> bool {
        T::SHARDABLE
    }

    fn writes_table(&self) -> bool {
        T::WRITES_TABLE
    }

    fn output_columns(&self, params: &Value) -> Option<Vec<(String, String)>> {
        parse_params::<T::Params>(params)
            .ok()
            .and_then(|p| self.0.output_columns(&p))
    }

    fn params_schema(&self) -> Value {
        let settings = schemars::generate::SchemaSettings::draft2020_12();
        let schema = settings
            .into_generator()
            .into_root_schema_for::<T::Params>();
        schema.to_value()
    }

    fn check_params(&self, params: &Value) -> Result<(), ParamsError> {
        parse_params::<T::Params>(params).map(|_| ())
    }

    fn run<'a>(
        &'a self,
        ctx: &'a TaskContext,
        params: &'a Value,
    ) -> BoxFuture<'a, Result<TaskOutput, TaskError>> {
        Box::pin(async move {
            let params = parse_params::<T::Params>(params).map_err(|e| {
                TaskError::new(ErrorKind::Config, format!("invalid params: {e}")).with_source(e)
            })?;
            self.0.run(ctx, params).await
        })
    }

    fn watch_paths(&self, params: &Value) -> Vec<PathBuf> {
        parse_params::<T::Params>(params)
            .map(|p| self.0.watch_paths(&p))
            .unwrap_or_default()
    }

    fn cache_inputs(&self, params: &Value) -> Vec<PathBuf> {
        parse_params::<T::Params>(params)
            .map(|p| self.0.cache_inputs(&p))
            .unwrap_or_default()
    }

    fn locations(&self, params: &Value) -> Vec<(&'static str, String)> {
        parse_params::<T::Params>(params)
            .map(|p| self.0.locations(&p))
            .unwrap_or_default()
    }

    fn output_still_valid<'a>(
        &'a self,
        params: &'a Value,
        output: &'a TaskOutput,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            match parse_params::<T::Params>(params) {
                Ok(p) => self.0.output_still_valid(&p, output).await,
                Err(_) => false,
            }
        })
    }
}
