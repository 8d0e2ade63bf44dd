//! Running `infer`: the re-plan loop around one attempt, and the attempt itself (plan,
//! score, write gold, commit with the application transaction).

use crate::table_error::TableTaskError;
use deltalake::arrow::array::AsArray;
use deltalake::arrow::datatypes::DataType as ArrowType;
use deltalake::kernel::{Action, Transaction};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use tweetflow_delta::commit::{Replans, append_op};
use tweetflow_delta::table::{self, CommitRequest};
use tweetflow_delta::{WriteControl, incremental};
use tweetflow_engine::task::Shard;
use tweetflow_model::ModelSource;

use super::error::InferResult;
use super::gold::APP_ID;
use super::gold::{SILVER_COLUMNS, column_as, gold_batch, gold_schema};
use super::params::InferParams;
use super::plan::{open_tables, recorded_model};
use super::progress::Progress;
use super::resolve::LoadedModel;
use super::shard;

/// What an infer run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InferSummary {
    /// Gold rows written (one per silver row read).
    pub rows: u64,
    /// Distinct texts sent to the model (after de-duplication).
    pub distinct_texts: u64,
    /// Rows the model ran on (the classifier's counter).
    pub inferred: u64,
    /// Model batches run (not an output).
    #[serde(skip_serializing)]
    pub model_batches: u64,
    /// ONNX Runtime sessions that scored the rows, side by side (0 when nothing was new).
    pub sessions: u64,
    /// Silver version consumed so far.
    pub silver_version: i64,
    /// The gold table.
    pub table: String,
    /// Gold table version after the run.
    pub table_version: i64,
    /// The model URI recorded in gold.
    pub model_uri: String,
    /// The model version recorded in gold.
    pub model_version: String,
}

/// Runs `infer` once: every silver version not yet consumed.
///
/// The model is resolved (and a registry URI looked up) only when there is new silver data:
/// a run with nothing to do needs neither the registry nor ONNX Runtime.
///
/// When another run commits to gold meanwhile, the work is planned again from the log (see
/// [`Replans`]).
pub async fn infer(params: &InferParams, ctl: &WriteControl) -> InferResult<InferSummary> {
    let mut model = LoadedModel::default();
    infer_with(params, ctl, &mut model).await
}

/// [`infer`] with a model slot (which may hold a resolved model and a loaded classifier).
pub async fn infer_with(
    params: &InferParams,
    ctl: &WriteControl,
    model: &mut LoadedModel,
) -> InferResult<InferSummary> {
    infer_shard(params, ctl, model, None).await
}

/// [`infer_with`] for shard `shard` of the task (see [`super::shard`]); `None`: every row.
pub async fn infer_shard(
    params: &InferParams,
    ctl: &WriteControl,
    model: &mut LoadedModel,
    shard: Option<Shard>,
) -> InferResult<InferSummary> {
    if params.batch_size == 0 {
        return Err(TableTaskError::Param {
            param: "batch_size",
            message: "must be at least 1".into(),
        }
        .into());
    }
    // Mistakes in `model` are reported whether or not there is data: the URI's syntax, and a
    // model directory that is not there (both without any network access).
    if !super::remote_model::is_remote(&params.model)
        && let ModelSource::Dir(dir) = ModelSource::parse(&params.model)?
        && !dir.is_dir()
    {
        tweetflow_model::verify_dir(&dir)?;
    }
    let mut replans = Replans::new("infer");
    loop {
        match infer_attempt(params, ctl, model, shard).await {
            Err(err) if replans.again(&err) => continue,
            other => return other,
        }
    }
}

async fn infer_attempt(
    params: &InferParams,
    ctl: &WriteControl,
    model: &mut LoadedModel,
    shard: Option<Shard>,
) -> InferResult<InferSummary> {
    let silver_loc = params.input.clone();
    let gold_loc = params.table.clone();
    let tables = open_tables(params, shard).await?;
    let progress_before = tables.progress;
    let (silver, existing_gold) = (tables.silver, tables.gold);
    let (consumed, hi) = (tables.consumed, tables.latest);
    let lo = consumed.unwrap_or(-1);
    let mut summary = InferSummary {
        table: gold_loc.clone(),
        silver_version: lo,
        table_version: existing_gold.as_ref().map_or(-1, table::version),
        ..Default::default()
    };
    if lo == hi {
        // Nothing new: the model is not resolved; the summary names the one gold last used.
        summary.silver_version = hi;
        if let Some(gold) = &existing_gold
            && let Some((uri, version)) = recorded_model(gold, &gold_loc).await
        {
            summary.model_uri = uri;
            summary.model_version = version;
        }
        return Ok(summary);
    }
    let (model, predictor) = model.get(params, shard).await?;
    predictor.preload();
    summary.model_uri = model.uri.clone();
    summary.model_version = model.version.clone();
    summary.sessions = predictor.sessions() as u64;
    // Gold is created only when there is something to write (and the model resolved).
    let mut gold = match existing_gold {
        Some(gold) => gold,
        None => table::open_or_create(&gold_loc, &gold_schema()?, &[]).await?,
    };
    // Plan: the files silver versions lo+1..=hi added.
    let files = incremental::new_files(&silver, &silver_loc, lo, hi).await?;
    let total: u64 = files.iter().map(|f| f.rows()).sum();
    let gold_schema = table::arrow_schema(&gold, &gold_loc)?;
    let quarantine = crate::medallion::tables::default_quarantine(&gold_loc);
    let mut writer =
        tweetflow_delta::expect::target_writer(&gold, &gold_loc, gold_schema.clone(), &quarantine)
            .await?;
    let stats_before = predictor.stats();
    let distinct_before = predictor.distinct_texts;
    let mut progress = Progress::new(total);
    tracing::info!(silver = %silver_loc, gold = %gold_loc, silver_from = lo + 1, silver_to = hi,
        files = files.len(), rows = total, model = %model.uri, version = %model.version,
        sessions = predictor.sessions(), "infer: planned");
    for file in &files {
        let path = table::add_path(&file.add)?;
        let mut stream = table::read_file(&silver, &path, &SILVER_COLUMNS).await?;
        while let Some(batch) = stream.next().await {
            ctl.check_cancel()?;
            let batch =
                batch.map_err(|e| TableTaskError::format(format!("reading `{path}`"), e))?;
            let batch = shard::keep(batch, shard)?;
            if batch.num_rows() == 0 {
                continue;
            }
            let texts = column_as(&batch, "cleaned_text", &ArrowType::Utf8)?;
            let texts: Vec<Option<&str>> = texts.as_string::<i32>().iter().collect();
            let preds = predictor.predict(&texts).await?;
            let out = gold_batch(&gold_schema, &batch, &preds, model)?;
            writer.write(out).await?;
            summary.rows += batch.num_rows() as u64;
            progress.add(batch.num_rows() as u64);
            ctl.failpoint("infer.scoring")?;
        }
    }
    let adds = writer.flush().await?;
    ctl.failpoint("infer.after_write")?;
    let stats = predictor.stats();
    summary.inferred = stats.rows_inferred - stats_before.rows_inferred;
    summary.model_batches = stats.batches - stats_before.batches;
    summary.distinct_texts = predictor.distinct_texts - distinct_before;
    summary.silver_version = hi;

    // Exactly-once check, in the commit path: gold must still record what the shard (or the
    // unsharded task) recorded when it planned.
    let set_actions = shard::GOLD.set_actions(shard, &progress_before);
    let info = json!({
        "app": APP_ID, "kind": "infer", "silver_from": lo + 1, "silver_to": hi,
        "rows": summary.rows, "distinct_texts": summary.distinct_texts,
        "inferred": summary.inferred, "model_uri": model.uri, "model_version": model.version,
        "batch_size": params.batch_size,
        "shard": shard.filter(|s| s.count > 1).map(|s| s.label()),
    });
    let version = shard::GOLD
        .commit(
            &mut gold,
            &gold_loc,
            shard,
            progress_before.recorded,
            || CommitRequest {
                actions: adds
                    .iter()
                    .cloned()
                    .map(Action::Add)
                    .chain(set_actions.iter().cloned())
                    .collect(),
                operation: append_op(),
                txn: Some(Transaction::new(shard::app_id(shard), hi)),
                info: info.clone(),
            },
        )
        .await?;
    ctl.failpoint("infer.after_commit")?;
    summary.table_version = version;
    tracing::info!(gold = %params.table, silver_to = hi, rows = summary.rows,
        inferred = summary.inferred, version, "infer committed");
    Ok(summary)
}
