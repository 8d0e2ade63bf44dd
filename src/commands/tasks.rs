//! `tweetflow tasks` and `tweetflow schema`: the registered task types and the pipeline schema.

use tweetflow_engine::Registry;
use tweetflow_engine::{param_docs, pipeline_schema};

use crate::exit;

/// Lists the task types and their params, as text or JSON.
pub(crate) fn tasks(registry: &Registry, json: bool) -> anyhow::Result<u8> {
    if json {
        let list: Vec<_> = registry
            .iter()
            .map(|t| {
                serde_json::json!({
                    "type": t.type_name(),
                    "version": t.version(),
                    "description": t.description(),
                    "params": param_docs(&t.params_schema()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(exit::OK);
    }
    for t in registry.iter() {
        println!(
            "{} (version {})\n  {}",
            t.type_name(),
            t.version(),
            t.description()
        );
        let docs = param_docs(&t.params_schema());
        if docs.is_empty() {
            println!("  no params");
        }
        for p in docs {
            let default = match (&p.default, p.required) {
                (_, true) => "required".to_string(),
                (Some(d), _) => format!("default {d}"),
                (None, false) => "optional".to_string(),
            };
            println!(
                "  {:<14} {:<18} {:<16} {}",
                p.name, p.kind, default, p.description
            );
        }
        println!();
    }
    Ok(exit::OK)
}

/// Prints the JSON schema of pipeline files.
pub(crate) fn schema(registry: &Registry) -> anyhow::Result<u8> {
    println!(
        "{}",
        serde_json::to_string_pretty(&pipeline_schema(registry))?
    );
    Ok(exit::OK)
}
