//! Retention: removing the runs that a pipeline's `retention:` policy lets go, and the cache
//! entries whose run is gone.
//!
//! A pipeline's policy is, in order: one given by the caller (the scheduler passes the
//! pipeline it runs), the `retention:` recorded in the plan of the pipeline's newest run, the
//! default from the environment ([`default_policy`]). A pipeline with none keeps every run.
//!
//! Within a pipeline, runs are taken newest first (by run id, i.e. by creation). A run is
//! removed only when every limit lets it go: it is not among the newest `keep_last`, and its
//! last activity (start, latest resume, end) is older than `max_age`. Whatever the policy,
//! these are kept:
//!
//! - a run being executed (a live process holds its lock). Before removing a run, prune takes
//!   its lock and reads the record again: a run resumed meanwhile is refused or left alone;
//! - failed, cancelled and crashed (`running` with no live process) runs, with
//!   `keep_failed: true`. Without it they are resumable as long as the policy keeps them: a
//!   resume is activity, so it restarts the `max_age` clock;
//! - the run holding the newest cache entry of each task of the pipeline: a cache hit reuses
//!   that output, which may name files in the run's directory;
//! - the last run the scheduler fired for the pipeline (`.schedules/<pipeline>.json`): after a
//!   restart, a fired tick whose run is missing would be fired again; likewise the triggered
//!   run not yet settled (`.schedules/<pipeline>.trigger.json`);
//! - directories without a record (a run being created) and runs whose record cannot be
//!   read: prune does not guess about them (unreadable ones are reported).
//!
//! A run is removed by renaming its directory into `.trash/` (under its lock), then deleting
//! it, so readers see a whole run or none; a removal cut short is finished by the next prune.
//! Cache entries pointing to a removed run are removed before the run; entries pointing to a
//! missing run, and unreadable ones, are removed by any prune (whatever `--pipeline`). A
//! removed entry only means a cache miss. Entries whose *output* is gone (a table moved on
//! past the version they name, a deleted file) need their task type to tell: see
//! [`super::prune_outputs`], which `runs prune` and the scheduler run after this.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::log::load_record;
use super::{RunStore, take_lock};
use crate::cache::CacheEntry;
use crate::duration::{DurationError, parse_duration};
use crate::error::EngineError;
use crate::spec::RetentionPolicy;
use crate::store::{RunRecord, RunStatus};

/// What to prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Only the runs of this pipeline (and the cache entries of its runs).
    pub pipeline: Option<String>,
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// The policy of pipelines that record none.
    pub default_policy: Option<RetentionPolicy>,
    /// Policies that take precedence over the recorded ones, by pipeline.
    pub policies: BTreeMap<String, RetentionPolicy>,
    /// The time ages are measured at.
    pub now: DateTime<Utc>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            pipeline: None,
            dry_run: false,
            default_policy: None,
            policies: BTreeMap::new(),
            now: Utc::now(),
        }
    }
}

/// Why a run was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepReason {
    /// A live process executes it.
    Running,
    /// Among the newest `keep_last`.
    KeepLast,
    /// Younger than `max_age`.
    MaxAge,
    /// Failed, cancelled or crashed, with `keep_failed: true`.
    KeepFailed,
    /// It holds the newest cache entry of one of its tasks.
    CachedOutput,
    /// The scheduler's last fired run of its pipeline.
    LastScheduled,
    /// Its pipeline has no retention policy.
    NoPolicy,
    /// It changed (was resumed) between the decision and the removal.
    Changed,
}

/// A run removed (or, in a dry run, to be removed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrunedRun {
    /// The run.
    pub run_id: String,
    /// Its pipeline.
    pub pipeline: String,
    /// Its final status.
    pub status: RunStatus,
    /// The disk space its directory used.
    pub bytes: u64,
}

/// A cache entry removed (or to be removed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrunedEntry {
    /// Its cache key.
    pub key: String,
    /// The run it pointed to (empty when the entry was unreadable).
    pub run_id: String,
    /// The disk space it used.
    pub bytes: u64,
    /// Why it was removed.
    pub reason: EntryRemoval,
}

/// Why a cache entry was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryRemoval {
    /// The entry cannot be read.
    Unreadable,
    /// The run it points to is gone (or removed by this prune).
    RunGone,
    /// Its task type says the output it names is gone (see [`super::prune_outputs`]).
    OutputGone,
}

impl EntryRemoval {
    /// How `runs prune` words it.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryRemoval::Unreadable => "unreadable",
            EntryRemoval::RunGone => "run gone",
            EntryRemoval::OutputGone => "output gone",
        }
    }
}

/// What a prune did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    /// Whether nothing was removed on purpose.
    pub dry_run: bool,
    /// Runs removed, oldest first.
    pub removed: Vec<PrunedRun>,
    /// Cache entries removed.
    pub removed_entries: Vec<PrunedEntry>,
    /// How many runs were kept, by reason.
    pub kept: BTreeMap<KeepReason, usize>,
    /// Runs whose record could not be read (kept), with the error.
    pub unreadable: Vec<(String, String)>,
}

impl PruneReport {
    /// The disk space freed (or that would be freed) by the runs and entries removed.
    pub fn bytes_freed(&self) -> u64 {
        self.removed.iter().map(|r| r.bytes).sum::<u64>()
            + self.removed_entries.iter().map(|e| e.bytes).sum::<u64>()
    }
}

/// A default retention setting in the environment that cannot be read (the variable is
/// named in the message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetentionEnvError {
    /// `TWEETFLOW_RETENTION_KEEP_LAST` is not a count of at least 1.
    #[error("TWEETFLOW_RETENTION_KEEP_LAST=`{value}`: expected an integer of at least 1")]
    KeepLast {
        /// The variable's value.
        value: String,
    },
    /// `TWEETFLOW_RETENTION_MAX_AGE` is zero.
    #[error("TWEETFLOW_RETENTION_MAX_AGE=`{value}`: must be longer than zero")]
    ZeroMaxAge {
        /// The variable's value.
        value: String,
    },
    /// `TWEETFLOW_RETENTION_MAX_AGE` is not a duration.
    #[error("TWEETFLOW_RETENTION_MAX_AGE=`{value}`: {source}")]
    MaxAge {
        /// The variable's value.
        value: String,
        /// Why it is not a duration.
        source: DurationError,
    },
    /// `TWEETFLOW_RETENTION_KEEP_FAILED` is neither `true` nor `false`.
    #[error("TWEETFLOW_RETENTION_KEEP_FAILED=`{value}`: expected true or false")]
    KeepFailed {
        /// The variable's value.
        value: String,
    },
}

/// The default policy from the environment: `TWEETFLOW_RETENTION_KEEP_LAST` (a count),
/// `TWEETFLOW_RETENTION_MAX_AGE` (a duration such as `30d`) and
/// `TWEETFLOW_RETENTION_KEEP_FAILED` (`true` or `false`). `None` when neither of the first two
/// is set.
pub fn default_policy(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<RetentionPolicy>, RetentionEnvError> {
    const KEEP_LAST: &str = "TWEETFLOW_RETENTION_KEEP_LAST";
    const MAX_AGE: &str = "TWEETFLOW_RETENTION_MAX_AGE";
    const KEEP_FAILED: &str = "TWEETFLOW_RETENTION_KEEP_FAILED";
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let keep_last = match set(KEEP_LAST) {
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                return Err(RetentionEnvError::KeepLast { value: v });
            }
        },
        None => None,
    };
    let max_age = match set(MAX_AGE) {
        Some(v) => match parse_duration(&v) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => return Err(RetentionEnvError::ZeroMaxAge { value: v }),
            Err(source) => return Err(RetentionEnvError::MaxAge { value: v, source }),
        },
        None => None,
    };
    let keep_failed = match set(KEEP_FAILED).as_deref().map(str::trim) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(RetentionEnvError::KeepFailed {
                value: v.to_string(),
            });
        }
    };
    if keep_last.is_none() && max_age.is_none() {
        return Ok(None);
    }
    Ok(Some(RetentionPolicy {
        keep_last,
        max_age,
        keep_failed,
    }))
}

/// The latest of a run's start, resumes and end.
fn last_activity(record: &RunRecord) -> DateTime<Utc> {
    let mut t = record.created_at;
    if let Some(r) = record.resumed_at.iter().max() {
        t = t.max(*r);
    }
    if let Some(e) = record.ended_at {
        t = t.max(e);
    }
    t
}

/// What the policy says of the run at `index` (0 = newest) of its pipeline: why it is kept,
/// or `None` when it may be removed (if nothing else keeps it).
fn policy_keeps(
    policy: &RetentionPolicy,
    index: usize,
    record: &RunRecord,
    executing: bool,
    now: DateTime<Utc>,
) -> Option<KeepReason> {
    if executing {
        return Some(KeepReason::Running);
    }
    if policy.keep_last.is_some_and(|n| index < n as usize) {
        return Some(KeepReason::KeepLast);
    }
    if let Some(max_age) = policy.max_age {
        let age = (now - last_activity(record))
            .to_std()
            .unwrap_or(Duration::ZERO);
        if age < max_age {
            return Some(KeepReason::MaxAge);
        }
    }
    let failed = matches!(
        record.status,
        RunStatus::Failed | RunStatus::Cancelled | RunStatus::Running | RunStatus::Interrupted
    );
    if policy.keep_failed && failed {
        return Some(KeepReason::KeepFailed);
    }
    None
}

impl RunStore {
    /// Applies the retention policies: removes the runs they let go and the cache entries
    /// whose run is gone (see the module documentation for what is always kept).
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport, EngineError> {
        let mut report = PruneReport {
            dry_run: options.dry_run,
            ..PruneReport::default()
        };
        if !options.dry_run {
            self.empty_trash();
        }
        // Every readable run of the pipelines concerned, by pipeline, newest first.
        let mut by_pipeline: BTreeMap<String, Vec<RunRecord>> = BTreeMap::new();
        for id in self.run_ids()? {
            let dir = self.run_dir(&id);
            if !dir.join("run.json").is_file() {
                continue;
            }
            match load_record(&dir) {
                Ok(r) => {
                    if options.pipeline.as_ref().is_none_or(|p| *p == r.pipeline) {
                        by_pipeline.entry(r.pipeline.clone()).or_default().push(r);
                    }
                }
                Err(e) => report.unreadable.push((id, e.to_string())),
            }
        }
        let pipeline_of: HashMap<&str, &str> = by_pipeline
            .iter()
            .flat_map(|(p, runs)| runs.iter().map(move |r| (r.run_id.as_str(), p.as_str())))
            .collect();

        let entries = self.cache_entries();
        let mut newest: HashMap<(&str, &str), &CacheEntry> = HashMap::new();
        for entry in entries.iter().filter_map(|(_, e, _)| e.as_ref()) {
            if let Some(pipeline) = pipeline_of.get(entry.run_id.as_str()) {
                let slot = newest
                    .entry((pipeline, entry.task_id.as_str()))
                    .or_insert(entry);
                if entry.created_at > slot.created_at {
                    *slot = entry;
                }
            }
        }
        let cached: HashSet<&str> = newest.values().map(|e| e.run_id.as_str()).collect();
        let mut scheduled: HashSet<String> = by_pipeline
            .keys()
            .filter_map(|p| self.schedule_state(p).ok())
            .filter_map(|s| s.last_fired.and_then(|f| f.run_id))
            .collect();
        // A triggered run not yet settled: removing it would start its range again.
        scheduled.extend(
            by_pipeline
                .keys()
                .filter_map(|p| self.trigger_state(p).ok())
                .filter_map(|s| s.pending.map(|f| f.run_id)),
        );

        let mut doomed: Vec<&RunRecord> = Vec::new();
        for (pipeline, runs) in &by_pipeline {
            let policy = options
                .policies
                .get(pipeline)
                .cloned()
                .or_else(|| runs.first().and_then(|r| self.recorded_policy(&r.run_id)))
                .or_else(|| options.default_policy.clone());
            for (index, record) in runs.iter().enumerate() {
                let id = record.run_id.as_str();
                let reason = match &policy {
                    None => Some(KeepReason::NoPolicy),
                    Some(policy) => {
                        policy_keeps(policy, index, record, self.is_executing(id), options.now)
                            .or_else(|| cached.contains(id).then_some(KeepReason::CachedOutput))
                            .or_else(|| scheduled.contains(id).then_some(KeepReason::LastScheduled))
                    }
                };
                match reason {
                    Some(r) => *report.kept.entry(r).or_default() += 1,
                    None => doomed.push(record),
                }
            }
        }
        doomed.sort_by(|a, b| a.run_id.cmp(&b.run_id));

        // Cache entries first: an entry never outlives the run it points to.
        let doomed_ids: HashSet<&str> = doomed.iter().map(|r| r.run_id.as_str()).collect();
        for (path, entry, bytes) in &entries {
            let remove = match entry {
                None => true,
                Some(e) => {
                    doomed_ids.contains(e.run_id.as_str())
                        || !super::is_run_id(&e.run_id)
                        || !self.run_dir(&e.run_id).exists()
                }
            };
            if !remove {
                continue;
            }
            if !options.dry_run {
                match fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(EngineError::io("remove", path)(e)),
                }
            }
            report.removed_entries.push(PrunedEntry {
                key: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                run_id: entry.as_ref().map(|e| e.run_id.clone()).unwrap_or_default(),
                bytes: *bytes,
                reason: if entry.is_some() {
                    EntryRemoval::RunGone
                } else {
                    EntryRemoval::Unreadable
                },
            });
        }

        for record in doomed {
            let dir = self.run_dir(&record.run_id);
            let bytes = disk_usage(&dir);
            if !options.dry_run && !self.remove_run(record)? {
                *report.kept.entry(KeepReason::Changed).or_default() += 1;
                continue;
            }
            report.removed.push(PrunedRun {
                run_id: record.run_id.clone(),
                pipeline: record.pipeline.clone(),
                status: record.status,
                bytes,
            });
        }
        Ok(report)
    }

    /// The `retention:` recorded in the plan of run `run_id`.
    fn recorded_policy(&self, run_id: &str) -> Option<RetentionPolicy> {
        let bytes = fs::read(self.run_dir(run_id).join("plan.json")).ok()?;
        let plan: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        serde_json::from_value(plan.get("retention")?.clone()).ok()
    }

    /// Every cache entry file: its path, the entry (`None` if unreadable), its disk usage.
    pub(super) fn cache_entries(&self) -> Vec<(std::path::PathBuf, Option<CacheEntry>, u64)> {
        let dir = self.root.join(".cache");
        let Ok(read) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        read.filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                // Hidden files are entries being written.
                !name.starts_with('.') && name.ends_with(".json")
            })
            .map(|e| {
                let path = e.path();
                let entry = fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<CacheEntry>(&b).ok());
                let bytes = disk_usage(&path);
                (path, entry, bytes)
            })
            .collect()
    }

    /// Removes a run judged from `seen`, under its lock. `false` when it is being executed
    /// or changed since it was read (it stays for the next prune).
    fn remove_run(&self, seen: &RunRecord) -> Result<bool, EngineError> {
        let dir = self.run_dir(&seen.run_id);
        let lock = match take_lock(&dir, &seen.run_id) {
            Ok(lock) => lock,
            Err(EngineError::Locked { .. }) => return Ok(false),
            // Removed by another prune meanwhile.
            Err(EngineError::Io { .. }) if !dir.exists() => return Ok(false),
            Err(e) => return Err(e),
        };
        match load_record(&dir) {
            Ok(now) if now.last_seq == seen.last_seq && now.status == seen.status => {}
            _ => return Ok(false),
        }
        let trash = self.root.join(".trash");
        fs::create_dir_all(&trash).map_err(EngineError::io("create", &trash))?;
        let target = trash.join(&seen.run_id);
        fs::rename(&dir, &target).map_err(EngineError::io("move to the trash", &dir))?;
        drop(lock);
        match fs::remove_dir_all(&target) {
            // Another prune emptying the trash may have taken part of it.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(EngineError::io("remove", &target)(e))
            }
            _ => Ok(true),
        }
    }

    /// Finishes removals cut short.
    fn empty_trash(&self) {
        let trash = self.root.join(".trash");
        if let Ok(read) = fs::read_dir(&trash) {
            for entry in read.filter_map(Result::ok) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The disk space used by `path` and everything under it (symbolic links not followed).
pub(super) fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    let own = allocated(&meta);
    if !meta.is_dir() {
        return own;
    }
    let children = fs::read_dir(path)
        .map(|read| {
            read.filter_map(Result::ok)
                .map(|e| disk_usage(&e.path()))
                .sum::<u64>()
        })
        .unwrap_or(0);
    own + children
}

#[cfg(unix)]
fn allocated(meta: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks() * 512
}

#[cfg(not(unix))]
fn allocated(meta: &fs::Metadata) -> u64 {
    meta.len()
}
