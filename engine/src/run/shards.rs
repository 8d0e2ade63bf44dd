//! A task split into shards (`shards: N`): N attempt sequences side by side, each with its
//! shard index and its own retries; the task succeeds when every shard has.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span};

use super::Shared;
use super::attempt::{run_attempts, with_fingerprint};
use crate::task::{DynTask, ErrorKind, Shard, TaskError, TaskOutput};

/// Runs every shard of task `i` to its end; the combined output (see [`combine`]) or, when a
/// shard failed, its error (a failure before a cancellation).
pub(super) async fn run_shards(
    shared: &Arc<Shared>,
    i: usize,
    task: &Arc<dyn DynTask>,
    upstream: &Arc<BTreeMap<String, TaskOutput>>,
    cancel: &CancellationToken,
) -> Result<TaskOutput, TaskError> {
    let count = shared.pipeline.tasks[i].shards;
    let runs = (0..count).map(|index| {
        let shard = Shard { index, count };
        run_attempts(shared, i, task, upstream, cancel, Some(shard)).instrument(info_span!(
            "shard",
            index = i64::from(index),
            count = i64::from(count)
        ))
    });
    let results = futures::future::join_all(runs).await;
    let mut outputs = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for (index, r) in results.into_iter().enumerate() {
        match r {
            Ok(o) => outputs.push(with_fingerprint(o)),
            Err(e) => errors.push(TaskError::new(
                e.kind,
                format!("shard {index} of {count}: {}", e.message),
            )),
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.kind == ErrorKind::Cancelled);
        return Err(errors.swap_remove(0));
    }
    Ok(combine(&outputs))
}

/// The output of a task from its shards' outputs: `shards` lists each shard's values; a value
/// every shard gives alike is kept; integers that differ are summed (rows, counts), except
/// those named `version` or `*_version`, which take the largest: shards commit to the same
/// table, so the last version is the table's after every shard. The fingerprint is the hash
/// of the shards' fingerprints in shard order.
pub(super) fn combine(outputs: &[TaskOutput]) -> TaskOutput {
    let mut combined = TaskOutput::new();
    let mut keys: Vec<&String> = outputs.iter().flat_map(|o| o.values.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let values: Vec<Option<&Value>> = outputs.iter().map(|o| o.values.get(key)).collect();
        let Some(Some(first)) = values.first() else {
            continue;
        };
        if values.iter().all(|v| *v == Some(first)) {
            combined.values.insert(key.clone(), (*first).clone());
        } else if let Some(ints) = values
            .iter()
            .map(|v| v.and_then(Value::as_i64))
            .collect::<Option<Vec<i64>>>()
        {
            let value = if key == "version" || key.ends_with("_version") {
                ints.iter().copied().max().unwrap_or_default()
            } else {
                ints.iter().sum::<i64>()
            };
            combined.values.insert(key.clone(), value.into());
        }
    }
    combined.values.insert(
        "shards".into(),
        Value::Array(
            outputs
                .iter()
                .map(|o| Value::Object(o.values.clone()))
                .collect(),
        ),
    );
    let mut hasher = blake3::Hasher::new();
    for o in outputs {
        hasher.update(o.fingerprint.as_bytes());
        hasher.update(b"\n");
    }
    combined.fingerprint = hasher.finalize().to_hex().to_string();
    combined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_stay_integers_add_up_and_the_fingerprint_covers_every_shard() {
        let a = TaskOutput::new()
            .with("rows", 3)
            .with("table", "gold")
            .with("version", "x")
            .with("table_version", 9)
            .with_fingerprint("fa");
        let b = TaskOutput::new()
            .with("rows", 4)
            .with("table", "gold")
            .with("version", "y")
            .with("table_version", 8)
            .with_fingerprint("fb");
        let c = combine(&[a.clone(), b.clone()]);
        assert_eq!(c.get("rows"), Some(&Value::from(7)));
        assert_eq!(
            c.get("table_version"),
            Some(&Value::from(9)),
            "the last commit"
        );
        assert_eq!(c.get("table"), Some(&Value::from("gold")));
        assert_eq!(c.get("version"), None);
        assert_eq!(
            c.get("shards").and_then(Value::as_array).map(Vec::len),
            Some(2)
        );
        assert_ne!(c.fingerprint, combine(&[a.clone(), a]).fingerprint);
    }

    #[test]
    fn what_shards_left_is_told_shard_by_shard() {
        let waiting = serde_json::json!(["1 file waiting: modified in the last 5s (settle_time)"]);
        let a = TaskOutput::new().with(crate::task::LEFT_OUTPUT, waiting.clone());
        let b = TaskOutput::new().with(crate::task::LEFT_OUTPUT, serde_json::json!([]));
        // Alike in both shards: still one item per shard, not one for the task.
        let c = TaskOutput::new().with(crate::task::LEFT_OUTPUT, waiting);
        assert_eq!(
            combine(&[a.clone(), b.clone()]).left(),
            ["shard 0: 1 file waiting: modified in the last 5s (settle_time)"]
        );
        assert_eq!(combine(&[a.clone(), c]).left().len(), 2);
        assert!(combine(&[b.clone(), b]).left().is_empty());
        assert_eq!(
            a.left(),
            ["1 file waiting: modified in the last 5s (settle_time)"]
        );
        assert!(TaskOutput::new().with("left", 3).left().is_empty());
    }
}
