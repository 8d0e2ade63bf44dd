//! The ready queue of a run: a task starts as soon as its dependencies succeeded, up to
//! `max_parallel` at once; a failure marks its dependents `upstream_failed`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::task::run_task;
use super::{Outcome, RunOptions, Shared, finished};
use crate::error::EngineError;
use crate::store::{Event, RunStatus, TaskStatus};
use crate::task::{TaskError, TaskOutput};

/// Runs the tasks of the run to the end, in dependency order, and records the run's status.
pub(super) async fn run_tasks(
    shared: &Arc<Shared>,
    options: &RunOptions,
    cancel: &CancellationToken,
    run_cancel: &CancellationToken,
    resumed: bool,
) -> Result<(), EngineError> {
    let tasks = &shared.pipeline.tasks;
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = tasks
        .iter()
        .map(|t| {
            t.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }

    let mut status = vec![TaskStatus::Pending; tasks.len()];
    let mut outputs: Vec<Option<TaskOutput>> = vec![None; tasks.len()];
    if resumed {
        shared.record(Event::RunResumed { at: Utc::now() });
        let previous: Vec<_> = {
            let handle = shared.lock_handle();
            tasks
                .iter()
                .map(|t| {
                    handle
                        .record()
                        .tasks
                        .get(&t.id)
                        .map(|r| (r.status, r.output.clone()))
                })
                .collect()
        };
        for (i, prev) in previous.into_iter().enumerate() {
            match prev {
                Some((s, out)) if s.is_success() => {
                    status[i] = s;
                    outputs[i] = out;
                }
                Some((TaskStatus::Pending, _)) => {}
                _ => shared.record(Event::TaskReset {
                    task: tasks[i].id.clone(),
                }),
            }
        }
        info!(
            kept = status.iter().filter(|s| s.is_success()).count(),
            "resuming run"
        );
    } else {
        info!(tasks = tasks.len(), "run started");
    }

    let mut waiting: Vec<usize> = deps
        .iter()
        .map(|ds| ds.iter().filter(|&&d| !status[d].is_success()).count())
        .collect();
    let mut ready: VecDeque<usize> = (0..tasks.len())
        .filter(|&i| status[i] == TaskStatus::Pending && waiting[i] == 0)
        .collect();
    let mut join: JoinSet<(usize, Outcome)> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, usize> = HashMap::new();
    let max_parallel = options.max_parallel.max(1);
    let mut failed = false;

    loop {
        while running.len() < max_parallel && !run_cancel.is_cancelled() {
            let Some(i) = ready.pop_front() else { break };
            status[i] = TaskStatus::Running;
            let upstream: BTreeMap<String, TaskOutput> = deps[i]
                .iter()
                .filter_map(|&d| outputs[d].clone().map(|o| (tasks[d].id.clone(), o)))
                .collect();
            let handle = join.spawn(run_task(
                shared.clone(),
                i,
                Arc::new(upstream),
                run_cancel.clone(),
            ));
            running.insert(handle.id(), i);
        }
        let Some(joined) = join.join_next_with_id().await else {
            break;
        };
        let (i, outcome) = match joined {
            Ok((_, result)) => result,
            Err(e) => {
                let Some(i) = running.get(&e.id()).copied() else {
                    continue;
                };
                let error = TaskError::fatal(format!("task panicked: {e}"));
                shared.record(finished(
                    &tasks[i].id,
                    TaskStatus::Failed,
                    None,
                    Some(error),
                ));
                (
                    i,
                    Outcome {
                        status: TaskStatus::Failed,
                        output: None,
                    },
                )
            }
        };
        running.retain(|_, &mut v| v != i);
        status[i] = outcome.status;
        outputs[i] = outcome.output;
        if outcome.status.is_success() {
            for &d in &dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 && status[d] == TaskStatus::Pending {
                    ready.push_back(d);
                }
            }
        } else if outcome.status == TaskStatus::Failed {
            failed = true;
            if options.fail_fast {
                info!(task = %tasks[i].id, "fail-fast: cancelling the run");
                run_cancel.cancel();
            }
            mark_upstream_failed(shared, i, &dependents, &mut status);
        }
        // A cancelled task leaves its dependents pending; they are recorded as cancelled below.
    }

    for (i, s) in status.iter_mut().enumerate() {
        if *s == TaskStatus::Pending {
            *s = TaskStatus::Cancelled;
            shared.record(finished(
                &tasks[i].id,
                TaskStatus::Cancelled,
                None,
                Some(TaskError::cancelled()),
            ));
        }
    }
    let run_status = if cancel.is_cancelled() {
        RunStatus::Cancelled
    } else if failed || status.iter().any(|s| !s.is_success()) {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    info!(status = run_status.as_str(), "run finished");
    shared.record(Event::RunFinished {
        status: run_status,
        at: Utc::now(),
    });
    Ok(())
}

fn mark_upstream_failed(
    shared: &Shared,
    failed: usize,
    dependents: &[Vec<usize>],
    status: &mut [TaskStatus],
) {
    let tasks = &shared.pipeline.tasks;
    let mut queue: VecDeque<usize> = dependents[failed].iter().copied().collect();
    while let Some(d) = queue.pop_front() {
        if status[d] != TaskStatus::Pending {
            continue;
        }
        status[d] = TaskStatus::UpstreamFailed;
        let error = TaskError::fatal(format!(
            "upstream task `{}` did not succeed",
            tasks[failed].id
        ));
        shared.record(finished(
            &tasks[d].id,
            TaskStatus::UpstreamFailed,
            None,
            Some(error),
        ));
        queue.extend(dependents[d].iter().copied());
    }
}
