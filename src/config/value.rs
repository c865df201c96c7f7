//! Typed values of `vs_conf.xml`: sizes, seconds, percents, booleans, patterns.
//!
//! Each parser takes the trimmed text and returns the value or the reason it is wrong; the
//! caller adds the key and the line.

use std::time::Duration;

use regex::Regex;

/// Parses a size: a byte count, or a whole number with a binary unit `K`, `M`, `G`, `T` or
/// `P` in any case, optionally followed by `B` or `iB` (`128M`, `1g`, `16TiB`, `4096`, `0`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(if text.starts_with('-') {
            "is negative; sizes are byte counts".into()
        } else {
            "is not a size (expected a number with an optional K, M, G, T or P)".into()
        });
    }
    if unit.starts_with('.') || unit.starts_with(',') {
        return Err("is not a whole number; write e.g. 1536M instead of 1.5G".into());
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => {
            return Err(format!(
                "has an unknown unit {unit:?} (expected K, M, G, T or P, optionally with B)"
            ))
        }
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| "is too large for a size".to_string())?;
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| "is too large for a size (more than 16 EiB)".to_string())
}

/// Parses a whole number of seconds, optionally followed by `s`.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let number = text.trim();
    let number = number.strip_suffix(['s', 'S']).unwrap_or(number);
    parse_count(number)
        .map(Duration::from_secs)
        .map_err(|_| "is not a whole number of seconds".into())
}

/// Parses a whole number of seconds (optionally followed by `s`) of at most `max`.
pub fn parse_seconds_at_most(text: &str, max: Duration) -> Result<Duration, String> {
    let number = text.trim();
    let number = number.strip_suffix(['s', 'S']).unwrap_or(number);
    at_most(number, max, Duration::from_secs, "seconds")
}

/// Parses a whole number of milliseconds (optionally followed by `ms`) of at most `max`.
pub fn parse_millis_at_most(text: &str, max: Duration) -> Result<Duration, String> {
    let number = text.trim();
    let number = number.strip_suffix("ms").unwrap_or(number);
    at_most(number, max, Duration::from_millis, "milliseconds")
}

/// `max` for people: `3600 s (1 hour)`.
pub fn describe_duration(max: Duration) -> String {
    let secs = max.as_secs();
    let human = [
        (365 * 86400, "year"),
        (7 * 86400, "week"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ]
    .iter()
    .find(|(unit, _)| secs >= *unit && secs % unit == 0)
    .map(|(unit, name)| {
        let n = secs / unit;
        format!(" ({n} {name}{})", if n == 1 { "" } else { "s" })
    })
    .unwrap_or_default();
    if max.subsec_nanos() == 0 {
        format!("{secs} s{human}")
    } else {
        format!("{} ms", max.as_millis())
    }
}

fn at_most(
    number: &str,
    max: Duration,
    make: fn(u64) -> Duration,
    unit: &str,
) -> Result<Duration, String> {
    let too_long = || format!("is longer than the maximum of {}", describe_duration(max));
    let count = parse_count(number).map_err(|reason| {
        if reason.contains("too large") {
            too_long()
        } else {
            format!("is not a whole number of {unit}")
        }
    })?;
    let duration = make(count);
    if duration > max {
        return Err(too_long());
    }
    Ok(duration)
}

/// Parses a non-negative whole number.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a non-negative whole number".into());
    }
    text.parse().map_err(|_| "is too large".into())
}

/// Parses a percentage, a whole number from 0 to 100.
pub fn parse_percent(text: &str) -> Result<u8, String> {
    let text = text.trim();
    let text = text.strip_suffix('%').unwrap_or(text);
    match parse_count(text) {
        Ok(n) if n <= 100 => Ok(n as u8),
        _ => Err("is not a percentage (a whole number from 0 to 100)".into()),
    }
}

/// Parses a boolean: `true`/`false`, `yes`/`no`, `on`/`off` in any case, or `1`/`0`.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("is not a boolean (expected true or false)".into()),
    }
}

/// Compiles a regular expression; the empty string means "no pattern".
pub fn parse_pattern(text: &str) -> Result<Option<Regex>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    Regex::new(text)
        .map(Some)
        .map_err(|e| format!("is not a valid regular expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_units_in_any_case_with_optional_b() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("1kb"), Ok(1024));
        assert_eq!(parse_size("128M"), Ok(128 << 20));
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("15g"), Ok(15 << 30));
        assert_eq!(parse_size("16T"), Ok(16 << 40));
        assert_eq!(parse_size(" 2P "), Ok(2 << 50));
    }

    #[test]
    fn sizes_reject_garbage_negative_fractions_and_overflow() {
        for bad in [
            "", "abc", "-1", "-1G", "1.5G", "1,5G", "12X", "G", "1 G B", "0x10",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_size("-5").unwrap_err().contains("negative"));
        assert!(parse_size("99999999999T")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("99999999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(parse_size("16383P"), Ok(16383 << 50));
        assert!(parse_size("16384P").is_err());
    }

    #[test]
    fn seconds_percent_and_booleans() {
        assert_eq!(parse_seconds("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_seconds("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_seconds("6O").is_err());
        assert!(parse_seconds("-1").is_err());
        assert_eq!(
            parse_millis_at_most("1000", Duration::MAX),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(parse_percent("100"), Ok(100));
        assert_eq!(parse_percent("20%"), Ok(20));
        assert!(parse_percent("101").is_err());
        for yes in ["True", "true", "TRUE", "1", "yes"] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes}");
        }
        for no in ["False", "false", "0", "no"] {
            assert_eq!(parse_bool(no), Ok(false), "{no}");
        }
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn durations_are_bounded() {
        let hour = Duration::from_secs(3600);
        assert_eq!(parse_seconds_at_most("3600", hour), Ok(hour));
        assert_eq!(
            parse_seconds_at_most("60s", hour),
            Ok(Duration::from_secs(60))
        );
        for long in ["3601", "18446744073709551615", "99999999999999999999999"] {
            assert_eq!(
                parse_seconds_at_most(long, hour),
                Err("is longer than the maximum of 3600 s (1 hour)".to_string()),
                "{long}"
            );
        }
        assert!(parse_seconds_at_most("6O", hour)
            .unwrap_err()
            .contains("not a whole number of seconds"));
        assert_eq!(parse_millis_at_most("3600000ms", hour), Ok(hour));
        assert!(parse_millis_at_most("3600001", hour).is_err());
        assert_eq!(
            describe_duration(Duration::from_secs(14 * 86400)),
            "1209600 s (2 weeks)"
        );
        assert_eq!(describe_duration(Duration::from_secs(90)), "90 s");
    }

    #[test]
    fn patterns_compile_or_explain() {
        assert!(parse_pattern("").unwrap().is_none());
        assert!(parse_pattern("^/objects/.*\\.data$").unwrap().is_some());
        assert!(parse_pattern("(unclosed")
            .unwrap_err()
            .contains("regular expression"));
    }
}
