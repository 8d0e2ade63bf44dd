//! The size cap of a task attempt's share of a run's `log.jsonl`.
//!
//! A chatty task (a `command` printing in a loop) must not fill the disk. Each attempt may
//! write [`LogCap::max_bytes`] of log lines (default [`DEFAULT_MAX_BYTES`], set with
//! `TWEETFLOW_LOG_CAP`, e.g. `10MB`, `512KB`, `0` for no cap). The first half is written as it
//! comes; later lines are held back in a window of the remaining budget (older ones are dropped
//! as newer come) and written when the attempt ends, after one line saying how many bytes and
//! lines were dropped. So the log keeps the head and the tail of the attempt's output, and
//! lines past the first half appear when the attempt ends.

use std::collections::VecDeque;

/// The default cap: 10 MiB of log lines per task attempt.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The cap of one attempt's log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogCap {
    /// Bytes of log lines an attempt may write (`u64::MAX`: no cap).
    pub max_bytes: u64,
}

impl Default for LogCap {
    fn default() -> Self {
        LogCap {
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// A size that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SizeError {
    /// The text does not start with a number.
    #[error("`{text}` is not a size such as `10MB`")]
    NotASize { text: String },
    /// A unit other than B, KB, MB and GB.
    #[error("`{unit}` is not a unit (B, KB, MB, GB)")]
    UnknownUnit { unit: String },
    /// More bytes than fit in 64 bits.
    #[error("`{text}` is too large")]
    TooLarge { text: String },
}

/// `TWEETFLOW_LOG_CAP` is set to something that is not a size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("TWEETFLOW_LOG_CAP=`{value}`: {source}")]
pub(crate) struct LogCapError {
    value: String,
    source: SizeError,
}

impl LogCap {
    /// The cap set by `TWEETFLOW_LOG_CAP`, else the default.
    pub(crate) fn from_env() -> Result<Self, LogCapError> {
        match std::env::var("TWEETFLOW_LOG_CAP") {
            Ok(v) if !v.trim().is_empty() => parse_size(&v)
                .map(|n| LogCap {
                    max_bytes: if n == 0 { u64::MAX } else { n },
                })
                .map_err(|source| LogCapError { value: v, source }),
            _ => Ok(LogCap::default()),
        }
    }
}

/// Parses a size such as `10MB`, `512KB`, `1GB` or `4096` (bytes; units are powers of 1024).
pub(crate) fn parse_size(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let amount: u64 = text[..digits]
        .parse()
        .map_err(|_| SizeError::NotASize { text: text.into() })?;
    let unit: u64 = match text[digits..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1024,
        "M" | "MB" | "MIB" => 1024 * 1024,
        "G" | "GB" | "GIB" => 1024 * 1024 * 1024,
        other => {
            return Err(SizeError::UnknownUnit { unit: other.into() });
        }
    };
    amount
        .checked_mul(unit)
        .ok_or_else(|| SizeError::TooLarge { text: text.into() })
}

/// What an attempt has logged so far.
#[derive(Debug, Default)]
pub(crate) struct AttemptLog {
    written: u64,
    tail: VecDeque<Vec<u8>>,
    tail_bytes: u64,
    dropped_bytes: u64,
    dropped_lines: u64,
}

impl AttemptLog {
    /// Takes one line: returns it when it is to be written now, else holds it back.
    pub(crate) fn admit(&mut self, line: Vec<u8>, cap: LogCap) -> Option<Vec<u8>> {
        let len = line.len() as u64;
        if self.tail.is_empty() && self.written.saturating_add(len) <= cap.max_bytes / 2 {
            self.written += len;
            return Some(line);
        }
        self.tail.push_back(line);
        self.tail_bytes += len;
        let budget = cap.max_bytes.saturating_sub(self.written);
        while self.tail_bytes > budget {
            let Some(old) = self.tail.pop_front() else {
                break;
            };
            self.tail_bytes -= old.len() as u64;
            self.dropped_bytes += old.len() as u64;
            self.dropped_lines += 1;
        }
        None
    }

    /// Bytes and lines dropped, if any.
    pub(crate) fn dropped(&self) -> Option<(u64, u64)> {
        (self.dropped_lines > 0).then_some((self.dropped_bytes, self.dropped_lines))
    }

    /// The lines held back, in order.
    pub(crate) fn take_tail(&mut self) -> Vec<Vec<u8>> {
        self.tail_bytes = 0;
        std::mem::take(&mut self.tail).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_with_their_unit() {
        for (text, expected) in [
            ("4096", Ok(4096)),
            ("10MB", Ok(10 * 1024 * 1024)),
            ("512 KB", Ok(512 * 1024)),
            ("1gb", Ok(1024 * 1024 * 1024)),
            ("ten", Err(())),
            ("10XB", Err(())),
        ] {
            assert_eq!(parse_size(text).map_err(|_| ()), expected, "{text}");
        }
    }

    #[test]
    fn the_head_and_the_tail_are_kept_within_the_cap() {
        // (cap, lines of 10 bytes, lines kept in the head, lines dropped)
        for (cap, lines, head, dropped) in [
            (1000, 50, 50, 0),
            (1000, 100, 50, 0),
            (1000, 101, 50, 1),
            (1000, 1000, 50, 900),
            (95, 30, 4, 21),
        ] {
            let mut log = AttemptLog::default();
            let cap = LogCap { max_bytes: cap };
            let mut written = Vec::new();
            for i in 0..lines {
                let line = format!("{i:09}\n").into_bytes();
                if let Some(l) = log.admit(line, cap) {
                    written.push(l);
                }
            }
            assert_eq!(written.len(), head, "cap {cap:?}, {lines} lines: the head");
            let tail = log.take_tail();
            assert_eq!(
                head + tail.len() + dropped,
                lines,
                "cap {cap:?}, {lines} lines"
            );
            assert_eq!(log.dropped().map_or(0, |(_, l)| l as usize), dropped);
            let kept: u64 = written.iter().chain(&tail).map(|l| l.len() as u64).sum();
            assert!(kept <= cap.max_bytes, "cap {cap:?}: {kept} bytes kept");
            // The tail is the last lines, in order.
            if let Some(last) = tail.last() {
                assert_eq!(*last, format!("{:09}\n", lines - 1).into_bytes());
            }
        }
    }
}
