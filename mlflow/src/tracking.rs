//! Tracking API: experiments, runs, metrics, params, tags, metric history.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::client::Client;
use crate::error::{Error, ErrorCode, Result};
use crate::types::{
    Experiment, Metric, MlflowRunStatus, Param, Run, RunInfo, RunTag, RunsPage, SearchRuns,
    now_millis,
};
use crate::validation;

/// Id of the experiment every MLflow server has (`Default`).
pub const DEFAULT_EXPERIMENT_ID: &str = "0";

/// What a [`Client::log_batch`] call sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// `log-batch` requests made.
    pub requests: usize,
    /// Metric points sent.
    pub metrics: usize,
    /// Params sent (params already logged with the same value are skipped).
    pub params: usize,
    /// Tags sent.
    pub tags: usize,
}

#[derive(Deserialize)]
struct ExperimentAnswer {
    experiment: Experiment,
}

#[derive(Deserialize)]
struct CreateExperimentAnswer {
    experiment_id: String,
}

#[derive(Deserialize)]
struct RunAnswer {
    run: Run,
}

#[derive(Deserialize)]
struct UpdateRunAnswer {
    run_info: RunInfo,
}

#[derive(Deserialize)]
struct HistoryAnswer {
    #[serde(default)]
    metrics: Vec<Metric>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Empty {}

impl Client {
    // ---- experiments ----

    /// Experiment by name; [`Error::Api`] with `ResourceDoesNotExist` when there is none.
    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        validation::non_empty("experiment name", name)?;
        let a: ExperimentAnswer = self
            .call::<(), _>(
                Method::GET,
                "experiments/get-by-name",
                &[("experiment_name", name)],
                None,
            )
            .await?;
        Ok(a.experiment)
    }

    /// Experiment by id.
    pub async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        validation::non_empty("experiment id", experiment_id)?;
        let a: ExperimentAnswer = self
            .call::<(), _>(
                Method::GET,
                "experiments/get",
                &[("experiment_id", experiment_id)],
                None,
            )
            .await?;
        Ok(a.experiment)
    }

    /// Creates an experiment and returns its id. Fails with `ResourceAlreadyExists` if the name
    /// is taken (also by a deleted experiment).
    pub async fn create_experiment(&self, name: &str, tags: &[(String, String)]) -> Result<String> {
        validation::non_empty("experiment name", name)?;
        let tags: Vec<_> = tags
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        let a: CreateExperimentAnswer = self
            .call(
                Method::POST,
                "experiments/create",
                &[],
                Some(&json!({"name": name, "tags": tags})),
            )
            .await?;
        Ok(a.experiment_id)
    }

    /// The experiment of that name, created if missing. Safe under concurrency: when another
    /// process creates it between our lookup and our create, the create's
    /// `RESOURCE_ALREADY_EXISTS` leads to a second lookup. A deleted experiment of that name is
    /// an error (restore it in MLflow, or purge it with `mlflow gc`).
    pub async fn get_or_create_experiment(&self, name: &str) -> Result<Experiment> {
        let found = match self.get_experiment_by_name(name).await {
            Ok(e) => Some(e),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let exp = match found {
            Some(e) => e,
            None => match self.create_experiment(name, &[]).await {
                Ok(id) => self.get_experiment(&id).await?,
                Err(e) if e.is_already_exists() => self.get_experiment_by_name(name).await?,
                Err(e) => return Err(e),
            },
        };
        if exp.lifecycle_stage == "deleted" {
            return Err(Error::Api {
                code: ErrorCode::InvalidState,
                message: format!(
                    "experiment {name:?} (id {}) is deleted; restore it or purge it with `mlflow gc`",
                    exp.experiment_id
                ),
                status: 400,
                endpoint: "experiments/get-by-name".into(),
            });
        }
        Ok(exp)
    }

    /// The experiment named by `MLFLOW_EXPERIMENT_NAME` (created if missing), else MLflow's
    /// `Default` experiment (id `0`).
    pub async fn default_experiment(&self) -> Result<Experiment> {
        match self.config().experiment_name.clone() {
            Some(name) => self.get_or_create_experiment(&name).await,
            None => self.get_experiment(DEFAULT_EXPERIMENT_ID).await,
        }
    }

    /// Deletes (soft) an experiment.
    pub async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        validation::non_empty("experiment id", experiment_id)?;
        let _: Empty = self
            .call(
                Method::POST,
                "experiments/delete",
                &[],
                Some(&json!({"experiment_id": experiment_id})),
            )
            .await?;
        Ok(())
    }

    // ---- runs ----

    /// Starts a run (status `RUNNING`, start time now) with an optional name and tags.
    pub async fn create_run(
        &self,
        experiment_id: &str,
        run_name: Option<&str>,
        tags: &[RunTag],
    ) -> Result<Run> {
        validation::non_empty("experiment id", experiment_id)?;
        if let Some(n) = run_name {
            validation::non_empty("run name", n)?;
        }
        for t in tags {
            validation::tag(t)?;
        }
        let mut body = json!({
            "experiment_id": experiment_id,
            "start_time": now_millis(),
            "tags": tags,
        });
        if let Some(n) = run_name {
            body["run_name"] = json!(n);
        }
        let a: RunAnswer = self
            .call(Method::POST, "runs/create", &[], Some(&body))
            .await?;
        self.remember_root(&a.run.info);
        Ok(a.run)
    }

    /// Updates a run's status, end time (ms) and/or name.
    pub async fn update_run(
        &self,
        run_id: &str,
        status: Option<MlflowRunStatus>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo> {
        validation::non_empty("run id", run_id)?;
        let mut body = json!({ "run_id": run_id });
        if let Some(s) = status {
            body["status"] = json!(s);
        }
        if let Some(t) = end_time {
            body["end_time"] = json!(t);
        }
        if let Some(n) = run_name {
            validation::non_empty("run name", n)?;
            body["run_name"] = json!(n);
        }
        let a: UpdateRunAnswer = self
            .call(Method::POST, "runs/update", &[], Some(&body))
            .await?;
        Ok(a.run_info)
    }

    /// Ends a run: sets a terminal status and the end time to now.
    pub async fn end_run(&self, run_id: &str, status: MlflowRunStatus) -> Result<RunInfo> {
        if !status.is_terminal() {
            return Err(Error::InvalidInput(format!(
                "end_run needs a terminal status, not {status:?}"
            )));
        }
        self.update_run(run_id, Some(status), Some(now_millis()), None)
            .await
    }

    /// A run with its params, tags and latest metric values.
    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        validation::non_empty("run id", run_id)?;
        let a: RunAnswer = self
            .call::<(), _>(Method::GET, "runs/get", &[("run_id", run_id)], None)
            .await?;
        self.remember_root(&a.run.info);
        Ok(a.run)
    }

    /// Deletes (soft) a run and forgets the client's record of its params.
    pub async fn delete_run(&self, run_id: &str) -> Result<()> {
        validation::non_empty("run id", run_id)?;
        let _: Empty = self
            .call(
                Method::POST,
                "runs/delete",
                &[],
                Some(&json!({"run_id": run_id})),
            )
            .await?;
        self.lock_params().remove(run_id);
        Ok(())
    }

    /// One page of runs matching a query.
    pub async fn search_runs(&self, query: &SearchRuns) -> Result<RunsPage> {
        if query.experiment_ids.is_empty() {
            return Err(Error::InvalidInput(
                "search_runs needs at least one experiment id".into(),
            ));
        }
        self.call(Method::POST, "runs/search", &[], Some(query))
            .await
    }

    /// All runs matching a query, following the pages.
    pub async fn search_all_runs(&self, query: &SearchRuns) -> Result<Vec<Run>> {
        let mut q = query.clone();
        let mut out = Vec::new();
        loop {
            let page = self.search_runs(&q).await?;
            out.extend(page.runs);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => q.page_token = Some(t),
                None => return Ok(out),
            }
        }
    }

    // ---- logging ----

    /// Logs one metric point.
    pub async fn log_metric(&self, run_id: &str, metric: &Metric) -> Result<()> {
        validation::non_empty("run id", run_id)?;
        validation::metric(metric, self.config().allow_non_finite_metrics)?;
        let mut body =
            serde_json::to_value(metric).map_err(|e| Error::InvalidInput(e.to_string()))?;
        body["run_id"] = json!(run_id);
        let _: Empty = self
            .call(Method::POST, "runs/log-metric", &[], Some(&body))
            .await?;
        Ok(())
    }

    /// Logs one param. Params are immutable: logging another value for a key already logged on
    /// this run fails with [`Error::ParamChanged`] (checked locally for params logged through this
    /// client, and mapped from the server's answer otherwise). The same value again is a no-op.
    pub async fn log_param(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        validation::non_empty("run id", run_id)?;
        let p = Param::new(key, value);
        validation::param(&p)?;
        let todo = self.params_to_send(run_id, std::slice::from_ref(&p))?;
        if todo.is_empty() {
            return Ok(());
        }
        let body = json!({"run_id": run_id, "key": key, "value": value});
        let r: Result<Empty> = self
            .call(Method::POST, "runs/log-parameter", &[], Some(&body))
            .await;
        r.map_err(|e| map_param_error(e, run_id, &todo))?;
        self.record_params(run_id, &todo);
        Ok(())
    }

    /// Sets (or overwrites) a run tag.
    pub async fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        validation::non_empty("run id", run_id)?;
        validation::tag(&RunTag::new(key, value))?;
        let body = json!({"run_id": run_id, "key": key, "value": value});
        let _: Empty = self
            .call(Method::POST, "runs/set-tag", &[], Some(&body))
            .await?;
        Ok(())
    }

    /// Logs metrics, params and tags with as few `log-batch` calls as the server's limits
    /// allow (1000 metrics, 100 params, 100 tags, 1000 items per call). Everything is
    /// validated before the first call. Calls are sent in order; on error, earlier chunks stay
    /// logged.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[RunTag],
    ) -> Result<BatchReport> {
        self.log_batch_concurrent(run_id, metrics, params, tags, 1)
            .await
    }

    /// Like [`Client::log_batch`], with up to `concurrency` calls in flight. The params and
    /// tags go with the first call(s), sent before any concurrent metric-only call.
    pub async fn log_batch_concurrent(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[Param],
        tags: &[RunTag],
        concurrency: usize,
    ) -> Result<BatchReport> {
        use futures::{StreamExt, TryStreamExt};
        validation::non_empty("run id", run_id)?;
        let allow = self.config().allow_non_finite_metrics;
        for m in metrics {
            validation::metric(m, allow)?;
        }
        for p in params {
            validation::param(p)?;
        }
        for t in tags {
            validation::tag(t)?;
        }
        let params = validation::dedup_params(run_id, params)?;
        let params = self.params_to_send(run_id, &params)?;
        let chunks = validation::split_batch(metrics, &params, tags);
        let report = BatchReport {
            requests: chunks.len(),
            metrics: metrics.len(),
            params: params.len(),
            tags: tags.len(),
        };
        let (with_kv, metric_only): (Vec<_>, Vec<_>) = chunks
            .into_iter()
            .partition(|c| !c.params.is_empty() || !c.tags.is_empty());
        for c in with_kv {
            let body =
                json!({"run_id": run_id, "metrics": c.metrics, "params": c.params, "tags": c.tags});
            let r: Result<Empty> = self
                .call(Method::POST, "runs/log-batch", &[], Some(&body))
                .await;
            r.map_err(|e| map_param_error(e, run_id, &c.params))?;
            self.record_params(run_id, &c.params);
        }
        futures::stream::iter(metric_only)
            .map(|c| async move {
                let body = json!({"run_id": run_id, "metrics": c.metrics});
                let _: Empty = self
                    .call(Method::POST, "runs/log-batch", &[], Some(&body))
                    .await?;
                Ok::<_, Error>(())
            })
            .buffered(concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(report)
    }

    /// Every point of a metric, following the pages.
    pub async fn get_metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        validation::non_empty("run id", run_id)?;
        validation::non_empty("metric key", key)?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![
                ("run_id", run_id),
                ("metric_key", key),
                ("max_results", "25000"),
            ];
            if let Some(t) = token.as_deref() {
                q.push(("page_token", t));
            }
            let a: HistoryAnswer = self
                .call::<(), _>(Method::GET, "metrics/get-history", &q, None)
                .await?;
            out.extend(a.metrics);
            match a.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    // ---- helpers ----

    fn remember_root(&self, info: &RunInfo) {
        if !info.artifact_uri.is_empty() {
            self.lock_roots()
                .insert(info.run_id.clone(), info.artifact_uri.clone());
        }
    }

    /// Params not yet logged through this client; error for a changed value.
    fn params_to_send(&self, run_id: &str, params: &[Param]) -> Result<Vec<Param>> {
        let map = self.lock_params();
        let logged = map.get(run_id);
        let mut out = Vec::with_capacity(params.len());
        for p in params {
            match logged.and_then(|l| l.get(&p.key)) {
                Some(v) if *v == p.value => {}
                Some(v) => {
                    return Err(Error::ParamChanged {
                        run_id: run_id.to_string(),
                        key: p.key.clone(),
                        logged: v.clone(),
                        attempted: p.value.clone(),
                    });
                }
                None => out.push(p.clone()),
            }
        }
        Ok(out)
    }

    fn record_params(&self, run_id: &str, params: &[Param]) {
        if params.is_empty() {
            return;
        }
        let mut map = self.lock_params();
        let rec = map.entry(run_id.to_string()).or_default();
        for p in params {
            rec.insert(p.key.clone(), p.value.clone());
        }
    }
}

/// Maps the server's "Changing param values is not allowed" to [`Error::ParamChanged`].
fn map_param_error(e: Error, run_id: &str, sent: &[Param]) -> Error {
    let Error::Api {
        code: ErrorCode::InvalidParameterValue,
        message,
        ..
    } = &e
    else {
        return e;
    };
    if !message.contains("Changing param values is not allowed") {
        return e;
    }
    let quoted = |after: &str| -> Option<String> {
        let i = message.find(after)? + after.len();
        let rest = &message[i..];
        let j = rest.find('\'')?;
        Some(rest[..j].to_string())
    };
    let key = quoted("key='").unwrap_or_default();
    let logged = quoted("value='").unwrap_or_default();
    let attempted = sent
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.clone())
        .or_else(|| quoted("new value '"))
        .unwrap_or_default();
    Error::ParamChanged {
        run_id: run_id.to_string(),
        key,
        logged,
        attempted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_server_param_change() {
        let e = Error::Api {
            code: ErrorCode::InvalidParameterValue,
            message: "Changing param values is not allowed. Param with key='lr' was already logged with value='0.1' for run ID='abc'. Attempted logging new value '0.2'.".into(),
            status: 400,
            endpoint: "runs/log-parameter".into(),
        };
        match map_param_error(e, "abc", &[Param::new("lr", "0.2")]) {
            Error::ParamChanged {
                key,
                logged,
                attempted,
                ..
            } => {
                assert_eq!(
                    (key.as_str(), logged.as_str(), attempted.as_str()),
                    ("lr", "0.1", "0.2")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
