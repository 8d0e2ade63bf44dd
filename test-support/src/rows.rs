//! Checks on table rows read back as strings.

use std::collections::HashSet;

/// Panics when two of `rows` agree on the columns `key` (indexes into each row); `what` names
/// the rows in the message.
pub fn assert_unique_rows(rows: &[Vec<String>], key: &[usize], what: &str) {
    let mut seen = HashSet::new();
    for r in rows {
        let k: Vec<&String> = key.iter().map(|i| &r[*i]).collect();
        assert!(seen.insert(k.clone()), "duplicate {what} row {k:?}");
    }
}
