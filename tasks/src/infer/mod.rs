//! `infer`: silver to gold, the model's sentiment for every (tweet, mention) row, exactly once.
//!
//! The gold table records, as its application transaction (`tweetflow-infer`), the silver
//! version it has consumed. A run reads the silver commits after that version up to the
//! latest one, takes the files they added with `dataChange = true`, and streams them in
//! batches of [`tweetflow_delta::table::BATCH_ROWS`] rows. Each batch's `cleaned_text` values are classified by
//! [`tweetflow_model::Sessions`] in `spawn_blocking`; the model runs
//! once per distinct text (a tweet with three mentions is one inference; a bounded cache of
//! [`tweetflow_model::DEDUP_CACHE_TEXTS`] texts carries predictions across batches), in batches sorted by token
//! length. Without `threads:` and unsharded, a run loads one ONNX Runtime session per core (at
//! most [`MAX_DEFAULT_SESSIONS`]), each with one intra-op thread, and hands the model batches
//! out to them in order: the gold rows are those of one session, row for row, and the model
//! runs at about the speed of as many single-thread processes (see
//! [`InferParams::sessions`]). With `threads:` set, or split into `shards:`, one session runs
//! with that many threads. Gold files are written as the run goes and committed at the end with the new
//! application transaction, after checking that the recorded silver version has not moved.
//! A rerun without new silver data creates no gold version.
//!
//! Gold columns: `tweet_id`, `timestamp`, `mention`, `cleaned_text`, `sentiment` (the label
//! as landed), `sentiment_id` (1 positive, 0 negative, null otherwise), `predicted_sentiment`
//! (`positive`/`negative`/`neutral`), `predicted_score` (0-100), `predicted_sentiment_id` (1
//! positive, 0 negative, null for neutral), `model_uri`, `model_version`.
//!
//! The model is a directory or a registry URI (`models:/NAME@ALIAS`, `models:/NAME/3`,
//! `models:/NAME/latest`, `models:/NAME/Production`), resolved by
//! [`tweetflow_model::resolve`] (downloaded once into `cache_dir`). For a directory,
//! `model_uri` is its absolute path and `model_version` the first 12 hex digits of the
//! SHA-256 of its `manifest.json` (`local` when that cannot be read); for a registry URI,
//! `model_uri` is the URI as given and `model_version` the registry version it resolved to.
//!
//! The model is resolved only when there is new silver data, once per run: a run without new
//! data needs neither the registry nor ONNX Runtime. New rows are scored by the version the
//! URI names at that moment; rows already in gold keep the prediction and `model_version`
//! they were scored with (when an alias moves, history is not re-scored behind the user's

mod attempt;
mod error;
mod gold;
mod params;
mod plan;
mod progress;
pub(crate) mod remote_model;
mod resolve;
mod shard;

pub use attempt::{InferSummary, infer, infer_shard, infer_with};
pub use error::{InferError, InferResult};
pub use gold::{APP_ID, SILVER_COLUMNS, gold_schema, predicted_id, sentiment_id};
pub use params::{DEFAULT_BATCH_SIZE, DEFAULT_CACHE_DIR, InferParams, MAX_DEFAULT_SESSIONS};
pub use plan::RECORDED_MODEL_LOOKBACK;
pub use progress::LOG_EVERY_ROWS;
pub use resolve::{LOCAL_VERSION, LoadedModel, ScoringModel, registry_client, resolve_model};

use tweetflow_delta::table;

use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};

/// The `infer` task.
pub struct InferTask;

impl Task for InferTask {
    type Params = InferParams;
    const TYPE: &'static str = "infer";
    const VERSION: &'static str = "1";
    /// Shards split the new silver rows by a hash of `tweet_id` ([`shard`]).
    const SHARDABLE: bool = true;
    const WRITES_TABLE: bool = true;

    fn output_columns(&self, _params: &InferParams) -> Option<Vec<(String, String)>> {
        gold_schema().ok().map(|s| crate::expect::columns_of(&s))
    }
    const DESCRIPTION: &'static str = "Classify new silver tweets with an ONNX sentiment model (directory or models:/ URI) into a gold Delta table, exactly once";

    fn locations(&self, p: &InferParams) -> Vec<(&'static str, String)> {
        let mut out = vec![("input", p.input.clone()), ("table", p.table.clone())];
        // A registry URI is not a path; a directory or an object-store prefix is.
        if !p.model.starts_with("models:/") {
            out.push(("model", p.model.clone()));
        }
        out
    }

    async fn run(
        &self,
        ctx: &TaskContext,
        params: InferParams,
    ) -> std::result::Result<TaskOutput, TaskError> {
        let cache_dir = params.cache_dir.clone().unwrap_or_default();
        crate::run_store_guard::refuse_run_store(
            ctx,
            &[("table", &params.table), ("cache_dir", &cache_dir)],
        )?;
        let ctl = crate::medallion::write_control(ctx);
        let s = infer_shard(&params, &ctl, &mut LoadedModel::default(), ctx.shard).await?;
        crate::medallion::table_output(&s, &s.table, s.table_version)
    }

    /// Valid while gold is at the version the output names and silver has no newer version.
    async fn output_still_valid(&self, params: &InferParams, output: &TaskOutput) -> bool {
        let consumed = output.get("silver_version").and_then(|v| v.as_i64());
        consumed.is_some()
            && consumed == table::latest_version(&params.input).await
            && crate::medallion::output_table_still_valid(&params.table, output).await
    }
}

impl crate::expect::WritesTable for InferTask {
    fn tables(params: &InferParams) -> (String, String) {
        (
            params.table.clone(),
            crate::medallion::tables::default_quarantine(&params.table),
        )
    }
}
