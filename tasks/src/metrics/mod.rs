//! Model evaluation on the gold table: `log-metrics` and `report`.
//!
//! * [`LogMetricsTask`] (`log-metrics`) reads gold once, computes the classification metrics of
//!   [`compute`] (scikit-learn's definitions), draws the confusion matrix and logs metrics,
//!   params and artifacts to MLflow.
//! * [`ReportTask`] (`report`) draws the exploratory charts and writes one self-contained
//!   `report.html` with the profile, the metrics, the charts and the run's task timings.
//!
//! Both log into the MLflow run of the current pipeline run when there is one (the
//! [`crate::mlflow_link::MlflowRunLink`] the MLflow observer attached to the run).
//!
//! | type | params (defaults) | output values |
//! | --- | --- | --- |
//! | `log-metrics` | `input` (gold table), `experiment` (pipeline's `mlflow.experiment`, else `MLFLOW_EXPERIMENT_NAME`) | `precision`, `recall`, `f1`, `accuracy`, `binary_support`, `neutral_predictions_excluded`, `macro_f1` (null without neutral labels), `support`, `predicted`, `labels`, `confusion_matrix`, `rows`, `tweets`, `unscored_tweets`, `model_name`, `model_uri`, `model_version`, `gold_table`, `gold_table_version`, `silver_table_version`, `mlflow_server_version`, `tweetflow_version`, `confusion_matrix_png`, `metrics_json`, `mlflow_run_id`; fingerprint `GOLD@version` |
//! | `report` | `input` (gold table), `profile` (a `profile.json`; default: a direct upstream `profile` output), `title` (`<pipeline> report`) | `report`, `charts`, `notes`, `gold_table_version`, `tweets`, `mlflow_run_id` |
//!
//! **Gold.** One streamed pass ([`gold::scan`]); each tweet counted once (gold has one row per
//! mention). An empty gold table, or one where no tweet has both a label and a prediction, is a
//! fatal error of `log-metrics` (there is nothing to evaluate); `report` draws empty charts.
//!
//! **Metric definitions** and the zero-division rule: see [`compute`].
//!
//! **MLflow (`log-metrics`).** The run is the pipeline run's; without one, a new run named
//! `<pipeline>-<task>-<run id>` in `experiment` on the pipeline's `mlflow.tracking_uri` (else
//! `MLFLOW_TRACKING_URI`), ended FINISHED; with no tracking server configured at all, nothing is
//! logged (a warning) and the files are still written. Metrics (step = gold version):
//! `precision`, `recall`, `f1`, `accuracy`, `binary_support`, `neutral_predictions_excluded`,
//! `macro_f1` (when defined), `tweets`, `unscored_tweets`, `support_<class>`,
//! `confusion_<true>_<predicted>`. Params: `model_name`, `model_uri`, `model_version` (distinct
//! values in gold, comma-separated), `gold_table`, `gold_table_version`, `silver_table_version`
//! (gold's `tweetflow-infer` transaction, else an upstream `silver_version` output),
//! `mlflow_server_version` (`GET /version`, when it answers), `tweetflow_version`. A param
//! already logged with the same value is skipped (retries, resumes); with another value it is
//! recorded as the tag `tweetflow.log-metrics.<param>`. Artifacts under `evaluation/`:
//! `confusion_matrix.png`, `metrics.json`.
//!
//! **Report.** Charts (PNG, 1000 px wide): top 20 tweeters (gold's `user` column, else the
//! profile's `top_users`, else skipped with a note), top 20 mentions by tweets *predicted*
//! positive and by tweets predicted negative, tweets per UTC hour of day. `report.html` embeds
//! them as base64 PNGs with inline CSS (it fetches nothing), with the profile numbers, the
//! metrics of a direct upstream `log-metrics` (and its confusion matrix) and the per-task
//! timings read from the run store. Artifacts under `report/` of the pipeline run's MLflow run
//! (only when the pipeline run has one).

mod chart;
mod compute;
mod gold;
mod log_metrics;
mod report;

pub use log_metrics::{LogMetricsParams, LogMetricsTask};
pub use report::{ARTIFACT_DIR as REPORT_ARTIFACT_DIR, REPORT_HTML, ReportParams, ReportTask};
