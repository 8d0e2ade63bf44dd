//! `profile`: a data profile of a bronze or silver table.
//!
//! The kind is told by the columns: a table with `text` is read as bronze (one row per tweet,
//! mentions found with [`tweetflow_tweet::clean_text`]); a table with `tweet_id` and `mention` is
//! read as silver (rows grouped by `tweet_id`; silver holds only tweets that have mentions, so
//! `tweets_without_mentions` is `null` there). The profile lists the tweet count, nulls and
//! empty (blank) values per column, tweets per user (top 20), tweets with and without
//! mentions, the distinct mentions and the top 20 mentions (by tweets mentioning them). Ties
//! are broken by name so the profile is deterministic.

use std::collections::{BTreeMap, HashMap, HashSet};

use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType as ArrowType;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};

use crate::table_error::{Result, TableTaskError};
use tweetflow_delta::WriteControl;
use tweetflow_delta::table;
use tweetflow_tweet::clean_text;

/// How many users and mentions the top lists hold.
pub const TOP_N: usize = 20;

/// Params of `profile`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileParams {
    /// A bronze or silver Delta table.
    pub input: String,
}

#[derive(Default)]
struct ColumnCounts {
    nulls: u64,
    empties: u64,
}

fn top(counts: HashMap<String, u64>, key: &str, n: usize) -> Vec<Value> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.into_iter()
        .take(n)
        .map(|(name, count)| json!({ key: name, "tweets": count }))
        .collect()
}

/// Profiles the table at `input` (see the module docs for the fields).
pub async fn profile(input: &str, ctl: &WriteControl) -> Result<Value> {
    let t = table::open_table(input)
        .await?
        .ok_or_else(|| TableTaskError::MissingInput {
            what: "table",
            location: input.to_string(),
        })?;
    let schema = table::arrow_schema(&t, input)?;
    let has = |c: &str| schema.field_with_name(c).is_ok();
    let silver = has("tweet_id") && has("mention");
    if !silver && !has("text") {
        return Err(TableTaskError::Param {
            param: "input",
            message: format!(
                "`{input}` is neither bronze (`text`) nor silver (`tweet_id`, `mention`)"
            ),
        });
    }
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut columns: BTreeMap<String, ColumnCounts> = names
        .iter()
        .map(|n| (n.clone(), ColumnCounts::default()))
        .collect();
    let mut rows = 0u64;
    let mut tweets = 0u64;
    let mut with_mentions = 0u64;
    let mut users: HashMap<String, u64> = HashMap::new();
    let mut mention_tweets: HashMap<String, u64> = HashMap::new();
    let mut seen_tweets: HashSet<String> = HashSet::new();
    let mut seen_pairs: HashSet<(String, String)> = HashSet::new();

    for (path, _, _) in table::active_files(&t, input)? {
        let mut stream = table::read_file(&t, &path, &[]).await?;
        while let Some(batch) = stream.next().await {
            ctl.check_cancel()?;
            let batch =
                batch.map_err(|e| TableTaskError::format(format!("reading `{path}`"), e))?;
            rows += batch.num_rows() as u64;
            for name in &names {
                let Some(col) = batch.column_by_name(name) else {
                    if let Some(c) = columns.get_mut(name) {
                        c.nulls += batch.num_rows() as u64;
                    }
                    continue;
                };
                let Some(c) = columns.get_mut(name) else {
                    continue;
                };
                c.nulls += col.null_count() as u64;
                if matches!(
                    col.data_type(),
                    ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View
                ) {
                    let s = cast(col, &ArrowType::Utf8)
                        .map_err(|e| TableTaskError::format("profile", e))?;
                    let s = s.as_string::<i32>();
                    c.empties += (0..s.len())
                        .filter(|i| !s.is_null(*i) && s.value(*i).trim().is_empty())
                        .count() as u64;
                }
            }
            let str_col = |name: &str| -> Result<Option<deltalake::arrow::array::StringArray>> {
                match batch.column_by_name(name) {
                    Some(c) => {
                        let s = cast(c, &ArrowType::Utf8)
                            .map_err(|e| TableTaskError::format("profile", e))?;
                        Ok(Some(s.as_string::<i32>().clone()))
                    }
                    None => Ok(None),
                }
            };
            let user = str_col("user")?;
            if silver {
                let (Some(id), Some(mention)) = (str_col("tweet_id")?, str_col("mention")?) else {
                    continue;
                };
                for i in 0..batch.num_rows() {
                    let tid = if id.is_null(i) {
                        String::new()
                    } else {
                        id.value(i).to_string()
                    };
                    if seen_tweets.insert(tid.clone()) {
                        tweets += 1;
                        with_mentions += 1;
                        if let Some(u) = user.as_ref().filter(|u| !u.is_null(i)) {
                            *users.entry(u.value(i).to_string()).or_default() += 1;
                        }
                    }
                    if !mention.is_null(i) {
                        let m = mention.value(i).to_string();
                        if seen_pairs.insert((tid, m.clone())) {
                            *mention_tweets.entry(m).or_default() += 1;
                        }
                    }
                }
            } else {
                let Some(text) = str_col("text")? else {
                    continue;
                };
                for i in 0..batch.num_rows() {
                    tweets += 1;
                    if let Some(u) = user.as_ref().filter(|u| !u.is_null(i)) {
                        *users.entry(u.value(i).to_string()).or_default() += 1;
                    }
                    if text.is_null(i) {
                        continue;
                    }
                    let (_, mentions) = clean_text(text.value(i));
                    if mentions.is_empty() {
                        continue;
                    }
                    with_mentions += 1;
                    let distinct: HashSet<String> = mentions.into_iter().collect();
                    for m in distinct {
                        *mention_tweets.entry(m).or_default() += 1;
                    }
                }
            }
        }
    }
    let columns_json: serde_json::Map<String, Value> = columns
        .into_iter()
        .map(|(n, c)| (n, json!({"nulls": c.nulls, "empties": c.empties})))
        .collect();
    let distinct_mentions = mention_tweets.len();
    let distinct_users = users.len();
    Ok(json!({
        "table": input,
        "kind": if silver { "silver" } else { "bronze" },
        "table_version": table::version(&t),
        "rows": rows,
        "tweets": tweets,
        "columns": columns_json,
        "distinct_users": distinct_users,
        "top_users": top(users, "user", TOP_N),
        "tweets_with_mentions": with_mentions,
        "tweets_without_mentions": if silver { Value::Null } else { json!(tweets - with_mentions) },
        "distinct_mentions": distinct_mentions,
        "top_mentions": top(mention_tweets, "mention", TOP_N),
    }))
}

/// The `profile` task.
pub struct ProfileTask;

impl Task for ProfileTask {
    type Params = ProfileParams;
    const TYPE: &'static str = "profile";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Profile a bronze or silver table: counts, nulls, top users and mentions (profile.json)";

    async fn run(
        &self,
        ctx: &TaskContext,
        params: ProfileParams,
    ) -> std::result::Result<TaskOutput, TaskError> {
        let ctl = super::write_control(ctx);
        let p = profile(&params.input, &ctl).await?;
        let path = ctx
            .artifact_path("profile.json")
            .map_err(|e| TaskError::retryable(format!("creating the artifacts folder: {e}")))?;
        let text = serde_json::to_string_pretty(&p).map_err(|e| TaskError::fatal(e.to_string()))?;
        std::fs::write(&path, text)
            .map_err(|e| TaskError::retryable(format!("writing `{}`: {e}", path.display())))?;
        let mut out = TaskOutput::from_summary(&p)?;
        out = out.with("artifact", path.display().to_string());
        let fp = format!(
            "{}@{}",
            params.input,
            p.get("table_version").and_then(Value::as_i64).unwrap_or(-1)
        );
        Ok(out.with_fingerprint(fp))
    }

    /// Valid while the profiled table is at the version the output names.
    async fn output_still_valid(&self, params: &ProfileParams, output: &TaskOutput) -> bool {
        super::output_table_still_valid(&params.input, output).await
    }
}
