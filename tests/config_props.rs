//! Property tests: size parsing round trips, and the `vs_conf.xml` parser never panics on
//! arbitrary input (free text, arbitrary values under every known key, and mutations of the
//! legacy file); a rejected file always gets an error that says where; any value of any
//! duration key is refused or safe to add to `Instant::now()`.

use proptest::prelude::*;
use valuestor::config::{
    duration_limit, known_keys, parse_size, Config, ConfigError, DURATION_LIMITS,
};

const UNITS: [(&str, u32); 6] = [
    ("", 0),
    ("K", 10),
    ("M", 20),
    ("G", 30),
    ("T", 40),
    ("P", 50),
];

const LEGACY: &str = include_str!("fixtures/legacy_vs_conf.xml");

/// Parses `text`; a failure must carry a message and, for value errors, the key and line.
fn parse_checked(text: &str) -> Result<(), TestCaseError> {
    match Config::from_xml(text) {
        Ok(_) => Ok(()),
        Err(err) => {
            prop_assert!(!err.to_string().is_empty());
            if let ConfigError::Value { key, line, .. } = &err {
                prop_assert!(known_keys().contains(&key.as_str()), "unknown key {key}");
                prop_assert!(*line >= 1, "value error without a line: {err}");
            }
            Ok(())
        }
    }
}

proptest! {
    #[test]
    fn formatted_sizes_parse_back_or_overflow(n in any::<u64>(), unit in 0usize..6, lower in any::<bool>(), suffix_b in any::<bool>()) {
        let (name, shift) = UNITS[unit];
        let mut text = format!("{n}{name}");
        if lower {
            text = text.to_lowercase();
        }
        if suffix_b {
            text.push('B');
        }
        match n.checked_mul(1u64 << shift) {
            Some(bytes) => prop_assert_eq!(parse_size(&text), Ok(bytes)),
            None => prop_assert!(parse_size(&text).unwrap_err().contains("too large")),
        }
    }

    #[test]
    fn size_parsing_never_panics(text in ".{0,40}") {
        let _ = parse_size(&text);
    }

    #[test]
    fn config_parser_never_panics_on_arbitrary_text(text in ".{0,400}") {
        parse_checked(&text)?;
    }

    #[test]
    fn config_parser_never_panics_on_arbitrary_values(
        entries in proptest::collection::vec((0..known_keys().len(), ".{0,30}"), 0..12)
    ) {
        let mut text = String::from("<VSConf>\n");
        for (key, value) in &entries {
            let key = known_keys()[*key];
            let value = value.replace('&', "&amp;").replace('<', "&lt;");
            text.push_str(&format!("  <{key}>{value}</{key}>\n"));
        }
        text.push_str("</VSConf>\n");
        parse_checked(&text)?;
    }

    #[test]
    fn config_parser_never_panics_on_a_mutated_legacy_file(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)
    ) {
        let mut bytes = LEGACY.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len().max(1));
            match kind {
                0 if !bytes.is_empty() => { bytes.remove(i.min(bytes.len() - 1)); }
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ if !bytes.is_empty() => { let j = i.min(bytes.len() - 1); bytes[j] = byte; }
                _ => {}
            }
        }
        parse_checked(&String::from_utf8_lossy(&bytes))?;
    }
}

proptest! {
    #[test]
    fn any_duration_value_is_refused_or_safe_to_add_to_now(
        which in 0..DURATION_LIMITS.len(),
        n in prop_oneof![any::<u64>(), 0u64..100_000_000, Just(u64::MAX)],
    ) {
        let (key, max) = DURATION_LIMITS[which];
        let text = format!("<VSConf>\n<{key}>{n}</{key}>\n</VSConf>\n");
        match Config::from_xml(&text) {
            Ok(config) => {
                let now = std::time::Instant::now();
                for (name, duration) in config.durations() {
                    prop_assert!(
                        now.checked_add(duration).is_some(),
                        "{key}={n}: {name} = {duration:?} overflows Instant::now()"
                    );
                    let limit = duration_limit(name);
                    prop_assert!(limit.is_some_and(|l| duration <= l), "{name} = {duration:?} exceeds {limit:?}");
                }
            }
            Err(err) => {
                let message = err.to_string();
                if let ConfigError::Value { key: got, value, line, .. } = &err {
                    prop_assert_eq!(got.as_str(), key);
                    prop_assert_eq!(value, &n.to_string());
                    prop_assert_eq!(*line, 2);
                    let unit_max = if key == "ThrottleInterval" { max.as_millis() } else { u128::from(max.as_secs()) };
                    prop_assert!(u128::from(n) > unit_max, "{key}={n} refused below the maximum: {message}");
                    prop_assert!(message.contains("is longer than the maximum of"), "{message}");
                } else {
                    // Only a zero DatabaseTimeout/ConnectTimeout, and an OwnerLeaseTimeout under
                    // its minimum, are invalid beyond their range.
                    let below_minimum = key == "OwnerLeaseTimeout" && n < 3;
                    prop_assert!(n == 0 || below_minimum, "{key}={n}: {message}");
                }
            }
        }
    }
}
