//! Durations as pipelines write them: `10ms`, `1s`, `5m`, `1h`, `1d`, or combined (`1h30m`).

use std::time::Duration;

/// A duration that cannot be read; says what is wrong with the text as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration")]
    Empty,
    /// The text does not start with a number.
    #[error("`{text}` is not a duration")]
    NotADuration {
        /// The text as written.
        text: String,
    },
    /// A number too large for a duration.
    #[error("`{text}` is too large")]
    TooLarge {
        /// The text as written.
        text: String,
    },
    /// A number without a unit.
    #[error("`{text}` is not a duration: `{amount}` has no unit")]
    NoUnit {
        /// The text as written.
        text: String,
        /// The number without a unit.
        amount: u64,
    },
    /// A unit other than `ms`, `s`, `m`, `h` and `d`.
    #[error("`{text}` is not a duration: `{unit}` is not a unit")]
    UnknownUnit {
        /// The text as written.
        text: String,
        /// The unit as written.
        unit: String,
    },
}

/// Parses a duration such as `250ms`, `30s`, `5m`, `1h`, `1d` or `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(DurationError::NotADuration { text: text.into() });
        }
        let amount: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::TooLarge { text: text.into() })?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(amount),
            "s" => Duration::from_secs(amount),
            "m" => Duration::from_secs(amount.saturating_mul(60)),
            "h" => Duration::from_secs(amount.saturating_mul(3600)),
            "d" => Duration::from_secs(amount.saturating_mul(86_400)),
            "" => {
                return Err(DurationError::NoUnit {
                    text: text.into(),
                    amount,
                });
            }
            other => {
                return Err(DurationError::UnknownUnit {
                    text: text.into(),
                    unit: other.into(),
                });
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Formats a duration the way pipelines write them (`1h30m`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Formats a duration for humans in tables (`12ms`, `1.52s`, `3m04s`).
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "1s", "5m", "1h30m", "2d"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
