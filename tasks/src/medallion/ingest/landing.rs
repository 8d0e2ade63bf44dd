//! Which listed landing files are ready to read: not a hidden or temporary name
//! (`skip_names`), and not modified within `settle_time` (a writer may still be appending).
//!
//! A file left out now is not recorded anywhere: a later run lists it again and takes it once
//! it is complete.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tweetflow_delta::folder::Listed;

use super::params::IngestParams;
use crate::table_error::{Result, TableTaskError};

/// The landing rules of one run.
#[derive(Clone, Debug)]
pub(super) struct LandingFilter {
    skip_names: Vec<String>,
    settle: Duration,
}

/// A listing split by the rules.
#[derive(Debug, Default)]
pub(super) struct Selected {
    /// Files to read, sorted by name.
    pub(super) ready: Vec<Listed>,
    /// Files modified within the settle time (left for a later run).
    pub(super) fresh: Vec<Listed>,
    /// Names matching `skip_names` (never read).
    pub(super) skipped: Vec<String>,
}

impl LandingFilter {
    /// The rules of `params` (`settle_time` must be a duration).
    pub(super) fn new(params: &IngestParams) -> Result<Self> {
        let settle = tweetflow_engine::parse_duration(&params.settle_time).map_err(|e| {
            TableTaskError::Param {
                param: "settle_time",
                message: e.to_string(),
            }
        })?;
        Ok(LandingFilter {
            skip_names: params.skip_names.clone(),
            settle,
        })
    }

    /// When a run can take a file modified at `modified_ms` (milliseconds since the epoch):
    /// once it has not changed for the settle time.
    pub(super) fn settled_at_ms(&self, modified_ms: i64) -> i64 {
        modified_ms.saturating_add(self.settle.as_millis() as i64)
    }

    /// Whether `name` is a hidden or temporary name.
    pub(super) fn skips_name(&self, name: &str) -> bool {
        name.is_empty() || self.skip_names.iter().any(|p| glob_match(p, name))
    }

    /// Splits `listed` into the files to read now, the ones still settling (`now`: the
    /// current time) and the skipped names.
    pub(super) fn select(&self, listed: Vec<Listed>, now: SystemTime) -> Selected {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let settle_ms = self.settle.as_millis() as i64;
        let mut out = Selected::default();
        for entry in listed {
            if self.skips_name(&entry.name) {
                out.skipped.push(entry.name);
                continue;
            }
            // A modification time in the future (clock skew) counts as fresh too.
            let fresh = settle_ms > 0
                && entry
                    .modified_ms
                    .is_some_and(|m| now_ms.saturating_sub(m) < settle_ms);
            if fresh {
                out.fresh.push(entry);
            } else {
                out.ready.push(entry);
            }
        }
        out
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (none included)
/// and every other character matches itself.
pub(super) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and the name position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, modified_ms: Option<i64>) -> Listed {
        Listed {
            name: name.into(),
            size: 1,
            modified_ms,
            etag: None,
        }
    }

    #[test]
    fn default_patterns_skip_hidden_and_temporary_names() {
        let f = LandingFilter::new(&IngestParams::new("l", "t")).unwrap();
        for name in [
            ".a.jsonl",
            "_SUCCESS",
            "a.jsonl.tmp",
            "a.jsonl.temp",
            "a.jsonl.partial",
            "a.jsonl.part",
            "a.jsonl.crdownload",
            "a.jsonl._COPYING_",
            "a.jsonl~",
        ] {
            assert!(f.skips_name(name), "{name} should be skipped");
        }
        for name in [
            "a.jsonl",
            "tweets-000001.jsonl",
            "b.json.gz",
            "part-0001.jsonl",
        ] {
            assert!(!f.skips_name(name), "{name} should be read");
        }
    }

    #[test]
    fn glob_stars_match_any_run() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("*.tmp", "x.tmp.tmp"));
        assert!(!glob_match("*.tmp", "x.tmpx"));
        assert!(glob_match("*_COPYING_*", "f._COPYING_"));
    }

    #[test]
    fn fresh_files_wait_for_the_settle_time() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let f = LandingFilter::new(&IngestParams::new("l", "t")).unwrap();
        let s = f.select(
            vec![
                listed("old", Some(990_000)),
                listed("new", Some(997_000)),
                listed("future", Some(1_100_000)),
                listed("unknown", None),
                listed("old.tmp", Some(990_000)),
            ],
            now,
        );
        let names = |v: &[Listed]| v.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&s.ready), ["old", "unknown"]);
        assert_eq!(names(&s.fresh), ["new", "future"]);
        assert_eq!(s.skipped, ["old.tmp"]);
        assert_eq!(f.settled_at_ms(997_000), 1_002_000);
        let zero = LandingFilter::new(&IngestParams::new("l", "t").with_settle_time("0s")).unwrap();
        assert_eq!(
            zero.select(vec![listed("new", Some(999_999))], now)
                .ready
                .len(),
            1
        );
        let bad = IngestParams::new("l", "t").with_settle_time("soon");
        assert!(
            LandingFilter::new(&bad)
                .unwrap_err()
                .to_string()
                .contains("settle_time")
        );
    }
}
