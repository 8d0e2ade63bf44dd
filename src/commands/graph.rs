//! `tweetflow graph`: draws a pipeline's task graph.

use std::path::Path;

use tweetflow_engine::Registry;
use tweetflow_engine::{GraphFormat as Format, draw_graph as draw};

use super::load_or_report;
use crate::cli::GraphFormat;
use crate::exit;

/// Prints the graph of the pipeline in `file`.
pub(crate) fn graph(registry: &Registry, file: &Path, format: GraphFormat) -> anyhow::Result<u8> {
    let Some(pipeline) = load_or_report(registry, file, &[]) else {
        return Ok(exit::INVALID);
    };
    let format = match format {
        GraphFormat::Text => Format::Text,
        GraphFormat::Dot => Format::Dot,
        GraphFormat::Mermaid => Format::Mermaid,
    };
    print!("{}", draw(&pipeline, format));
    Ok(exit::OK)
}
