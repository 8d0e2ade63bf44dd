//! `/schedules`: what the scheduler daemons' state files say.

use super::*;

/// Counts of tick decisions.
#[derive(Debug, Default, Serialize)]
pub struct TickCounts {
    /// Runs started.
    pub fired: usize,
    /// Ticks skipped by policy.
    pub skipped: usize,
    /// Ticks missed.
    pub missed: usize,
}

/// A pipeline's scheduler state.
#[derive(Debug, Serialize)]
pub struct ScheduleRow {
    /// The pipeline.
    pub pipeline: String,
    /// Its file, when found under the UI's paths.
    pub file: Option<String>,
    /// Its schedule.
    pub schedule: Option<ScheduleView>,
    /// The latest tick handled.
    pub last_tick: Option<DateTime<Utc>>,
    /// The latest run started.
    pub last_fired: Option<TickRecord>,
    /// Decisions in the kept history.
    pub counts: TickCounts,
    /// The latest decisions, newest first.
    pub recent: Vec<TickRecord>,
    /// Why the state file could not be read.
    pub error: Option<String>,
}

/// The schedules page.
#[derive(Debug, Serialize)]
pub struct SchedulesPage {
    /// Scheduled pipelines, and pipelines with a scheduler state.
    pub schedules: Vec<ScheduleRow>,
}

fn schedules_view(state: &AppState) -> SchedulesPage {
    let mut rows: BTreeMap<String, (Option<String>, Option<ScheduleView>)> = BTreeMap::new();
    for f in pipelines::load_all(&state.registry, &state.paths) {
        if let Ok(p) = &f.loaded
            && p.schedule.is_some()
        {
            rows.insert(
                p.name.clone(),
                (
                    Some(f.file.display().to_string()),
                    pipelines::schedule_view(p, NEXT_FIRES),
                ),
            );
        }
    }
    let dir = state.store.root().join(".schedules");
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json")
            && let Some(stem) = path.file_stem()
        {
            rows.entry(stem.to_string_lossy().to_string())
                .or_insert((None, None));
        }
    }
    let schedules = rows
        .into_iter()
        .map(|(pipeline, (file, schedule))| {
            let (st, error) = match state.store.schedule_state(&pipeline) {
                Ok(s) => (s, None),
                Err(e) => (ScheduleState::default(), Some(e.to_string())),
            };
            let mut counts = TickCounts::default();
            for t in &st.history {
                match t.action {
                    TickAction::Fired => counts.fired += 1,
                    TickAction::Skipped => counts.skipped += 1,
                    TickAction::Missed => counts.missed += 1,
                }
            }
            ScheduleRow {
                pipeline,
                file,
                schedule,
                last_tick: st.last_tick,
                last_fired: st.last_fired.clone(),
                counts,
                recent: st.history.iter().rev().take(20).cloned().collect(),
                error,
            }
        })
        .collect();
    SchedulesPage { schedules }
}

/// `GET /schedules`.
pub async fn schedules(State(state): Shared, headers: HeaderMap) -> Response {
    let view = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || schedules_view(&state)).await
    };
    match view {
        Ok(view) => page(
            &state.templates,
            &headers,
            StatusCode::OK,
            "schedules.html",
            &view,
            state.guard.has_token(&headers),
        ),
        Err(e) => internal(&state, &headers, e),
    }
}
