//! Rate limits for log lines that repeat: while the database is down every failed request
//! would log the same warning, so a warning of one kind is written once per window and the
//! ones suppressed in between are reported as a count ("... repeated N times in the last
//! Ts") with the next line of that kind, or by [`flush`] once the window has passed.
//!
//! Kinds are `&'static str` names chosen in the code, so the table stays as small as the
//! number of call sites, whatever the messages contain.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long after a logged line further lines of the same kind are only counted.
pub const WINDOW: Duration = Duration::from_secs(10);

/// What to do with one occurrence of a kind of line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; `suppressed` lines of its kind were counted over `over` before it.
    Log {
        /// Lines of this kind not written since the last one that was.
        suppressed: u64,
        /// Time since the last written line of this kind (zero for the first).
        over: Duration,
    },
    /// Count it only.
    Quiet,
}

/// A suppressed count that is due to be reported: `suppressed` lines of `kind` over `over`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The kind of line.
    pub kind: &'static str,
    /// Lines not written.
    pub suppressed: u64,
    /// Over how long.
    pub over: Duration,
}

/// Per-kind windows; the clock is passed in, so the logic is tested without waiting.
#[derive(Debug)]
pub struct RateLimit {
    window: Duration,
    slots: Mutex<Vec<Slot>>,
}

#[derive(Debug)]
struct Slot {
    kind: &'static str,
    /// When the last line of this kind was written.
    logged_at: Instant,
    suppressed: u64,
}

impl RateLimit {
    /// A limiter writing at most one line per kind per `window`.
    pub const fn new(window: Duration) -> RateLimit {
        RateLimit {
            window,
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Decides about one line of `kind` at `now`.
    pub fn check(&self, kind: &'static str, now: Instant) -> Verdict {
        let mut slots = self.slots.lock();
        let Some(slot) = slots.iter_mut().find(|s| s.kind == kind) else {
            slots.push(Slot {
                kind,
                logged_at: now,
                suppressed: 0,
            });
            return Verdict::Log {
                suppressed: 0,
                over: Duration::ZERO,
            };
        };
        let since = now.saturating_duration_since(slot.logged_at);
        if since < self.window {
            slot.suppressed += 1;
            return Verdict::Quiet;
        }
        let suppressed = std::mem::take(&mut slot.suppressed);
        slot.logged_at = now;
        Verdict::Log {
            suppressed,
            over: since,
        }
    }

    /// Logs `message` at WARN unless a line of `kind` was logged by this limiter within its
    /// window; the count of lines held back is written before the next one that is.
    pub fn warn(&self, kind: &'static str, message: std::fmt::Arguments<'_>) {
        if !log::log_enabled!(log::Level::Warn) {
            return;
        }
        if let Verdict::Log { suppressed, over } = self.check(kind, Instant::now()) {
            if suppressed > 0 {
                log::warn!("{}", repeated(kind, suppressed, over));
            }
            log::warn!("{message}");
        }
    }

    /// The counts whose window has passed by `now` (each reported once; the next line of
    /// that kind is written again).
    pub fn expired(&self, now: Instant) -> Vec<Summary> {
        let mut slots = self.slots.lock();
        let mut due = Vec::new();
        slots.retain(|slot| {
            let since = now.saturating_duration_since(slot.logged_at);
            if since < self.window {
                return true;
            }
            if slot.suppressed > 0 {
                due.push(Summary {
                    kind: slot.kind,
                    suppressed: slot.suppressed,
                    over: since,
                });
            }
            false
        });
        due
    }
}

static LIMIT: RateLimit = RateLimit::new(WINDOW);

/// Logs `message` at WARN unless a line of `kind` was logged within the last [`WINDOW`]
/// (one limiter for the whole process); the count of lines held back is written before the
/// next one that is.
pub fn warn(kind: &'static str, message: std::fmt::Arguments<'_>) {
    LIMIT.warn(kind, message);
}

/// Writes the counts of suppressed lines whose window has passed; call now and then (the
/// file system does so on its save timer) so a count is not held back until the next line.
pub fn flush() {
    for summary in LIMIT.expired(Instant::now()) {
        log::warn!(
            "{}",
            repeated(summary.kind, summary.suppressed, summary.over)
        );
    }
}

fn repeated(kind: &str, suppressed: u64, over: Duration) -> String {
    format!(
        "{kind}: repeated {suppressed} times in the last {}s",
        over.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: &str = "catalog unavailable";

    #[test]
    fn one_line_per_window_then_the_count() {
        let limit = RateLimit::new(Duration::from_secs(10));
        let start = Instant::now();
        let first = limit.check(KIND, start);
        assert_eq!(
            first,
            Verdict::Log {
                suppressed: 0,
                over: Duration::ZERO
            }
        );
        for ms in 1..1000 {
            let at = start + Duration::from_millis(ms * 9);
            assert_eq!(limit.check(KIND, at), Verdict::Quiet, "at {ms}");
        }
        let later = start + Duration::from_secs(12);
        assert_eq!(
            limit.check(KIND, later),
            Verdict::Log {
                suppressed: 999,
                over: Duration::from_secs(12)
            }
        );
        assert_eq!(
            limit.check(KIND, later + Duration::from_secs(1)),
            Verdict::Quiet
        );
    }

    #[test]
    fn kinds_are_limited_separately() {
        let limit = RateLimit::new(Duration::from_secs(10));
        let now = Instant::now();
        assert!(matches!(limit.check("a", now), Verdict::Log { .. }));
        assert!(matches!(limit.check("b", now), Verdict::Log { .. }));
        assert_eq!(limit.check("a", now), Verdict::Quiet);
        assert_eq!(limit.check("b", now), Verdict::Quiet);
    }

    #[test]
    fn expired_reports_held_back_counts_once() {
        let limit = RateLimit::new(Duration::from_secs(10));
        let start = Instant::now();
        limit.check(KIND, start);
        limit.check(KIND, start + Duration::from_secs(1));
        limit.check(KIND, start + Duration::from_secs(2));
        limit.check("quiet kind", start);
        assert!(
            limit.expired(start + Duration::from_secs(5)).is_empty(),
            "window still open"
        );
        let due = limit.expired(start + Duration::from_secs(11));
        assert_eq!(
            due,
            [Summary {
                kind: KIND,
                suppressed: 2,
                over: Duration::from_secs(11)
            }],
            "only the kind with lines held back"
        );
        assert!(limit.expired(start + Duration::from_secs(30)).is_empty());
        assert!(
            matches!(
                limit.check(KIND, start + Duration::from_secs(31)),
                Verdict::Log { suppressed: 0, .. }
            ),
            "after the report the next line is written"
        );
    }
}
