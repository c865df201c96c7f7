//! Property tests for size parsing: round trips and no panics.

use proptest::prelude::*;
use valuestor::config::parse_size;

const UNITS: [(&str, u32); 6] = [
    ("", 0),
    ("K", 10),
    ("M", 20),
    ("G", 30),
    ("T", 40),
    ("P", 50),
];

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
    fn parsing_never_panics(text in ".{0,40}") {
        let _ = parse_size(&text);
    }
}
