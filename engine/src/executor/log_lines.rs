//! Copying the log lines of an attempt that ran elsewhere into the current span, so that
//! they land in the run's `log.jsonl` under the task and its attempt.

use serde_json::Value;

/// Emits each line of `text` as an event of the current span. A JSON line as
/// `tweetflow task exec` prints it keeps its level, message, target and fields; any other
/// line is an `info` event holding the line.
pub fn replay_log_lines(text: &str) {
    for line in text.lines() {
        replay_line(line);
    }
}

/// Emits one line (see [`replay_log_lines`]).
pub fn replay_line(line: &str) {
    let line = line.trim_end();
    if line.is_empty() {
        return;
    }
    let Ok(Value::Object(mut event)) = serde_json::from_str::<Value>(line) else {
        tracing::info!(target: "tweetflow::exec", line, "worker output");
        return;
    };
    let level = event
        .get("level")
        .and_then(Value::as_str)
        .unwrap_or("INFO")
        .to_ascii_uppercase();
    let remote_target = event
        .get("target")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut fields = match event.remove("fields") {
        Some(Value::Object(f)) => f,
        _ => serde_json::Map::new(),
    };
    let message = match fields.remove("message") {
        Some(Value::String(m)) => m,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let fields = Value::Object(fields).to_string();
    let remote_time = event
        .get("timestamp")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(target: "tweetflow::exec", $level, remote_target, remote_time, fields = %fields, "{message}")
        };
    }
    match level.as_str() {
        "ERROR" => emit!(tracing::Level::ERROR),
        "WARN" => emit!(tracing::Level::WARN),
        "DEBUG" => emit!(tracing::Level::DEBUG),
        "TRACE" => emit!(tracing::Level::TRACE),
        _ => emit!(tracing::Level::INFO),
    }
}
