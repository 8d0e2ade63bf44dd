//! `replay`: turns a Sentiment140 CSV into landing JSON-lines files, as a tweet stream would.
//!
//! Input: a CSV (plain, or gzip when the file starts with the gzip magic bytes) without a
//! header, six double-quoted fields per row (`""` escapes a quote): polarity (0/2/4), id, date
//! (`Mon Apr 06 22:19:45 PDT 2009`), query, user, text. Bytes that are not UTF-8 are replaced
//! by U+FFFD. Rows without six fields or with another polarity are skipped and counted.
//!
//! Output: files `PREFIX-000001.jsonl`, `PREFIX-000002.jsonl`, ... of `tweets_per_file` lines
//! each, one object per line with the keys in this order:
//! `{"date": "...", "user": "...", "text": "...", "sentiment": "negative"|"neutral"|"positive"}`.
//! Names and contents depend only on the CSV and the params (with `seed`, the rows are
//! shuffled by a seeded ChaCha generator before `limit` applies), so replaying twice gives the
//! same files. The landing folder is a local path or an object-store prefix (`s3://...`); a
//! local file is written to a hidden temporary name and renamed into place, an object appears
//! whole when its put completes, so `ingest` never sees half a file. `delay` waits between
//! files.

use std::io::Read;
use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tweetflow_engine::{Task, TaskContext, TaskError, TaskOutput};

use crate::table_error::{Result, TableTaskError};
use tweetflow_delta::WriteControl;
use tweetflow_delta::folder::Folder;

fn default_tweets_per_file() -> usize {
    1000
}

fn default_prefix() -> String {
    "tweets".into()
}

fn default_repeat() -> u32 {
    1
}

/// Params of `replay`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayParams {
    /// The Sentiment140 CSV (`.csv` or gzip `.csv.gz`).
    pub csv: String,
    /// Landing folder to write JSON-lines files to (created if missing).
    pub landing: String,
    /// Tweets per landing file (default 1000).
    #[serde(default = "default_tweets_per_file")]
    #[schemars(range(min = 1))]
    pub tweets_per_file: usize,
    /// Emit at most this many tweets (default: all).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Shuffle the rows with this seed before `limit` (default: file order).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Wait this long between files, e.g. `100ms` (default: no wait).
    #[serde(default)]
    pub delay: Option<String>,
    /// File name prefix (default `tweets`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Emit the rows this many times in a row (default 1; for volume tests).
    #[serde(default = "default_repeat")]
    #[schemars(range(min = 1))]
    pub repeat: u32,
}

impl ReplayParams {
    /// Params with defaults.
    pub fn new(csv: impl Into<String>, landing: impl Into<String>) -> Self {
        ReplayParams {
            csv: csv.into(),
            landing: landing.into(),
            tweets_per_file: default_tweets_per_file(),
            limit: None,
            seed: None,
            delay: None,
            prefix: default_prefix(),
            repeat: default_repeat(),
        }
    }
}

/// What a replay wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    /// Tweets written.
    pub tweets: u64,
    /// Files written.
    pub files: u64,
    /// CSV rows skipped (wrong field count or polarity).
    pub skipped: u64,
    /// The landing folder written to.
    pub landing: String,
    /// The file names written, in order (not an output: the count says enough).
    #[serde(skip_serializing)]
    pub file_names: Vec<String>,
}

/// One landed tweet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandedTweet {
    /// The date as in the CSV.
    pub date: String,
    /// The user.
    pub user: String,
    /// The text as in the CSV.
    pub text: String,
    /// `negative`, `neutral` or `positive`.
    pub sentiment: String,
}

/// Maps a Sentiment140 polarity to its label.
pub fn polarity_label(polarity: &str) -> Option<&'static str> {
    match polarity.trim() {
        "0" => Some("negative"),
        "2" => Some("neutral"),
        "4" => Some("positive"),
        _ => None,
    }
}

/// Reads the tweets of a Sentiment140 CSV (plain or gzip); returns them and the skipped count.
pub fn read_csv(path: &Path) -> Result<(Vec<LandedTweet>, u64)> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TableTaskError::MissingInput {
            what: "CSV file",
            location: path.display().to_string(),
        },
        _ => TableTaskError::io(format!("opening `{}`", path.display()), e),
    })?;
    let mut reader = std::io::BufReader::new(file);
    let mut magic = [0u8; 2];
    let n = reader
        .read(&mut magic)
        .map_err(|e| TableTaskError::io(format!("reading `{}`", path.display()), e))?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let chained = head.chain(reader);
    let input: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(chained))
    } else {
        Box::new(chained)
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut record = csv::ByteRecord::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                if let csv::ErrorKind::Io(_) = e.kind() {
                    return Err(TableTaskError::Data(format!(
                        "reading `{}`: {e}",
                        path.display()
                    )));
                }
                skipped += 1;
                continue;
            }
        }
        if record.len() != 6 {
            skipped += 1;
            continue;
        }
        let field =
            |i: usize| String::from_utf8_lossy(record.get(i).unwrap_or_default()).into_owned();
        let Some(label) = polarity_label(&field(0)) else {
            skipped += 1;
            continue;
        };
        out.push(LandedTweet {
            date: field(2),
            user: field(4),
            text: field(5),
            sentiment: label.to_string(),
        });
    }
    Ok((out, skipped))
}

/// Replays `params.csv` into `params.landing` (see the module docs).
pub async fn replay(params: &ReplayParams, ctl: &WriteControl) -> Result<ReplaySummary> {
    if params.tweets_per_file == 0 {
        return Err(TableTaskError::Param {
            param: "tweets_per_file",
            message: "must be at least 1".into(),
        });
    }
    if params.repeat == 0 {
        return Err(TableTaskError::Param {
            param: "repeat",
            message: "must be at least 1".into(),
        });
    }
    let delay = match &params.delay {
        Some(d) => {
            Some(
                tweetflow_engine::parse_duration(d).map_err(|e| TableTaskError::Param {
                    param: "delay",
                    message: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    let csv_path = Path::new(&params.csv).to_path_buf();
    let (mut tweets, skipped) = tokio::task::spawn_blocking(move || read_csv(&csv_path))
        .await
        .map_err(|e| TableTaskError::Data(format!("reading the CSV: {e}")))??;
    if let Some(seed) = params.seed {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        tweets.shuffle(&mut rng);
    }
    let landing = Folder::open(&params.landing)?;
    landing.create()?;
    let total = tweets.len().saturating_mul(params.repeat as usize);
    let total = params.limit.map_or(total, |l| l.min(total));
    let mut summary = ReplaySummary {
        skipped,
        landing: params.landing.clone(),
        ..Default::default()
    };
    let mut buf = Vec::with_capacity(params.tweets_per_file * 200);
    let mut index = 0usize;
    while index < total {
        ctl.check_cancel()?;
        buf.clear();
        let end = (index + params.tweets_per_file).min(total);
        for i in index..end {
            let t = &tweets[i % tweets.len()];
            serde_json::to_writer(&mut buf, t).map_err(|e| TableTaskError::Data(e.to_string()))?;
            buf.push(b'\n');
        }
        let name = format!("{}-{:06}.jsonl", params.prefix, summary.files + 1);
        landing.write(&name, std::mem::take(&mut buf)).await?;
        summary.tweets += (end - index) as u64;
        summary.files += 1;
        summary.file_names.push(name);
        index = end;
        if let (Some(d), true) = (delay, index < total) {
            tokio::time::sleep(d).await;
        }
    }
    Ok(summary)
}

/// The `replay` task.
pub struct ReplayTask;

impl Task for ReplayTask {
    type Params = ReplayParams;
    const TYPE: &'static str = "replay";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Replay a Sentiment140 CSV into landing JSON-lines files (deterministic, atomic)";

    fn locations(&self, p: &ReplayParams) -> Vec<(&'static str, String)> {
        vec![("csv", p.csv.clone()), ("landing", p.landing.clone())]
    }

    async fn run(
        &self,
        ctx: &TaskContext,
        params: ReplayParams,
    ) -> std::result::Result<TaskOutput, TaskError> {
        crate::run_store_guard::refuse_run_store(ctx, &[("landing", &params.landing)])?;
        let s = replay(&params, &super::write_control(ctx))
            .await
            .map_err(|e| e.naming(&[("landing", &params.landing)]))?;
        let fp = format!("{}:{}:{}", params.landing, s.files, s.tweets);
        Ok(TaskOutput::from_summary(&s)?.with_fingerprint(fp))
    }

    async fn output_still_valid(&self, params: &ReplayParams, output: &TaskOutput) -> bool {
        let files = output.get("files").and_then(|v| v.as_u64()).unwrap_or(0);
        let Ok(landing) = Folder::open(&params.landing) else {
            return false;
        };
        for i in 1..=files {
            if !landing
                .contains(&format!("{}-{i:06}.jsonl", params.prefix))
                .await
            {
                return false;
            }
        }
        true
    }
}
