//! A run's `log.jsonl`: read in pieces from a byte offset, parsed into display lines, and
//! followed live as server-sent events while the run's process holds its lock.

use std::convert::Infallible;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use serde_json::Value as Json;
use tweetflow_engine::RunStore;

/// How often a live log is polled for new lines.
const POLL: Duration = Duration::from_millis(250);
/// Most bytes read at once.
const CHUNK: usize = 256 * 1024;

/// One log line, ready to show.
#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    /// Byte offset just after the line (where the next read starts).
    pub offset: u64,
    /// The event's time (RFC 3339).
    pub timestamp: String,
    /// `HH:MM:SS.mmm` of the timestamp.
    pub time: String,
    /// `INFO`, `WARN`, ...
    pub level: String,
    /// The task the event belongs to.
    pub task: Option<String>,
    /// The attempt number.
    pub attempt: Option<String>,
    /// The message.
    pub message: String,
    /// The other fields, `key=value` separated by spaces.
    pub fields: String,
}

/// Parses one line of `log.jsonl` (a line that is not JSON is shown as it is).
pub fn parse_line(text: &str, offset: u64) -> LogLine {
    let value: Json = serde_json::from_str(text).unwrap_or(Json::Null);
    let timestamp = value["timestamp"].as_str().unwrap_or_default().to_string();
    let time = timestamp
        .split_once('T')
        .map(|(_, t)| t.chars().take(12).collect())
        .unwrap_or_default();
    let mut task = None;
    let mut attempt = None;
    for span in value["spans"].as_array().into_iter().flatten() {
        match span["name"].as_str() {
            Some("task") => task = span["fields"]["task"].as_str().map(str::to_string),
            Some("attempt") => attempt = span["fields"]["number"].as_u64().map(|n| n.to_string()),
            _ => {}
        }
    }
    let mut message = String::new();
    let mut fields = Vec::new();
    if let Some(map) = value["fields"].as_object() {
        for (k, v) in map {
            let v = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            if k == "message" {
                message = v;
            } else {
                fields.push(format!("{k}={v}"));
            }
        }
    } else if value.is_null() {
        message = text.to_string();
    }
    LogLine {
        offset,
        timestamp,
        time,
        level: value["level"].as_str().unwrap_or_default().to_string(),
        task,
        attempt,
        message,
        fields: fields.join(" "),
    }
}

/// Reads the complete lines of `path` from byte `from` (at most about [`CHUNK`] bytes).
/// Returns them and the offset after the last complete line.
pub fn read_lines(path: &Path, from: u64) -> (Vec<LogLine>, u64) {
    let Ok(mut file) = File::open(path) else {
        return (Vec::new(), from);
    };
    if file.seek(SeekFrom::Start(from)).is_err() {
        return (Vec::new(), from);
    }
    let mut buf = Vec::new();
    if file.take(CHUNK as u64).read_to_end(&mut buf).is_err() {
        return (Vec::new(), from);
    }
    let mut lines = Vec::new();
    let mut offset = from;
    let mut rest = buf.as_slice();
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        offset += end as u64 + 1;
        let text = String::from_utf8_lossy(&rest[..end]);
        if !text.trim().is_empty() {
            lines.push(parse_line(&text, offset));
        }
        rest = &rest[end + 1..];
    }
    (lines, offset)
}

/// Reads every complete line of `path` from `from`, up to `max` lines.
pub fn read_all(path: &Path, mut from: u64, max: usize) -> (Vec<LogLine>, u64) {
    let mut out = Vec::new();
    while out.len() < max {
        let (lines, next) = read_lines(path, from);
        if lines.is_empty() && next == from {
            break;
        }
        out.extend(lines);
        from = next;
    }
    out.truncate(max);
    let offset = out.last().map_or(from, |l| l.offset);
    (out, offset)
}

struct Follow {
    store: RunStore,
    run_id: String,
    path: PathBuf,
    offset: u64,
    pending: std::collections::VecDeque<LogLine>,
    ended: bool,
}

/// The log of `run_id` from byte `from` as server-sent events: one `line` event per line
/// (its data the [`LogLine`] as JSON, its id the offset after it), then one `end` event once
/// the run's process no longer holds the run (so a browser does not reconnect).
pub fn follow(
    store: RunStore,
    run_id: String,
    from: u64,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let path = store.run_dir(&run_id).join("log.jsonl");
    let state = Follow {
        store,
        run_id,
        path,
        offset: from,
        pending: Default::default(),
        ended: false,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.ended {
                return None;
            }
            if let Some(line) = s.pending.pop_front() {
                let event = Event::default()
                    .event("line")
                    .id(line.offset.to_string())
                    .json_data(&line)
                    .unwrap_or_else(|_| Event::default().event("line"));
                return Some((Ok(event), s));
            }
            // Whether the run is executing is read before the log: every line written
            // before its process let go of the run is then read below.
            let executing = s.store.is_executing(&s.run_id);
            let path = s.path.clone();
            let offset = s.offset;
            let (lines, next) = tokio::task::spawn_blocking(move || read_lines(&path, offset))
                .await
                .unwrap_or((Vec::new(), offset));
            s.offset = next;
            if !lines.is_empty() {
                s.pending.extend(lines);
                continue;
            }
            if !executing {
                s.ended = true;
                return Some((Ok(Event::default().event("end").data("end")), s));
            }
            tokio::time::sleep(POLL).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn complete_lines_are_read_from_an_offset_and_a_partial_one_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut f = File::create(&path).unwrap();
        let line = r#"{"timestamp":"2026-01-01T10:00:00.123456Z","level":"INFO","target":"t","fields":{"message":"hello","rows":3},"spans":[{"name":"run","fields":{}},{"name":"task","fields":{"task":"clean"}},{"name":"attempt","fields":{"number":2}}]}"#;
        writeln!(f, "{line}").unwrap();
        write!(f, r#"{{"timestamp":"#).unwrap();
        let (lines, offset) = read_lines(&path, 0);
        assert_eq!(lines.len(), 1);
        assert_eq!(offset, line.len() as u64 + 1);
        let l = &lines[0];
        assert_eq!(l.message, "hello");
        assert_eq!(l.fields, "rows=3");
        assert_eq!(l.task.as_deref(), Some("clean"));
        assert_eq!(l.attempt.as_deref(), Some("2"));
        assert_eq!(l.time, "10:00:00.123");
        assert!(read_lines(&path, offset).0.is_empty());
        writeln!(f, r#""x","level":"WARN","fields":{{"message":"late"}}}}"#).unwrap();
        let (more, _) = read_all(&path, offset, 10);
        assert_eq!(more[0].message, "late");
    }
}
