//! Data-aware triggers: a pipeline's `trigger:` section names Delta tables; the scheduler
//! starts a run when one of them gets versions the pipeline has not consumed.
//!
//! ```text
//!  TableWatcher (one listing of _delta_log/ per table per poll, shared by every pipeline)
//!        │ latest version
//!        ▼
//!  scheduler: versions newer than the cursor? ─▶ record the range as pending (atomic write)
//!        ─▶ run with ${trigger.NAME.from_version} .. ${trigger.NAME.to_version}
//!        ─▶ succeeded: cursor = to_version │ failed: the range waits for the next run
//! ```
//!
//! The engine knows no table format: the CLI gives the scheduler a [`TableWatcher`] (the
//! Delta one lists `_delta_log/`). Strings that use `${trigger.…}` are recorded as
//! [`TriggerSlot`]s when the file is loaded and filled in by [`crate::Pipeline::with_trigger`]
//! when a run starts, so the run's plan holds the values it ran with.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::spec::Overlap;
use crate::task::BoxFuture;

/// The `trigger:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerSpec {
    /// The watched tables: name (as used in `${trigger.NAME.…}`) → location.
    pub tables: BTreeMap<String, String>,
    /// How often each table's log is listed.
    #[serde(with = "millis")]
    #[schemars(with = "u64")]
    pub poll: Duration,
    /// At most one triggered run starts per interval (debounce).
    #[serde(with = "millis")]
    #[schemars(with = "u64")]
    pub min_interval: Duration,
    /// Where a pipeline that never consumed a table starts.
    pub start: TriggerStart,
    /// What a trigger does while another run of the pipeline is active.
    pub overlap: Overlap,
}

/// Where a pipeline that never consumed a table starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerStart {
    /// At version 0: the first run covers the table's whole history.
    #[default]
    Earliest,
    /// At the version current when the daemon first sees the table: only later versions
    /// start runs.
    Latest,
}

/// The shortest `poll` accepted.
pub const MIN_POLL: Duration = Duration::from_millis(100);
/// The default `poll` for a local table.
pub const DEFAULT_POLL_LOCAL: Duration = Duration::from_secs(1);
/// The default `poll` when a watched table is on an object store.
pub const DEFAULT_POLL_REMOTE: Duration = Duration::from_secs(10);

/// A value a run gets about one trigger table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerField {
    /// The first version the run covers.
    FromVersion,
    /// The last version the run covers (inclusive).
    ToVersion,
    /// The table's location.
    Table,
    /// Versions that were gone (vacuumed or log cleaned up) before any run covered them,
    /// as `FROM..TO`; empty when none were.
    Lost,
}

impl TriggerField {
    /// Every field, with its name in `${trigger.NAME.FIELD}`.
    pub const ALL: [(&'static str, TriggerField); 4] = [
        ("from_version", TriggerField::FromVersion),
        ("to_version", TriggerField::ToVersion),
        ("table", TriggerField::Table),
        ("lost", TriggerField::Lost),
    ];

    /// The field named `name`.
    pub fn parse(name: &str) -> Option<TriggerField> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }
}

/// A piece of a string that uses `${trigger.…}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TriggerPiece {
    /// Literal text.
    Text {
        /// The text.
        text: String,
    },
    /// A value of a trigger table.
    Ref {
        /// The trigger table's name.
        trigger: String,
        /// Which value.
        field: TriggerField,
    },
}

/// A string of the plan that uses `${trigger.…}`: where it is and how it is rebuilt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerSlot {
    /// JSON pointer to the string in the plan (the pipeline as JSON).
    pub at: String,
    /// The string's pieces, in order.
    pub pieces: Vec<TriggerPiece>,
}

/// The versions of one trigger table a run covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRange {
    /// The table's location.
    pub table: String,
    /// The first version covered.
    pub from: i64,
    /// The last version covered (inclusive); `from - 1` when the table has no new version.
    pub to: i64,
    /// Versions gone before any run covered them (inclusive range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<(i64, i64)>,
}

impl VersionRange {
    /// The empty range a run not started by the trigger gets (`tweetflow run`, a cron tick):
    /// from version 0 to -1.
    pub fn untriggered(table: &str) -> Self {
        VersionRange {
            table: table.to_string(),
            from: 0,
            to: -1,
            lost: None,
        }
    }

    /// Whether the range holds at least one version.
    pub fn is_empty(&self) -> bool {
        self.to < self.from
    }

    /// `FROM..TO`, or `none` for an empty range.
    pub fn label(&self) -> String {
        if self.is_empty() {
            "none".into()
        } else {
            format!("{}..{}", self.from, self.to)
        }
    }

    fn value(&self, field: TriggerField) -> Json {
        match field {
            TriggerField::FromVersion => Json::from(self.from),
            TriggerField::ToVersion => Json::from(self.to),
            TriggerField::Table => Json::from(self.table.clone()),
            TriggerField::Lost => Json::from(
                self.lost
                    .map(|(a, b)| format!("{a}..{b}"))
                    .unwrap_or_default(),
            ),
        }
    }
}

/// The ranges a run covers, by trigger table name.
pub type TriggerValues = BTreeMap<String, VersionRange>;

impl TriggerSlot {
    /// The slot's value for `values`: a number when the string is exactly one version
    /// reference, else text. A reference to a table missing from `values` is empty.
    pub fn resolve(&self, values: &TriggerValues) -> Json {
        if let [TriggerPiece::Ref { trigger, field }] = self.pieces.as_slice() {
            return values
                .get(trigger)
                .map_or_else(|| Json::from(""), |r| r.value(*field));
        }
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                TriggerPiece::Text { text } => out.push_str(text),
                TriggerPiece::Ref { trigger, field } => {
                    if let Some(r) = values.get(trigger) {
                        match r.value(*field) {
                            Json::String(s) => out.push_str(&s),
                            other => out.push_str(&other.to_string()),
                        }
                    }
                }
            }
        }
        Json::from(out)
    }
}

/// What one listing of a watched table's log found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableVersions {
    /// Nothing at the location yet (or a log without a first commit): waited for.
    Missing,
    /// Something is at the location, but it is not a table.
    NotATable {
        /// What was found instead.
        reason: String,
    },
    /// The table's versions.
    Versions {
        /// The newest version.
        latest: i64,
        /// The oldest version whose commit is still in the log (only from a full listing,
        /// `after: None`).
        earliest: Option<i64>,
    },
}

/// A watcher's failure to list a table (network, permissions): logged, retried at the next
/// poll.
#[derive(Debug, thiserror::Error)]
#[error("listing the log of `{table}`: {message}")]
pub struct WatchError {
    /// The table's location.
    pub table: String,
    /// What failed.
    pub message: String,
}

/// Lists the versions of tables (the CLI gives the Delta one).
pub trait TableWatcher: Send + Sync + 'static {
    /// The versions of the table at `location`: every commit when `after` is `None` (which
    /// also finds the earliest), else only those newer than `after` (one request on an
    /// object store: a listing that starts after `after`'s commit).
    fn versions<'a>(
        &'a self,
        location: &'a str,
        after: Option<i64>,
    ) -> BoxFuture<'a, Result<TableVersions, WatchError>>;

    /// Whether `location` is on an object store (its default `poll` is longer).
    fn is_remote(&self, location: &str) -> bool {
        location.contains("://") && !location.starts_with("file://")
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(from: i64, to: i64) -> VersionRange {
        VersionRange {
            table: "/lake/gold".into(),
            from,
            to,
            lost: None,
        }
    }

    #[test]
    fn a_lone_version_reference_is_a_number_and_text_is_joined() {
        let values = TriggerValues::from([("gold".to_string(), range(3, 7))]);
        let lone = TriggerSlot {
            at: "/tasks/0/with/from".into(),
            pieces: vec![TriggerPiece::Ref {
                trigger: "gold".into(),
                field: TriggerField::FromVersion,
            }],
        };
        assert_eq!(lone.resolve(&values), Json::from(3));
        let text = TriggerSlot {
            at: "/tasks/0/with/argv/2".into(),
            pieces: vec![
                TriggerPiece::Text {
                    text: "echo ".into(),
                },
                TriggerPiece::Ref {
                    trigger: "gold".into(),
                    field: TriggerField::FromVersion,
                },
                TriggerPiece::Text { text: "..".into() },
                TriggerPiece::Ref {
                    trigger: "gold".into(),
                    field: TriggerField::ToVersion,
                },
                TriggerPiece::Text { text: " ".into() },
                TriggerPiece::Ref {
                    trigger: "gold".into(),
                    field: TriggerField::Table,
                },
            ],
        };
        assert_eq!(text.resolve(&values), Json::from("echo 3..7 /lake/gold"));
        assert_eq!(text.resolve(&TriggerValues::new()), Json::from("echo .. "));
    }

    #[test]
    fn ranges_label_themselves() {
        assert_eq!(range(3, 7).label(), "3..7");
        assert_eq!(range(8, 7).label(), "none");
        assert!(range(8, 7).is_empty());
        let lost = VersionRange {
            lost: Some((1, 2)),
            ..range(1, 5)
        };
        assert_eq!(lost.value(TriggerField::Lost), Json::from("1..2"));
        assert_eq!(range(1, 5).value(TriggerField::Lost), Json::from(""));
    }
}
