//! The C ABI's own logger: C and C++ programs cannot install a Rust logger, so the library's
//! warnings (connect failures, leaked connections, self-deadlocks) go to stderr, which
//! journald keeps for a service.
//!
//! The level comes from `RUST_LOG`, in the subset of its syntax that the `env_logger` crate
//! without regex support reads: a comma-separated list of `level`, `target` or
//! `target=level` (`warn`, `valuestor::pool=debug`); the longest target that prefixes a
//! record's target decides, a bare level decides for the rest, and without either only
//! warnings and errors are written. Unknown levels are ignored. A Rust program that
//! installed a logger of its own keeps it.
//!
//! Lines look like `env_logger`'s: `[2026-12-01T21:22:00Z WARN  valuestor::pool] message`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

/// The environment variable the level is read from.
const LEVEL_ENV: &str = "RUST_LOG";
/// The level when `RUST_LOG` is unset or names none.
const DEFAULT_LEVEL: LevelFilter = LevelFilter::Warn;

/// Installs the stderr logger once per process, unless a logger is already installed.
pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = Filter::parse(&std::env::var(LEVEL_ENV).unwrap_or_default());
        let max = filter.max_level();
        let filter = LOGGER.filter.get_or_init(|| filter);
        // Fails only when a logger is already installed, which is then the one to use (and
        // sets its own maximum level).
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(max);
            log::debug!("C ABI logging to stderr: {filter:?}");
        }
    });
}

/// Which records are written: per target prefix, else a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    /// The level for targets no directive names.
    default: LevelFilter,
    /// `(target prefix, level)`, in the order given.
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// Reads a `RUST_LOG` value (see the module documentation); an empty or unusable one
    /// gives warnings and errors only.
    pub(crate) fn parse(spec: &str) -> Filter {
        let mut filter = Filter {
            default: DEFAULT_LEVEL,
            targets: Vec::new(),
        };
        for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match directive.split_once('=') {
                Some((target, level)) => {
                    if let Ok(level) = level.trim().parse::<LevelFilter>() {
                        filter.targets.push((target.trim().to_string(), level));
                    }
                }
                None => match directive.parse::<LevelFilter>() {
                    Ok(level) => filter.default = level,
                    // A target alone enables everything for it, as env_logger does.
                    Err(_) => filter
                        .targets
                        .push((directive.to_string(), LevelFilter::Trace)),
                },
            }
        }
        filter
    }

    /// The level that applies to records of `target`.
    pub(crate) fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .filter(|(prefix, _)| target.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.default, |(_, level)| *level)
    }

    /// The most verbose level any target may log at.
    fn max_level(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, level)| *level)
            .fold(self.default, Ord::max)
    }
}

/// Writes records to stderr, one line each, written with a single call so lines from
/// different threads do not mix.
struct StderrLogger {
    filter: OnceLock<Filter>,
}

static LOGGER: StderrLogger = StderrLogger {
    filter: OnceLock::new(),
};

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter
            .get()
            .is_some_and(|f| metadata.level() <= f.level_for(metadata.target()))
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut line = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            line,
            "[{} {:<5} {}] {}",
            utc_timestamp(now),
            record.level(),
            record.target(),
            record.args()
        );
        // Nowhere to report a failed write to stderr.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// `secs` after the Unix epoch as an RFC 3339 UTC time, `1970-01-01T00:00:00Z`.
fn utc_timestamp(secs: u64) -> String {
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm for
/// non-negative day numbers).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_setting_only_warnings_and_errors_are_written() {
        for spec in ["", " ", ",", "valuestor=loud"] {
            let filter = Filter::parse(spec);
            assert_eq!(
                filter.level_for("valuestor::pool"),
                LevelFilter::Warn,
                "{spec:?}: {filter:?}"
            );
        }
    }

    #[test]
    fn a_bare_level_applies_to_every_target() {
        let filter = Filter::parse("info");
        assert_eq!(filter.level_for("valuestor::pool"), LevelFilter::Info);
        assert_eq!(filter.level_for("mysql"), LevelFilter::Info);
        assert_eq!(Filter::parse("OFF").level_for("x"), LevelFilter::Off);
    }

    #[test]
    fn the_longest_matching_target_decides() {
        let filter = Filter::parse("error, valuestor=info ,valuestor::pool=debug,mysql=bogus");
        assert_eq!(
            filter.level_for("valuestor::pool::conn"),
            LevelFilter::Debug
        );
        assert_eq!(filter.level_for("valuestor::ffi"), LevelFilter::Info);
        assert_eq!(
            filter.level_for("mysql::conn"),
            LevelFilter::Error,
            "{filter:?}"
        );
        assert_eq!(filter.max_level(), LevelFilter::Debug);
    }

    #[test]
    fn a_target_alone_enables_everything_for_it() {
        let filter = Filter::parse("valuestor::pool");
        assert_eq!(filter.level_for("valuestor::pool"), LevelFilter::Trace);
        assert_eq!(filter.level_for("valuestor::fs"), LevelFilter::Warn);
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc_timestamp(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
