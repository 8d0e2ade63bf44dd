//! `tweetflow notify test PIPELINE.yaml`: a test message to each alert channel.

use tweetflow_engine::Registry;

use super::load_or_report;
use crate::cli::NotifyCommand;
use crate::exit;

/// Runs a `notify` subcommand.
pub async fn notify(
    registry: &Registry,
    command: NotifyCommand,
    ui_url: Option<&str>,
) -> anyhow::Result<u8> {
    match command {
        NotifyCommand::Test { file } => {
            let Some(pipeline) = load_or_report(registry, &file, &[]) else {
                return Ok(exit::INVALID);
            };
            let outcomes = tweetflow_notify::send_test(&pipeline, ui_url).await;
            if outcomes.is_empty() {
                eprintln!(
                    "{}: the pipeline has no `notify:` channel (nor one in `defaults:`)",
                    file.display()
                );
                return Ok(exit::INVALID);
            }
            let mut failed = 0;
            for o in &outcomes {
                match &o.result {
                    Ok(answer) => println!("✓ {} ({}): {answer}", o.channel, o.kind),
                    Err(error) => {
                        failed += 1;
                        println!("✗ {} ({}): {error}", o.channel, o.kind);
                    }
                }
            }
            Ok(if failed == 0 { exit::OK } else { exit::FAILED })
        }
    }
}

/// The alert deliveries of a run as a table (empty when there are none), for `runs show`.
pub fn deliveries_table(log: &tweetflow_notify::DeliveryLog) -> String {
    if log.deliveries.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = log
        .deliveries
        .iter()
        .map(|d| {
            vec![
                d.event.clone(),
                format!("{} ({})", d.channel, d.kind),
                d.status.as_str().to_string(),
                d.attempts.to_string(),
                d.error
                    .clone()
                    .or_else(|| d.answer.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    format!(
        "\nalerts:\n{}",
        super::text_table::render(&["EVENT", "CHANNEL", "STATUS", "TRIES", "ANSWER"], &rows)
    )
}
