//! Tweet text rules shared by `clean` and `profile`: @mentions, HTML entities, whitespace and
//! Sentiment140 dates.
//!
//! * A **mention** is `@` followed by 1 to 15 ASCII letters, digits or underscores, where the
//!   character before the `@` is not a letter, digit or underscore (so `bob@example.com` holds
//!   no mention), the run of name characters is not longer than 15 (Twitter's rule: a longer
//!   run is not a handle) and is not followed by another `@` or a non-ASCII letter or digit
//!   (`@josé` is not `@jos`). Punctuation ends a mention: `@bob:` is `@bob`. Mentions are reported
//!   lowercased, in order of appearance, repeated ones once per occurrence.
//! * **Cleaned text**: HTML entities unescaped first (`&amp;`, `&quot;`, `&lt;`, `&gt;`,
//!   `&#39;`, `&apos;`, `&nbsp;` and numeric `&#NN;` / `&#xHH;`; one pass, so `&amp;lt;`
//!   becomes `&lt;`), then mentions removed, then whitespace collapsed to single spaces and
//!   trimmed.
//! * **Dates** look like `Mon Apr 06 22:19:45 PDT 2009`; the zone is a North American or
//!   common abbreviation (see [`zone_offset_seconds`]) or a numeric offset (`+0000`, `-0700`).
//!   The weekday must match the date.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// Longest handle Twitter allows.
pub const MAX_MENTION_LEN: usize = 15;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A mention found in a text: its byte range (including the `@`) and the name without `@`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MentionSpan<'a> {
    /// Byte offset of the `@`.
    pub start: usize,
    /// Byte offset just past the name.
    pub end: usize,
    /// The name as written (without `@`).
    pub name: &'a str,
}

/// Finds the mentions of `text`, in order.
pub fn mention_spans(text: &str) -> Vec<MentionSpan<'_>> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut search = 0;
    while let Some(rel) = memchr_at(bytes, search) {
        let at = rel;
        search = at + 1;
        let preceded_by_word = text[..at].chars().next_back().is_some_and(is_word_char);
        if preceded_by_word {
            continue;
        }
        let run = bytes[at + 1..]
            .iter()
            .take_while(|b| is_name_byte(**b))
            .count();
        if run == 0 || run > MAX_MENTION_LEN {
            search = at + 1 + run;
            continue;
        }
        let end = at + 1 + run;
        // `@josé` or `@bob@x` is not a mention of `jos` or `bob`.
        let followed_badly = text[end..]
            .chars()
            .next()
            .is_some_and(|c| c == '@' || (!c.is_ascii() && is_word_char(c)));
        if followed_badly {
            search = end;
            continue;
        }
        spans.push(MentionSpan {
            start: at,
            end,
            name: &text[at + 1..end],
        });
        search = end;
    }
    spans
}

fn memchr_at(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|b| *b == b'@')
        .map(|p| p + from)
}

/// The lowercased mentions of `text`, in order (a repeated mention appears once per occurrence).
#[cfg(test)]
pub fn mentions(text: &str) -> Vec<String> {
    mention_spans(text)
        .into_iter()
        .map(|m| m.name.to_ascii_lowercase())
        .collect()
}

/// Unescapes HTML entities in one pass; unknown or malformed entities stay as written.
pub fn unescape_html(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('&') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let semi = tail[1..].find(';').map(|i| i + 1).filter(|i| *i <= 10);
        let decoded = semi.and_then(|semi| decode_entity(&tail[1..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

fn decode_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "quot" => Some('"'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse::<u32>().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// The cleaned text and the lowercased mentions of a raw tweet text.
pub fn clean_text(raw: &str) -> (String, Vec<String>) {
    let text = unescape_html(raw);
    let spans = mention_spans(&text);
    let mentions = spans.iter().map(|m| m.name.to_ascii_lowercase()).collect();
    let mut without = String::with_capacity(text.len());
    let mut last = 0;
    for span in &spans {
        without.push_str(&text[last..span.start]);
        without.push(' ');
        last = span.end;
    }
    without.push_str(&text[last..]);
    let mut cleaned = String::with_capacity(without.len());
    for word in without.split_whitespace() {
        if !cleaned.is_empty() {
            cleaned.push(' ');
        }
        cleaned.push_str(word);
    }
    (cleaned, mentions)
}

/// UTC offset in seconds of a time zone abbreviation (`PDT` is -25200), if known.
///
/// Known: UTC, GMT, Z, UT; North America: EDT, EST, CDT, CST, MDT, MST, PDT, PST, AKDT, AKST,
/// HDT, HST, ADT, AST, NDT, NST; Europe: BST, WET, WEST, CET, CEST, EET, EEST; JST, AEST, AEDT.
pub fn zone_offset_seconds(zone: &str) -> Option<i32> {
    let hours_minutes = |h: i32, m: i32| Some(h * 3600 + h.signum() * m * 60);
    match zone.to_ascii_uppercase().as_str() {
        "UTC" | "GMT" | "Z" | "UT" => Some(0),
        "EDT" => hours_minutes(-4, 0),
        "EST" => hours_minutes(-5, 0),
        "CDT" => hours_minutes(-5, 0),
        "CST" => hours_minutes(-6, 0),
        "MDT" => hours_minutes(-6, 0),
        "MST" => hours_minutes(-7, 0),
        "PDT" => hours_minutes(-7, 0),
        "PST" => hours_minutes(-8, 0),
        "AKDT" => hours_minutes(-8, 0),
        "AKST" => hours_minutes(-9, 0),
        "HDT" => hours_minutes(-9, 0),
        "HST" => hours_minutes(-10, 0),
        "ADT" => hours_minutes(-3, 0),
        "AST" => hours_minutes(-4, 0),
        "NDT" => Some(-(2 * 3600 + 30 * 60)),
        "NST" => Some(-(3 * 3600 + 30 * 60)),
        "BST" | "CET" | "WEST" => hours_minutes(1, 0),
        "WET" => Some(0),
        "CEST" | "EET" => hours_minutes(2, 0),
        "EEST" => hours_minutes(3, 0),
        "JST" => hours_minutes(9, 0),
        "AEST" => hours_minutes(10, 0),
        "AEDT" => hours_minutes(11, 0),
        _ => parse_numeric_offset(zone),
    }
}

fn parse_numeric_offset(zone: &str) -> Option<i32> {
    let (sign, digits) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let digits = digits.replace(':', "");
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A tweet date that cannot be read: the text and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DateError(String);

impl From<String> for DateError {
    fn from(message: String) -> Self {
        DateError(message)
    }
}

/// Parses a Sentiment140 date (`Mon Apr 06 22:19:45 PDT 2009`) into UTC, or says why not.
pub fn parse_tweet_date(text: &str) -> Result<DateTime<Utc>, DateError> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [weekday, month, day, time, zone, year] = parts[..] else {
        return Err(
            format!("date `{text}` does not have the form `Mon Apr 06 22:19:45 PDT 2009`").into(),
        );
    };
    let month_index = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(month))
        .ok_or_else(|| format!("date `{text}`: unknown month `{month}`"))?;
    let day: u32 = day
        .parse()
        .map_err(|_| format!("date `{text}`: bad day `{day}`"))?;
    let year: i32 = year
        .parse()
        .map_err(|_| format!("date `{text}`: bad year `{year}`"))?;
    let date = NaiveDate::from_ymd_opt(year, month_index as u32 + 1, day)
        .ok_or_else(|| format!("date `{text}`: no such day"))?;
    let time = NaiveTime::parse_from_str(time, "%H:%M:%S")
        .map_err(|_| format!("date `{text}`: bad time `{time}`"))?;
    let offset = zone_offset_seconds(zone)
        .ok_or_else(|| format!("date `{text}`: unknown time zone `{zone}`"))?;
    let weekday_index = WEEKDAYS
        .iter()
        .position(|w| w.eq_ignore_ascii_case(weekday))
        .ok_or_else(|| format!("date `{text}`: unknown weekday `{weekday}`"))?;
    if date.weekday().num_days_from_monday() as usize != weekday_index {
        return Err(format!("date `{text}`: {weekday} does not match the date").into());
    }
    let fixed =
        FixedOffset::east_opt(offset).ok_or_else(|| format!("date `{text}`: bad offset"))?;
    let local = NaiveDateTime::new(date, time);
    let dt = fixed
        .from_local_datetime(&local)
        .single()
        .ok_or_else(|| format!("date `{text}`: ambiguous local time"))?;
    Ok(dt.with_timezone(&Utc))
}

/// A stable tweet id: the first 16 hex digits of BLAKE3(`source_file` `\n` `line`).
///
/// The landed JSON carries no id, so the id is derived from where the tweet was landed: the
/// landing file name (relative to the landing folder) and its 1-based line number. Replaying
/// the same CSV with the same params gives the same ids.
pub fn tweet_id(source_file: &str, line: i64) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(source_file.as_bytes());
    hasher.update(b"\n");
    hasher.update(line.to_string().as_bytes());
    let hash = hasher.finalize();
    hash.to_hex()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mention_rules() {
        assert_eq!(
            mentions("@Bob: hi @alice, @BOB!"),
            vec!["bob", "alice", "bob"]
        );
        assert!(mentions("mail bob@example.com or @ alone").is_empty());
        assert!(mentions("@abcdefghijklmnop is too long").is_empty());
        assert_eq!(mentions("@abcdefghijklmno ok"), vec!["abcdefghijklmno"]);
        assert_eq!(mentions("(@x)"), vec!["x"]);
        assert!(mentions("é@x").is_empty());
        assert!(mentions("@josé @bob@x").is_empty());
        assert_eq!(mentions("@ok😀 @@double"), vec!["ok", "double"]);
    }

    #[test]
    fn cleaning() {
        let (text, m) = clean_text("@bob  Tom &amp; Jerry &quot;hi&quot; &lt;3 &#39;x&#39;   @al");
        assert_eq!(text, "Tom & Jerry \"hi\" <3 'x'");
        assert_eq!(m, vec!["bob", "al"]);
        assert_eq!(
            unescape_html("&amp;lt; &bogus; & &#x41;"),
            "&lt; &bogus; & A"
        );
    }

    #[test]
    fn dates() {
        let d = parse_tweet_date("Mon Apr 06 22:19:45 PDT 2009").unwrap();
        assert_eq!(d.to_rfc3339(), "2009-04-07T05:19:45+00:00");
        let d = parse_tweet_date("Mon Jan 05 22:19:45 PST 2009").unwrap();
        assert_eq!(d.to_rfc3339(), "2009-01-06T06:19:45+00:00");
        assert!(parse_tweet_date("Tue Apr 06 22:19:45 PDT 2009").is_err());
        assert!(parse_tweet_date("Mon Apr 06 22:19:45 XYZ 2009").is_err());
        assert!(parse_tweet_date("yesterday").is_err());
        assert!(parse_tweet_date("Mon Apr 06 22:19:45 +0000 2009").is_ok());
    }
}
