//! The run record ([`RunRecord`], with its tasks and attempts) and the events that change it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::spec::Pipeline;
use crate::task::{TaskError, TaskOutput};

/// The state of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Tasks are executing: the process executing the run holds its lock.
    Running,
    /// The process executing the run died (its record says running, its lock is free, see
    /// `crate::store::liveness`): `--resume`, `runs recover` or the scheduler resume it.
    Interrupted,
    /// Every task succeeded.
    Succeeded,
    /// At least one task failed.
    Failed,
    /// Stopped by a signal or `--fail-fast`.
    Cancelled,
}

/// The state of a task within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for its dependencies or a free slot.
    Pending,
    /// An attempt is executing, or a retry is waiting.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Skipped: a cached result was reused.
    Cached,
    /// Every attempt failed, or a non-retryable error stopped it.
    Failed,
    /// Not run because a dependency failed.
    UpstreamFailed,
    /// Not run, or stopped, because the run was cancelled.
    Cancelled,
}

impl TaskStatus {
    /// Whether the task produced a usable output (ran or came from the cache).
    pub fn is_success(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Cached)
    }

    /// The status as written in tables (`upstream_failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Cached => "cached",
            TaskStatus::Failed => "failed",
            TaskStatus::UpstreamFailed => "upstream_failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

impl RunStatus {
    /// The status as written in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// One attempt of a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based attempt number.
    pub number: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (`None` while running, or if the process died).
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<TaskError>,
    /// The shard it processed, when the task is split into shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// The id of the job that ran it, on an executor other than `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// The record of one task in a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task's type.
    pub task_type: String,
    /// Its state.
    pub status: TaskStatus,
    /// Every attempt, in order.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// The cache key, when caching is on for the task.
    pub cache_key: Option<String>,
    /// Outputs (of the run, or of the reused cache entry).
    pub output: Option<TaskOutput>,
    /// The final error.
    pub error: Option<TaskError>,
    /// When the task started (first attempt or cache lookup).
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached its final state.
    pub ended_at: Option<DateTime<Utc>>,
}

impl TaskRecord {
    fn new(task_type: &str) -> Self {
        TaskRecord {
            task_type: task_type.to_string(),
            status: TaskStatus::Pending,
            attempts: Vec::new(),
            cache_key: None,
            output: None,
            error: None,
            started_at: None,
            ended_at: None,
        }
    }

    /// Wall time from start to end, if both are known.
    pub fn duration(&self) -> Option<Duration> {
        Some(
            (self.ended_at? - self.started_at?)
                .to_std()
                .unwrap_or_default(),
        )
    }
}

/// The record of a run: what `runs/<id>/run.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The pipeline file as given.
    pub pipeline_file: String,
    /// Hash of the pipeline file.
    pub spec_hash: String,
    /// Resolved params.
    pub params: BTreeMap<String, Json>,
    /// The run's state.
    pub status: RunStatus,
    /// When the run was created.
    pub created_at: DateTime<Utc>,
    /// When it last ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// When it was resumed, oldest first.
    #[serde(default)]
    pub resumed_at: Vec<DateTime<Utc>>,
    /// When the run is `interrupted`: the time of its last recorded event, when its engine
    /// was last heard of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<DateTime<Utc>>,
    /// Why the run ended as it did when no task says it (e.g. `engine died ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Free-form labels (e.g. the scheduled time of a cron run).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Task ids in pipeline order.
    pub task_order: Vec<String>,
    /// Per task.
    pub tasks: BTreeMap<String, TaskRecord>,
    /// Sequence number of the last event folded into this record.
    pub last_seq: u64,
}

impl RunRecord {
    /// A new record for `pipeline` with every task pending.
    pub fn new(run_id: String, pipeline: &Pipeline, pipeline_file: &str) -> Self {
        RunRecord {
            run_id,
            pipeline: pipeline.name.clone(),
            pipeline_file: pipeline_file.to_string(),
            spec_hash: pipeline.spec_hash.clone(),
            params: pipeline.redacted_params(),
            status: RunStatus::Running,
            created_at: Utc::now(),
            ended_at: None,
            resumed_at: Vec::new(),
            last_event_at: None,
            reason: None,
            tags: BTreeMap::new(),
            task_order: pipeline.tasks.iter().map(|t| t.id.clone()).collect(),
            tasks: pipeline
                .tasks
                .iter()
                .map(|t| (t.id.clone(), TaskRecord::new(&t.task_type)))
                .collect(),
            last_seq: 0,
        }
    }

    /// Tasks in pipeline order.
    pub fn ordered_tasks(&self) -> impl Iterator<Item = (&str, &TaskRecord)> {
        self.task_order
            .iter()
            .filter_map(|id| self.tasks.get(id).map(|t| (id.as_str(), t)))
    }

    /// Where each task stands, in pipeline order, as tasks see their run
    /// ([`crate::task::RunView::tasks`]).
    pub fn task_states(&self) -> Vec<crate::task::TaskState> {
        self.ordered_tasks()
            .map(|(id, t)| crate::task::TaskState {
                id: id.to_string(),
                task_type: t.task_type.clone(),
                status: t.status.as_str().to_string(),
                attempts: t.attempts.len(),
                duration: t.duration(),
            })
            .collect()
    }

    /// Wall time of the run (to now if still running, to its last event if interrupted).
    pub fn duration(&self) -> Duration {
        let start = self.created_at;
        let end = self
            .ended_at
            .or(self.last_event_at)
            .unwrap_or_else(Utc::now);
        (end - start).to_std().unwrap_or_default()
    }

    /// The latest attempt `number` of shard `shard` of `task`.
    fn attempt_mut(&mut self, task: &str, number: u32, shard: Option<u32>) -> Option<&mut Attempt> {
        self.tasks.get_mut(task).and_then(|t| {
            t.attempts
                .iter_mut()
                .rev()
                .find(|a| a.number == number && a.shard == shard)
        })
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::RunResumed { at } => {
                self.status = RunStatus::Running;
                self.ended_at = None;
                self.last_event_at = None;
                self.reason = None;
                self.resumed_at.push(*at);
            }
            Event::RunInterrupted { last_event_at, .. } => {
                self.status = RunStatus::Interrupted;
                self.last_event_at = Some(*last_event_at);
            }
            Event::RunAbandoned { at, reason } => {
                self.status = RunStatus::Failed;
                self.ended_at = Some(*at);
                self.reason = Some(reason.clone());
            }
            Event::TaskReset { task } => {
                if let Some(t) = self.tasks.get_mut(task) {
                    let task_type = std::mem::take(&mut t.task_type);
                    *t = TaskRecord::new(&task_type);
                }
            }
            Event::TaskStarted {
                task,
                at,
                cache_key,
            } => {
                if let Some(t) = self.tasks.get_mut(task) {
                    t.status = TaskStatus::Running;
                    t.started_at = Some(*at);
                    t.cache_key = cache_key.clone();
                }
            }
            Event::AttemptStarted {
                task,
                number,
                at,
                shard,
            } => {
                if let Some(t) = self.tasks.get_mut(task) {
                    t.attempts.push(Attempt {
                        number: *number,
                        started_at: *at,
                        ended_at: None,
                        error: None,
                        shard: *shard,
                        job: None,
                    });
                }
            }
            Event::AttemptJob {
                task,
                number,
                shard,
                job,
            } => {
                if let Some(a) = self.attempt_mut(task, *number, *shard) {
                    a.job = Some(job.clone());
                }
            }
            Event::AttemptFinished {
                task,
                number,
                at,
                error,
                shard,
            } => {
                if let Some(a) = self.attempt_mut(task, *number, *shard) {
                    a.ended_at = Some(*at);
                    a.error = error.clone();
                }
            }
            Event::TaskFinished {
                task,
                status,
                at,
                output,
                error,
            } => {
                if let Some(t) = self.tasks.get_mut(task) {
                    t.status = *status;
                    t.ended_at = Some(*at);
                    t.started_at.get_or_insert(*at);
                    t.output = output.clone();
                    t.error = error.clone();
                }
            }
            Event::RunFinished { status, at } => {
                self.status = *status;
                self.ended_at = Some(*at);
            }
        }
    }
}

/// A state change of a run, as appended to `events.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run was resumed.
    RunResumed {
        /// When.
        at: DateTime<Utc>,
    },
    /// The run's engine was found dead (its lock free while the record said running).
    RunInterrupted {
        /// When that was found.
        at: DateTime<Utc>,
        /// The time of the run's last event before.
        last_event_at: DateTime<Utc>,
    },
    /// An interrupted run was marked failed instead of resumed (`on_interrupted: fail`,
    /// `runs recover --fail`, or `max_resumes` reached).
    RunAbandoned {
        /// When.
        at: DateTime<Utc>,
        /// Why, e.g. `engine died (last event 2026-01-01T00:00:00Z)`.
        reason: String,
    },
    /// A task that did not succeed is set back to pending for a resume.
    TaskReset {
        /// The task.
        task: String,
    },
    /// A task left pending.
    TaskStarted {
        /// The task.
        task: String,
        /// When.
        at: DateTime<Utc>,
        /// Its cache key, when caching is on.
        cache_key: Option<String>,
    },
    /// An attempt began.
    AttemptStarted {
        /// The task.
        task: String,
        /// 1-based attempt number.
        number: u32,
        /// When.
        at: DateTime<Utc>,
        /// The shard, when the task is split into shards.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<u32>,
    },
    /// An executor started a job for an attempt.
    AttemptJob {
        /// The task.
        task: String,
        /// 1-based attempt number.
        number: u32,
        /// The shard, when the task is split into shards.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<u32>,
        /// The job's id on the executor.
        job: String,
    },
    /// An attempt ended.
    AttemptFinished {
        /// The task.
        task: String,
        /// 1-based attempt number.
        number: u32,
        /// When.
        at: DateTime<Utc>,
        /// Why it failed.
        error: Option<TaskError>,
        /// The shard, when the task is split into shards.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<u32>,
    },
    /// A task reached a final state.
    TaskFinished {
        /// The task.
        task: String,
        /// The final state.
        status: TaskStatus,
        /// When.
        at: DateTime<Utc>,
        /// Its outputs.
        output: Option<TaskOutput>,
        /// The error that ended it.
        error: Option<TaskError>,
    },
    /// The run reached a final state.
    RunFinished {
        /// The final state.
        status: RunStatus,
        /// When.
        at: DateTime<Utc>,
    },
}
