//! Running statements: reads on a pooled connection, changes in one transaction each, and
//! the one retry policy ([`RetryPolicy`]) for conflicts and for lost connections, used by
//! both.
//!
//! Time bound: an operation has until its deadline, `DatabaseTimeout` from its start. It
//! waits at most that long for its first connection (an error there, such as the pool
//! failing fast while the only database is down, is final), and then at most one socket
//! timeout for a statement that hangs. A connection that failed with an I/O error, timed out
//! or belongs to a node that cannot serve ([`MetaError::Unavailable`]) is discarded at once
//! (no ping, no `ROLLBACK` over it).
//!
//! Lost connections: a read simply runs again on a new connection. A change whose
//! connection was lost has an unknown outcome; every change carries an operation id
//! recorded in its own transaction (`operations.rs`), so the runner takes a new connection
//! (from whichever node the pool now writes to), asks whether that id committed and either
//! answers from its record or runs the change again under the same id. Both pause between
//! tries as [`RetryPolicy::reconnect`] says and stop at the deadline; conflicts are retried
//! as [`RetryPolicy::attempts`] and [`RetryPolicy::backoff`] say.

use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Transaction, TxOpts};

use super::operations::{self, Answer, OpId};
use super::MysqlMeta;
use crate::meta::{MetaEngine, MetaError};
use crate::pool::{Backoff, PooledConn};

/// When an operation runs again: after a conflict ([`MetaError::Conflict`]: a deadlock, a
/// lock wait timeout, a Galera certification failure) at most `attempts` more times, after
/// a short jittered pause that grows from `backoff.base` to `backoff.cap`; after a lost
/// connection ([`MetaError::Unavailable`] from a statement) on a new connection, after a
/// pause that grows from `reconnect.base` to `reconnect.cap`. Never past the operation's
/// deadline. Every other error is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times a conflicting operation runs again at most. Default 5.
    pub attempts: u32,
    /// The pause before each retry: between `base` and a ceiling that doubles per retry up
    /// to `cap`. Default 1 ms to 20 ms (the other transaction has usually finished by then).
    pub backoff: Backoff,
    /// The pause before taking a new connection after a lost one, as `backoff`. Default
    /// 10 ms to 500 ms (a failover takes the pool about a connect timeout; there is no cap
    /// on the number of tries but the deadline).
    pub reconnect: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Backoff {
                base: Duration::from_millis(1),
                cap: Duration::from_millis(20),
            },
            reconnect: Backoff {
                base: Duration::from_millis(10),
                cap: Duration::from_millis(500),
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

    /// The pause before taking a new connection after the `lost`-th lost one (1 = the
    /// first) with `left` until the deadline and the draw `unit`; `None` when the pause would
    /// reach the deadline (the operation then fails as unavailable).
    pub fn reconnect_delay_with(&self, lost: u32, left: Duration, unit: f64) -> Option<Duration> {
        let delay = self.reconnect.delay_with(lost, unit);
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

/// Whether a run of a change is its first, or a run again after a lost connection left the
/// outcome of an earlier one unknown (the operation's row is then inserted first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Run {
    /// No earlier run may have committed.
    First,
    /// An earlier run may have committed.
    Again,
}

impl MysqlMeta {
    /// Runs `f` on a pooled connection without a transaction.
    pub(super) fn read<T>(
        &self,
        f: impl FnMut(&mut PooledConn) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        self.read_by(Instant::now() + self.timeout(), f)
    }

    /// Like [`MysqlMeta::read`], waiting for a connection only until `deadline`; after a
    /// lost connection `f` runs again on a new one while the deadline allows.
    pub(super) fn read_by<T>(
        &self,
        deadline: Instant,
        mut f: impl FnMut(&mut PooledConn) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let mut conn = self
            .pool()
            .get_timeout(deadline.saturating_duration_since(Instant::now()))?;
        let mut lost = 0;
        loop {
            let result = f(&mut conn);
            discard_if_lost(&mut conn, &result);
            match result {
                Err(MetaError::Unavailable(cause)) => {
                    lost += 1;
                    conn = self.reconnect(conn, deadline, lost, cause)?;
                }
                done => return done,
            }
        }
    }

    /// Runs `f` in one transaction recorded under a new operation id and commits; runs it
    /// again after a conflict, and decides it after a lost connection, as the
    /// [`RetryPolicy`] allows while the operation's time (`DatabaseTimeout`) lasts.
    pub(super) fn write<T: Answer>(
        &self,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        self.change(|conn, op, run| transaction(conn, op, run, &mut f))
    }

    /// Runs `f` in one transaction without an operation id: for changes that are safe to
    /// run twice (the owner lease, whose renewals accept the beat a lost run left), so a
    /// lost connection is final for them, as before.
    pub(super) fn write_unrecorded<T>(
        &self,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let deadline = Instant::now() + self.timeout();
        let mut conn = self.pool().get_timeout(self.timeout())?;
        self.retry_policy().run(deadline, || {
            let result = in_transaction(&mut conn, &mut f);
            discard_if_lost(&mut conn, &result);
            result
        })
    }

    /// The runner of every recorded change: `run_once(conn, op, run)` makes the change `op`
    /// once on `conn` (recording it in the same transaction). After a conflict it runs again
    /// as the policy says; after a lost connection the runner takes a new connection, asks
    /// whether `op` committed (answering from its record if so) and otherwise runs it again
    /// with [`Run::Again`]. The first connection's failure is final.
    pub(super) fn change<T: Answer>(
        &self,
        mut run_once: impl FnMut(&mut PooledConn, OpId, Run) -> Result<T, MetaError>,
    ) -> Result<T, MetaError> {
        let deadline = Instant::now() + self.timeout();
        let op = self.operations().next();
        let mut conn = self.pool().get_timeout(self.timeout())?;
        let mut run = Run::First;
        let mut lost = 0;
        loop {
            let result = self.retry_policy().run(deadline, || {
                let result = match run {
                    Run::First => run_once(&mut conn, op, run),
                    Run::Again => match operations::recorded::<T>(&mut conn, op) {
                        Ok(Some(answer)) => {
                            log::debug!(
                                "operation {}/{} had committed before its connection was lost",
                                op.owner,
                                op.seq
                            );
                            Ok(answer)
                        }
                        Ok(None) => run_once(&mut conn, op, run),
                        Err(err) => Err(err),
                    },
                };
                discard_if_lost(&mut conn, &result);
                result
            });
            match result {
                Err(MetaError::Unavailable(cause)) => {
                    log::debug!(
                        "operation {}/{}: connection lost, outcome unknown: {cause}",
                        op.owner,
                        op.seq
                    );
                    run = Run::Again;
                    lost += 1;
                    conn = self.reconnect(conn, deadline, lost, cause)?;
                }
                Ok(answer) => {
                    if operations::trim_due(op) {
                        trim(&mut conn);
                    }
                    return Ok(answer);
                }
                failed => return failed,
            }
        }
    }

    /// A new connection in place of `lost_conn`, the `lost`-th lost one, after the
    /// policy's pause; the operation fails as unavailable (naming `cause`) when the deadline
    /// comes first or the pool cannot give one.
    ///
    /// The lost connection goes back to the pool (discarded) first: an operation that held it
    /// while waiting for another would, with as many operations in flight as the pool has
    /// connections, wait for a connection only another waiter could return.
    fn reconnect(
        &self,
        lost_conn: PooledConn,
        deadline: Instant,
        lost: u32,
        cause: String,
    ) -> Result<PooledConn, MetaError> {
        drop(lost_conn);
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(pause) = self
            .retry_policy()
            .reconnect_delay_with(lost, left, fastrand::f64())
        else {
            return Err(MetaError::Unavailable(format!(
                "{cause} (and the operation's time ran out before a new connection)"
            )));
        };
        std::thread::sleep(pause);
        let left = deadline.saturating_duration_since(Instant::now());
        self.pool()
            .get_timeout(left)
            .map_err(|err| MetaError::Unavailable(format!("{cause}; then {err}")))
    }
}

/// Deletes a batch of old operation records on `conn`; a failure only costs the batch.
fn trim(conn: &mut PooledConn) {
    match operations::trim(conn) {
        Ok(deleted) => log::debug!("deleted {deleted} old operation records"),
        Err(err) => {
            log::warn!("cannot delete old operation records: {err}");
            discard_if_lost(conn, &Err::<(), _>(err));
        }
    }
}

/// Discards the connection when the failure was a lost or timed-out connection: asking it
/// again (a ping) would wait another socket timeout on a server that hangs.
fn discard_if_lost<T>(conn: &mut PooledConn, result: &Result<T, MetaError>) {
    if let Err(MetaError::Unavailable(_)) = result {
        conn.mark_broken();
    }
}

/// Runs `f` in a transaction on `conn` recorded as operation `op`, and commits.
///
/// A first run records the answer after `f`; a run again inserts the record first, and
/// when it is there already (the lost run committed) rolls back and answers from it.
fn transaction<T: Answer>(
    conn: &mut PooledConn,
    op: OpId,
    run: Run,
    f: &mut impl FnMut(&mut Transaction<'_>) -> Result<T, MetaError>,
) -> Result<T, MetaError> {
    let done = in_transaction(conn, |tx| {
        if run == Run::Again && !operations::claim(tx, op)? {
            return Ok(None);
        }
        let value = f(tx)?;
        let answer = operations::encode(&value);
        match run {
            Run::First => operations::record(tx, op, &answer)?,
            Run::Again => operations::finish(tx, op, &answer)?,
        }
        Ok(Some(value))
    })?;
    match done {
        Some(value) => Ok(value),
        None => operations::recorded(conn, op)?.ok_or_else(|| {
            MetaError::Internal(format!(
                "operation {}/{} is recorded yet cannot be read",
                op.owner, op.seq
            ))
        }),
    }
}

/// Runs `f` in a transaction on `conn` and commits when it returns a value.
///
/// The `Transaction` is dropped (which sends `ROLLBACK`) only when `f` or the commit failed
/// and the connection still answers. After `COMMIT` there is nothing to undo, and over a
/// lost or hung connection a `ROLLBACK` would wait another socket timeout: that connection
/// is discarded instead, and the server rolls back when it goes. What is not dropped owns
/// only the borrow of `conn` and a copy of its LOCAL INFILE handler, which is never set.
fn in_transaction<T>(
    conn: &mut PooledConn,
    mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, MetaError>,
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
    fn reconnect_pauses_grow_to_the_cap_and_stop_at_the_deadline() {
        let policy = RetryPolicy::default();
        let (base, cap) = (policy.reconnect.base, policy.reconnect.cap);
        assert_eq!(policy.reconnect_delay_with(1, PLENTY, 0.0), Some(base));
        let late = policy.reconnect_delay_with(30, PLENTY, 0.999).unwrap();
        assert!(
            late <= cap && late > base,
            "{late:?} within {base:?}..{cap:?}"
        );
        assert_eq!(
            policy.reconnect_delay_with(1, base, 0.0),
            None,
            "a pause that would reach the deadline"
        );
        assert_eq!(policy.reconnect_delay_with(1, Duration::ZERO, 0.0), None);
    }

    #[test]
    fn run_stops_at_the_first_final_answer() {
        let policy = RetryPolicy {
            attempts: 2,
            backoff: Backoff {
                base: Duration::from_micros(1),
                cap: Duration::from_micros(1),
            },
            ..RetryPolicy::default()
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
