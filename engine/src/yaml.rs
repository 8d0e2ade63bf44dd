//! A YAML reader that keeps the position of every node.
//!
//! Validation needs `file:line:column` for every value, which serde-based YAML readers drop,
//! so pipelines are read into a small tree of [`Node`]s from the event stream of `yaml-rust2`.
//! Plain scalars are resolved with the YAML 1.2 core schema (null, booleans, integers,
//! floats); quoted scalars are always strings. Anchors and aliases are expanded.
//!
//! Hostile files are refused early, with the position where a limit was passed: more than
//! [`MAX_FILE_BYTES`] of text, collections nested deeper than [`MAX_DEPTH`], or more than
//! [`MAX_NODES`] values once aliases are expanded (an alias counts as every value it expands
//! to, so the "billion laughs" shape stops after a few levels). Only the first document of a
//! stream is read. Memory and time stay bounded by these limits.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostic::{Diagnostic, Span};

/// A YAML value with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub span: Span,
    /// The value.
    pub value: Value,
}

/// The value of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A node at `span`.
    pub fn new(span: Span, value: Value) -> Self {
        Node { span, value }
    }

    /// The YAML kind of the value, for messages (`a string`, `a mapping`, ...).
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The string value, if the node is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries, if the node is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items, if the node is a sequence.
    #[cfg(test)]
    pub(crate) fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar as text (for keys and messages); `None` for collections.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Null => Some("null".into()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// Converts the tree to JSON (mapping keys become strings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Largest file read (1 MiB).
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Deepest nesting of lists and mappings.
pub const MAX_DEPTH: usize = 64;

/// Most values (scalars, lists and mappings) in a document, counting every value an alias
/// expands to.
pub const MAX_NODES: usize = 100_000;

/// Parses one YAML document. Returns the root (`None` for an empty document) and the problems
/// found on the way (duplicate keys, non-scalar keys); a syntax error or a passed limit is a
/// single diagnostic.
pub fn parse(text: &str) -> Result<(Option<Node>, Vec<Diagnostic>), Diagnostic> {
    if text.len() > MAX_FILE_BYTES {
        return Err(too_large(text.len()));
    }
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    // The events are pulled one at a time (rather than with `Parser::load`, which recurses
    // once per nesting level) so a passed limit stops the parse at once.
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            let span = to_span(e.marker());
            // The scanner's own limit on flow nesting (`[[[...`) is the same refusal.
            if e.info().contains("recursion limit") {
                return too_deep(span);
            }
            Diagnostic::new(span, format!("invalid YAML: {}", e.info()))
                .with_hint("check the indentation and quoting around this position")
        })?;
        let last = matches!(event, Event::StreamEnd | Event::DocumentEnd);
        builder.on_event(event, mark);
        if let Some(d) = builder.refused.take() {
            return Err(d);
        }
        if last {
            break;
        }
    }
    Ok((builder.root, builder.problems))
}

fn too_deep(span: Span) -> Diagnostic {
    Diagnostic::new(
        span,
        format!("lists and mappings are nested more than {MAX_DEPTH} levels deep"),
    )
    .with_hint("a pipeline needs only a few levels; flatten this value")
}

/// The diagnostic for a file larger than [`MAX_FILE_BYTES`].
pub fn too_large(len: usize) -> Diagnostic {
    Diagnostic::new(
        Span::new(1, 1),
        format!(
            "the file is too large ({len} bytes): a pipeline file may have at most {MAX_FILE_BYTES} bytes"
        ),
    )
    .with_hint("split it into several pipelines")
}

fn to_span(m: &Marker) -> Span {
    // yaml-rust2 markers carry 1-based lines and 0-based columns.
    Span::new(m.line(), m.col() + 1)
}

/// A collection being read: its start, anchor, entries so far and the number of values in it
/// (itself included).
enum Frame {
    Seq(Span, usize, Vec<Node>, usize),
    Map(Span, usize, Vec<(Node, Node)>, Option<Node>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Anchored nodes, with the number of values each expands to.
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    problems: Vec<Diagnostic>,
    /// Values built so far, aliases expanded.
    nodes: usize,
    /// A passed limit: the parse stops.
    refused: Option<Diagnostic>,
}

impl Builder {
    /// Counts `count` more values; false (and the parse is refused) past [`MAX_NODES`].
    fn count(&mut self, span: Span, count: usize, alias: bool) -> bool {
        self.nodes = self.nodes.saturating_add(count);
        if self.nodes <= MAX_NODES {
            return true;
        }
        let message = if alias {
            format!(
                "this alias expands to {count} values, which takes the document past the limit of {MAX_NODES} values"
            )
        } else {
            format!("the document has more than {MAX_NODES} values")
        };
        self.refused = Some(Diagnostic::new(span, message).with_hint(
            "anchors and aliases count as every value they expand to; a pipeline this large is refused",
        ));
        false
    }

    fn push_node(&mut self, node: Node, anchor: usize, count: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), count));
        }
        match self.stack.last_mut() {
            Some(Frame::Seq(.., n)) | Some(Frame::Map(.., n)) => *n += count,
            None => {}
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(_, _, items, _)) => items.push(node),
            Some(Frame::Map(_, _, entries, pending, _)) => match pending.take() {
                None => {
                    if node.scalar_text().is_none() {
                        self.problems.push(Diagnostic::new(
                            node.span,
                            "mapping keys must be plain values, not lists or mappings",
                        ));
                    } else if let Some((first, _)) = entries
                        .iter()
                        .find(|(k, _)| k.scalar_text() == node.scalar_text())
                    {
                        self.problems.push(
                            Diagnostic::new(
                                node.span,
                                format!(
                                    "duplicate key `{}`",
                                    node.scalar_text().unwrap_or_default()
                                ),
                            )
                            .with_hint(format!("it is first defined at line {}", first.span.line)),
                        );
                    }
                    *pending = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let span = to_span(&mark);
        if self.refused.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                if !self.count(span, 1, false) {
                    return;
                }
                let value = if style == TScalarStyle::Plain {
                    resolve_plain(&text)
                } else {
                    Value::Str(text)
                };
                self.push_node(Node::new(span, value), anchor, 1);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                self.refused = Some(too_deep(span));
            }
            Event::SequenceStart(anchor, _) => {
                if self.count(span, 1, false) {
                    self.stack.push(Frame::Seq(span, anchor, Vec::new(), 1))
                }
            }
            Event::MappingStart(anchor, _) => {
                if self.count(span, 1, false) {
                    self.stack
                        .push(Frame::Map(span, anchor, Vec::new(), None, 1))
                }
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                // A block collection's start event is marked after its first token: start the
                // collection where its first entry starts when that is earlier.
                Some(Frame::Seq(span, anchor, items, n)) => {
                    let span = items.first().map_or(span, |first| span.min(first.span));
                    self.push_node(Node::new(span, Value::Seq(items)), anchor, n)
                }
                Some(Frame::Map(span, anchor, entries, _, n)) => {
                    let span = entries.first().map_or(span, |(key, _)| span.min(key.span));
                    self.push_node(Node::new(span, Value::Map(entries)), anchor, n)
                }
                None => {}
            },
            Event::Alias(id) => {
                let count = self.anchors.get(&id).map_or(1, |(_, n)| *n);
                if !self.count(span, count, true) {
                    return;
                }
                let node = self.anchors.get(&id).map(|(n, _)| {
                    let mut n = n.clone();
                    n.span = span;
                    n
                });
                match node {
                    Some(n) => self.push_node(n, 0, count),
                    None => {
                        self.problems.push(Diagnostic::new(span, "unknown alias"));
                        self.push_node(Node::new(span, Value::Null), 0, 1);
                    }
                }
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::Int(i);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Int(i);
    }
    let looks_numeric = digits
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_numeric && let Ok(f) = text.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(text).expect("parses").0.expect("has a root")
    }

    #[test]
    fn positions_are_one_based() {
        let n = root("a: 1\nb:\n  c: [x, \"y\"]\n");
        let map = n.as_map().unwrap();
        assert_eq!(map[0].0.span, Span::new(1, 1));
        assert_eq!(map[0].1.span, Span::new(1, 4));
        let inner = map[1].1.as_map().unwrap();
        assert_eq!(inner[0].0.span, Span::new(3, 3));
        let seq = inner[0].1.as_seq().unwrap();
        assert_eq!(seq[1].span, Span::new(3, 10));
        assert_eq!(seq[1].value, Value::Str("y".into()));
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let n = root("[1, -2, 1.5, true, null, ~, '3', 10ms, 0x1f]");
        let values: Vec<Value> = n
            .as_seq()
            .unwrap()
            .iter()
            .map(|n| n.value.clone())
            .collect();
        assert_eq!(
            values,
            vec![
                Value::Int(1),
                Value::Int(-2),
                Value::Float(1.5),
                Value::Bool(true),
                Value::Null,
                Value::Null,
                Value::Str("3".into()),
                Value::Str("10ms".into()),
                Value::Int(31)
            ]
        );
    }

    #[test]
    fn reports_duplicate_keys_and_syntax_errors() {
        let (_, problems) = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].span, Span::new(2, 1));
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("invalid YAML"), "{}", err.message);
    }

    #[test]
    fn expands_aliases() {
        let n = root("base: &b {x: 1}\nother: *b\n");
        assert_eq!(
            n.as_map().unwrap()[1].1.to_json(),
            serde_json::json!({"x": 1})
        );
    }
}
