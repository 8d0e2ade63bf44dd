//! A run's timeline: one row per task, one bar per attempt (a failed attempt that was retried
//! is its own bar), or one bar for a task that ran no attempt (cached, upstream failed,
//! cancelled). Positions are percentages of the run's span, ready to draw.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tweetflow_engine::store::TaskRecord;
use tweetflow_engine::{RunRecord, TaskStatus};

/// Narrowest bar drawn, in percent, so instant tasks stay visible.
const MIN_WIDTH_PCT: f64 = 0.6;

/// One bar of the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Bar {
    /// The attempt number (`None`: the task ran no attempt).
    pub attempt: Option<u32>,
    /// The shard the attempt processed, when the task is split into shards.
    pub shard: Option<u32>,
    /// What the bar shows: a task status, or `retried` for a failed attempt that was retried.
    pub kind: String,
    /// Start, in milliseconds after the run's start.
    pub start_ms: i64,
    /// End, in milliseconds after the run's start.
    pub end_ms: i64,
    /// Left edge in percent of the timeline.
    pub left_pct: f64,
    /// Width in percent of the timeline.
    pub width_pct: f64,
    /// The attempt's error.
    pub error: Option<String>,
}

/// One task's row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The task id.
    pub task: String,
    /// Its final (or current) status.
    pub status: String,
    /// Its bars, in time order.
    pub bars: Vec<Bar>,
}

/// A mark on the time axis.
#[derive(Clone, Debug, Serialize)]
pub struct Tick {
    /// Position in percent.
    pub left_pct: f64,
    /// The elapsed time there.
    pub label: String,
}

/// The timeline of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Gantt {
    /// When the run started.
    pub start: DateTime<Utc>,
    /// The end of the timeline (the run's end, or now while it runs).
    pub end: DateTime<Utc>,
    /// Its length in milliseconds.
    pub span_ms: i64,
    /// One row per task, in pipeline order.
    pub rows: Vec<Row>,
    /// Marks on the time axis.
    pub ticks: Vec<Tick>,
}

/// The timeline of `record`, its open bars ending at `now`.
pub fn gantt(record: &RunRecord, now: DateTime<Utc>) -> Gantt {
    let start = record.created_at;
    let latest = record
        .tasks
        .values()
        .flat_map(|t| {
            t.attempts
                .iter()
                .filter_map(|a| a.ended_at)
                .chain(t.ended_at)
        })
        .max();
    let end = record
        .ended_at
        .unwrap_or(now)
        .max(latest.unwrap_or(start))
        .max(start);
    let span_ms = (end - start).num_milliseconds().max(1);
    let pos = |t: DateTime<Utc>| (t - start).num_milliseconds().clamp(0, span_ms);
    let rows = record
        .ordered_tasks()
        .map(|(id, task)| Row {
            task: id.to_string(),
            status: task.status.as_str().to_string(),
            bars: bars(task, end)
                .into_iter()
                .map(|raw| {
                    let (s, e) = (pos(raw.from), pos(raw.to).max(pos(raw.from)));
                    let left = s as f64 * 100.0 / span_ms as f64;
                    let width = ((e - s) as f64 * 100.0 / span_ms as f64)
                        .max(MIN_WIDTH_PCT)
                        .min(100.0 - left + MIN_WIDTH_PCT);
                    Bar {
                        attempt: raw.attempt,
                        shard: raw.shard,
                        kind: raw.kind,
                        start_ms: s,
                        end_ms: e,
                        left_pct: round(left),
                        width_pct: round(width),
                        error: raw.error,
                    }
                })
                .collect(),
        })
        .collect();
    Gantt {
        start,
        end,
        span_ms,
        rows,
        ticks: ticks(span_ms),
    }
}

/// A bar before it is placed on the timeline.
struct RawBar {
    attempt: Option<u32>,
    shard: Option<u32>,
    kind: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    error: Option<String>,
}

fn bars(task: &TaskRecord, end: DateTime<Utc>) -> Vec<RawBar> {
    if task.attempts.is_empty() {
        let Some(from) = task.started_at.or(task.ended_at) else {
            return Vec::new();
        };
        return vec![RawBar {
            attempt: None,
            shard: None,
            kind: task.status.as_str().to_string(),
            from,
            to: task.ended_at.unwrap_or(end),
            error: task.error.as_ref().map(|e| e.message.clone()),
        }];
    }
    task.attempts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            // Retried: a later attempt of the same shard (of the task, when unsharded).
            let retried = task.attempts[i + 1..].iter().any(|b| b.shard == a.shard);
            let kind = if retried {
                "retried"
            } else if a.ended_at.is_none() && task.status == TaskStatus::Running {
                "running"
            } else {
                task.status.as_str()
            };
            RawBar {
                attempt: Some(a.number),
                shard: a.shard,
                kind: kind.to_string(),
                from: a.started_at,
                to: a.ended_at.or(task.ended_at).unwrap_or(end),
                error: a.error.as_ref().map(|e| e.message.clone()),
            }
        })
        .collect()
}

fn ticks(span_ms: i64) -> Vec<Tick> {
    const STEPS_MS: [i64; 20] = [
        1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000,
        300_000, 600_000, 1_800_000, 3_600_000,
    ];
    let step = STEPS_MS
        .iter()
        .copied()
        .find(|s| span_ms / s <= 8)
        .unwrap_or_else(|| (span_ms / 8 / 3_600_000 + 1) * 3_600_000);
    (0..=span_ms / step)
        .map(|i| Tick {
            left_pct: round((i * step) as f64 * 100.0 / span_ms as f64),
            label: elapsed(i * step),
        })
        .collect()
}

/// `1.5s`, `2m05s`, `1h02m`: a compact elapsed time.
pub fn elapsed(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 && ms % 1_000 == 0 {
        format!("{}s", ms / 1_000)
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1_000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1_000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use std::collections::BTreeMap;
    use tweetflow_engine::store::Attempt;
    use tweetflow_engine::{RunStatus, TaskError};

    fn task(status: TaskStatus, attempts: Vec<Attempt>) -> TaskRecord {
        TaskRecord {
            task_type: "noop".into(),
            status,
            started_at: attempts.first().map(|a| a.started_at),
            ended_at: attempts.last().and_then(|a| a.ended_at),
            attempts,
            cache_key: None,
            output: None,
            error: None,
        }
    }

    #[test]
    fn retried_attempts_and_cached_tasks_get_their_own_bars() {
        let t0 = Utc::now();
        let at = |s: i64| t0 + Duration::milliseconds(s);
        let attempt = |n, a, b, err: bool| Attempt {
            number: n,
            started_at: at(a),
            ended_at: Some(at(b)),
            error: err.then(|| TaskError::retryable("boom")),
            shard: None,
            job: None,
        };
        let mut cached = task(TaskStatus::Cached, vec![]);
        cached.started_at = Some(at(0));
        cached.ended_at = Some(at(0));
        let record = RunRecord {
            run_id: "r".into(),
            pipeline: "p".into(),
            pipeline_file: "p.yaml".into(),
            spec_hash: String::new(),
            params: BTreeMap::new(),
            status: RunStatus::Succeeded,
            created_at: t0,
            ended_at: Some(at(4_000)),
            resumed_at: vec![],
            last_event_at: None,
            reason: None,
            tags: BTreeMap::new(),
            task_order: vec!["a".into(), "b".into(), "c".into()],
            tasks: BTreeMap::from([
                ("a".to_string(), cached),
                (
                    "b".to_string(),
                    task(
                        TaskStatus::Succeeded,
                        vec![attempt(1, 0, 1_000, true), attempt(2, 2_000, 4_000, false)],
                    ),
                ),
                ("c".to_string(), task(TaskStatus::Pending, vec![])),
            ]),
            last_seq: 0,
        };
        let g = gantt(&record, at(10_000));
        assert_eq!(g.span_ms, 4_000);
        assert_eq!(g.rows.len(), 3);
        assert_eq!(g.rows[0].bars[0].kind, "cached");
        assert_eq!(g.rows[0].bars[0].width_pct, MIN_WIDTH_PCT);
        let b = &g.rows[1].bars;
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].kind.as_str(), b[0].left_pct, b[0].width_pct),
            ("retried", 0.0, 25.0)
        );
        assert_eq!(b[0].error.as_deref(), Some("boom"));
        assert_eq!(
            (b[1].kind.as_str(), b[1].left_pct, b[1].width_pct),
            ("succeeded", 50.0, 50.0)
        );
        assert!(g.rows[2].bars.is_empty());
        assert_eq!(g.ticks[0].label, "0ms");
    }

    #[test]
    fn short_runs_get_several_ticks() {
        for (span_ms, step) in [(1, 1), (20, 5), (58, 10), (400, 50), (9_000, 2_000)] {
            let t = ticks(span_ms);
            assert!(
                t.len() >= 2 && t.len() <= 9,
                "{span_ms} ms: {} ticks",
                t.len()
            );
            assert_eq!(t[1].label, elapsed(step), "{span_ms} ms");
            assert!(t.iter().all(|t| (0.0..=100.0).contains(&t.left_pct)));
        }
    }

    #[test]
    fn elapsed_times_are_compact() {
        assert_eq!(elapsed(250), "250ms");
        assert_eq!(elapsed(2_000), "2s");
        assert_eq!(elapsed(1_500), "1.5s");
        assert_eq!(elapsed(125_000), "2m05s");
        assert_eq!(elapsed(3_720_000), "1h02m");
    }
}
