//! A [`TaskContext`] for calling a task's `run` directly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tweetflow_engine::task::Shard;
use tweetflow_engine::{
    PipelineInfo, RunLink, RunLinks, RunStore, RunView, TaskContext, TaskOutput, TaskState,
    UnrecordedRun,
};

/// The view of a run recorded in a run store (see [`TaskContextBuilder::run_store`]).
#[derive(Debug)]
struct StoredRun {
    root: PathBuf,
    run_id: String,
}

impl RunView for StoredRun {
    fn store_root(&self) -> Option<PathBuf> {
        Some(self.root.clone())
    }

    fn tasks(&self) -> Vec<TaskState> {
        RunStore::new(&self.root)
            .load(&self.run_id)
            .map(|r| r.task_states())
            .unwrap_or_default()
    }
}

/// Builds a [`TaskContext`]: run `r1`, task `t1`, attempt 1, a default pipeline, no upstream
/// outputs, unless set otherwise.
#[derive(Debug)]
pub struct TaskContextBuilder {
    run_id: String,
    task_id: String,
    pipeline: PipelineInfo,
    upstream: BTreeMap<String, TaskOutput>,
    artifacts_dir: PathBuf,
    shard: Option<Shard>,
    run: Arc<dyn RunView>,
    store: Option<PathBuf>,
    links: RunLinks,
}

impl TaskContextBuilder {
    /// A context whose artifacts go to `artifacts_dir`.
    pub fn new(artifacts_dir: impl Into<PathBuf>) -> Self {
        TaskContextBuilder {
            run_id: "r1".into(),
            task_id: "t1".into(),
            pipeline: PipelineInfo::default(),
            upstream: BTreeMap::new(),
            artifacts_dir: artifacts_dir.into(),
            shard: None,
            run: Arc::new(UnrecordedRun),
            store: None,
            links: RunLinks::new(),
        }
    }

    /// The run id.
    pub fn run_id(mut self, run_id: &str) -> Self {
        self.run_id = run_id.into();
        self
    }

    /// The task's id in the pipeline.
    pub fn task_id(mut self, task_id: &str) -> Self {
        self.task_id = task_id.into();
        self
    }

    /// The pipeline the task belongs to.
    pub fn pipeline(mut self, pipeline: PipelineInfo) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Outputs of the task's direct dependencies, by task id.
    pub fn upstream(mut self, upstream: BTreeMap<String, TaskOutput>) -> Self {
        self.upstream = upstream;
        self
    }

    /// The part of the input the attempt processes.
    pub fn shard(mut self, index: u32, count: u32) -> Self {
        self.shard = Some(Shard { index, count });
        self
    }

    /// The view of the run the task gets (default: a run recorded nowhere).
    pub fn run(mut self, run: Arc<dyn RunView>) -> Self {
        self.run = run;
        self
    }

    /// The run is recorded in the run store at `root` (its view reads the run's record there).
    pub fn run_store(mut self, root: impl Into<PathBuf>) -> Self {
        self.store = Some(root.into());
        self
    }

    /// Attaches `link` to the run (as an observer would when the run starts).
    pub fn link<L: RunLink>(mut self, link: &L) -> Self {
        self.links.insert(link);
        self
    }

    /// The context (first attempt, not cancelled, no tracing span).
    pub fn build(self) -> TaskContext {
        let run: Arc<dyn RunView> = match self.store {
            Some(root) => Arc::new(StoredRun {
                root,
                run_id: self.run_id.clone(),
            }),
            None => self.run,
        };
        TaskContext {
            run_id: self.run_id,
            task_id: self.task_id,
            attempt: 1,
            pipeline: Arc::new(self.pipeline),
            upstream: Arc::new(self.upstream),
            cancel: CancellationToken::new(),
            span: tracing::Span::none(),
            artifacts_dir: self.artifacts_dir,
            shard: self.shard,
            run,
            links: Arc::new(self.links),
        }
    }
}
