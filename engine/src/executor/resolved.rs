//! The files of an attempt run outside the engine: the resolved attempt it reads and the
//! result it writes, and the exit codes of `tweetflow task exec`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secrets::{self, SecretSlot};
use crate::task::{ErrorKind, PipelineInfo, Shard, TaskError, TaskOutput};

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
    /// Directory for the task's artifacts.
    pub artifacts_dir: PathBuf,
    /// The engine's working directory: relative paths in params are read from it when it
    /// exists on the worker.
    pub cwd: Option<PathBuf>,
    /// The strings of this file that hold secrets (JSON pointers into it, e.g.
    /// `/params/env/TOKEN`), read from the environment when the file is read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretSlot>,
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
        }
    }

    /// Writes the file at `path` (owner-readable only), creating its directory.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut json = serde_json::to_value(self).map_err(std::io::Error::other)?;
        secrets::redact_slots(&mut json, &self.secrets);
        secrets::mask_json(&mut json);
        let json = serde_json::to_vec_pretty(&json).map_err(std::io::Error::other)?;
        write_private(path, &json)
    }

    /// Reads the file at `path`, taking its secrets from the process environment.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let mut json: Value = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
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
}
