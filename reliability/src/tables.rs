//! The pipeline's tables read back and compared with an uninterrupted run's, as multisets
//! of rows: what is missing is lost, what is there too often is duplicated.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use tweetflow_test_support::tables::try_rows;

/// The tables of the main pipeline under its `root`.
pub const TABLES: &[&str] = &[
    "bronze",
    "bronze_quarantine",
    "silver",
    "silver_quarantine",
    "gold",
    "mentions",
];

/// Columns that differ between equal runs (when a row was processed).
const VOLATILE: &[&str] = &["processing_time"];

/// Every table's rows (volatile columns left out), sorted; a table that does not exist has
/// no rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Rows per table.
    pub tables: BTreeMap<String, Vec<Vec<String>>>,
    /// Tables that could not be read, with the reason.
    pub errors: Vec<String>,
}

impl Snapshot {
    /// How many rows in all.
    pub fn rows(&self) -> usize {
        self.tables.values().map(Vec::len).sum()
    }
}

/// Reads the tables under `root`.
pub async fn snapshot(root: &Path) -> Snapshot {
    let mut s = Snapshot::default();
    for name in TABLES {
        let location = root.join(name).display().to_string();
        let rows = match try_rows(&location).await {
            Ok(Some((names, rows))) => {
                let keep: Vec<usize> = (0..names.len())
                    .filter(|i| !VOLATILE.contains(&names[*i].as_str()))
                    .collect();
                let mut rows: Vec<Vec<String>> = rows
                    .into_iter()
                    .map(|r| keep.iter().map(|i| r[*i].clone()).collect())
                    .collect();
                rows.sort();
                rows
            }
            Ok(None) => Vec::new(),
            Err(e) => {
                s.errors.push(format!("{name}: {e}"));
                Vec::new()
            }
        };
        s.tables.insert((*name).to_string(), rows);
    }
    s
}

/// What differs from the reference.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// Reference rows missing (counted with multiplicity).
    pub lost: usize,
    /// Rows beyond the reference's count of them (duplicates or rows that should not be).
    pub duplicated: usize,
    /// Per table, what differs (empty when equal).
    pub details: Vec<String>,
}

/// Compares `got` with `reference`, table by table.
pub fn diff(reference: &Snapshot, got: &Snapshot) -> Diff {
    let mut d = Diff::default();
    let empty = Vec::new();
    for name in TABLES {
        let r = reference.tables.get(*name).unwrap_or(&empty);
        let g = got.tables.get(*name).unwrap_or(&empty);
        let mut count: HashMap<&Vec<String>, i64> = HashMap::new();
        for row in r {
            *count.entry(row).or_default() += 1;
        }
        for row in g {
            *count.entry(row).or_default() -= 1;
        }
        let lost: i64 = count.values().filter(|c| **c > 0).sum();
        let extra: i64 = -count.values().filter(|c| **c < 0).sum::<i64>();
        if lost > 0 || extra > 0 {
            d.details
                .push(format!("{name}: {lost} lost, {extra} duplicated or extra"));
        }
        d.lost += lost as usize;
        d.duplicated += extra as usize;
    }
    for e in &got.errors {
        d.details.push(format!("unreadable {e}"));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(bronze: &[&str]) -> Snapshot {
        let mut s = Snapshot::default();
        s.tables.insert(
            "bronze".into(),
            bronze.iter().map(|r| vec![(*r).to_string()]).collect(),
        );
        s
    }

    #[test]
    fn rows_missing_are_lost_and_rows_too_often_are_duplicated() {
        let reference = snap(&["a", "b", "c"]);
        assert_eq!(diff(&reference, &reference), Diff::default());
        let d = diff(&reference, &snap(&["a", "a", "c"]));
        assert_eq!((d.lost, d.duplicated), (1, 1));
        assert_eq!(d.details, vec!["bronze: 1 lost, 1 duplicated or extra"]);
    }
}
