//! Cron expressions evaluated in an IANA time zone, with daylight-saving rules that never
//! fire a tick twice and never lose one.
//!
//! Syntax: 5 fields (`minute hour day-of-month month day-of-week`) or 6 with seconds first;
//! `*`, `a-b`, `*/n`, `a-b/n`, lists, month and day names (`JAN`, `MON`), `7` for Sunday, and
//! the aliases `@yearly`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`. When both
//! day fields are restricted, a day matches either (as in Vixie cron).
//!
//! Daylight saving time (the rules of Vixie cron, made exact):
//! - Spring forward (a wall-clock hour is skipped): a job with a fixed hour whose time falls in
//!   the gap fires once, at the end of the gap (02:30 on that day fires at 03:00). A job that
//!   runs every hour has no tick in an hour that does not exist.
//! - Fall back (a wall-clock hour repeats): a job with a fixed hour fires once, in the first
//!   pass. A job that runs every hour fires in both passes (they are different instants).

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

/// A cron expression that cannot be parsed: what is wrong, in the words of the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// An `@alias` that is not one of the known ones.
    #[error("unknown alias `{alias}` (use @yearly, @monthly, @weekly, @daily or @hourly)")]
    UnknownAlias {
        /// The alias as written.
        alias: String,
    },
    /// Not 5 fields (or 6 with seconds).
    #[error("expected 5 fields (or 6 with seconds), found {found}")]
    FieldCount {
        /// How many fields were given.
        found: usize,
    },
    /// A `/step` that is not a number.
    #[error("{field}: `{step}` is not a step")]
    BadStep {
        /// The field (`minute`, `day of week` ...).
        field: &'static str,
        /// The step as written.
        step: String,
    },
    /// A `/0` step.
    #[error("{field}: a step must be at least 1")]
    ZeroStep {
        /// The field.
        field: &'static str,
    },
    /// A value or range outside the field's range.
    #[error("{field}: `{part}` is out of range {min}-{max}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The part of the field as written.
        part: String,
        /// The field's smallest value.
        min: u32,
        /// The field's largest value.
        max: u32,
    },
    /// Neither a number nor a month or day name.
    #[error("{field}: `{text}` is not a number or name")]
    NotAValue {
        /// The field.
        field: &'static str,
        /// The value as written.
        text: String,
    },
}

/// A time-zone name that is not in the IANA database.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone `{name}`")]
pub struct UnknownZone {
    /// The name as written.
    pub name: String,
}

/// A parsed cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr {
    seconds: u64,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
    text: String,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl CronExpr {
    /// Parses a cron expression.
    pub fn parse(text: &str) -> Result<CronExpr, CronError> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(CronError::UnknownAlias {
                    alias: other.to_string(),
                });
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => return Err(CronError::FieldCount { found: n }),
        };
        let seconds = field(sec, 0, 59, None, "second")?;
        let minutes = field(rest[0], 0, 59, None, "minute")?;
        let hours = field(rest[1], 0, 23, None, "hour")? as u32;
        let days = field(rest[2], 1, 31, None, "day of month")? as u32;
        let months = field(rest[3], 1, 12, Some(&MONTHS), "month")? as u16;
        let mut weekdays = field(rest[4], 0, 7, Some(&WEEKDAYS), "day of week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1; // 7 is Sunday too
        }
        Ok(CronExpr {
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays: (weekdays & 0x7f) as u8,
            days_restricted: rest[2] != "*" && rest[2] != "?",
            weekdays_restricted: rest[4] != "*" && rest[4] != "?",
            text: text.trim().to_string(),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn every_hour(&self) -> bool {
        self.hours == (1 << 24) - 1
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first wall-clock time strictly after `from` that matches, within five years.
    fn next_naive(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut t = from.with_nanosecond(0)? + Duration::seconds(1);
        let limit = from + Duration::days(366 * 5);
        while t <= limit {
            if self.months & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t.with_minute(0)?.with_second(0)? + Duration::hours(1);
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t = t.with_second(0)? + Duration::minutes(1);
                continue;
            }
            if self.seconds & (1 << t.second()) == 0 {
                t += Duration::seconds(1);
                continue;
            }
            return Some(t);
        }
        None
    }

    /// The instants a wall-clock match stands for in `tz` (see the module doc for DST).
    fn instants(&self, naive: NaiveDateTime, tz: &Tz) -> Vec<DateTime<Utc>> {
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
            LocalResult::Ambiguous(first, second) => {
                if self.every_hour() {
                    vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
                } else {
                    vec![first.with_timezone(&Utc)]
                }
            }
            LocalResult::None => {
                if self.every_hour() {
                    return Vec::new();
                }
                // The end of the gap: the first wall-clock minute that exists.
                let mut probe = naive.with_second(0).unwrap_or(naive);
                for _ in 0..(4 * 60) {
                    probe += Duration::minutes(1);
                    if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                        let t = t.with_timezone(&Utc);
                        return vec![t - Duration::seconds(i64::from(t.second()))];
                    }
                }
                Vec::new()
            }
        }
    }

    /// The first tick strictly after `after`, evaluated in `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
        // Offsets move wall-clock time by at most a few hours, so a match that maps to the
        // earliest instant after `after` lies within this window of wall-clock times.
        let window = Duration::hours(4);
        // Where the offset is the same a window before and after an instant, wall-clock time
        // around it is a plain shift of UTC (offsets never change twice within hours): there,
        // wall-clock order is instant order, so the scan needs neither the matches before
        // `after` nor those after the first one found. This keeps a per-second expression
        // from scanning hours of matches at every tick.
        let stable = |t: DateTime<Utc>| {
            let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
            offset(t - window) == offset(t + window)
        };
        let local_after = after.with_timezone(tz).naive_local();
        let mut cursor = if stable(after) {
            local_after
        } else {
            local_after - window
        };
        let mut best: Option<(DateTime<Utc>, NaiveDateTime)> = None;
        loop {
            let naive = self.next_naive(cursor)?;
            if let Some((_, best_naive)) = best
                && naive > best_naive + window
            {
                break;
            }
            for instant in self.instants(naive, tz) {
                if instant > after && best.is_none_or(|(b, _)| instant < b) {
                    best = Some((instant, naive));
                }
            }
            if let Some((b, _)) = best
                && stable(b)
            {
                break;
            }
            cursor = naive;
        }
        best.map(|(t, _)| t)
    }

    /// Every tick in `(after, until]`, oldest first, at most `limit` of the latest ones.
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        tz: &Tz,
        limit: usize,
    ) -> (Vec<DateTime<Utc>>, usize) {
        let mut ticks = Vec::new();
        let mut cursor = after;
        let mut dropped = 0;
        while let Some(t) = self.next_after(cursor, tz) {
            if t > until {
                break;
            }
            ticks.push(t);
            if ticks.len() > limit {
                ticks.remove(0);
                dropped += 1;
            }
            cursor = t;
        }
        (ticks, dropped)
    }
}

fn field(
    text: &str,
    min: u32,
    max: u32,
    names: Option<&[&str]>,
    what: &'static str,
) -> Result<u64, CronError> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| CronError::BadStep {
                    field: what,
                    step: s.to_string(),
                })?;
                if step == 0 {
                    return Err(CronError::ZeroStep { field: what });
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, what, min)?, value(b, names, what, min)?)
        } else {
            let v = value(range, names, what, min)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(CronError::OutOfRange {
                field: what,
                part: part.to_string(),
                min,
                max,
            });
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn value(
    text: &str,
    names: Option<&[&str]>,
    what: &'static str,
    min: u32,
) -> Result<u32, CronError> {
    if let Ok(v) = text.parse::<u32>() {
        return Ok(v);
    }
    let upper = text.to_ascii_uppercase();
    names
        .and_then(|n| n.iter().position(|name| *name == upper))
        .map(|i| i as u32 + min)
        .ok_or_else(|| CronError::NotAValue {
            field: what,
            text: text.to_string(),
        })
}

/// Parses an IANA time-zone name (e.g. `America/Los_Angeles`, `UTC`).
pub fn parse_zone(name: &str) -> Result<Tz, UnknownZone> {
    name.parse::<Tz>().map_err(|_| UnknownZone {
        name: name.to_string(),
    })
}

/// Every zone name, for suggestions.
pub fn zone_names() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn ticks(expr: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let cron = CronExpr::parse(expr).unwrap();
        let tz = parse_zone(zone).unwrap();
        let mut t = utc(from);
        (0..n)
            .map(|_| {
                t = cron.next_after(t, &tz).unwrap();
                t.with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn parses_fields_and_rejects_nonsense() {
        assert!(CronExpr::parse("*/15 * * * *").is_ok());
        assert!(CronExpr::parse("*/5 * * * * *").is_ok());
        assert!(CronExpr::parse("0 9 * JAN-MAR MON-FRI").is_ok());
        assert!(CronExpr::parse("@hourly").is_ok());
        for bad in [
            "* * * *",
            "61 * * * *",
            "* * * * * * *",
            "*/0 * * * *",
            "@often",
            "* * 0 * *",
            "x * * * *",
        ] {
            assert!(CronExpr::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn plain_schedules() {
        assert_eq!(
            ticks("*/15 * * * *", "UTC", "2026-01-01T00:07:00Z", 3),
            [
                "2026-01-01 00:15:00 UTC",
                "2026-01-01 00:30:00 UTC",
                "2026-01-01 00:45:00 UTC"
            ]
        );
        assert_eq!(
            ticks("0 9 * * MON", "UTC", "2026-11-25T00:00:00Z", 2),
            ["2026-11-30 09:00:00 UTC", "2026-12-07 09:00:00 UTC"]
        );
        assert_eq!(
            ticks("*/20 * * * * *", "UTC", "2026-01-01T00:00:00Z", 3)[2],
            "2026-01-01 00:01:00 UTC"
        );
        assert_eq!(
            ticks("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", 1),
            ["2028-02-29 00:00:00 UTC"]
        );
        // Day-of-month OR day-of-week when both are restricted.
        assert_eq!(
            ticks("0 0 13 * FRI", "UTC", "2026-11-01T00:00:00Z", 2),
            ["2026-11-06 00:00:00 UTC", "2026-11-13 00:00:00 UTC"]
        );
    }

    #[test]
    fn spring_forward_los_angeles() {
        // 2026-03-08: 02:00 PST jumps to 03:00 PDT.
        assert_eq!(
            ticks(
                "30 2 * * *",
                "America/Los_Angeles",
                "2026-03-07T00:00:00Z",
                3
            ),
            [
                "2026-03-07 02:30:00 PST",
                "2026-03-08 03:00:00 PDT",
                "2026-03-09 02:30:00 PDT"
            ]
        );
        assert_eq!(
            ticks(
                "0 * * * *",
                "America/Los_Angeles",
                "2026-03-08T08:30:00Z",
                3
            ),
            [
                "2026-03-08 01:00:00 PST",
                "2026-03-08 03:00:00 PDT",
                "2026-03-08 04:00:00 PDT"
            ]
        );
    }

    #[test]
    fn fall_back_los_angeles() {
        // 2026-11-01: 02:00 PDT falls back to 01:00 PST.
        assert_eq!(
            ticks(
                "30 1 * * *",
                "America/Los_Angeles",
                "2026-10-31T12:00:00Z",
                2
            ),
            ["2026-11-01 01:30:00 PDT", "2026-11-02 01:30:00 PST"]
        );
        assert_eq!(
            ticks(
                "30 * * * *",
                "America/Los_Angeles",
                "2026-11-01T07:00:00Z",
                4
            ),
            [
                "2026-11-01 00:30:00 PDT",
                "2026-11-01 01:30:00 PDT",
                "2026-11-01 01:30:00 PST",
                "2026-11-01 02:30:00 PST"
            ]
        );
    }

    #[test]
    fn berlin_transitions() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 2026-10-25: 03:00 CEST falls back to 02:00 CET.
        assert_eq!(
            ticks("15 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2),
            ["2026-03-29 03:00:00 CEST", "2026-03-30 02:15:00 CEST"]
        );
        assert_eq!(
            ticks("15 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25 02:15:00 CEST", "2026-10-26 02:15:00 CET"]
        );
    }

    #[test]
    fn ticks_between_keeps_the_latest() {
        let cron = CronExpr::parse("0 * * * *").unwrap();
        let (ticks, dropped) = cron.ticks_between(
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-01T05:30:00Z"),
            &Tz::UTC,
            3,
        );
        assert_eq!(
            ticks,
            vec![
                utc("2026-01-01T03:00:00Z"),
                utc("2026-01-01T04:00:00Z"),
                utc("2026-01-01T05:00:00Z")
            ]
        );
        assert_eq!(dropped, 2);
    }
}
