//! A cron expression in words ("every day at 02:30", "every 15 minutes"), for the common
//! shapes; anything else is shown as the expression itself.

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const DAY_ABBR: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Describes `expr` in words; falls back to ``cron `expr` ``.
pub fn describe(expr: &str) -> String {
    let text = expr.trim();
    let expanded = match text {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let (sec, f) = match fields.len() {
        5 => ("0", &fields[..]),
        6 => (fields[0], &fields[1..]),
        _ => return format!("cron `{text}`"),
    };
    describe_fields(sec, f[0], f[1], f[2], f[3], f[4]).unwrap_or_else(|| format!("cron `{text}`"))
}

fn describe_fields(
    sec: &str,
    min: &str,
    hour: &str,
    dom: &str,
    month: &str,
    dow: &str,
) -> Option<String> {
    let any = |f: &str| f == "*" || f == "?";
    let second: Option<u32> = sec.parse().ok();
    let time = match (second, number(min), number(hour)) {
        (Some(0), Some(m), Some(h)) => format!("at {h:02}:{m:02}"),
        (Some(s), Some(m), Some(h)) => format!("at {h:02}:{m:02}:{s:02}"),
        (Some(0), Some(m), None) if any(hour) => {
            if m == 0 {
                "every hour, on the hour".to_string()
            } else {
                format!("every hour at minute {m}")
            }
        }
        (Some(0), None, None) if any(hour) && any(min) => "every minute".to_string(),
        (Some(0), None, None) if any(hour) => {
            let n = min.strip_prefix("*/").and_then(number)?;
            format!("every {n} minutes")
        }
        (Some(0), Some(m), None) => {
            let n = hour.strip_prefix("*/").and_then(number)?;
            format!("every {n} hours at minute {m}")
        }
        (None, None, None) if any(min) && any(hour) => {
            let n = sec.strip_prefix("*/").and_then(number)?;
            format!("every {n} seconds")
        }
        _ => return None,
    };
    let mut out = time;
    if !any(dow) {
        out.push_str(&format!(" on {}", weekdays(dow)?));
    }
    if !any(dom) {
        let days: Option<Vec<String>> = dom.split(',').map(|d| number(d).map(ordinal)).collect();
        out.push_str(&format!(
            "{} the {} of the month",
            if any(dow) { " on" } else { " and on" },
            join(&days?)
        ));
    } else if any(dow) && any(month) && out.starts_with("at ") {
        out = format!("every day {out}");
    }
    if !any(month) {
        let months: Option<Vec<String>> = month
            .split(',')
            .map(|m| {
                number(m)
                    .and_then(|n| MONTHS.get(n.checked_sub(1)? as usize))
                    .map(|s| s.to_string())
            })
            .collect();
        out.push_str(&format!(" in {}", join(&months?)));
    }
    Some(out)
}

fn number(field: &str) -> Option<u32> {
    field.parse().ok()
}

fn weekday(field: &str) -> Option<usize> {
    let upper = field.to_ascii_uppercase();
    DAY_ABBR
        .iter()
        .position(|d| *d == upper)
        .or_else(|| number(field).map(|n| n as usize % 7).filter(|&n| n < 7))
}

fn weekdays(field: &str) -> Option<String> {
    if let Some((a, b)) = field.split_once('-') {
        let (a, b) = (weekday(a)?, weekday(b)?);
        if (a, b) == (1, 5) {
            return Some("weekdays (Monday to Friday)".into());
        }
        return Some(format!("{} to {}", DAYS[a], DAYS[b]));
    }
    let days: Option<Vec<String>> = field
        .split(',')
        .map(|d| weekday(d).map(|i| DAYS[i].to_string()))
        .collect();
    Some(join(&days?))
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_shapes_read_as_words() {
        assert_eq!(describe("30 2 * * *"), "every day at 02:30");
        assert_eq!(describe("@daily"), "every day at 00:00");
        assert_eq!(describe("@hourly"), "every hour, on the hour");
        assert_eq!(describe("5 * * * *"), "every hour at minute 5");
        assert_eq!(describe("*/15 * * * *"), "every 15 minutes");
        assert_eq!(describe("* * * * *"), "every minute");
        assert_eq!(describe("*/10 * * * * *"), "every 10 seconds");
        assert_eq!(describe("0 0 */6 * * *"), "every 6 hours at minute 0");
        assert_eq!(
            describe("0 9 * * 1-5"),
            "at 09:00 on weekdays (Monday to Friday)"
        );
        assert_eq!(describe("0 6 * * MON,fri"), "at 06:00 on Monday and Friday");
        assert_eq!(describe("@monthly"), "at 00:00 on the 1st of the month");
        assert_eq!(
            describe("@yearly"),
            "at 00:00 on the 1st of the month in January"
        );
        assert_eq!(describe("1,2 3-4 * * *"), "cron `1,2 3-4 * * *`");
    }
}
