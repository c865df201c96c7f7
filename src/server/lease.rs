//! The server's side of the owner lease ([`crate::meta::lease`]): [`take`] it after the
//! schema is migrated and before the file system's start-up recovery (the orphan purge and
//! the cache sweep are valid only under it), then a [`Keeper`] renews it on a heartbeat
//! thread every third of `OwnerLeaseTimeout` and gives it back at a clean stop.
//!
//! Losing it while mounted (decided here, documented in the README):
//! - a renewal that finds the row is not this server's any more (another server took it, a
//!   backup was restored: another token, or this token with a renewal count this server did
//!   not write, or no row) revokes the file system's [`OwnerFence`] for good: reads go on,
//!   every change fails with `EIO`, one ERROR line says why and names the new holder;
//! - a renewal that cannot reach the database is retried at the next heartbeat; once the
//!   lease's term has passed without a successful renewal the fence lapses by itself (another
//!   server may take over now), so changes fail with `EIO` until a renewal succeeds and
//!   shows that nobody took the lease meanwhile; then they go on (one line each way).

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::log_limit;
use crate::meta::lease::{Acquired, LeaseHolder, LeaseState, OwnerLease, Previous, Renewal};
use crate::meta::{MetaError, OwnerFence};

/// Shortest pause between two attempts to take a held lease (its expiry may be due now).
const MIN_POLL: Duration = Duration::from_millis(100);

/// How often the lease is renewed: a third of its term, so two renewals may fail before it
/// lapses.
pub fn heartbeat_interval(ttl: Duration) -> Duration {
    ttl / 3
}

/// How [`take`] ended.
pub enum Took {
    /// The lease is this server's.
    Taken {
        /// The renewal count written: pass it to [`Keeper::start`].
        beat: u64,
        /// When the acquisition that took it started (its term runs from no earlier).
        at: Instant,
    },
    /// A stop signal came while waiting for it.
    Stopped(&'static str),
}

/// Takes the lease for `me`. If another server holds it: without `wait`, an error naming
/// the holder; with `wait`, tries again every heartbeat (or when the holder's term ends, if
/// sooner) until it is taken or `wait` has passed. `pause(d)` waits up to `d` and returns
/// the name of a stop signal that came meanwhile. `catalog` names the catalog in messages.
pub fn take(
    lease: &dyn OwnerLease,
    me: &LeaseHolder,
    ttl: Duration,
    wait: Option<Duration>,
    catalog: &str,
    mut pause: impl FnMut(Duration, &str) -> Option<&'static str>,
) -> Result<Took, String> {
    let started = Instant::now();
    let mut told = false;
    loop {
        let left = wait.map(|w| w.saturating_sub(started.elapsed()));
        let at = Instant::now();
        let next = match lease.acquire(me, ttl) {
            Ok(Acquired::Taken { beat, previous }) => {
                log_previous(&previous, catalog);
                return Ok(Took::Taken { beat, at });
            }
            Ok(Acquired::HeldBy(state)) => {
                let Some(left) = left.filter(|l| !l.is_zero()) else {
                    return Err(refusal(catalog, &state, wait));
                };
                if !told {
                    log::warn!(
                        "the owner lease of {catalog} is held by {state}; waiting up to {} s \
                         for it (--wait-lease)",
                        wait.unwrap_or_default().as_secs()
                    );
                    told = true;
                }
                heartbeat_interval(ttl)
                    .min(state.expires_in + MIN_POLL)
                    .max(MIN_POLL)
                    .min(left)
            }
            Err(err) => {
                let Some(left) = left.filter(|l| !l.is_zero()) else {
                    return Err(format!("cannot take the owner lease of {catalog}: {err}"));
                };
                log_limit::warn(
                    "cannot take the owner lease",
                    format_args!("cannot take the owner lease of {catalog}: {err}; retrying"),
                );
                heartbeat_interval(ttl).min(left)
            }
        };
        if let Some(signal) = pause(next, &format!("waiting for the owner lease of {catalog}")) {
            return Ok(Took::Stopped(signal));
        }
    }
}

/// The message a start refused by a live holder ends with.
fn refusal(catalog: &str, state: &LeaseState, wait: Option<Duration>) -> String {
    match wait {
        Some(wait) => format!(
            "{catalog} is still served by another server after waiting {} s (--wait-lease): \
             its owner lease is held by {state}",
            wait.as_secs()
        ),
        None => format!(
            "{catalog} is served by another server: its owner lease is held by {state}; not \
             mounting (stop that server, or start with --wait-lease SECONDS to wait until its \
             lease is released or expires)"
        ),
    }
}

/// Logs who held the lease before this server took it.
fn log_previous(previous: &Previous, catalog: &str) {
    match previous {
        Previous::Nobody | Previous::Caller => {
            log::info!("took the owner lease of {catalog}")
        }
        Previous::Released(last) => log::info!(
            "took the owner lease of {catalog} (last held by {last}, which released it on a clean stop)"
        ),
        Previous::Expired(last, ago) => log::warn!(
            "took over the owner lease of {catalog} from {last}, whose lease expired {:.1} s ago \
             without a clean stop; start-up recovery runs under this server's lease",
            ago.as_secs_f64()
        ),
        Previous::Gone(last) => log::warn!(
            "took over the owner lease of {catalog} from {last}, which no longer runs on this \
             host (killed or crashed); start-up recovery runs under this server's lease"
        ),
    }
}

/// Renews the lease on a thread of its own and gives it back at a clean stop.
pub struct Keeper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    lease: Arc<dyn OwnerLease>,
    me: LeaseHolder,
    ttl: Duration,
    fence: OwnerFence,
    /// Called once with the reason when the lease is lost (e.g. to tell systemd).
    on_lost: Box<dyn Fn(&str) + Send + Sync>,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    /// The renewal count written last.
    beat: u64,
    /// Renewals since then whose outcome is unknown (the connection broke): each may have
    /// written one more.
    unsure: u64,
    /// When the last successful renewal (or the acquisition) started.
    renewed_at: Instant,
    /// Renewals so far.
    renewals: u64,
    /// Why the lease was lost, once it was.
    lost: Option<String>,
    /// Whether the term passed without a renewal (logged once until the next renewal).
    lapsed: bool,
    stop: bool,
}

impl Keeper {
    /// Keeps the lease `me` took (`beat` from [`take`]) at `taken_at`: renews it every
    /// [`heartbeat_interval`] on a thread named `vs-lease`.
    pub fn start(
        lease: Arc<dyn OwnerLease>,
        me: LeaseHolder,
        ttl: Duration,
        beat: u64,
        taken_at: Instant,
        on_lost: Box<dyn Fn(&str) + Send + Sync>,
    ) -> std::io::Result<Keeper> {
        let mut keeper = Keeper::idle(lease, me, ttl, beat, taken_at, on_lost);
        let shared = Arc::clone(&keeper.shared);
        let thread = std::thread::Builder::new()
            .name("vs-lease".into())
            .spawn(move || shared.heartbeat())?;
        keeper.thread = Some(thread);
        Ok(keeper)
    }

    /// A keeper without its thread (tests call [`Shared::renew_once`] through `beat_now`).
    fn idle(
        lease: Arc<dyn OwnerLease>,
        me: LeaseHolder,
        ttl: Duration,
        beat: u64,
        taken_at: Instant,
        on_lost: Box<dyn Fn(&str) + Send + Sync>,
    ) -> Keeper {
        let fence = OwnerFence::new();
        fence.hold_until(taken_at + ttl);
        Keeper {
            shared: Arc::new(Shared {
                lease,
                me,
                ttl,
                fence,
                on_lost,
                state: Mutex::new(State {
                    beat,
                    unsure: 0,
                    renewed_at: taken_at,
                    renewals: 0,
                    lost: None,
                    lapsed: false,
                    stop: false,
                }),
                wake: Condvar::new(),
            }),
            thread: None,
        }
    }

    /// The fence the file system checks before every change.
    pub fn fence(&self) -> OwnerFence {
        self.shared.fence.clone()
    }

    /// One line for the statistics: the holder and the last renewal, or why it was lost.
    pub fn describe(&self) -> String {
        let state = self.shared.state.lock();
        let ago = state.renewed_at.elapsed().as_secs_f64();
        match &state.lost {
            Some(reason) => format!("LOST ({reason}); changes fail with EIO"),
            None if state.lapsed => format!(
                "held by {}, NOT RENEWED for {ago:.0} s (term {} s): changes fail with EIO \
                 until a renewal succeeds",
                self.shared.me,
                self.shared.ttl.as_secs()
            ),
            None => format!(
                "held by {}, last renewed {ago:.1} s ago ({} renewals, term {} s)",
                self.shared.me,
                state.renewals,
                self.shared.ttl.as_secs()
            ),
        }
    }

    /// Stops renewing and gives the lease back (if it is still this server's), so the next
    /// server need not wait for it to expire. Does not wait for a renewal in flight: one
    /// that reaches the row after the release finds it released and writes nothing.
    pub fn stop_and_release(&mut self) {
        let lost = {
            let mut state = self.shared.state.lock();
            state.stop = true;
            self.shared.wake.notify_all();
            state.lost.is_some()
        };
        if let Some(thread) = self.thread.take_if(|t| t.is_finished()) {
            let _ = thread.join();
        }
        if lost {
            return;
        }
        match self.shared.lease.release(&self.shared.me) {
            Ok(true) => log::info!("released the owner lease"),
            Ok(false) => log::warn!(
                "the owner lease was no longer this server's at the stop; left to its holder"
            ),
            Err(err) => log::warn!(
                "cannot release the owner lease ({err}); a server on another host waits up to \
                 {} s for it to expire",
                self.shared.ttl.as_secs()
            ),
        }
    }

    #[cfg(test)]
    fn beat_now(&self, started: Instant) {
        self.shared.renew_once(started);
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.wake.notify_all();
    }
}

impl Shared {
    /// Renews every [`heartbeat_interval`] until stopped or lost.
    fn heartbeat(&self) {
        let interval = heartbeat_interval(self.ttl);
        let mut next = Instant::now() + interval;
        loop {
            {
                let mut state = self.state.lock();
                while !state.stop && Instant::now() < next {
                    self.wake.wait_until(&mut state, next);
                }
                if state.stop || state.lost.is_some() {
                    return;
                }
            }
            let started = Instant::now();
            next = started + interval;
            self.renew_once(started);
        }
    }

    /// One renewal, started at `started`.
    fn renew_once(&self, started: Instant) {
        let beats: RangeInclusive<u64> = {
            let state = self.state.lock();
            if state.stop || state.lost.is_some() {
                return;
            }
            state.beat..=state.beat.saturating_add(state.unsure)
        };
        let result = self.lease.renew(&self.me, self.ttl, beats);
        let mut state = self.state.lock();
        if state.stop {
            return; // the stop releases the lease; a renewal racing it says nothing
        }
        match result {
            Ok(Renewal::Renewed { beat }) => {
                state.beat = beat;
                state.unsure = 0;
                state.renewals += 1;
                state.renewed_at = started;
                self.fence.hold_until(started + self.ttl);
                if state.lapsed {
                    state.lapsed = false;
                    log::warn!(
                        "the owner lease is renewed again and still this server's: changes go on"
                    );
                }
            }
            Ok(Renewal::Lost(loss)) => {
                let reason = format!("the owner lease is lost: {loss}");
                self.fence.revoke(reason.clone());
                log::error!(
                    "{reason}. This server keeps serving reads, but every change now fails \
                     with EIO rather than risk two writers; stop it and find out who serves \
                     the catalog"
                );
                (self.on_lost)(&reason);
                state.lost = Some(reason);
            }
            Err(err) => {
                if matches!(err, MetaError::Unavailable(_)) {
                    state.unsure = state.unsure.saturating_add(1);
                }
                log_limit::warn(
                    "cannot renew the owner lease",
                    format_args!("cannot renew the owner lease: {err}; trying again"),
                );
                let since = state.renewed_at.elapsed();
                if since >= self.ttl && !state.lapsed {
                    state.lapsed = true;
                    log::error!(
                        "the owner lease was not renewed for {:.0} s (its term is {} s; last \
                         error: {err}): changes fail with EIO until a renewal succeeds, since \
                         another server may take the catalog over now",
                        since.as_secs_f64(),
                        self.ttl.as_secs()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::meta::lease::{LeaseRecord, MemoryLease};

    const TTL: Duration = Duration::from_secs(15);

    fn holder(token: &str, host: &str) -> LeaseHolder {
        LeaseHolder {
            token: token.into(),
            host: host.into(),
            pid: 7,
            mount_point: PathBuf::from(format!("/mnt/{host}")),
            process: String::new(),
        }
    }

    /// A keeper of a lease `me` just took, and how often `on_lost` was called.
    fn keeper_of(lease: &Arc<MemoryLease>, me: &LeaseHolder) -> (Keeper, Arc<Mutex<Vec<String>>>) {
        let Ok(Took::Taken { beat, .. }) = take(&**lease, me, TTL, None, "catalog", |_, _| None)
        else {
            panic!("a free lease was not taken");
        };
        let lost = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&lost);
        let keeper = Keeper::idle(
            Arc::clone(lease) as Arc<dyn OwnerLease>,
            me.clone(),
            TTL,
            beat,
            Instant::now(),
            Box::new(move |reason| seen.lock().push(reason.to_string())),
        );
        (keeper, lost)
    }

    #[test]
    fn a_second_server_is_refused_with_the_holder_named() {
        let lease = MemoryLease::new();
        let first = holder("first", "alpha");
        assert!(matches!(
            take(&lease, &first, TTL, None, "catalog", |_, _| None),
            Ok(Took::Taken { .. })
        ));
        let refused = take(
            &lease,
            &holder("second", "beta"),
            TTL,
            None,
            "catalog",
            |_, _| panic!("no wait without --wait-lease"),
        );
        let Err(message) = refused else {
            panic!("the second server took a held lease");
        };
        assert!(
            message.contains("pid 7 on host alpha (mount point /mnt/alpha)")
                && message.contains("--wait-lease"),
            "{message}"
        );
    }

    #[test]
    fn waiting_takes_the_lease_once_the_holder_stops_renewing() {
        let lease = MemoryLease::new();
        take(
            &lease,
            &holder("dead", "alpha"),
            TTL,
            None,
            "catalog",
            |_, _| None,
        )
        .unwrap();
        let mut pauses = Vec::new();
        let took = take(
            &lease,
            &holder("next", "beta"),
            TTL,
            Some(Duration::from_secs(3600)),
            "catalog",
            |d, _| {
                pauses.push(d);
                lease.advance(d); // time passes while the server waits
                None
            },
        );
        assert!(matches!(took, Ok(Took::Taken { .. })));
        assert_eq!(lease.record().unwrap().holder.token, "next");
        assert!(
            !pauses.is_empty() && pauses.iter().all(|d| *d >= MIN_POLL && *d <= TTL / 3),
            "polls between {MIN_POLL:?} and a heartbeat: {pauses:?}"
        );
    }

    #[test]
    fn waiting_ends_with_the_holder_named_when_the_time_is_up() {
        let lease = MemoryLease::new();
        take(
            &lease,
            &holder("live", "alpha"),
            TTL,
            None,
            "catalog",
            |_, _| None,
        )
        .unwrap();
        let refused = take(
            &lease,
            &holder("next", "beta"),
            TTL,
            Some(Duration::from_millis(300)),
            "catalog",
            |d, _| {
                std::thread::sleep(d); // the live holder keeps its lease: no clock moves
                None
            },
        );
        let Err(message) = refused else {
            panic!("took a live holder's lease");
        };
        assert!(
            message.contains("after waiting") && message.contains("host alpha"),
            "{message}"
        );
    }

    #[test]
    fn a_stop_signal_ends_the_wait() {
        let lease = MemoryLease::new();
        take(
            &lease,
            &holder("live", "alpha"),
            TTL,
            None,
            "catalog",
            |_, _| None,
        )
        .unwrap();
        let took = take(
            &lease,
            &holder("next", "beta"),
            TTL,
            Some(Duration::from_secs(3600)),
            "catalog",
            |_, _| Some("SIGTERM"),
        );
        assert!(matches!(took, Ok(Took::Stopped("SIGTERM"))));
    }

    #[test]
    fn renewals_keep_the_fence_open() {
        let lease = Arc::new(MemoryLease::new());
        let me = holder("me", "alpha");
        let (keeper, lost) = keeper_of(&lease, &me);
        for _ in 0..3 {
            lease.advance(TTL / 3);
            keeper.beat_now(Instant::now());
        }
        assert_eq!(keeper.fence().check(), Ok(()));
        assert!(lost.lock().is_empty());
        assert!(
            keeper.describe().contains("3 renewals"),
            "{}",
            keeper.describe()
        );
    }

    #[test]
    fn a_row_taken_by_another_server_revokes_the_fence_once() {
        let lease = Arc::new(MemoryLease::new());
        let me = holder("me", "alpha");
        let (keeper, lost) = keeper_of(&lease, &me);
        let mut stolen = lease.record().unwrap();
        stolen.holder = holder("thief", "beta");
        lease.set_record(Some(stolen));
        keeper.beat_now(Instant::now());
        keeper.beat_now(Instant::now());
        let reason = keeper.fence().check().unwrap_err();
        assert!(reason.contains("host beta"), "{reason}");
        assert_eq!(lost.lock().len(), 1, "{:?}", lost.lock());
        assert_eq!(
            lease.record().unwrap().holder.token,
            "thief",
            "the new holder's row is left alone"
        );
    }

    #[test]
    fn a_restored_row_with_this_token_but_an_old_count_revokes_the_fence() {
        let lease = Arc::new(MemoryLease::new());
        let me = holder("me", "alpha");
        let (keeper, _) = keeper_of(&lease, &me);
        let backup: LeaseRecord = lease.record().unwrap();
        keeper.beat_now(Instant::now());
        keeper.beat_now(Instant::now());
        assert_eq!(keeper.fence().check(), Ok(()));
        lease.set_record(Some(backup));
        keeper.beat_now(Instant::now());
        let reason = keeper.fence().check().unwrap_err();
        assert!(reason.contains("went back in time"), "{reason}");
    }

    #[test]
    fn an_unreachable_database_lapses_the_fence_until_a_renewal_proves_ownership() {
        let lease = Arc::new(MemoryLease::new());
        let me = holder("me", "alpha");
        let (keeper, lost) = keeper_of(&lease, &me);
        lease.set_unavailable(true);
        let long_ago = Instant::now() - TTL * 2;
        keeper.shared.state.lock().renewed_at = long_ago;
        keeper.shared.fence.hold_until(long_ago + TTL);
        keeper.beat_now(Instant::now());
        assert!(keeper.fence().check().is_err(), "lapsed");
        assert!(
            keeper.describe().contains("NOT RENEWED"),
            "{}",
            keeper.describe()
        );
        lease.set_unavailable(false);
        keeper.beat_now(Instant::now());
        assert_eq!(
            keeper.fence().check(),
            Ok(()),
            "nobody took it: changes go on"
        );
        assert!(lost.lock().is_empty());
    }

    #[test]
    fn a_renewal_whose_outcome_was_unknown_is_not_mistaken_for_a_restore() {
        let lease = Arc::new(MemoryLease::new());
        let me = holder("me", "alpha");
        let (keeper, _) = keeper_of(&lease, &me);
        // The renewal reached the row, but its answer was lost with the connection.
        let beat = keeper.shared.state.lock().beat;
        lease.renew(&me, TTL, beat..=beat).unwrap();
        keeper.shared.state.lock().unsure = 1;
        keeper.beat_now(Instant::now());
        assert_eq!(keeper.fence().check(), Ok(()));
        assert_eq!(keeper.shared.state.lock().beat, beat + 2);
    }

    #[test]
    fn a_clean_stop_releases_so_the_next_server_takes_it_at_once() {
        let lease = Arc::new(MemoryLease::new());
        let me = holder("me", "alpha");
        let (mut keeper, _) = keeper_of(&lease, &me);
        keeper.stop_and_release();
        let next = take(
            &*lease,
            &holder("next", "beta"),
            TTL,
            None,
            "catalog",
            |_, _| panic!("had to wait"),
        );
        assert!(matches!(next, Ok(Took::Taken { .. })));
    }
}
