//! Exponential backoff with full jitter between connect attempts.

use std::time::Duration;

/// Backoff schedule: attempt `n` waits a random time in `[base, min(cap, base * 2^n)]`.
///
/// The lower bound `base` keeps a refusing server from being retried faster than once per
/// `base`, so an unreachable database costs next to no CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Shortest wait, and the unit that doubles. Default 100 ms.
    pub base: Duration,
    /// Longest wait. Default 30 s.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The upper bound of the wait after `failures` consecutive failures (1 = first failure).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(31);
        let ceiling = self.base.saturating_mul(1u32 << exponent);
        ceiling.min(self.cap).max(self.base)
    }

    /// A random wait after `failures` consecutive failures, using `unit` in `[0, 1)` as the draw.
    pub fn delay_with(&self, failures: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(failures);
        let base = self.base.min(ceiling);
        let span = ceiling - base;
        base + span.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// A random wait after `failures` consecutive failures.
    pub fn delay(&self, failures: u32) -> Duration {
        self.delay_with(failures, fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ceiling_doubles_from_base_up_to_cap() {
        let b = Backoff {
            base: ms(100),
            cap: ms(1000),
        };
        let ceilings: Vec<_> = (1..=6).map(|n| b.ceiling(n)).collect();
        assert_eq!(
            ceilings,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
    }

    #[test]
    fn delay_never_below_base_nor_above_ceiling() {
        let b = Backoff::default();
        for failures in [1, 2, 5, 10, 40, u32::MAX] {
            assert_eq!(b.delay_with(failures, 0.0), b.base);
            assert_eq!(b.delay_with(failures, 1.0), b.ceiling(failures));
            let d = b.delay(failures);
            assert!(d >= b.base && d <= b.ceiling(failures), "{d:?}");
        }
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let b = Backoff {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(3600),
        };
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn cap_below_base_waits_base() {
        let b = Backoff {
            base: ms(500),
            cap: ms(100),
        };
        assert_eq!(b.delay_with(3, 0.7), ms(500));
    }
}
