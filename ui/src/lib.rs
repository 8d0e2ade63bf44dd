//! # tweetflow-ui
//!
//! `tweetflow ui`: a web page over the pipeline files and the run store. It shows each
//! pipeline (its DAG, schedule, last runs, validation errors), the runs (filtered, paginated),
//! one run (a Gantt timeline of its tasks and attempts, outputs, errors, its live log) and the
//! scheduler's state; and it starts, cancels and resumes runs by calling the `tweetflow` binary
//! itself, so a run started here is an ordinary run.
//!
//! Every page has a JSON twin (`Accept: application/json`). Pages are read-only; actions need
//! the token and a same-origin request (see the `security` module).
//!
//! ```text
//!  GET  /                       pipelines        POST /pipelines/{name}/run
//!  GET  /pipelines/{name}       one pipeline     POST /runs/{id}/cancel
//!  GET  /runs?pipeline=&status=&page=            POST /runs/{id}/resume
//!  GET  /runs/{id}              one run
//!  GET  /runs/{id}/log          its log (server-sent events while it runs)
//!  GET  /schedules              the scheduler's state
//! ```

mod actions;
mod cron_words;
mod dag;
mod error;
mod gantt;
mod log_stream;
mod pages;
mod pipelines;
mod render;
mod run_index;
mod security;
mod server;
mod state;

pub use error::UiError;
pub use server::{UiConfig, bind, serve};
