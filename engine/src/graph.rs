//! The task graph: cycle detection, topological order, and drawings (text, Graphviz dot,
//! Mermaid).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::spec::Pipeline;

/// Finds dependency cycles. `edges` go from a dependency to its dependent. Each cycle is
/// returned as a path that starts and ends at the same task (`[a, b, c, a]`), starting from
/// the task that comes first in `nodes`; cycles are ordered the same way.
pub fn find_cycles<'a>(
    nodes: impl IntoIterator<Item = &'a str>,
    edges: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<Vec<String>> {
    let mut graph: DiGraph<&str, ()> = DiGraph::new();
    let mut index = HashMap::new();
    for n in nodes {
        index.entry(n).or_insert_with(|| graph.add_node(n));
    }
    for (from, to) in edges {
        if let (Some(&a), Some(&b)) = (index.get(from), index.get(to)) {
            graph.add_edge(a, b, ());
        }
    }
    let mut cycles: Vec<(NodeIndex, Vec<String>)> = Vec::new();
    for scc in tarjan_scc(&graph) {
        if scc.len() < 2 {
            continue;
        }
        let members: HashSet<NodeIndex> = scc.iter().copied().collect();
        let Some(&start) = scc.iter().min() else {
            continue;
        };
        if let Some(path) = path_back(&graph, start, &members) {
            cycles.push((
                start,
                path.into_iter().map(|i| graph[i].to_string()).collect(),
            ));
        }
    }
    cycles.sort_by_key(|(start, _)| *start);
    cycles.into_iter().map(|(_, c)| c).collect()
}

/// A path start -> ... -> start inside `members`, following edges in insertion order.
fn path_back(
    graph: &DiGraph<&str, ()>,
    start: NodeIndex,
    members: &HashSet<NodeIndex>,
) -> Option<Vec<NodeIndex>> {
    let mut path = vec![start];
    let mut seen = HashSet::from([start]);
    let mut stack = vec![sorted_successors(graph, start, members)];
    while let Some(next) = stack.last_mut() {
        match next.pop() {
            Some(n) if n == start => {
                path.push(start);
                return Some(path);
            }
            Some(n) if seen.insert(n) => {
                path.push(n);
                stack.push(sorted_successors(graph, n, members));
            }
            Some(_) => {}
            None => {
                stack.pop();
                path.pop();
            }
        }
    }
    None
}

fn sorted_successors(
    graph: &DiGraph<&str, ()>,
    n: NodeIndex,
    members: &HashSet<NodeIndex>,
) -> Vec<NodeIndex> {
    let mut next: Vec<NodeIndex> = graph
        .edges(n)
        .map(|e| e.target())
        .filter(|t| members.contains(t))
        .collect();
    // Reversed so that `pop` visits the earliest node first.
    next.sort_by(|a, b| b.cmp(a));
    next
}

/// Output formats of [`draw`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Levels of tasks with their dependencies, for terminals.
    Text,
    /// Graphviz dot.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// The level of each task: 0 for tasks without dependencies, else 1 + the deepest dependency.
/// Tasks come in file order within a level.
pub fn levels(pipeline: &Pipeline) -> Vec<Vec<&str>> {
    let mut level: HashMap<&str, usize> = HashMap::new();
    // A validated pipeline is acyclic; iterate until every task has a level.
    let mut remaining: Vec<_> = pipeline.tasks.iter().collect();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|t| {
            let deps: Option<Vec<usize>> = t
                .depends_on
                .iter()
                .map(|d| level.get(d.as_str()).copied())
                .collect();
            match deps {
                Some(d) => {
                    level.insert(&t.id, d.into_iter().map(|l| l + 1).max().unwrap_or(0));
                    false
                }
                None => true,
            }
        });
        if remaining.len() == before {
            break;
        }
    }
    let depth = level.values().copied().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); depth];
    for t in &pipeline.tasks {
        if let Some(&l) = level.get(t.id.as_str()) {
            out[l].push(t.id.as_str());
        }
    }
    out
}

/// Draws the pipeline's DAG.
pub fn draw(pipeline: &Pipeline, format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Text => {
            let _ = writeln!(out, "{} ({} tasks)", pipeline.name, pipeline.tasks.len());
            for (i, level) in levels(pipeline).iter().enumerate() {
                let _ = writeln!(out, "level {i}");
                for id in level {
                    let Some(task) = pipeline.task(id) else {
                        continue;
                    };
                    if task.depends_on.is_empty() {
                        let _ = writeln!(out, "  {id} [{}]", task.task_type);
                    } else {
                        let _ = writeln!(
                            out,
                            "  {id} [{}] <- {}",
                            task.task_type,
                            task.depends_on.join(", ")
                        );
                    }
                }
            }
        }
        Format::Dot => {
            let _ = writeln!(
                out,
                "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];",
                pipeline.name
            );
            for t in &pipeline.tasks {
                let _ = writeln!(
                    out,
                    "  \"{}\" [label=\"{}\\n({})\"];",
                    t.id, t.id, t.task_type
                );
            }
            for t in &pipeline.tasks {
                for d in &t.depends_on {
                    let _ = writeln!(out, "  \"{d}\" -> \"{}\";", t.id);
                }
            }
            out.push_str("}\n");
        }
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            for t in &pipeline.tasks {
                let _ = writeln!(
                    out,
                    "  {}[\"{} ({})\"]",
                    mermaid_id(&t.id),
                    t.id,
                    t.task_type
                );
            }
            for t in &pipeline.tasks {
                for d in &t.depends_on {
                    let _ = writeln!(out, "  {} --> {}", mermaid_id(d), mermaid_id(&t.id));
                }
            }
        }
    }
    out
}

fn mermaid_id(id: &str) -> String {
    id.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cycles_as_paths() {
        let cycles = find_cycles(
            ["a", "b", "c", "d"],
            [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")],
        );
        assert_eq!(cycles, vec![vec!["a", "b", "c", "a"]]);
        assert!(find_cycles(["a", "b"], [("a", "b")]).is_empty());
        let two = find_cycles(
            ["x", "y", "p", "q"],
            [("q", "p"), ("p", "q"), ("x", "y"), ("y", "x")],
        );
        assert_eq!(two, vec![vec!["x", "y", "x"], vec!["p", "q", "p"]]);
    }
}
