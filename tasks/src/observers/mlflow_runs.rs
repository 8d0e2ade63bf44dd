//! Pipeline runs as MLflow runs: a [`RunObserver`] that creates one MLflow run per pipeline
//! run (named `<pipeline>-<run id>`, tagged with the run id, pipeline, spec hash and git
//! commit), logs the params, one duration and one attempts metric per task, and ends it
//! FINISHED / FAILED / KILLED like the pipeline run. Secret params are logged as `***`. A run
//! whose engine died is set KILLED when that is found, and RUNNING again when it is resumed.
//!
//! It is on when the pipeline has an `mlflow:` section or `MLFLOW_TRACKING_URI` is set. The
//! MLflow run lists the Delta tables the run read and wrote, its source, user and
//! description, and the model version its inference resolved (see [`super::lineage`]). The
//! run's tasks get the MLflow run as a [`MlflowRunLink`] in their context; the link is also
//! kept in `runs/<run_id>/mlflow.json`, so a resumed run logs into the same MLflow run; if the server is down, the engine marks the run `mlflow.pending` and
//! `tweetflow run --resume RUN_ID` logs what was missed.

use std::path::Path;

use tweetflow_engine::secrets::mask;
use tweetflow_engine::task::BoxFuture;
use tweetflow_engine::{ObserverError, RunObserver};
use tweetflow_engine::{Pipeline, RunLinks, RunRecord, RunStatus};
use tweetflow_mlflow::{Client, Metric, MlflowRunStatus, Param, RunTag};

use crate::mlflow_link::{MlflowRunLink, MlflowSection, config_for_uri};

/// Keeps `link` in the run directory (a failure to write it is retried by `--resume`).
fn keep(link: &MlflowRunLink, run_dir: &Path) -> Result<(), ObserverError> {
    link.write(run_dir).map_err(ObserverError::retryable)
}

/// The MLflow observer. Streaming sessions (`run --watch`) get one MLflow run each, with
/// per-batch metrics at step = batch number.
#[derive(Default)]
pub struct MlflowRuns {
    sessions: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

fn enabled(pipeline: &Pipeline) -> bool {
    pipeline.section::<MlflowSection>().is_some()
        || std::env::var("MLFLOW_TRACKING_URI").is_ok_and(|v| !v.trim().is_empty())
}

/// An MLflow failure as an observer failure, retryable when the client says so (a server
/// down or overloaded).
fn observer_error(e: tweetflow_mlflow::Error) -> ObserverError {
    ObserverError {
        retryable: e.is_retryable(),
        source: Box::new(e),
    }
}

fn client_for(pipeline: &Pipeline) -> Result<Client, ObserverError> {
    let section = pipeline.section::<MlflowSection>().unwrap_or_default();
    let mut config = config_for_uri(section.tracking_uri.as_deref()).map_err(observer_error)?;
    // Logging must not hold a pipeline up for long: a down server is recorded and retried by
    // `--resume`, so a couple of quick retries are enough.
    if std::env::var_os("MLFLOW_HTTP_REQUEST_MAX_RETRIES").is_none() {
        config = config.with_retries(2, std::time::Duration::from_millis(200));
    }
    Client::new(config).map_err(observer_error)
}

fn experiment_name(pipeline: &Pipeline) -> String {
    pipeline
        .section::<MlflowSection>()
        .and_then(|m| m.experiment)
        .or_else(|| {
            std::env::var("MLFLOW_EXPERIMENT_NAME")
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| pipeline.name.clone())
}

/// The commit of the git checkout holding the pipeline file, if it is in one.
fn git_commit(pipeline_file: &str) -> Option<String> {
    let dir = Path::new(pipeline_file)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The MLflow run of `record`: the linked one, or a new one.
async fn ensure_run(
    client: &Client,
    run_dir: &Path,
    pipeline: &Pipeline,
    record: &RunRecord,
) -> Result<MlflowRunLink, ObserverError> {
    if let Some(link) = MlflowRunLink::read(run_dir) {
        client
            .update_run(&link.run_id, Some(MlflowRunStatus::Running), None, None)
            .await
            .map_err(observer_error)?;
        return Ok(link);
    }
    let experiment = client
        .get_or_create_experiment(&experiment_name(pipeline))
        .await
        .map_err(observer_error)?;
    let mut tags = vec![
        RunTag::new("tweetflow.run_id", record.run_id.clone()),
        RunTag::new("tweetflow.pipeline", pipeline.name.clone()),
        RunTag::new("tweetflow.spec_hash", pipeline.spec_hash.clone()),
        RunTag::new("tweetflow.pipeline_file", record.pipeline_file.clone()),
    ];
    tags.extend(super::lineage::source_tags(record));
    if let Some(commit) = git_commit(&record.pipeline_file) {
        tags.push(RunTag::new("mlflow.source.git.commit", commit.clone()));
        tags.push(RunTag::new("tweetflow.git_commit", commit));
    }
    for (k, v) in &record.tags {
        if !k.ends_with(".pending") {
            tags.push(RunTag::new(format!("tweetflow.{k}"), mask(v).into_owned()));
        }
    }
    let name = format!("{}-{}", pipeline.name, record.run_id);
    let run = client
        .create_run(&experiment.experiment_id, Some(&name), &tags)
        .await
        .map_err(observer_error)?;
    // Recorded without user information: credentials in the URL stay in the process.
    let mut public = client.tracking_uri().clone();
    let _ = public.set_username("");
    let _ = public.set_password(None);
    let base = public.as_str().trim_end_matches('/').to_string();
    let link = MlflowRunLink {
        tracking_uri: base.clone(),
        experiment_id: experiment.experiment_id.clone(),
        run_id: run.info.run_id.clone(),
        url: format!(
            "{base}/#/experiments/{}/runs/{}",
            experiment.experiment_id, run.info.run_id
        ),
        complete: false,
    };
    keep(&link, run_dir)?;
    Ok(link)
}

fn metrics(record: &RunRecord) -> Vec<Metric> {
    let mut out = Vec::new();
    for (id, task) in record.ordered_tasks() {
        if let Some(d) = task.duration() {
            out.push(Metric::new(
                format!("task.{id}.duration_s"),
                d.as_secs_f64(),
                0,
            ));
        }
        out.push(Metric::new(
            format!("task.{id}.attempts"),
            task.attempts.len() as f64,
            0,
        ));
        out.extend(expectation_metrics(id, task.output.as_ref(), 0));
    }
    let succeeded = record
        .tasks
        .values()
        .filter(|t| t.status.is_success())
        .count();
    out.push(Metric::new(
        "run.duration_s",
        record.duration().as_secs_f64(),
        0,
    ));
    out.push(Metric::new("run.tasks_succeeded", succeeded as f64, 0));
    out.push(Metric::new(
        "run.tasks_failed",
        (record.tasks.len() - succeeded) as f64,
        0,
    ));
    out
}

/// Per-batch metrics: durations, attempts and every numeric output value of each task.
fn batch_metrics(record: &RunRecord, step: i64) -> Vec<Metric> {
    let mut out = vec![Metric::new(
        "batch.duration_s",
        record.duration().as_secs_f64(),
        step,
    )];
    for (id, task) in record.ordered_tasks() {
        if let Some(d) = task.duration() {
            out.push(Metric::new(
                format!("task.{id}.duration_s"),
                d.as_secs_f64(),
                step,
            ));
        }
        if let Some(output) = &task.output {
            for (key, value) in &output.values {
                if let Some(v) = value.as_f64() {
                    out.push(Metric::new(format!("task.{id}.{key}"), v, step));
                }
            }
        }
        out.extend(expectation_metrics(id, task.output.as_ref(), step));
    }
    out
}

/// `expect.<task>.<name>.failed` for each expectation in a task's output (see
/// [`crate::expect`]).
fn expectation_metrics(
    id: &str,
    output: Option<&tweetflow_engine::TaskOutput>,
    step: i64,
) -> Vec<Metric> {
    let Some(tallies) = output
        .and_then(|o| o.get(crate::expect::OUTPUT_KEY))
        .and_then(|v| v.as_object())
    else {
        return Vec::new();
    };
    tallies
        .iter()
        .filter_map(|(name, tally)| {
            let failed = tally.get("failed")?.as_f64()?;
            Some(Metric::new(
                format!("expect.{id}.{name}.failed"),
                failed,
                step,
            ))
        })
        .collect()
}

impl MlflowRuns {
    fn session_run(&self, session: &str) -> Option<String> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(session)
            .cloned()
    }
}

impl RunObserver for MlflowRuns {
    fn name(&self) -> &'static str {
        "mlflow"
    }

    fn wants(&self, pipeline: &Pipeline) -> bool {
        enabled(pipeline)
    }

    fn run_started<'a>(
        &'a self,
        run_dir: &'a Path,
        pipeline: &'a Pipeline,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<RunLinks, ObserverError>> {
        Box::pin(async move {
            if record.tags.contains_key("watch_session") {
                return Ok(RunLinks::new()); // logged per batch on the session's run
            }
            let started = match client_for(pipeline) {
                Ok(client) => ensure_run(&client, run_dir, pipeline, record).await,
                Err(e) => Err(e),
            };
            let link = match started {
                Ok(link) => {
                    tracing::info!(url = %link.url, "MLflow run");
                    link
                }
                // A resumed run whose server is down keeps its MLflow run: its tasks log
                // there (retrying) and `run_finished` records what the start missed.
                Err(e) => match MlflowRunLink::read(run_dir) {
                    Some(kept) => {
                        tracing::warn!(observer = "mlflow", error = %e, retryable = e.retryable, "observer could not record the start");
                        kept
                    }
                    None => return Err(e),
                },
            };
            let mut links = RunLinks::new();
            links.insert(&link);
            Ok(links)
        })
    }

    fn run_finished<'a>(
        &'a self,
        run_dir: &'a Path,
        pipeline: &'a Pipeline,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<(), ObserverError>> {
        Box::pin(async move {
            if record.tags.contains_key("watch_session") {
                return Ok(()); // logged per batch on the session's run
            }
            let client = client_for(pipeline)?;
            let mut link = ensure_run(&client, run_dir, pipeline, record).await?;
            let params: Vec<Param> = record
                .params
                .iter()
                .map(|(k, v)| {
                    // Secret params are `***` in the record; any other value is masked too.
                    let value = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    Param::new(k.clone(), mask(&value).into_owned())
                })
                .collect();
            // Params are immutable in MLflow: on a resume they are already there.
            let existing = client.get_run(&link.run_id).await.map_err(observer_error)?;
            let logged: std::collections::HashSet<String> =
                existing.data.params.iter().map(|p| p.key.clone()).collect();
            let params: Vec<Param> = params
                .into_iter()
                .filter(|p| !logged.contains(&p.key))
                .collect();
            let (model_tags, model_params) =
                super::lineage::model_tags_and_params(pipeline, record);
            let params: Vec<Param> = params
                .into_iter()
                .chain(
                    model_params
                        .into_iter()
                        .filter(|p| !logged.contains(&p.key)),
                )
                .collect();
            let mut tags = model_tags;
            tags.push(RunTag::new(
                "mlflow.note.content",
                super::lineage::note(pipeline, record, &link.url),
            ));
            client
                .log_batch(&link.run_id, &metrics(record), &params, &tags)
                .await
                .map_err(observer_error)?;
            let datasets = super::lineage::datasets(pipeline, record).await;
            client
                .log_inputs(&link.run_id, &datasets)
                .await
                .map_err(observer_error)?;
            let status = match record.status {
                RunStatus::Succeeded => MlflowRunStatus::Finished,
                RunStatus::Failed | RunStatus::Running => MlflowRunStatus::Failed,
                RunStatus::Cancelled | RunStatus::Interrupted => MlflowRunStatus::Killed,
            };
            client
                .end_run(&link.run_id, status)
                .await
                .map_err(observer_error)?;
            link.complete = true;
            keep(&link, run_dir)?;
            Ok(())
        })
    }

    /// The engine died: the MLflow run is set `KILLED`, ending at the run's last event, so the
    /// MLflow UI does not show a dead run as running; a resume sets it `RUNNING` again.
    fn run_interrupted<'a>(
        &'a self,
        run_dir: &'a Path,
        pipeline: &'a Pipeline,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<(), ObserverError>> {
        Box::pin(async move {
            let Some(link) = MlflowRunLink::read(run_dir) else {
                return Ok(()); // never logged: nothing shows it running
            };
            let client = client_for(pipeline)?;
            let end = record
                .last_event_at
                .unwrap_or_else(chrono::Utc::now)
                .timestamp_millis();
            client
                .update_run(&link.run_id, Some(MlflowRunStatus::Killed), Some(end), None)
                .await
                .map_err(observer_error)?;
            tracing::info!(url = %link.url, "MLflow run set KILLED: the engine died");
            Ok(())
        })
    }

    fn batch_finished<'a>(
        &'a self,
        session: &'a str,
        batch: usize,
        pipeline: &'a Pipeline,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<(), ObserverError>> {
        Box::pin(async move {
            let client = client_for(pipeline)?;
            let run_id = match self.session_run(session) {
                Some(id) => id,
                None => {
                    let experiment = client
                        .get_or_create_experiment(&experiment_name(pipeline))
                        .await
                        .map_err(observer_error)?;
                    let tags = vec![
                        RunTag::new("tweetflow.watch_session", session.to_string()),
                        RunTag::new("tweetflow.pipeline", pipeline.name.clone()),
                        RunTag::new("tweetflow.spec_hash", pipeline.spec_hash.clone()),
                    ];
                    let name = format!("{}-watch-{session}", pipeline.name);
                    let run = client
                        .create_run(&experiment.experiment_id, Some(&name), &tags)
                        .await
                        .map_err(observer_error)?;
                    self.sessions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(session.to_string(), run.info.run_id.clone());
                    run.info.run_id
                }
            };
            client
                .log_batch(&run_id, &batch_metrics(record, batch as i64), &[], &[])
                .await
                .map_err(observer_error)?;
            Ok(())
        })
    }

    fn session_finished<'a>(
        &'a self,
        session: &'a str,
        pipeline: &'a Pipeline,
        cancelled: bool,
    ) -> BoxFuture<'a, Result<(), ObserverError>> {
        Box::pin(async move {
            let Some(run_id) = self.session_run(session) else {
                return Ok(());
            };
            let client = client_for(pipeline)?;
            let status = if cancelled {
                MlflowRunStatus::Killed
            } else {
                MlflowRunStatus::Finished
            };
            client
                .end_run(&run_id, status)
                .await
                .map_err(observer_error)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tweetflow_mlflow::ErrorCode;

    fn api(status: u16) -> tweetflow_mlflow::Error {
        tweetflow_mlflow::Error::Api {
            code: ErrorCode::parse("TEMPORARILY_UNAVAILABLE"),
            message: "busy".into(),
            status,
            endpoint: "runs/create".into(),
        }
    }

    #[test]
    fn mlflow_failures_keep_whether_they_are_retryable_and_their_text() {
        let down = observer_error(api(503));
        assert!(down.is_retryable());
        assert_eq!(down.to_string(), api(503).to_string());
        assert!(
            down.source
                .downcast_ref::<tweetflow_mlflow::Error>()
                .is_some()
        );
        assert!(!observer_error(api(400)).is_retryable());
    }
}
