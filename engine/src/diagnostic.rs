//! User-facing diagnostics: a message tied to a place in a pipeline file, with an optional hint.
//!
//! Diagnostics are *user* errors (a mistake in a pipeline file); internal errors of the engine
//! are [`crate::EngineError`]. They render as `file:line:column: error: message`, followed by
//! an indented `hint:` line when one helps.

use std::fmt;

/// A position in a source file (1-based line and column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

impl Span {
    /// A span at `line`:`column` (both 1-based).
    pub fn new(line: usize, column: usize) -> Self {
        Span { line, column }
    }
}

/// One problem found in a pipeline file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the problem is.
    pub span: Span,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when the engine can tell.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic without a hint.
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            span,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint if there is one.
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Renders the diagnostic for `file`.
    pub fn render(&self, file: &str) -> String {
        let mut out = format!(
            "{file}:{}:{}: error: {}",
            self.span.line, self.span.column, self.message
        );
        if let Some(hint) = &self.hint {
            out.push_str("\n  hint: ");
            out.push_str(hint);
        }
        out
    }
}

/// All the problems found in one file, in source order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// The file the diagnostics refer to, as the user named it.
    pub file: String,
    /// The problems, sorted by position.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Renders every diagnostic, one block per problem.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            out.push_str(&d.render(&self.file));
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render().trim_end())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    closest(word, candidates, 1).into_iter().next()
}

/// Up to `n` candidates close to `word`, best first.
pub fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<&'a str> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, c)| {
            *score >= 0.8
                || (c.len() > 2 && word.contains(*c))
                || (word.len() > 2 && c.contains(word))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(
            did_you_mean("depend_on", ["depends_on", "type", "with"]),
            Some("depends_on")
        );
        assert_eq!(did_you_mean("zzz", ["depends_on", "type", "with"]), None);
    }

    #[test]
    fn renders_with_hint() {
        let d = Diagnostic::new(Span::new(3, 5), "bad").with_hint("fix it");
        assert_eq!(d.render("p.yaml"), "p.yaml:3:5: error: bad\n  hint: fix it");
    }
}
