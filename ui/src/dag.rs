//! A pipeline's DAG laid out in layers (a task's layer is one more than its deepest
//! dependency) from left to right, drawn as SVG on the server.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;
use tweetflow_engine::Pipeline;
use tweetflow_engine::graph_levels as levels;

const NODE_W: f64 = 180.0;
const NODE_H: f64 = 48.0;
const GAP_X: f64 = 64.0;
const GAP_Y: f64 = 20.0;
const MARGIN: f64 = 10.0;

/// A task placed in the drawing.
#[derive(Clone, Debug, Serialize)]
pub struct Node {
    /// The task id.
    pub id: String,
    /// Its type.
    pub task_type: String,
    /// Its layer (0: no dependencies).
    pub layer: usize,
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
}

/// A dependency: `from` must succeed before `to`.
#[derive(Clone, Debug, Serialize)]
pub struct Edge {
    /// The dependency.
    pub from: String,
    /// The dependent task.
    pub to: String,
}

/// The laid-out DAG.
#[derive(Clone, Debug, Serialize)]
pub struct Dag {
    /// Width of the drawing.
    pub width: f64,
    /// Height of the drawing.
    pub height: f64,
    /// Tasks, layer by layer.
    pub nodes: Vec<Node>,
    /// Dependencies, in file order.
    pub edges: Vec<Edge>,
}

/// Lays out `pipeline`: layers from its dependencies; within a layer, tasks ordered by the
/// mean position of their dependencies (fewer crossings), then file order.
pub fn layout(pipeline: &Pipeline) -> Dag {
    let types: HashMap<&str, &str> = pipeline
        .tasks
        .iter()
        .map(|t| (t.id.as_str(), t.task_type.as_str()))
        .collect();
    let deps: HashMap<&str, &[String]> = pipeline
        .tasks
        .iter()
        .map(|t| (t.id.as_str(), t.depends_on.as_slice()))
        .collect();
    let mut row: HashMap<&str, f64> = HashMap::new();
    let mut nodes = Vec::new();
    let layers = levels(pipeline);
    let tallest = layers.iter().map(Vec::len).max().unwrap_or(0);
    for (layer, ids) in layers.iter().enumerate() {
        let mut keyed: Vec<(f64, usize, &str)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let parents: Vec<f64> = deps
                    .get(id)
                    .map(|d| {
                        d.iter()
                            .filter_map(|p| row.get(p.as_str()).copied())
                            .collect()
                    })
                    .unwrap_or_default();
                let key = if parents.is_empty() {
                    i as f64
                } else {
                    parents.iter().sum::<f64>() / parents.len() as f64
                };
                (key, i, *id)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        // Centre short layers against the tallest one.
        let offset = (tallest - keyed.len()) as f64 / 2.0;
        for (i, (_, _, id)) in keyed.into_iter().enumerate() {
            let r = offset + i as f64;
            row.insert(id, r);
            nodes.push(Node {
                id: id.to_string(),
                task_type: types.get(id).copied().unwrap_or_default().to_string(),
                layer,
                x: MARGIN + layer as f64 * (NODE_W + GAP_X),
                y: MARGIN + r * (NODE_H + GAP_Y),
            });
        }
    }
    let edges = pipeline
        .tasks
        .iter()
        .flat_map(|t| {
            t.depends_on.iter().map(|d| Edge {
                from: d.clone(),
                to: t.id.clone(),
            })
        })
        .collect();
    Dag {
        width: 2.0 * MARGIN + layers.len() as f64 * (NODE_W + GAP_X) - GAP_X,
        height: 2.0 * MARGIN + tallest as f64 * (NODE_H + GAP_Y) - GAP_Y,
        nodes,
        edges,
    }
}

/// Draws `dag` as an SVG element; `statuses` (task id to status) colours the tasks.
pub fn svg(dag: &Dag, statuses: &BTreeMap<String, String>) -> String {
    let at: HashMap<&str, &Node> = dag.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="dag" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="task graph">"#,
        w = dag.width.max(1.0),
        h = dag.height.max(1.0)
    );
    out.push_str(r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>"#);
    for e in &dag.edges {
        let (Some(a), Some(b)) = (at.get(e.from.as_str()), at.get(e.to.as_str())) else {
            continue;
        };
        let (x1, y1) = (a.x + NODE_W, a.y + NODE_H / 2.0);
        let (x2, y2) = (b.x, b.y + NODE_H / 2.0);
        let mid = (x1 + x2) / 2.0;
        let _ = write!(
            out,
            r#"<path class="edge" data-from="{f}" data-to="{t}" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" marker-end="url(#arrow)"><title>{f} → {t}</title></path>"#,
            f = escape(&e.from),
            t = escape(&e.to),
        );
    }
    for n in &dag.nodes {
        let status = statuses.get(&n.id).map(String::as_str).unwrap_or("none");
        let _ = write!(
            out,
            r#"<g class="node status-{s}" data-task="{id}" transform="translate({x},{y})"><title>{id} ({ty}){st}</title><rect width="{w}" height="{h}" rx="6"/><text class="task-id" x="10" y="20">{idt}</text><text class="task-type" x="10" y="38">{tyt}</text></g>"#,
            s = escape(status),
            id = escape(&n.id),
            ty = escape(&n.task_type),
            st = if status == "none" {
                String::new()
            } else {
                format!(": {}", escape(status))
            },
            x = n.x,
            y = n.y,
            w = NODE_W,
            h = NODE_H,
            idt = escape(&truncate(&n.id, 22)),
            tyt = escape(&truncate(&n.task_type, 26)),
        );
    }
    out.push_str("</svg>");
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
