//! Our cron evaluator against the `cron` crate as an oracle: generated expressions and start
//! times, in UTC and fixed-offset zones (no daylight saving, so no transition to differ on),
//! must give the same next 20 fire times.
//!
//! Where the two legitimately differ, the expression is translated for the oracle instead of
//! being left out; the classes are:
//! - **Day-of-month and day-of-week both restricted.** We follow Vixie cron: a day matches if
//!   either field matches (`0 0 13 * FRI` is every 13th and every Friday). The `cron` crate
//!   requires both (only Friday the 13th). The oracle's answer is the union of two schedules,
//!   one with the day-of-week set to `*`, one with the day-of-month set to `*`. A field counts
//!   as restricted when it is not exactly `*` (so `*/1` restricts it, as in our docs).
//! - **Day-of-week numbers.** Ours are 0-7 with 0 and 7 for Sunday (POSIX); the crate's are
//!   1-7 with 1 for Sunday. Days are given to the oracle by name (and `*/n` steps agree: ours
//!   count from 0 = Sunday, the crate's from 1 = Sunday).
//! - **Five fields and aliases.** The crate wants a seconds field first and does not know all
//!   aliases the same way; the oracle gets `0` seconds and the expanded expression.
//! - **Range of years.** The crate stops at 2100 and we search at most five years ahead per
//!   tick: expressions that fire on a few days only (day 29-31 in restricted months, that never
//!   or rarely exist) are not generated, and start times stay before 2040.
//!
//! Daylight-saving time is where the two really differ (the crate skips ticks that fall in a
//! spring-forward gap; we fire them at the end of the gap): that is covered by the DST tests of
//! `cron.rs`, not here.
#![allow(clippy::unwrap_used)]

use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use tweetflow_engine::{CronExpr, parse_zone};

/// A small seeded generator (xorshift64*): reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }

    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }
}

const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// One generated field: our text and the oracle's.
struct Field {
    ours: String,
    oracle: String,
    restricted: bool,
}

/// How a value is written.
#[derive(Clone, Copy, PartialEq)]
enum Style {
    /// A number, as the end of a range.
    Bound,
    /// A number, alone or in a list.
    Number,
    /// A name where the field has names.
    Name,
}

/// A field over `lo..=hi`; `name` renders a value for each side.
fn field(rng: &mut Rng, lo: u32, hi: u32, name: &dyn Fn(u32, Style) -> (String, String)) -> Field {
    let one = |rng: &mut Rng| {
        let style = if rng.below(2) == 0 {
            Style::Name
        } else {
            Style::Number
        };
        name(rng.range(lo, hi), style)
    };
    let (ours, oracle) = match rng.below(7) {
        0 | 1 => ("*".to_string(), "*".to_string()),
        2 => one(rng),
        3 => {
            let n = 2 + rng.below(3);
            let (o, c): (Vec<String>, Vec<String>) = (0..n).map(|_| one(rng)).unzip();
            (o.join(","), c.join(","))
        }
        4 => {
            let a = rng.range(lo, hi);
            let b = rng.range(a, hi);
            let (ao, ac) = name(a, Style::Bound);
            let (bo, bc) = name(b, Style::Bound);
            (format!("{ao}-{bo}"), format!("{ac}-{bc}"))
        }
        5 => {
            let step = 1 + rng.below((hi - lo).clamp(1, 15));
            (format!("*/{step}"), format!("*/{step}"))
        }
        _ => {
            let a = rng.range(lo, hi);
            let b = rng.range(a, hi);
            let step = 1 + rng.below((b - a).max(1));
            let (ao, ac) = name(a, Style::Bound);
            let (bo, bc) = name(b, Style::Bound);
            (format!("{ao}-{bo}/{step}"), format!("{ac}-{bc}/{step}"))
        }
    };
    Field {
        restricted: ours != "*",
        ours,
        oracle,
    }
}

fn number(v: u32, _: Style) -> (String, String) {
    (v.to_string(), v.to_string())
}

/// Our weekday (0-6, or 7 for a Sunday on its own, or a name) and the oracle's (a name).
fn weekday(v: u32, style: Style) -> (String, String) {
    let name = WEEKDAYS[v as usize];
    let ours = match style {
        Style::Name => name.to_string(),
        Style::Number if v == 0 => "7".to_string(),
        _ => v.to_string(),
    };
    (ours, name.to_string())
}

fn month(v: u32, style: Style) -> (String, String) {
    let name = MONTHS[(v - 1) as usize];
    if style == Style::Name {
        (name.to_string(), name.to_string())
    } else {
        (v.to_string(), v.to_string())
    }
}

/// A generated expression: ours, and the oracle's one or two schedules (their union).
fn expression(rng: &mut Rng) -> (String, Vec<String>) {
    if rng.below(40) == 0 {
        let (alias, expanded) = [
            ("@yearly", "0 0 0 1 1 *"),
            ("@monthly", "0 0 0 1 * *"),
            ("@weekly", "0 0 0 * * SUN"),
            ("@daily", "0 0 0 * * *"),
            ("@midnight", "0 0 0 * * *"),
            ("@hourly", "0 0 * * * *"),
        ][rng.below(6) as usize];
        return (alias.to_string(), vec![expanded.to_string()]);
    }
    let with_seconds = rng.below(4) == 0;
    let seconds = if with_seconds {
        field(rng, 0, 59, &number)
    } else {
        Field {
            ours: String::new(),
            oracle: "0".into(),
            restricted: true,
        }
    };
    let minutes = field(rng, 0, 59, &number);
    let hours = field(rng, 0, 23, &number);
    let months = field(rng, 1, 12, &month);
    // Days that do not exist in every month only where every month is allowed, so each
    // expression fires often enough for both sides' search limits.
    let max_day = if months.restricted { 28 } else { 31 };
    let days = field(rng, 1, max_day, &number);
    let weekdays = field(rng, 0, 6, &weekday);
    let ours = [
        seconds.ours.as_str(),
        &minutes.ours,
        &hours.ours,
        &days.ours,
        &months.ours,
        &weekdays.ours,
    ]
    .iter()
    .filter(|f| !f.is_empty())
    .copied()
    .collect::<Vec<_>>()
    .join(" ");
    let oracle = |dom: &str, dow: &str| {
        format!(
            "{} {} {} {dom} {} {dow}",
            seconds.oracle, minutes.oracle, hours.oracle, months.oracle
        )
    };
    let oracles = if days.restricted && weekdays.restricted {
        vec![oracle(&days.oracle, "*"), oracle("*", &weekdays.oracle)]
    } else {
        vec![oracle(&days.oracle, &weekdays.oracle)]
    };
    (ours, oracles)
}

/// The next `n` fire times after `start` by the oracle: the union of its schedules.
fn oracle_ticks(schedules: &[cron::Schedule], start: DateTime<Tz>, n: usize) -> Vec<DateTime<Utc>> {
    let mut all: Vec<DateTime<Utc>> = schedules
        .iter()
        .flat_map(|s| s.after(&start).take(n).map(|t| t.with_timezone(&Utc)))
        .collect();
    all.sort();
    all.dedup();
    all.truncate(n);
    all
}

fn our_ticks(expr: &CronExpr, start: DateTime<Utc>, tz: &Tz, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::with_capacity(n);
    let mut t = start;
    while out.len() < n {
        match expr.next_after(t, tz) {
            Some(next) => {
                out.push(next);
                t = next;
            }
            None => break,
        }
    }
    out
}

#[test]
fn our_evaluator_agrees_with_the_cron_crate_away_from_dst() {
    let cases: usize = std::env::var("TWEETFLOW_CRON_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // UTC and zones with one fixed offset (Etc/GMT+5 is UTC-5), whole and fractional hours.
    let zones: Vec<Tz> = [
        "UTC",
        "Etc/GMT+5",
        "Etc/GMT-3",
        "Etc/GMT+12",
        "Etc/GMT-14",
        "Asia/Kolkata",
        "Asia/Kathmandu",
    ]
    .iter()
    .map(|z| parse_zone(z).unwrap())
    .collect();
    let mut rng = Rng(0x00c0_ffee_d00d);
    let base = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap();
    let span_seconds = (Utc.with_ymd_and_hms(2039, 1, 1, 0, 0, 0).unwrap() - base).num_seconds();
    for case in 0..cases {
        let (ours_text, oracle_texts) = expression(&mut rng);
        let ours = CronExpr::parse(&ours_text)
            .unwrap_or_else(|e| panic!("case {case}: `{ours_text}` does not parse: {e}"));
        let schedules: Vec<cron::Schedule> = oracle_texts
            .iter()
            .map(|t| {
                cron::Schedule::from_str(t)
                    .unwrap_or_else(|e| panic!("case {case}: oracle `{t}`: {e}"))
            })
            .collect();
        let tz = zones[rng.below(zones.len() as u32) as usize];
        let start = base + Duration::seconds((rng.next() % span_seconds as u64) as i64);
        let want = oracle_ticks(&schedules, start.with_timezone(&tz), 20);
        let got = our_ticks(&ours, start, &tz, 20);
        assert_eq!(
            got, want,
            "case {case}: `{ours_text}` (oracle {oracle_texts:?}) in {tz} after {start}"
        );
        assert_eq!(got.len(), 20, "case {case}: `{ours_text}`");
    }
}
