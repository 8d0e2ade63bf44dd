//! The console of `tweetflow run` and `tweetflow schedule --once`: one short line per task start, retry and finish on stderr,
//! and a progress bar per long task (on a terminal), instead of the full tracing stream.
//!
//! ```text
//!  executor ──(recorded events)──▶ Console::event ──▶ "▸ ingest started", "✓ ingest 1.2s (500 rows)"
//!  task ──(tweetflow::progress trace events, inside the task's span)──▶ ConsoleLayer ──▶ bar
//! ```
//!
//! The full stream still goes to each run's `log.jsonl`, and to stderr with `-v` or
//! `RUST_LOG` (the console is then off, so nothing is printed twice).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event as TracingEvent, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tweetflow_engine::PROGRESS_TARGET;
use tweetflow_engine::RunListener;
use tweetflow_engine::human_duration;
use tweetflow_engine::store::Event;
use tweetflow_engine::{TaskOutput, TaskStatus};

/// The console, once `tweetflow run` turned it on (see [`install`]).
static CONSOLE: OnceLock<Arc<Console>> = OnceLock::new();

/// What the console's layer needs: progress events and the task spans that name them
/// (decided once per call site).
pub fn filter() -> tracing_subscriber::filter::FilterFn {
    tracing_subscriber::filter::filter_fn(|meta| {
        meta.target() == PROGRESS_TARGET || (meta.is_span() && meta.name() == "task")
    })
}

/// Turns the console on for this process and returns the tracing layer that feeds its bars.
pub fn install() -> ConsoleLayer {
    let _ = CONSOLE.set(Arc::new(Console::new(std::io::stderr().is_terminal())));
    ConsoleLayer
}

/// The console, when it is on.
pub fn get() -> Option<Arc<Console>> {
    CONSOLE.get().cloned()
}

/// Task lines and progress bars on stderr.
pub struct Console {
    /// Bars and lines share the terminal through this (lines print above the bars).
    multi: MultiProgress,
    /// Draw bars at all (stderr is a terminal).
    bars_on: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When each task started, by run id and task (`schedule --once` may run several
    /// pipelines at once, with tasks of the same name).
    started: HashMap<(String, String), DateTime<Utc>>,
    /// The last failed attempt's error, by run id and task.
    last_error: HashMap<(String, String), String>,
    bars: HashMap<String, ProgressBar>,
}

impl Console {
    fn new(bars_on: bool) -> Self {
        let target = if bars_on {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Console {
            multi: MultiProgress::with_draw_target(target),
            bars_on,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn line(&self, text: &str) {
        if self.bars_on && !self.state().bars.is_empty() {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    /// `task` has done `done` of `total` (0: unknown) `unit`s.
    fn progress(&self, task: &str, done: u64, total: u64, unit: &str) {
        if !self.bars_on {
            return;
        }
        let mut state = self.state();
        let bar = state.bars.entry(task.to_string()).or_insert_with(|| {
            let bar = if total > 0 {
                ProgressBar::new(total)
            } else {
                ProgressBar::no_length()
            };
            let template = if total > 0 {
                format!(
                    "  {task} {{bar:30}} {{human_pos}}/{{human_len}} {unit} {{per_sec}} eta {{eta}}"
                )
            } else {
                format!("  {task} {{spinner}} {{human_pos}} {unit} {{per_sec}}")
            };
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            let bar = self.multi.add(bar);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        if total > 0 {
            bar.set_length(total);
        }
        bar.set_position(done);
    }
}

impl RunListener for Console {
    fn event(&self, run_id: &str, event: &Event) {
        let key = |task: &String| (run_id.to_string(), task.clone());
        match event {
            Event::TaskStarted { task, at, .. } => {
                self.state().started.insert(key(task), *at);
                self.line(&format!("▸ {task} started"));
            }
            Event::AttemptStarted { task, number, .. } if *number > 1 => {
                let why = self
                    .state()
                    .last_error
                    .remove(&key(task))
                    .unwrap_or_default();
                self.line(&format!("↻ {task} attempt {number} (previous: {why})"));
            }
            Event::AttemptFinished {
                task,
                error: Some(e),
                ..
            } => {
                self.state()
                    .last_error
                    .insert(key(task), one_line(&e.message));
            }
            Event::TaskFinished {
                task,
                status,
                at,
                output,
                error,
            } => {
                let (started, bar) = {
                    let mut state = self.state();
                    state.last_error.remove(&key(task));
                    (state.started.remove(&key(task)), state.bars.remove(task))
                };
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let took = started
                    .and_then(|s| (*at - s).to_std().ok())
                    .map(|d| format!(" in {}", human_duration(d)))
                    .unwrap_or_default();
                let text = match status {
                    TaskStatus::Succeeded => format!(
                        "✓ {task} succeeded{took}{}{}",
                        key_figure(output.as_ref()),
                        left_figure(output.as_ref())
                    ),
                    TaskStatus::Cached => format!("= {task} cached"),
                    TaskStatus::Failed => format!(
                        "✗ {task} failed{took}: {}",
                        error
                            .as_ref()
                            .map(|e| one_line(&e.message))
                            .unwrap_or_default()
                    ),
                    other => format!("- {task} {}", other.as_str()),
                };
                self.line(&text);
            }
            _ => {}
        }
    }
}

/// A message on one line (runs of white space, new lines included, become one space), cut
/// to 200 characters.
fn one_line(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = line.as_str();
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// ` (500 rows)`-like figure from a task's outputs, when it has one of the usual counters.
fn key_figure(output: Option<&TaskOutput>) -> String {
    let Some(output) = output else {
        return String::new();
    };
    ["rows", "tweets", "mentions", "files"]
        .iter()
        .find_map(|key| {
            output
                .get(key)
                .and_then(|v| v.as_u64())
                .map(|n| format!(" ({n} {key})"))
        })
        .unwrap_or_default()
}

/// `; left 4 files waiting: ..., 2 skipped by name (skip_names)` from a task's outputs, when
/// it says it left something (see [`TaskOutput::left`]).
fn left_figure(output: Option<&TaskOutput>) -> String {
    let left = output.map(TaskOutput::left).unwrap_or_default();
    if left.is_empty() {
        String::new()
    } else {
        format!("; left {}", left.join(", "))
    }
}

/// Feeds the console's bars from progress events (see [`tweetflow_engine::progress`]).
pub struct ConsoleLayer;

/// The `task` field of a `task` span, kept in the span's extensions.
struct TaskName(String);

#[derive(Default)]
struct Fields {
    task: Option<String>,
    done: u64,
    total: u64,
    unit: String,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "done" => self.done = value,
            "total" => self.total = value,
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "unit" => self.unit = value.to_string(),
            "task" => self.task = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "task" {
            self.task = Some(format!("{value:?}"));
        }
    }
}

impl<S> Layer<S> for ConsoleLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "task" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(task), Some(span)) = (fields.task, ctx.span(id)) {
            span.extensions_mut().insert(TaskName(task));
        }
    }

    fn on_event(&self, event: &TracingEvent<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != PROGRESS_TARGET {
            return;
        }
        let Some(console) = get() else {
            return;
        };
        let Some(task) = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<TaskName>().map(|t| t.0.clone()))
        }) else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        console.progress(&task, fields.done, fields.total, &fields.unit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_figure_takes_the_first_usual_counter() {
        let out = TaskOutput::new().with("files", 3).with("rows", 500);
        assert_eq!(key_figure(Some(&out)), " (500 rows)");
        let out = TaskOutput::new().with("table", "x");
        assert_eq!(key_figure(Some(&out)), "");
        assert_eq!(key_figure(None), "");
    }

    #[test]
    fn left_figure_says_what_the_task_left() {
        let out = TaskOutput::new().with("rows", 0).with(
            "left",
            serde_json::json!([
                "4 files waiting: modified in the last 5s (settle_time)",
                "2 skipped by name (skip_names)"
            ]),
        );
        assert_eq!(
            format!("{}{}", key_figure(Some(&out)), left_figure(Some(&out))),
            " (0 rows); left 4 files waiting: modified in the last 5s (settle_time), 2 skipped by name (skip_names)"
        );
        let nothing = TaskOutput::new().with("left", serde_json::json!([]));
        assert_eq!(left_figure(Some(&nothing)), "");
        assert_eq!(left_figure(None), "");
    }

    #[test]
    fn one_line_joins_lines_and_cuts_long_messages() {
        assert_eq!(
            one_line("exited with 1; stderr ends with:\n  boom\n"),
            "exited with 1; stderr ends with: boom"
        );
        let long = "x".repeat(300);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), 201);
        assert!(cut.ends_with('…'));
    }
}
