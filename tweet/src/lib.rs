//! What a landed tweet is, row by row: the JSON line `ingest` reads, and the text rules
//! (`@mentions`, HTML entities, white space) and date format `clean` and `profile` apply.
//!
//! ```text
//!  landing line ──parse_line──▶ Parsed::Row { date, user, text, sentiment, extras } ──▶ bronze
//!                          └──▶ Parsed::Bad(reason) ──▶ quarantine
//!  bronze text ──clean_text──▶ (cleaned text, mentions) ──▶ silver (one row per mention)
//!  bronze date ──parse_tweet_date──▶ UTC timestamp
//! ```
//!
//! These functions run once per tweet, so this crate is compiled at full optimization while
//! the plugins around them are built for size (the release profile in `Cargo.toml`,
//! docs/build.md). Its functions are not generic: their code, with the JSON parser's code for
//! [`Fields`], is made here and not in the calling crate.

mod json_line;
mod text;

pub use json_line::{
    Fields, META_COLUMNS, Parsed, REQUIRED, RESCUED, SENTIMENTS, collides, json_kind, parse_line,
    raw_string,
};
pub use text::{
    DateError, MAX_MENTION_LEN, MentionSpan, clean_text, mention_spans, parse_tweet_date, tweet_id,
    unescape_html, zone_offset_seconds,
};
