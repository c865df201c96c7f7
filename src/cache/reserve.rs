//! CacheFreeLeastSize: space on the cache file system that writes never take.
//!
//! A test that filled its mount filled the host's root file system to 16 KB free. Writes
//! that would take the cache file system's available space below the reserve are refused
//! (`ENOSPC`). `statvfs` is not called for every write: the available space is measured
//! once and the bytes admitted since are subtracted from it; it is measured again after
//! [`REFRESH_BYTES`] have been admitted or [`REFRESH_INTERVAL`] has passed, and, while
//! writes are being refused, at most once per [`RECHECK_INTERVAL`] (space may have been
//! freed). So a refusal never loops and costs at most a few `statvfs` calls a second.
//! Other writers on the same file system are only seen at the next measurement.

use std::io;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Bytes admitted before the available space is measured again.
pub const REFRESH_BYTES: u64 = 8 << 20;
/// Longest time before the available space is measured again.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest time between measurements while writes are refused.
pub const RECHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Measures the bytes available on the cache file system.
pub type Probe = Box<dyn Fn() -> io::Result<u64> + Send + Sync>;

/// The reserve of a cache file system; see the module documentation.
pub struct Reserve {
    least: u64,
    probe: Probe,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Available bytes at the last measurement (`u64::MAX` if none succeeded yet).
    available: u64,
    /// Bytes admitted since then.
    admitted: u64,
    /// When the last measurement was made or tried.
    measured_at: Option<Instant>,
    /// Measurements made or tried (for tests and statistics).
    measurements: u64,
}

impl Reserve {
    /// A reserve of `least` bytes (0: none) on the file system `probe` measures.
    pub fn new(least: u64, probe: Probe) -> Reserve {
        Reserve {
            least,
            probe,
            state: Mutex::new(State {
                available: u64::MAX,
                admitted: 0,
                measured_at: None,
                measurements: 0,
            }),
        }
    }

    /// The reserve in bytes.
    pub fn least(&self) -> u64 {
        self.least
    }

    /// Whether `bytes` more may be written without taking the available space below the
    /// reserve; if so they are counted as used.
    pub fn admit(&self, bytes: u64) -> bool {
        if self.least == 0 || bytes == 0 {
            return true;
        }
        let mut state = self.state.lock();
        let now = Instant::now();
        let stale = state.admitted >= REFRESH_BYTES
            || state
                .measured_at
                .is_none_or(|at| now.duration_since(at) >= REFRESH_INTERVAL);
        // Refused on the estimate: measure again, as space may have been freed, but not
        // more often than RECHECK_INTERVAL.
        let recheck = !self.fits(&state, bytes)
            && state
                .measured_at
                .is_none_or(|at| now.duration_since(at) >= RECHECK_INTERVAL);
        if stale || recheck {
            self.measure(&mut state, now);
        }
        if self.fits(&state, bytes) {
            state.admitted = state.admitted.saturating_add(bytes);
            true
        } else {
            false
        }
    }

    /// The available bytes as last measured minus those admitted since (`u64::MAX` before
    /// a measurement succeeded, or without a reserve).
    pub fn available_estimate(&self) -> u64 {
        let state = self.state.lock();
        state.available.saturating_sub(state.admitted)
    }

    /// How many times the available space was measured so far.
    pub fn measurements(&self) -> u64 {
        self.state.lock().measurements
    }

    fn fits(&self, state: &State, bytes: u64) -> bool {
        state
            .available
            .saturating_sub(state.admitted)
            .checked_sub(bytes)
            .is_some_and(|left| left >= self.least)
    }

    fn measure(&self, state: &mut State, now: Instant) {
        state.measured_at = Some(now);
        state.measurements += 1;
        match (self.probe)() {
            Ok(available) => {
                state.available = available;
                state.admitted = 0;
            }
            // Keep the estimate; writes fail on their own if the file system is gone.
            Err(err) => log::warn!("cache space unknown (CacheFreeLeastSize not checked): {err}"),
        }
    }
}

impl std::fmt::Debug for Reserve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reserve")
            .field("least", &self.least)
            .field("state", &*self.state.lock())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    const MIB: u64 = 1 << 20;

    /// A reserve over a simulated file system whose available space the test sets.
    fn simulated(least: u64, available: u64) -> (Reserve, Arc<AtomicU64>) {
        let space = Arc::new(AtomicU64::new(available));
        let probe = {
            let space = Arc::clone(&space);
            Box::new(move || Ok(space.load(Ordering::SeqCst)))
        };
        (Reserve::new(least, probe), space)
    }

    #[test]
    fn writes_are_admitted_until_the_reserve_would_be_touched() {
        let (reserve, space) = simulated(32 * MIB, 40 * MIB);
        for i in 0..8 {
            assert!(reserve.admit(MIB), "MiB {i} fits");
            space.fetch_sub(MIB, Ordering::SeqCst); // the write lands
        }
        assert!(
            !reserve.admit(1),
            "the next byte would go below the reserve"
        );
        assert!(reserve.admit(0), "an empty write needs no space");
    }

    /// Whole `interval`s since `started`.
    fn periods(started: Instant, interval: Duration) -> u64 {
        (started.elapsed().as_nanos() / interval.as_nanos()) as u64
    }

    #[test]
    fn measuring_is_bounded_by_bytes_and_time_and_refusals_do_not_spin() {
        let started = Instant::now();
        let (reserve, _) = simulated(MIB, u64::MAX / 2);
        for _ in 0..1024 {
            assert!(reserve.admit(64 << 10));
        }
        // 64 MiB admitted: one measurement per REFRESH_BYTES (plus the first), and one more
        // per REFRESH_INTERVAL that passed (a loaded machine may be slow).
        let limit = 64 * MIB / REFRESH_BYTES + 1 + periods(started, REFRESH_INTERVAL) + 1;
        assert!(
            reserve.measurements() <= limit,
            "{} measurements for 64 MiB (limit {limit})",
            reserve.measurements()
        );
        let started = Instant::now();
        let (full, _) = simulated(MIB, MIB);
        for _ in 0..10_000 {
            assert!(!full.admit(4096));
        }
        let measured = full.measurements();
        let limit = 1 + periods(started, RECHECK_INTERVAL) + 1;
        assert!(
            measured <= limit,
            "10,000 refusals in {:?} measured {measured} times (limit {limit})",
            started.elapsed()
        );
    }

    #[test]
    fn freed_space_is_seen_again() {
        let (reserve, space) = simulated(MIB, MIB);
        assert!(!reserve.admit(4096));
        space.store(100 * MIB, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reserve.admit(4096) {
            assert!(Instant::now() < deadline, "freed space never admitted");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn no_reserve_admits_everything_without_measuring() {
        let (reserve, _) = simulated(0, 0);
        assert!(reserve.admit(u64::MAX));
        assert_eq!(reserve.measurements(), 0);
    }
}
