//! One row of the reliability table per fault or load, and the table as text.

/// The figures of one fault or load.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// What was injected.
    pub fault: String,
    /// How many times it was injected.
    pub injected: usize,
    /// How many of those the system came through (every check of the scenario held).
    pub survived: usize,
    /// Rows (or scheduler ticks) missing compared with an uninterrupted run.
    pub lost: usize,
    /// Rows (or scheduler ticks) present more often than in an uninterrupted run.
    pub duplicated: usize,
    /// Checks that failed, each with what was seen (empty: the row passed).
    pub failures: Vec<String>,
    /// Short facts about the row (where kills landed, errors seen, timings).
    pub note: String,
}

impl Row {
    /// A row for `fault` with nothing counted yet.
    pub fn new(fault: impl Into<String>) -> Self {
        Row {
            fault: fault.into(),
            ..Row::default()
        }
    }

    /// Whether every injection was survived with nothing lost or duplicated.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
            && self.survived == self.injected
            && self.lost == 0
            && self.duplicated == 0
    }

    /// Records a failed check (kept to the first few, the count says the rest).
    pub fn fail(&mut self, what: impl Into<String>) {
        self.failures.push(what.into());
    }
}

/// The rows as an aligned text table, with the failed checks listed below it.
pub fn render(rows: &[Row]) -> String {
    let header = [
        "fault or load",
        "injected",
        "survived",
        "rows lost",
        "rows duplicated",
        "result",
        "note",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.fault.clone(),
                r.injected.to_string(),
                r.survived.to_string(),
                r.lost.to_string(),
                r.duplicated.to_string(),
                if r.passed() { "ok" } else { "FAIL" }.to_string(),
                r.note.clone(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, (cell, w)) in c.iter().zip(width).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            let numeric = (1..=4).contains(&i);
            if numeric {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                if i + 1 < c.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < c.len() {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(String::from));
    out.push_str(&line(&width.map(|w| "-".repeat(w))));
    for c in &cells {
        out.push_str(&line(c));
    }
    for r in rows.iter().filter(|r| !r.failures.is_empty()) {
        out.push_str(&format!("\n{}:\n", r.fault));
        for f in r.failures.iter().take(10) {
            out.push_str(&format!("  - {f}\n"));
        }
        if r.failures.len() > 10 {
            out.push_str(&format!("  - … and {} more\n", r.failures.len() - 10));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_with_a_loss_or_a_failed_check_is_marked_fail() {
        let mut ok = Row::new("a");
        ok.injected = 2;
        ok.survived = 2;
        let mut lost = ok.clone();
        lost.fault = "b".into();
        lost.lost = 1;
        let mut checked = ok.clone();
        checked.fault = "c".into();
        checked.fail("memory grew 40%");
        let text = render(&[ok.clone(), lost.clone(), checked.clone()]);
        assert!(ok.passed() && !lost.passed() && !checked.passed());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].contains(" ok"), "{text}");
        assert!(
            lines[3].contains("FAIL") && lines[4].contains("FAIL"),
            "{text}"
        );
        assert!(text.contains("memory grew 40%"), "{text}");
    }
}
