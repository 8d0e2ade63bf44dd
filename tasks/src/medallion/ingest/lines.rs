//! Reading a landing file line by line with bounded memory: a line longer than the limit is
//! not held whole; only its first bytes are kept (for the quarantine row) and the rest is
//! skipped up to the next newline. Files named `*.gz` are decompressed as they are read
//! (concatenated gzip members included).

use std::io::{BufRead, BufReader, ErrorKind};

use flate2::bufread::MultiGzDecoder;

/// How many bytes of an oversized line the quarantine keeps.
pub(super) const KEPT_PREFIX: usize = 1024;

/// One line of a landing file, without its `\n` (and `\r`).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line<'a> {
    /// A line within the limit.
    Record(&'a [u8]),
    /// A line over the limit: its first bytes and its whole length.
    TooLong {
        /// The first [`KEPT_PREFIX`] bytes (or fewer, up to the limit).
        prefix: &'a [u8],
        /// The line's length in bytes.
        len: u64,
    },
}

/// Lines of a reader, each at most `max` bytes in memory.
pub(super) struct BoundedLines<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    len: u64,
}

/// A reader of the landed file `name`: decompressed when the name ends in `.gz`.
pub(super) fn decoded(name: &str, raw: Box<dyn BufRead + Send>) -> Box<dyn BufRead + Send> {
    if is_gzip(name) {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            MultiGzDecoder::new(raw),
        ))
    } else {
        raw
    }
}

/// Whether `name` is read as gzip.
pub(super) fn is_gzip(name: &str) -> bool {
    name.ends_with(".gz")
}

/// Whether a read error of a gzip stream means the data is corrupt (not an I/O failure).
pub(super) fn is_corrupt_data(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidInput | ErrorKind::InvalidData | ErrorKind::UnexpectedEof
    )
}

impl<R: BufRead> BoundedLines<R> {
    /// Lines of `inner`; lines longer than `max` bytes come back as [`Line::TooLong`].
    pub(super) fn new(inner: R, max: u64) -> Self {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        BoundedLines {
            inner,
            max,
            buf: Vec::with_capacity(1024.min(max.saturating_add(1))),
            len: 0,
        }
    }

    /// The next line, `None` at the end.
    pub(super) fn next_line(&mut self) -> std::io::Result<Option<Line<'_>>> {
        self.buf.clear();
        self.len = 0;
        let mut ended = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            let (chunk, used, newline) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            // Keep bytes while the line is within the limit (one byte more tells it is not),
            // then only up to the kept prefix.
            let room = if self.len <= self.max as u64 {
                (self.max + 1).saturating_sub(self.buf.len())
            } else {
                0
            };
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.len += chunk.len() as u64;
            self.inner.consume(used);
            ended = true;
            if newline {
                break;
            }
        }
        if !ended {
            return Ok(None);
        }
        // `buf` holds at most `max + 1` bytes: the whole line when it fits.
        let mut len = self.len;
        if len == self.buf.len() as u64 && self.buf.last() == Some(&b'\r') {
            self.buf.pop();
            len -= 1;
        }
        if len > self.max as u64 {
            self.buf.truncate(KEPT_PREFIX.min(self.max));
            self.buf.shrink_to(self.max.min(64 * 1024));
            return Ok(Some(Line::TooLong {
                prefix: &self.buf,
                len,
            }));
        }
        Ok(Some(Line::Record(&self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: u64, cap: usize) -> Vec<String> {
        let mut r = BoundedLines::new(BufReader::with_capacity(cap, input), max);
        let mut out = Vec::new();
        while let Some(line) = r.next_line().unwrap() {
            out.push(match line {
                Line::Record(b) => String::from_utf8_lossy(b).into_owned(),
                Line::TooLong { prefix, len } => {
                    format!("long {len} {}", String::from_utf8_lossy(prefix))
                }
            });
        }
        out
    }

    #[test]
    fn lines_within_and_over_the_limit() {
        for cap in [1, 2, 3, 7, 64] {
            assert_eq!(
                lines(b"abc\r\nabcdef\n\nxy", 4, cap),
                ["abc", "long 6 abcd", "", "xy"],
                "buffer {cap}"
            );
            assert_eq!(lines(b"abcd\nabcde\n", 4, cap), ["abcd", "long 5 abcd"]);
            assert_eq!(lines(b"abcd\r\n", 4, cap), ["abcd"]);
            assert_eq!(lines(b"", 4, cap), Vec::<String>::new());
            assert_eq!(lines(b"\n", 4, cap), [""]);
        }
    }

    #[test]
    fn a_long_line_keeps_only_its_prefix() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\nok\n");
        let mut r = BoundedLines::new(BufReader::with_capacity(4096, &input[..]), 50_000);
        match r.next_line().unwrap() {
            Some(Line::TooLong { prefix, len }) => {
                assert_eq!(prefix.len(), KEPT_PREFIX);
                assert_eq!(len, 100_000);
            }
            other => panic!("expected a long line, got {other:?}"),
        }
        assert!(r.buf.capacity() <= 64 * 1024, "{}", r.buf.capacity());
        assert_eq!(r.next_line().unwrap(), Some(Line::Record(b"ok")));
        assert_eq!(r.next_line().unwrap(), None);
    }
}
