//! The watched tables of the daemon: one poller per table location, shared by every pipeline
//! that watches it, listing the table's log at the shortest `poll` among them.
//!
//! The first listing of a table reads its whole log (it finds the earliest commit still
//! there); every later one asks only for commits newer than the latest seen, which an object
//! store answers with one listing request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::trigger::{TableVersions, TableWatcher};

/// What the poller of one table last saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The table's versions; `None` before the first listing answered.
    pub versions: Option<TableVersions>,
    /// The last listing failed with this message (kept until one succeeds).
    pub error: Option<String>,
}

impl Observed {
    /// The latest version, when the table exists.
    pub fn latest(&self) -> Option<i64> {
        match &self.versions {
            Some(TableVersions::Versions { latest, .. }) => Some(*latest),
            _ => None,
        }
    }

    /// Whether a listing answered (or failed) at least once.
    pub fn answered(&self) -> bool {
        self.versions.is_some() || self.error.is_some()
    }
}

/// The pollers of the daemon's watched tables.
pub struct Watches {
    receivers: BTreeMap<String, watch::Receiver<Observed>>,
    pollers: JoinSet<()>,
    stop: CancellationToken,
}

impl Watches {
    /// Starts one poller per location of `wanted` (location → shortest poll).
    pub fn start(watcher: Arc<dyn TableWatcher>, wanted: BTreeMap<String, Duration>) -> Self {
        let stop = CancellationToken::new();
        let mut pollers = JoinSet::new();
        let mut receivers = BTreeMap::new();
        for (location, poll) in wanted {
            let (tx, rx) = watch::channel(Observed::default());
            receivers.insert(location.clone(), rx);
            let span = info_span!("watch", table = %location);
            pollers.spawn(
                poll_table(watcher.clone(), location, poll, tx, stop.clone()).instrument(span),
            );
        }
        Watches {
            receivers,
            pollers,
            stop,
        }
    }

    /// A receiver of what the poller of `location` sees.
    pub fn subscribe(&self, location: &str) -> Option<watch::Receiver<Observed>> {
        self.receivers.get(location).cloned()
    }

    /// Stops the pollers.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.pollers.join_next().await.is_some() {}
    }
}

async fn poll_table(
    watcher: Arc<dyn TableWatcher>,
    location: String,
    poll: Duration,
    tx: watch::Sender<Observed>,
    stop: CancellationToken,
) {
    let mut after: Option<i64> = None;
    let mut said = String::new();
    loop {
        let observed = match watcher.versions(&location, after).await {
            Ok(versions) => {
                let (note, keep) = match &versions {
                    TableVersions::Missing => {
                        after = None;
                        ("missing".to_string(), false)
                    }
                    TableVersions::NotATable { reason } => {
                        after = None;
                        (format!("not a table: {reason}"), false)
                    }
                    TableVersions::Versions { latest, .. } => {
                        after = Some(*latest);
                        ("ok".to_string(), true)
                    }
                };
                if note != said {
                    match &versions {
                        TableVersions::Missing => {
                            info!("the watched table does not exist yet: waiting for it")
                        }
                        TableVersions::NotATable { reason } => {
                            error!(reason = %reason, "the watched location is not a Delta table")
                        }
                        TableVersions::Versions { latest, .. } if !said.is_empty() => {
                            info!(latest, "the watched table is readable")
                        }
                        TableVersions::Versions { .. } => {}
                    }
                    said = note;
                }
                // Keep the earliest a full listing found: later listings do not see it.
                let earliest_before = match &tx.borrow().versions {
                    Some(TableVersions::Versions { earliest, .. }) if keep => *earliest,
                    _ => None,
                };
                let versions = match versions {
                    TableVersions::Versions { latest, earliest } => TableVersions::Versions {
                        latest,
                        earliest: earliest.or(earliest_before),
                    },
                    other => other,
                };
                Observed {
                    versions: Some(versions),
                    error: None,
                }
            }
            Err(e) => {
                let message = e.to_string();
                if message != said {
                    warn!(error = %message, "listing the watched table failed: retrying at the next poll");
                    said = message.clone();
                }
                Observed {
                    versions: tx.borrow().versions.clone(),
                    error: Some(message),
                }
            }
        };
        tx.send_if_modified(|current| {
            if *current == observed {
                false
            } else {
                *current = observed;
                true
            }
        });
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.cancelled() => return,
        }
    }
}
