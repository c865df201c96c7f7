//! Running statements: reads on a pooled connection, changes in one transaction each, and
//! the one retry policy for conflicts ([`RetryPolicy`]), used by both.
//!
//! Time bound: an operation waits at most the pool's acquire timeout (`DatabaseTimeout`) for
//! a connection and then at most one socket timeout for the statement that hangs; a
//! connection that failed with an I/O error or timed out is discarded at once (no ping, no
//! `ROLLBACK` over it), and conflicts are retried only while that time lasts.

use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Transaction, TxOpts};

use super::MysqlMeta;
use crate::meta::{MetaEngine, MetaError};
use crate::pool::{Backoff, PooledConn};

/// When an operation that failed with a conflict ([`MetaError::Conflict`]: a deadlock, a
/// lock wait timeout, a Galera certification failure) runs again: at most `attempts` more
/// times, after a short jittered pause that grows from `backoff.base` to `backoff.cap`, and
/// never past the operation's deadline. Every other error is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times a conflicting operation runs again at most. Default 5.
    pub attempts: u32,
    /// The pause before each retry: between `base` and a ceiling that doubles per retry up
    /// to `cap`. Default 1 ms to 20 ms (the other transaction has usually finished by then).
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Backoff {
                base: Duration::from_millis(1),
                cap: Duration::from_millis(20),
            },
        }
    }
}

impl RetryPolicy {
    /// The pause before running again an operation whose try number `attempt` (0 = the
    /// first run) failed with `err`; `None` when it must not run again (not a conflict, no
    /// attempts left, or the pause would reach `deadline`).
    pub fn next_delay(&self, err: &MetaError, attempt: u32, deadline: Instant) -> Option<Duration> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.next_delay_with(err, attempt, left, fastrand::f64())
    }

    /// [`RetryPolicy::next_delay`] with the time `left` until the deadline and the random
    /// draw `unit` in `[0, 1)` given: the pure rule.
    pub fn next_delay_with(
        &self,
        err: &MetaError,
        attempt: u32,
        left: Duration,
        unit: f64,
    ) -> Option<Duration> {
        if !matches!(err, MetaError::Conflict(_)) || attempt >= self.attempts {
            return None;
        }
        let delay = self.backoff.delay_with(attempt.saturating_add(1), unit);
        (delay < left).then_some(delay)
    }

    /// Runs `run` until it succeeds or fails for good under this policy (pausing between
    /// tries); `deadline` ends the retries.
    pub(super) fn run<T>(
        &self,
        deadline: Instant,
        mut run: impl FnMut() -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let mut attempt = 0;
        loop {
            match run() {
                Err(err) => match self.next_delay(&err, attempt, deadline) {
                    Some(delay) => {
                        log::debug!("retrying after a conflict in {delay:?}: {err}");
                        std::thread::sleep(delay);
                        attempt += 1;
                    }
                    None => return Err(err),
                },
                done => return done,
            }
        }
    }
}

impl MysqlMeta {
    /// Runs `f` on a pooled connection without a transaction.
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&mut PooledConn) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        self.read_by(Instant::now() + self.timeout(), f)
    }

    /// Like [`MysqlMeta::read`], waiting for a connection only until `deadline`.
    pub(super) fn read_by<T>(
        &self,
        deadline: Instant,
        f: impl FnOnce(&mut PooledConn) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let mut conn = self
            .pool()
            .get_timeout(deadline.saturating_duration_since(Instant::now()))?;
        let result = f(&mut conn);
        discard_if_lost(&mut conn, &result);
        result
    }

    /// Runs `f` in one transaction and commits; runs it again after a conflict as the
    /// [`RetryPolicy`] allows while the operation's time (the acquire timeout) lasts.
    pub(super) fn write<T>(
        &self,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let deadline = Instant::now() + self.timeout();
        let mut conn = self.pool().get_timeout(self.timeout())?;
        self.retry_policy().run(deadline, || {
            let result = transaction(&mut conn, &mut f);
            discard_if_lost(&mut conn, &result);
            result
        })
    }
}

/// Discards the connection when the failure was a lost or timed-out connection: asking it
/// again (a ping) would wait another socket timeout on a server that hangs.
fn discard_if_lost<T>(conn: &mut PooledConn, result: &Result<T, MetaError>) {
    if let Err(MetaError::Unavailable(_)) = result {
        conn.mark_broken();
    }
}

/// Runs `f` in a transaction on `conn` and commits.
///
/// The `Transaction` is dropped (which sends `ROLLBACK`) only when `f` or the commit failed
/// and the connection still answers. After `COMMIT` there is nothing to undo, and over a
/// lost or hung connection a `ROLLBACK` would wait another socket timeout: that connection
/// is discarded instead, and the server rolls back when it goes. What is not dropped owns
/// only the borrow of `conn` and a copy of its LOCAL INFILE handler, which is never set.
fn transaction<T>(
    conn: &mut PooledConn,
    f: &mut impl FnMut(&mut Transaction<'_>) -> Result<T, MetaError>,
) -> Result<T, MetaError> {
    let mut tx = ManuallyDrop::new(conn.start_transaction(TxOpts::default())?);
    let result = f(&mut tx).and_then(|value| {
        tx.query_drop("COMMIT")?;
        Ok(value)
    });
    if matches!(
        result,
        Err(MetaError::Errno(_) | MetaError::Conflict(_) | MetaError::Internal(_))
    ) {
        drop(ManuallyDrop::into_inner(tx));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict() -> MetaError {
        MetaError::Conflict("Deadlock found when trying to get lock (1213)".into())
    }

    const PLENTY: Duration = Duration::from_secs(60);

    #[test]
    fn only_conflicts_are_retried() {
        let policy = RetryPolicy::default();
        assert!(policy
            .next_delay_with(&conflict(), 0, PLENTY, 0.5)
            .is_some());
        for err in [
            MetaError::Errno(libc::EEXIST),
            MetaError::Unavailable("connection reset".into()),
            MetaError::Internal("bad row".into()),
        ] {
            assert_eq!(
                policy.next_delay_with(&err, 0, PLENTY, 0.5),
                None,
                "{err:?}"
            );
        }
    }

    #[test]
    fn retries_stop_after_the_attempts() {
        let policy = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        };
        let allowed: Vec<bool> = (0..5)
            .map(|attempt| {
                policy
                    .next_delay_with(&conflict(), attempt, PLENTY, 0.5)
                    .is_some()
            })
            .collect();
        assert_eq!(allowed, [true, true, true, false, false]);
    }

    #[test]
    fn pauses_are_jittered_grow_and_stay_under_the_cap() {
        let policy = RetryPolicy::default();
        let (base, cap) = (policy.backoff.base, policy.backoff.cap);
        for attempt in 0..policy.attempts {
            let low = policy.next_delay_with(&conflict(), attempt, PLENTY, 0.0);
            let high = policy.next_delay_with(&conflict(), attempt, PLENTY, 0.999);
            let (low, high) = (low.unwrap(), high.unwrap());
            assert_eq!(
                low, base,
                "attempt {attempt}: the shortest pause is the base"
            );
            assert!(
                high <= cap,
                "attempt {attempt}: {high:?} over the cap {cap:?}"
            );
            assert!(
                high >= low,
                "attempt {attempt}: draws spread upwards: {low:?}..{high:?}"
            );
        }
        let first = policy
            .next_delay_with(&conflict(), 0, PLENTY, 0.999)
            .unwrap();
        let third = policy
            .next_delay_with(&conflict(), 2, PLENTY, 0.999)
            .unwrap();
        assert!(third > first, "the ceiling grows: {first:?} then {third:?}");
    }

    #[test]
    fn no_retry_whose_pause_would_reach_the_deadline() {
        let policy = RetryPolicy::default();
        let pause = policy.next_delay_with(&conflict(), 1, PLENTY, 0.5).unwrap();
        assert_eq!(
            policy.next_delay_with(&conflict(), 1, pause, 0.5),
            None,
            "exactly {pause:?} left"
        );
        assert_eq!(
            policy.next_delay_with(&conflict(), 0, Duration::ZERO, 0.0),
            None,
            "the deadline has passed"
        );
        assert_eq!(
            policy.next_delay(&conflict(), 0, Instant::now()),
            None,
            "with the clock: the deadline is now"
        );
    }

    #[test]
    fn run_stops_at_the_first_final_answer() {
        let policy = RetryPolicy {
            attempts: 2,
            backoff: Backoff {
                base: Duration::from_micros(1),
                cap: Duration::from_micros(1),
            },
        };
        let deadline = Instant::now() + PLENTY;
        let mut tries = 0;
        let result: Result<(), _> = policy.run(deadline, || {
            tries += 1;
            Err(conflict())
        });
        assert_eq!(
            (result, tries),
            (Err(conflict()), 3),
            "first run + 2 retries"
        );
        let mut tries = 0;
        let result = policy.run(deadline, || {
            tries += 1;
            if tries == 1 {
                Err(conflict())
            } else {
                Ok(tries)
            }
        });
        assert_eq!(result, Ok(2), "a retry that succeeds");
        let mut tries = 0;
        let result: Result<(), _> = policy.run(deadline, || {
            tries += 1;
            Err(MetaError::Errno(libc::ENOENT))
        });
        assert_eq!(
            (result, tries),
            (Err(MetaError::Errno(libc::ENOENT)), 1),
            "an errno is final"
        );
    }
}
