//! The files of an attempt run outside the engine: the resolved attempt it reads and the
//! result it writes, and the exit codes of `tweetflow task exec`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secrets::{self, SecretSlot};
use crate::task::{ErrorKind, PipelineInfo, RunLinks, Shard, TaskError, TaskOutput};

/// Everything `tweetflow task exec` needs to run one attempt of one task.
///
/// The params are the resolved `with:` of the task. The file is written readable by its
/// owner only, and holds no secret: where one goes, it says `***` and `secrets` tells how to
/// rebuild the value from the worker's environment (see [`crate::secrets`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedAttempt {
    /// The run the attempt belongs to.
    pub run_id: String,
    /// The task's id.
    pub task_id: String,
    /// The task's registered type.
    pub task_type: String,
    /// The type's version the engine planned with (checked by the worker).
    pub task_version: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// The part of the input the attempt processes.
    pub shard: Option<Shard>,
    /// The task's params.
    pub params: Value,
    /// Outputs of the task's direct dependencies.
    pub upstream: BTreeMap<String, TaskOutput>,
    /// The pipeline's name.
    pub pipeline: String,
    /// Hash of the pipeline file.
    pub spec_hash: String,
    /// The pipeline's resolved params.
    pub pipeline_params: BTreeMap<String, Value>,
    /// The plugin sections of the pipeline.
    pub sections: BTreeMap<String, Value>,
    /// The task's data-quality expectations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub expect: crate::expect::Expectations,
    /// Directory for the task's artifacts.
    pub artifacts_dir: PathBuf,
    /// The engine's working directory: relative paths in params are read from it when it
    /// exists on the worker.
    pub cwd: Option<PathBuf>,
    /// The strings of this file that hold secrets (JSON pointers into it, e.g.
    /// `/params/env/TOKEN`), read from the environment when the file is read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretSlot>,
    /// The root of the engine's run store (tasks refuse to write inside it; where the worker
    /// sees it, tasks read the run's record there).
    #[serde(default)]
    pub run_store: Option<PathBuf>,
    /// What the run's observers attached to it (see [`crate::task::RunLinks`]).
    #[serde(default)]
    pub links: RunLinks,
    /// The W3C trace context of the engine's attempt span, which the worker's spans continue
    /// (when traces are exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl ResolvedAttempt {
    /// The pipeline facts a task receives.
    pub fn pipeline_info(&self) -> PipelineInfo {
        PipelineInfo {
            name: self.pipeline.clone(),
            spec_hash: self.spec_hash.clone(),
            params: self.pipeline_params.clone(),
            sections: self.sections.clone(),
            expectations: if self.expect.is_empty() {
                BTreeMap::new()
            } else {
                BTreeMap::from([(self.task_id.clone(), self.expect.clone())])
            },
        }
    }

    /// The attempt as stored or sent: every secret replaced by `***`.
    fn redacted(&self) -> std::io::Result<Value> {
        let mut json = serde_json::to_value(self).map_err(std::io::Error::other)?;
        secrets::redact_slots(&mut json, &self.secrets);
        secrets::mask_json(&mut json);
        Ok(json)
    }

    /// Writes the file at `path` (owner-readable only), creating its directory.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec_pretty(&self.redacted()?).map_err(std::io::Error::other)?;
        write_private(path, &json)
    }

    /// Reads the file at `path`, taking its secrets from the process environment.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        Self::from_stored(&std::fs::read(path)?)
    }

    /// The attempt as one line of text for a worker that shares no disk with the engine
    /// (e.g. the value of [`ATTEMPT_ENV`]): the file's JSON, gzip-compressed, in base64. Like
    /// the file, it holds no secret.
    pub fn to_inline(&self) -> std::io::Result<String> {
        use base64::Engine as _;
        use std::io::Write;
        let json = serde_json::to_vec(&self.redacted()?).map_err(std::io::Error::other)?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&json)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(gz.finish()?))
    }

    /// Reads an attempt written by [`ResolvedAttempt::to_inline`], taking its secrets from the
    /// process environment.
    pub fn from_inline(text: &str) -> std::io::Result<Self> {
        use base64::Engine as _;
        use std::io::Read;
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let gz = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| invalid(format!("not base64: {e}")))?;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut json)
            .map_err(|e| invalid(format!("not gzip: {e}")))?;
        Self::from_stored(&json)
    }

    fn from_stored(bytes: &[u8]) -> std::io::Result<Self> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let mut json: Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let slots: Vec<SecretSlot> = match json.get("secrets") {
            Some(s) => serde_json::from_value(s.clone()).map_err(|e| invalid(e.to_string()))?,
            None => Vec::new(),
        };
        secrets::fill_slots(&mut json, &slots, &secrets::process_env)
            .map_err(|e| invalid(e.to_string()))?;
        serde_json::from_value(json).map_err(|e| invalid(e.to_string()))
    }
}

/// How an attempt ended, as `tweetflow task exec` writes it to its result location.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// The task's output.
    Output(TaskOutput),
    /// The task's error.
    Error(TaskError),
}

impl AttemptResult {
    /// As a task result.
    pub fn into_result(self) -> Result<TaskOutput, TaskError> {
        match self {
            AttemptResult::Output(o) => Ok(o),
            AttemptResult::Error(e) => Err(e),
        }
    }

    /// Writes the result to `path` atomically (a temporary file renamed into place).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = secrets::masked_json(self)
            .and_then(|j| serde_json::to_vec(&j))
            .map_err(std::io::Error::other)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_private(&tmp, &json)?;
        std::fs::rename(&tmp, path)
    }

    /// The result as one line of a worker's output, for an engine that reads it back from the
    /// job's logs ([`find_result_line`]): [`RESULT_MARK`] then the JSON, secrets masked.
    pub fn to_line(&self) -> String {
        let json = secrets::masked_json(self)
            .map(|j| j.to_string())
            .unwrap_or_else(|e| {
                serde_json::json!({"error": {"kind": "retryable", "message": format!("the result cannot be written: {e}")}}).to_string()
            });
        format!("{RESULT_MARK}{json}")
    }
}

/// The environment variable that carries an attempt ([`ResolvedAttempt::to_inline`]) to
/// `tweetflow task exec` on a worker that shares no disk with the engine.
pub const ATTEMPT_ENV: &str = "TWEETFLOW_ATTEMPT";

/// What starts the line of a worker's output that carries the attempt's result.
pub const RESULT_MARK: &str = "@@tweetflow-result@@ ";

/// The result in a worker's output (the last line starting with [`RESULT_MARK`]); `None`
/// when there is none (the worker died before writing it).
pub fn find_result_line(output: &str) -> Option<AttemptResult> {
    output
        .lines()
        .rev()
        .filter_map(|l| l.trim_end().strip_prefix(RESULT_MARK))
        .find_map(|json| serde_json::from_str(json).ok())
}

/// Whether `line` is the result line of a worker's output (not a log line).
pub fn is_result_line(line: &str) -> bool {
    line.starts_with(RESULT_MARK)
}

/// The result at `path`: `None` when the attempt wrote none (it died, or never started).
pub fn read_result(path: &Path) -> Option<AttemptResult> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The exit code of `tweetflow task exec` for a result: 0 success, 10 retryable, 11 fatal,
/// 12 configuration error, 13 timeout, 130 cancelled.
pub fn exit_code(result: &Result<TaskOutput, TaskError>) -> u8 {
    match result {
        Ok(_) => 0,
        Err(e) => match e.kind {
            ErrorKind::Retryable => 10,
            ErrorKind::Fatal => 11,
            ErrorKind::Config => 12,
            ErrorKind::Timeout => 13,
            ErrorKind::Cancelled => 130,
        },
    }
}

/// The error kind an exit code of `tweetflow task exec` stands for (`None`: success or not
/// one of its codes).
pub fn kind_of_exit_code(code: i32) -> Option<ErrorKind> {
    match code {
        10 => Some(ErrorKind::Retryable),
        11 => Some(ErrorKind::Fatal),
        12 | 2 => Some(ErrorKind::Config),
        13 => Some(ErrorKind::Timeout),
        130 => Some(ErrorKind::Cancelled),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_and_exit_codes_keep_the_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        assert_eq!(read_result(&path), None);
        let ok = AttemptResult::Output(TaskOutput::new().with("rows", 3));
        ok.write(&path).unwrap();
        assert_eq!(read_result(&path), Some(ok));
        for e in [
            TaskError::retryable("x"),
            TaskError::fatal("x"),
            TaskError::config("p", "x"),
            TaskError::cancelled(),
        ] {
            let code = exit_code(&Err(e.clone()));
            assert_eq!(kind_of_exit_code(code.into()), Some(e.kind));
        }
        assert_eq!(exit_code(&Ok(TaskOutput::new())), 0);
    }

    #[test]
    fn an_attempt_travels_inline_and_its_result_comes_back_in_the_output() {
        let attempt = ResolvedAttempt {
            run_id: "r1".into(),
            task_id: "infer".into(),
            task_type: "infer".into(),
            task_version: "1".into(),
            attempt: 2,
            shard: None,
            params: serde_json::json!({"table": "s3://b/gold", "text": "x".repeat(10_000)}),
            upstream: BTreeMap::new(),
            pipeline: "p".into(),
            spec_hash: "h".into(),
            pipeline_params: BTreeMap::new(),
            sections: BTreeMap::new(),
            artifacts_dir: PathBuf::from("/runs/r1/artifacts/infer"),
            cwd: None,
            secrets: Vec::new(),
            run_store: None,
            links: Default::default(),
            expect: Default::default(),
            traceparent: None,
        };
        let inline = attempt.to_inline().unwrap();
        assert!(
            !inline.contains('\n') && inline.len() < 1_000,
            "{}",
            inline.len()
        );
        assert_eq!(ResolvedAttempt::from_inline(&inline).unwrap(), attempt);
        assert!(ResolvedAttempt::from_inline("not base64!").is_err());

        let ok = AttemptResult::Output(TaskOutput::new().with("rows", 3));
        let failed = AttemptResult::Error(TaskError::fatal("bad"));
        let output = format!(
            "{{\"level\":\"INFO\"}}\n{}\nnoise\n{}\n",
            ok.to_line(),
            failed.to_line()
        );
        assert_eq!(find_result_line(&output), Some(failed));
        assert!(is_result_line(&ok.to_line()));
        assert_eq!(find_result_line("no result here\n"), None);
    }
}
