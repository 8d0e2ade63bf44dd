//! The runs list, read incrementally: run ids come from directory names (newest first, see
//! [`RunStore::run_ids`]); only the records of the rows shown are read, and their summaries
//! are kept in memory keyed by run id and the size and time of the run's files, so a run is
//! read again only when it changed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tweetflow_engine::{EngineError, RunRecord, RunStatus, RunStore};

/// Most summaries kept in memory (beyond it the cache starts over).
const CACHE_LIMIT: usize = 200_000;

/// One row of the runs list.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// `running`, `interrupted` (its engine died), `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// For an interrupted run: the time of its last event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<DateTime<Utc>>,
    /// When the run was created.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Wall time so far, in milliseconds.
    pub duration_ms: i64,
    /// Tasks in the pipeline.
    pub tasks: usize,
    /// Tasks that succeeded or came from the cache.
    pub tasks_ok: usize,
    /// Tasks that failed.
    pub tasks_failed: usize,
    /// What started it (`manual`, `schedule`, ...).
    pub trigger: Option<String>,
}

impl RunSummary {
    /// The summary of `record`.
    pub fn of(record: &RunRecord) -> Self {
        let end = record
            .ended_at
            .or(record.last_event_at)
            .unwrap_or_else(Utc::now);
        RunSummary {
            run_id: record.run_id.clone(),
            pipeline: record.pipeline.clone(),
            status: record.status.as_str().to_string(),
            last_event_at: record
                .last_event_at
                .filter(|_| record.status == RunStatus::Interrupted),
            created_at: record.created_at,
            ended_at: record.ended_at,
            duration_ms: (end - record.created_at).num_milliseconds().max(0),
            tasks: record.tasks.len(),
            tasks_ok: record
                .tasks
                .values()
                .filter(|t| t.status.is_success())
                .count(),
            tasks_failed: record
                .tasks
                .values()
                .filter(|t| t.status == tweetflow_engine::TaskStatus::Failed)
                .count(),
            trigger: record.tags.get("trigger").cloned(),
        }
    }
}

/// Which runs to list.
#[derive(Clone, Debug, Default)]
pub struct RunQuery {
    /// Only runs of this pipeline.
    pub pipeline: Option<String>,
    /// Only runs with this status.
    pub status: Option<String>,
    /// 1-based page number.
    pub page: usize,
    /// Rows per page.
    pub per_page: usize,
    /// With a filter: look at most at this many of the newest runs.
    pub max_scan: Option<usize>,
}

/// One page of the runs list.
#[derive(Clone, Debug, Serialize)]
pub struct RunPage {
    /// The rows.
    pub runs: Vec<RunSummary>,
    /// This page's number (1-based).
    pub page: usize,
    /// Rows per page.
    pub per_page: usize,
    /// Runs matching, when known without reading them all (no filter).
    pub total: Option<usize>,
    /// Whether a next page exists.
    pub has_next: bool,
}

type Stamp = (Option<SystemTime>, u64, Option<SystemTime>, u64);

/// The summaries read so far.
#[derive(Debug, Default)]
pub struct RunIndex {
    cache: Mutex<HashMap<String, (Stamp, RunSummary)>>,
}

impl RunIndex {
    /// The summary of run `run_id`, from memory when its files did not change. `None` for a
    /// directory that holds no readable run.
    pub fn summary(&self, store: &RunStore, run_id: &str) -> Option<RunSummary> {
        let stamp = stamp(store, run_id)?;
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((s, summary)) = cache.get(run_id)
                && *s == stamp
                && summary.status != "running"
                && summary.status != "interrupted"
            {
                return Some(summary.clone());
            }
        }
        let summary = RunSummary::of(&store.load(run_id).ok()?);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(run_id.to_string(), (stamp, summary.clone()));
        Some(summary)
    }

    /// One page of runs, newest first.
    pub fn page(&self, store: &RunStore, query: &RunQuery) -> Result<RunPage, EngineError> {
        let ids = store.run_ids()?;
        let per_page = query.per_page.max(1);
        let page = query.page.max(1);
        let skip = (page - 1) * per_page;
        if query.pipeline.is_none() && query.status.is_none() {
            let runs = ids
                .iter()
                .skip(skip)
                .take(per_page)
                .filter_map(|id| self.summary(store, id))
                .collect();
            return Ok(RunPage {
                runs,
                page,
                per_page,
                total: Some(ids.len()),
                has_next: ids.len() > skip + per_page,
            });
        }
        let matches = |s: &RunSummary| {
            query.pipeline.as_ref().is_none_or(|p| *p == s.pipeline)
                && query.status.as_ref().is_none_or(|st| *st == s.status)
        };
        let mut found = ids
            .iter()
            .take(query.max_scan.unwrap_or(usize::MAX))
            .filter_map(|id| self.summary(store, id))
            .filter(matches)
            .skip(skip);
        let runs: Vec<RunSummary> = found.by_ref().take(per_page).collect();
        let has_next = found.next().is_some();
        Ok(RunPage {
            runs,
            page,
            per_page,
            total: None,
            has_next,
        })
    }
}

fn stamp(store: &RunStore, run_id: &str) -> Option<Stamp> {
    let dir = store.run_dir(run_id);
    let snapshot = std::fs::metadata(dir.join("run.json")).ok()?;
    let events = std::fs::metadata(dir.join("events.jsonl")).ok();
    Some((
        snapshot.modified().ok(),
        snapshot.len(),
        events.as_ref().and_then(|m| m.modified().ok()),
        events.map_or(0, |m| m.len()),
    ))
}

/// Whether a status name is one of a run's.
pub fn is_run_status(name: &str) -> bool {
    [
        RunStatus::Running,
        RunStatus::Interrupted,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ]
    .iter()
    .any(|s| s.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tweetflow_engine::Pipeline;
    use tweetflow_engine::store::Event;

    fn pipeline(name: &str) -> Pipeline {
        serde_json::from_value(serde_json::json!({
            "name": name, "description": null, "params": {}, "spec_hash": "h",
            "tasks": [],
        }))
        .unwrap()
    }

    #[test]
    fn pages_read_only_their_rows_and_filters_scan_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        for i in 0..25 {
            let p = pipeline(if i % 2 == 0 { "even" } else { "odd" });
            let mut record = RunRecord::new(format!("2026{i:04}"), &p, "p.yaml");
            record.tags = BTreeMap::from([("trigger".into(), "manual".into())]);
            let mut handle = store.create(record, &p, "").unwrap();
            let status = if i % 5 == 0 {
                RunStatus::Failed
            } else {
                RunStatus::Succeeded
            };
            handle
                .append(Event::RunFinished {
                    status,
                    at: Utc::now(),
                })
                .unwrap();
        }
        let index = RunIndex::default();
        let all = RunQuery {
            page: 2,
            per_page: 10,
            ..RunQuery::default()
        };
        let page = index.page(&store, &all).unwrap();
        assert_eq!(page.total, Some(25));
        assert!(page.has_next);
        assert_eq!(page.runs[0].run_id, "20260014");
        assert_eq!(page.runs.len(), 10);
        assert_eq!(index.cache.lock().unwrap().len(), 10);
        let failed_even = RunQuery {
            pipeline: Some("even".into()),
            status: Some("failed".into()),
            page: 1,
            per_page: 2,
            max_scan: None,
        };
        let page = index.page(&store, &failed_even).unwrap();
        let ids: Vec<&str> = page.runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["20260020", "20260010"]);
        assert!(page.has_next);
        assert_eq!(page.runs[0].trigger.as_deref(), Some("manual"));
        assert!(is_run_status("cancelled") && !is_run_status("cached"));
    }
}
