//! A bounded, fair MySQL connection pool that never spins.
//!
//! - `get()` waits at most its timeout, whatever the server does: the caller only ever
//!   waits on its own condition variable with its own deadline, never on a socket. Waiters
//!   are served first come, first served, and a connection that becomes available goes
//!   straight to the oldest waiter.
//! - Connections are opened by `max_connecting` connector threads, never under the pool
//!   lock; failures back off exponentially with jitter, and after `max_attempts` failures
//!   in a row `get()` fails fast while one probe per backoff interval checks the server.
//! - A connection idle longer than `ping_bypass` is pinged before hand-out, on a connector
//!   thread while the caller keeps its place in the queue; a reaper thread closes idle and
//!   old connections without holding the lock during I/O.
//! - Nothing is logged, connected, pinged or closed while the pool lock is held.
//! - A thread that already holds a connection and asks for another while the pool is
//!   exhausted waits for itself (a self-deadlock: nested acquisition). It is logged once per
//!   call site with where both connections were taken, counted (`self_deadlocks`), and, with
//!   `nested_overflow`, served by a connection opened beyond `max_size` (bounded; closed
//!   when it comes back).
//!
//! - With several nodes (`more_nodes`), connections go to one node at a time, the writer:
//!   the first healthy node in list order. A checker thread per node checks its health
//!   every `health_interval` over its own connection (and at once on evidence from the
//!   pool: a failed connect or a broken connection); the decision is [`writer::choose`].
//!   On failover idle connections to the old writer are closed and checked-out ones are
//!   cut (`shutdown(2)`) so statements hung on it fail at once; on failback they finish
//!   and are closed when given back.
//!
//! The uncontended path of `get()` plus give-back is two lock/unlock pairs and no system call.

mod backoff;
mod bounded;
mod conn;
mod error;
mod failover;
mod health;
mod options;
mod session;
mod socket;
mod stats;
mod writer;

use failover::Evidence;

pub use backoff::Backoff;
pub(crate) use bounded::{collect_bounded, drain_checked, Rows, Totals};
pub use conn::PooledConn;
pub(crate) use error::is_connection_error;
pub use error::{
    ConnectError, LimitExceeded, PoolError, SqlError, CLIENT_CANNOT_CONNECT, CLIENT_UNKNOWN_ERROR,
};
pub use options::{PoolOptions, StartPolicy, LEGACY_ACQUIRE_TIMEOUT};
pub(crate) use session::SessionEffect;
pub use stats::{CloseReason, NodeStats, PoolStats};

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::config::DbNode;
use crate::log_limit::{RateLimit, WINDOW};
use socket::PeerSocket;
use writer::Health;

/// A thread-safe connection pool; clones share the same connections.
///
/// Dropping the last clone closes the pool (see [`Pool::close`]).
#[derive(Clone)]
pub struct Pool {
    handle: Arc<Handle>,
}

impl Pool {
    /// Starts a pool; what happens when the database is down depends on `start_policy`.
    ///
    /// Never loops forever: `FailFast` and `TryOnce` try once, `Wait(d)` gives up after `d`,
    /// `Background` returns at once.
    pub fn new(options: PoolOptions) -> Result<Pool, PoolError> {
        options.validate().map_err(PoolError::InvalidOptions)?;
        let shared = Arc::new(Shared::new(options));
        let policy = shared.options.start_policy;
        if matches!(policy, StartPolicy::FailFast | StartPolicy::TryOnce) {
            match shared.open_first() {
                Ok((conn, node)) => {
                    let mut state = shared.state.lock();
                    state.writer = node;
                    state.total += 1;
                    state.stats.created += 1;
                    let managed = shared.manage(conn, node, &mut state);
                    state.idle.push_back(managed);
                }
                Err(cause) if policy == StartPolicy::FailFast => {
                    return Err(PoolError::Connect(cause))
                }
                Err(cause) => {
                    // TryOnce: counted, logged and backed off like any failed connect; the
                    // connector threads started below keep trying.
                    let mut state = shared.state.lock();
                    let node = state.writer;
                    let after = shared.on_connect_failed(&mut state, cause, node);
                    shared.settle(&mut state, after);
                }
            }
        }
        // Owned by a handle at once, so a failure to start a thread closes and joins the
        // ones already started.
        let mut handle = Handle {
            shared,
            threads: Vec::new(),
        };
        for index in 0..handle.shared.options.max_connecting {
            let thread = handle
                .shared
                .spawn_thread(format!("vs-pool-conn-{index}"), Shared::connector_loop)?;
            handle.threads.push(thread);
        }
        let reaper = handle
            .shared
            .spawn_thread("vs-pool-reaper".into(), Shared::reaper_loop)?;
        handle.threads.push(reaper);
        if handle.shared.nodes.len() > 1 {
            for node in 0..handle.shared.nodes.len() {
                let checker = handle
                    .shared
                    .spawn_thread(format!("vs-pool-health-{node}"), move |shared| {
                        shared.checker_loop(node)
                    })?;
                handle.threads.push(checker);
            }
        }
        let pool = Pool {
            handle: Arc::new(handle),
        };
        if let StartPolicy::Wait(limit) = pool.handle.shared.options.start_policy {
            pool.wait_until_connected(limit)?;
        }
        Ok(pool)
    }

    /// Takes a connection, waiting at most the configured acquire timeout.
    #[track_caller]
    pub fn get(&self) -> Result<PooledConn, PoolError> {
        let timeout = self.handle.shared.options.acquire_timeout;
        self.get_timeout(timeout)
    }

    /// Takes a connection, waiting at most `timeout` (plus scheduling delay), whatever the
    /// server does; the connection handed out answered a ping if it had idled past
    /// `ping_bypass`.
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<PooledConn, PoolError> {
        self.handle.shared.get(timeout, Location::caller())
    }

    /// Waits until at least one connection is open, or `limit` passes (returns the last error).
    pub fn wait_until_connected(&self, limit: Duration) -> Result<(), PoolError> {
        let shared = &self.handle.shared;
        let deadline = Instant::now() + limit;
        let mut state = shared.state.lock();
        state.connect_requested = true;
        shared.wake_connectors(&state);
        loop {
            if state.closed {
                return Err(PoolError::Closed);
            }
            if state.total > 0 {
                return Ok(());
            }
            if shared
                .connected
                .wait_until(&mut state, deadline)
                .timed_out()
                && state.total == 0
            {
                let last = state.last_error.clone();
                return Err(PoolError::Connect(
                    last.unwrap_or_else(|| "no connection was made in time".into()),
                ));
            }
        }
    }

    /// A snapshot of counters and gauges.
    pub fn stats(&self) -> PoolStats {
        let shared = &self.handle.shared;
        let state = shared.state.lock();
        let mut stats = state.stats.clone();
        stats.waiters = state.waiters.len() as u64;
        stats.idle = state.idle.len() as u64;
        stats.in_use = state.in_use.len() as u64;
        stats.connecting = state.connecting as u64;
        stats.validating = state.validating as u64;
        stats.consecutive_failures = u64::from(state.consecutive_failures);
        stats.unavailable = state.unavailable;
        stats.closed = state.closed;
        stats.writer = match &shared.options.socket {
            Some(socket) => socket.display().to_string(),
            None => shared.nodes[state.writer].to_string(),
        };
        stats.nodes = shared
            .nodes
            .iter()
            .zip(&state.health)
            .map(|(node, health)| NodeStats {
                node: node.to_string(),
                healthy: health.is_healthy(),
                health: match health {
                    Health::Unknown => "not checked".into(),
                    Health::Healthy { .. } => "healthy".into(),
                    Health::Down { reason, .. } => format!("down ({reason})"),
                },
            })
            .collect();
        stats
    }

    /// The options the pool was built with.
    pub fn options(&self) -> &PoolOptions {
        &self.handle.shared.options
    }

    /// Closes the pool: waiters get `Closed`, new gets are refused, idle connections are
    /// closed now and checked-out ones (and ones being pinged) when they come back.
    pub fn close(&self) {
        self.handle.shared.close();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("options", &self.handle.shared.options)
            .finish_non_exhaustive()
    }
}

/// The user-facing owner: when the last `Pool` clone goes, the pool closes and its threads
/// end before the drop returns (see [`THREAD_EXIT_WAIT`]), so none outlives the pool's
/// owner (a program returning from `main` right after `vs_pool_free` leaves no pool thread
/// half-way through exiting).
struct Handle {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// How long dropping the last `Pool` clone waits for the pool's threads to end. They end
/// at once when idle; one busy in a connect or a ping ends when that returns (bounded by
/// the connect and I/O timeouts) and is left to end on its own after this wait.
pub const THREAD_EXIT_WAIT: Duration = Duration::from_secs(1);

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close();
        let all_ended = self.shared.await_threads_ended(THREAD_EXIT_WAIT);
        for thread in self.threads.drain(..) {
            // A thread whose body returned is only tearing down: join it; one still busy is
            // left detached. (The caller is never a pool thread: they hold no `Pool`. Nor
            // is `thread::current` used here: on a C thread it would allocate a handle that
            // lives until exit.)
            if all_ended || thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

/// State shared by pool handles, checked-out connections and background threads.
pub(crate) struct Shared {
    pub(crate) options: PoolOptions,
    /// Every node in order of preference (one without `more_nodes`).
    nodes: Vec<DbNode>,
    /// Connection options of the pool's connections, per node. With several nodes the
    /// handshake's read and write timeout is `connect_timeout` (a frozen node holds a
    /// connector no longer than that); `io_timeout` is set on the socket once connected.
    node_opts: Vec<mysql::Opts>,
    /// Connection options of the health checks, per node.
    health_opts: Vec<mysql::Opts>,
    /// Wakes a node's checker: evidence that it failed, or close.
    checker_wakeup: Vec<Condvar>,
    state: Mutex<State>,
    /// Wakes connector threads: a connection to ping, new demand, backoff over, or close.
    connector_wakeup: Condvar,
    /// Wakes the reaper on close.
    reaper_wakeup: Condvar,
    /// Signalled whenever a connection is opened.
    connected: Condvar,
    /// Holds back repeated connect-failure warnings of this pool.
    log_limit: RateLimit,
    /// Signalled when a pool thread's body returns.
    thread_ended: Condvar,
}

struct State {
    /// Idle connections; the back is the most recently returned.
    idle: VecDeque<Managed>,
    /// Callers waiting for a connection, oldest first.
    waiters: VecDeque<Arc<Waiter>>,
    /// Connections waiting for a connector thread to ping them before hand-out.
    to_validate: VecDeque<Managed>,
    /// Connections being validated: queued in `to_validate` or being pinged now.
    validating: usize,
    /// Open connections: idle, being validated, or checked out.
    total: usize,
    /// Connect attempts in flight.
    connecting: usize,
    /// Checked-out connections by id: when, where and by which thread they were taken.
    in_use: HashMap<u64, Checkout>,
    /// Call sites whose nested acquisition (self-deadlock) was already logged.
    nesting_reported: HashSet<&'static Location<'static>>,
    closed: bool,
    /// Set after `max_attempts` failures in a row; cleared by the next successful connect.
    unavailable: bool,
    consecutive_failures: u32,
    /// Why the last connect failed (server code, SQLSTATE, message).
    last_error: Option<ConnectError>,
    /// No connect attempt before this instant (backoff).
    next_attempt: Instant,
    /// Someone waits for a first connection even though `initial_size` may be zero.
    connect_requested: bool,
    /// Idle connections returned before this instant are pinged whatever their idle time:
    /// set when a connection is found broken, since its siblings likely are too.
    suspect_before: Instant,
    next_id: u64,
    /// Jitter for lifetimes and idle limits. The pool's own generator: `fastrand`'s global
    /// one is per thread and seeds itself with a thread handle that a C program's main thread
    /// keeps until exit (a nested get opens its connection on the caller's thread).
    rng: fastrand::Rng,
    stats: PoolStats,
    /// Pool threads whose body has not returned yet.
    threads_running: usize,
    /// Index in `Shared::nodes` of the node new connections go to.
    writer: usize,
    /// What the checks know about each node.
    health: Vec<Health>,
    /// Nodes whose checker should check now rather than at its interval.
    check_now: Vec<bool>,
    /// Nodes whose checker should check over a new connection (a connect to it failed).
    reconnect: Vec<bool>,
    /// When the first evidence that the writer is unhealthy came (cleared when it passes a check).
    writer_suspect_since: Option<Instant>,
    /// A failover happened; the instant its first evidence came. Cleared (and the
    /// duration recorded) when the first connection to the new writer opens.
    failover_pending: Option<Instant>,
    /// Connections being pinged now: id, node and socket (to cut on failover).
    pinging: Vec<(u64, usize, Option<PeerSocket>)>,
}

/// A connection plus what the pool knows about it.
pub(crate) struct Managed {
    pub(crate) conn: mysql::Conn,
    pub(crate) id: u64,
    /// Index of its node in `Shared::nodes`.
    node: usize,
    /// Its socket, to cut when its node fails (pools with several nodes only).
    socket: Option<PeerSocket>,
    /// When it expires (max lifetime minus jitter), if ever.
    expires: Option<Instant>,
    /// How long it may idle before the reaper closes it (idle timeout plus jitter).
    idle_limit: Option<Duration>,
    /// When it was last given back, or last answered a ping.
    idle_since: Instant,
    /// The schema selected on it, when it differs from the default (empty: unknown, after `USE`).
    pub(crate) schema: Option<String>,
    /// Statements prepared on it whose text leaves session state, by statement id: executing
    /// one again (in any checkout) marks the session.
    pub(crate) stmt_effects: Vec<(u32, SessionEffect)>,
}

impl Managed {
    /// Notes that the default schema may have changed to one the pool does not know.
    pub(crate) fn schema_unknown(&mut self) {
        self.schema = Some(String::new());
    }

    /// Remembers what a statement prepared on this connection may leave behind.
    pub(crate) fn remember_statement(&mut self, id: u32, effect: SessionEffect) {
        if effect != SessionEffect::None && self.statement_effect(id) == SessionEffect::None {
            self.stmt_effects.push((id, effect));
        }
    }

    /// What executing the prepared statement `id` may leave behind.
    pub(crate) fn statement_effect(&self, id: u32) -> SessionEffect {
        self.stmt_effects
            .iter()
            .find(|(s, _)| *s == id)
            .map_or(SessionEffect::None, |(_, effect)| *effect)
    }
}

struct Checkout {
    since: Instant,
    location: &'static Location<'static>,
    /// [`current_thread`] of the taker.
    thread: u64,
    reported: bool,
    /// Its node and socket, to cut when the node fails.
    node: usize,
    socket: Option<PeerSocket>,
}

/// Times a waiter yields the CPU, checking for a grant, before it sleeps.
const WAITER_YIELDS: usize = 16;

/// One caller waiting in `get()`; the pool fills `grant` (under the pool lock) and signals
/// `ready`, so a hand-off wakes exactly the caller it is meant for.
struct Waiter {
    ready: Condvar,
    grant: Mutex<Option<Result<Managed, PoolError>>>,
}

impl Waiter {
    fn give(&self, grant: Result<Managed, PoolError>) {
        *self.grant.lock() = Some(grant);
        self.ready.notify_one();
    }

    fn take(&self) -> Option<Result<Managed, PoolError>> {
        self.grant.lock().take()
    }

    /// Takes a grant that arrives within [`WAITER_YIELDS`] yields of the CPU.
    fn take_within_yields(&self) -> Option<Result<Managed, PoolError>> {
        for _ in 0..WAITER_YIELDS {
            std::thread::yield_now();
            if let Some(grant) = self.take() {
                return Some(grant);
            }
        }
        None
    }
}

/// Something to log, noted under the pool lock and written after it is released.
enum Event {
    PingFailed {
        id: u64,
    },
    Reachable {
        failures: u32,
    },
    ConnectFailed {
        attempt: u32,
        message: String,
        delay: Duration,
    },
    Unavailable {
        failures: u32,
    },
    Leak {
        id: u64,
        threshold: Duration,
        location: &'static Location<'static>,
    },
    NodeDown {
        node: String,
        reason: String,
    },
    NodeUp {
        node: String,
    },
    Failover {
        from: String,
        to: String,
        cause: String,
        /// Statements cut; `None`: left to finish (the node answers).
        cut: Option<usize>,
    },
    /// The first connection to the new writer opened, `took` after the failover's first
    /// sign.
    FailoverDone {
        to: String,
        took: Duration,
    },
    Failback {
        from: String,
        to: String,
        healthy_for: Duration,
    },
    SelfDeadlock {
        here: &'static Location<'static>,
        held_id: u64,
        held_at: &'static Location<'static>,
        in_use: usize,
        granted: bool,
        timeout: Duration,
    },
}

impl Event {
    fn log(&self, options: &PoolOptions, limit: &RateLimit) {
        match self {
            Event::PingFailed { id } => {
                log::info!("database connection {id} failed its ping; replacing it")
            }
            Event::Reachable { failures } => log::info!(
                "database {} reachable again after {failures} failed connects",
                options.endpoint()
            ),
            Event::ConnectFailed {
                attempt: 1,
                message,
                ..
            } => limit.warn(
                "database connect failed",
                format_args!(
                    "cannot connect to database {}: {message}; retrying with backoff",
                    options.endpoint()
                ),
            ),
            Event::ConnectFailed {
                attempt,
                message,
                delay,
            } => log::debug!(
                "connect attempt {attempt} to {} failed: {message}; next in {delay:?}",
                options.endpoint()
            ),
            Event::Unavailable { failures } => limit.warn(
                "database unavailable",
                format_args!(
                    "database {} unavailable after {failures} failed connects; failing fast until it answers",
                    options.endpoint()
                ),
            ),
            Event::Leak {
                id,
                threshold,
                location,
            } => log::warn!(
                "database connection {id} held for more than {threshold:?}; taken at {location}"
            ),
            Event::NodeDown { node, reason } => {
                log::warn!("database node {node} is unhealthy: {reason}")
            }
            Event::NodeUp { node } => log::info!("database node {node} is healthy again"),
            Event::Failover {
                from,
                to,
                cause,
                cut,
            } => {
                let in_flight = match cut {
                    Some(cut) => format!("{cut} statements in flight on {from} cut"),
                    None => format!("statements in flight on {from} finish there"),
                };
                log::warn!(
                    "database failover: writer {from} is unhealthy ({cause}); writing through \
                     {to} now ({in_flight})"
                )
            }
            Event::FailoverDone { to, took } => log::info!(
                "database failover to {to} done: its first connection opened {took:.3?} after \
                 the first sign the old writer was unhealthy"
            ),
            Event::Failback {
                from,
                to,
                healthy_for,
            } => log::info!(
                "database failback: {to} healthy for {healthy_for:?}; writing through it again \
                 instead of {from} (connections to {from} close when given back)"
            ),
            Event::SelfDeadlock {
                here,
                held_id,
                held_at,
                in_use,
                granted,
                timeout,
            } => {
                let outcome = if *granted {
                    "it gets a connection beyond the pool's maximum (nested_overflow)".to_string()
                } else {
                    format!(
                        "it waits up to {timeout:?} for a connection only another thread can return"
                    )
                };
                log::warn!(
                    "self-deadlock: a thread holding database connection {held_id} (taken at \
                     {held_at}) asks for another at {here} while all {in_use} are in use \
                     (max_size {}); {outcome}. Logged once for this call site.",
                    options.max_size
                )
            }
        }
    }
}

/// What to do once the pool lock is released: log, and close connections (I/O).
#[derive(Default)]
struct Aftermath {
    events: Vec<Event>,
    closing: Vec<Managed>,
}

impl Shared {
    fn new(options: PoolOptions) -> Shared {
        let now = Instant::now();
        let nodes = options.nodes();
        let count = nodes.len();
        Shared {
            node_opts: nodes
                .iter()
                .map(|n| {
                    if count > 1 {
                        options.handshake_opts(n)
                    } else {
                        options.node_opts(n)
                    }
                })
                .collect(),
            health_opts: nodes.iter().map(|n| options.health_opts(n)).collect(),
            checker_wakeup: (0..count).map(|_| Condvar::new()).collect(),
            nodes,
            options,
            state: Mutex::new(State {
                idle: VecDeque::new(),
                waiters: VecDeque::new(),
                to_validate: VecDeque::new(),
                validating: 0,
                total: 0,
                connecting: 0,
                in_use: HashMap::new(),
                nesting_reported: HashSet::new(),
                closed: false,
                unavailable: false,
                consecutive_failures: 0,
                last_error: None,
                next_attempt: now,
                connect_requested: false,
                suspect_before: now,
                next_id: 1,
                rng: fastrand::Rng::with_seed(random_seed()),
                stats: PoolStats::default(),
                threads_running: 0,
                writer: 0,
                health: vec![Health::Unknown; count],
                check_now: vec![false; count],
                reconnect: vec![false; count],
                writer_suspect_since: None,
                failover_pending: None,
                pinging: Vec::new(),
            }),
            connector_wakeup: Condvar::new(),
            reaper_wakeup: Condvar::new(),
            connected: Condvar::new(),
            log_limit: RateLimit::new(WINDOW),
            thread_ended: Condvar::new(),
        }
    }

    fn spawn_thread(
        self: &Arc<Self>,
        name: String,
        body: impl FnOnce(&Shared) + Send + 'static,
    ) -> Result<std::thread::JoinHandle<()>, PoolError> {
        let shared = Arc::clone(self);
        self.state.lock().threads_running += 1;
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            body(&shared);
            shared.state.lock().threads_running -= 1;
            shared.thread_ended.notify_all();
        });
        spawned.map_err(|e| {
            self.state.lock().threads_running -= 1;
            PoolError::InvalidOptions(format!("cannot start pool thread: {e}"))
        })
    }

    /// Waits until every pool thread's body has returned, at most `limit`; whether they did.
    fn await_threads_ended(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock();
        while state.threads_running > 0 {
            if self
                .thread_ended
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return state.threads_running == 0;
            }
        }
        true
    }

    /// Logs and closes what `after` holds with the pool lock released.
    fn settle(&self, state: &mut MutexGuard<'_, State>, after: Aftermath) {
        if after.events.is_empty() && after.closing.is_empty() {
            return;
        }
        MutexGuard::unlocked(state, || {
            for event in &after.events {
                event.log(&self.options, &self.log_limit);
            }
            drop(after.closing); // COM_QUIT for each: I/O
        });
    }

    fn get(
        self: &Arc<Self>,
        timeout: Duration,
        location: &'static Location<'static>,
    ) -> Result<PooledConn, PoolError> {
        let started = Instant::now();
        let mut state = self.state.lock();
        if state.closed {
            return Err(PoolError::Closed);
        }
        // Fast path: nobody queued ahead of us and a connection is idle and fresh.
        if state.waiters.is_empty()
            && state
                .idle
                .back()
                .is_some_and(|managed| !self.needs_ping(managed, &state))
        {
            let managed = state.idle.pop_back().expect("idle.back() was just seen");
            state.stats.record_wait(started.elapsed());
            return Ok(self.check_out(&mut state, managed, location));
        }
        // Waiting only makes sense while something can still come.
        if state.unavailable && state.idle.is_empty() && state.validating == 0 {
            state.stats.fast_failures += 1;
            state.stats.record_wait(started.elapsed());
            return Err(self.unavailable_error(&state));
        }
        if let Some(outcome) = self.nested_request(&mut state, timeout, started, location) {
            return outcome;
        }
        // `nested_request` may have released the lock to log: the pool may have closed.
        if state.closed {
            return Err(PoolError::Closed);
        }
        let waiter = Arc::new(Waiter {
            ready: Condvar::new(),
            grant: Mutex::new(None),
        });
        state.waiters.push_back(Arc::clone(&waiter));
        state.stats.peak_waiters = state.stats.peak_waiters.max(state.waiters.len() as u64);
        // Serves us at once if an idle connection needs no ping, else starts its ping.
        self.balance(&mut state);
        // A connection often comes back within microseconds; a waiter that is still
        // runnable takes it without the cross-CPU wake-up a sleeping one needs. A few yields,
        // then sleep: bounded, and the CPU goes to the threads holding connections.
        if let Some(grant) = MutexGuard::unlocked(&mut state, || waiter.take_within_yields()) {
            return self.accept(&mut state, grant, started, location);
        }
        // Whatever happens to the connections (a ping hanging on a stopped server, a
        // connect timing out), this thread waits only here, and never past the deadline.
        let deadline = started.checked_add(timeout);
        loop {
            if let Some(grant) = waiter.take() {
                return self.accept(&mut state, grant, started, location);
            }
            let timed_out = match deadline {
                Some(deadline) => waiter.ready.wait_until(&mut state, deadline).timed_out(),
                None => {
                    waiter.ready.wait(&mut state);
                    false
                }
            };
            if timed_out {
                // A grant may have arrived together with the timeout: prefer it.
                if let Some(grant) = waiter.take() {
                    return self.accept(&mut state, grant, started, location);
                }
                state.waiters.retain(|w| !Arc::ptr_eq(w, &waiter));
                let waited = started.elapsed();
                state.stats.timeouts += 1;
                state.stats.record_wait(waited);
                return Err(PoolError::Timeout {
                    waited,
                    in_use: state.in_use.len(),
                    max_size: self.options.max_size,
                    last_error: state.last_error.clone(),
                });
            }
        }
    }

    /// Turns what a waiter was granted into the result of its `get()`.
    fn accept(
        self: &Arc<Self>,
        state: &mut MutexGuard<'_, State>,
        grant: Result<Managed, PoolError>,
        started: Instant,
        location: &'static Location<'static>,
    ) -> Result<PooledConn, PoolError> {
        state.stats.record_wait(started.elapsed());
        match grant {
            Ok(managed) if state.closed => {
                // Granted just before `close()`: a closed pool hands nothing out.
                self.forget_locked(state, CloseReason::Shutdown);
                self.settle(
                    state,
                    Aftermath {
                        closing: vec![managed],
                        ..Aftermath::default()
                    },
                );
                Err(PoolError::Closed)
            }
            Ok(managed) => Ok(self.check_out(state, managed, location)),
            Err(err) => {
                if matches!(err, PoolError::Unavailable { .. }) {
                    state.stats.fast_failures += 1;
                }
                Err(err)
            }
        }
    }

    /// Handles a self-deadlock: this thread holds a connection and the pool can neither
    /// hand out nor open another, so only a return can serve it. Logs it (once per call
    /// site), counts it, and opens a connection beyond `max_size` when `nested_overflow`
    /// allows one (`Some` outcome); `None`: wait like any caller.
    fn nested_request(
        self: &Arc<Self>,
        state: &mut MutexGuard<'_, State>,
        timeout: Duration,
        started: Instant,
        location: &'static Location<'static>,
    ) -> Option<Result<PooledConn, PoolError>> {
        let max_size = self.options.max_size;
        if !state.idle.is_empty() || state.total + state.connecting < max_size {
            return None;
        }
        let me = current_thread();
        if me == 0 {
            return None;
        }
        let (held_id, held_at) = state
            .in_use
            .iter()
            .find(|(_, checkout)| checkout.thread == me)
            .map(|(id, checkout)| (*id, checkout.location))?;
        state.stats.self_deadlocks += 1;
        let granted =
            state.total + state.connecting < max_size.saturating_add(self.options.nested_overflow);
        let event = state
            .nesting_reported
            .insert(location)
            .then(|| Event::SelfDeadlock {
                here: location,
                held_id,
                held_at,
                in_use: state.in_use.len(),
                granted,
                timeout,
            });
        if !granted {
            if let Some(event) = event {
                MutexGuard::unlocked(state, || event.log(&self.options, &self.log_limit));
            }
            return None;
        }
        // Reserved under the lock, so concurrent nested requests stay within the bound.
        state.connecting += 1;
        let node = state.writer;
        let opened = MutexGuard::unlocked(state, || {
            if let Some(event) = event {
                event.log(&self.options, &self.log_limit);
            }
            self.open(node)
        });
        state.connecting -= 1;
        state.stats.record_wait(started.elapsed());
        let conn = match opened {
            Ok(conn) => conn,
            Err(cause) => {
                state.stats.connect_failures += 1;
                self.note_evidence(state, node, Evidence::ConnectFailed);
                self.balance(state);
                return Some(Err(PoolError::Connect(cause)));
            }
        };
        state.total += 1;
        state.stats.created += 1;
        let managed = self.manage(conn, node, state);
        if state.closed {
            self.forget_locked(state, CloseReason::Shutdown);
            let after = Aftermath {
                closing: vec![managed],
                ..Aftermath::default()
            };
            self.settle(state, after);
            return Some(Err(PoolError::Closed));
        }
        state.stats.nested_grants += 1;
        Some(Ok(self.check_out(state, managed, location)))
    }

    fn needs_ping(&self, managed: &Managed, state: &State) -> bool {
        managed.idle_since < state.suspect_before
            || managed.idle_since.elapsed() > self.options.ping_bypass
    }

    fn check_out(
        self: &Arc<Self>,
        state: &mut MutexGuard<'_, State>,
        managed: Managed,
        location: &'static Location<'static>,
    ) -> PooledConn {
        let now = Instant::now();
        state.stats.checkouts += 1;
        state.in_use.insert(
            managed.id,
            Checkout {
                since: now,
                location,
                thread: current_thread(),
                reported: false,
                node: managed.node,
                socket: managed.socket,
            },
        );
        PooledConn::new(managed, Arc::clone(self), now)
    }

    /// Takes back a connection from `PooledConn::drop`; `close` says why it cannot be reused.
    pub(crate) fn give_back(
        &self,
        mut managed: Managed,
        checked_out: Instant,
        close: Option<CloseReason>,
    ) {
        let now = Instant::now();
        let expired = managed.expires.is_some_and(|at| now >= at);
        let mut state = self.state.lock();
        state.stats.record_hold(now - checked_out);
        state.in_use.remove(&managed.id);
        let reason = if close.is_some() {
            close
        } else if state.closed {
            Some(CloseReason::Shutdown)
        } else if managed.node != state.writer {
            // Failover or failback since it was taken: new work goes to the writer.
            Some(CloseReason::NotWriter)
        } else if state.total > self.options.max_size {
            // Opened beyond max_size for a nested request: the pool shrinks back.
            Some(CloseReason::Overflow)
        } else if expired {
            Some(CloseReason::Lifetime)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.forget_locked(&mut state, reason);
            if reason == CloseReason::Broken {
                state.suspect_before = now;
                self.note_evidence(&mut state, managed.node, Evidence::Broken);
            }
            drop(state);
            drop(managed); // sends COM_QUIT: outside the lock
            return;
        }
        managed.idle_since = now;
        state.idle.push_back(managed);
        self.balance(&mut state);
    }

    /// Matches supply to demand: idle connections go to the oldest waiters (through a
    /// ping on a connector thread when they idled too long), waiters nothing can serve
    /// fail while the database is unavailable, and connectors start what is missing.
    fn balance(&self, state: &mut State) {
        while state.waiters.len() > state.validating {
            let Some(managed) = state.idle.pop_back() else {
                break;
            };
            if self.needs_ping(&managed, state) {
                state.validating += 1;
                state.to_validate.push_back(managed);
                self.connector_wakeup.notify_one();
            } else {
                self.grant(state, managed);
            }
        }
        if state.unavailable && state.idle.is_empty() {
            let error = self.unavailable_error(state);
            while state.waiters.len() > state.validating {
                // The newest give up first; the oldest keep their places for the pings.
                if let Some(waiter) = state.waiters.pop_back() {
                    waiter.give(Err(error.clone()));
                }
            }
        }
        self.wake_connectors(state);
    }

    /// Gives a usable connection to the oldest waiter, or parks it as idle.
    fn grant(&self, state: &mut State, managed: Managed) {
        match state.waiters.pop_front() {
            Some(waiter) => waiter.give(Ok(managed)),
            None => state.idle.push_back(managed),
        }
    }

    /// Accounts for a connection leaving the pool and asks for a replacement if needed.
    fn forget_locked(&self, state: &mut State, reason: CloseReason) {
        state.total -= 1;
        state.stats.count_close(reason);
        self.wake_connectors(state);
    }

    fn wake_connectors(&self, state: &State) {
        if self.wants_connect(state) {
            self.connector_wakeup.notify_one();
        }
    }

    /// Whether another connect should start (ignoring backoff timing).
    fn wants_connect(&self, state: &State) -> bool {
        if state.closed || state.connecting >= self.options.max_connecting {
            return false;
        }
        if state.total + state.connecting >= self.options.max_size {
            return false;
        }
        if state.consecutive_failures > 0 && state.connecting > 0 {
            // While connects fail, one attempt at a time: parallel connectors waking at the
            // same backoff instant would retry faster than the schedule.
            return false;
        }
        if state.unavailable {
            // One probe per backoff interval while the database is unavailable.
            return true;
        }
        state.waiters.len() > state.connecting + state.validating
            || state.total + state.connecting < self.options.initial_size
            || (state.connect_requested && state.total + state.connecting == 0)
    }

    /// Opens a new connection to node `node` (I/O: never under the pool lock).
    fn open(&self, node: usize) -> Result<mysql::Conn, ConnectError> {
        let conn = mysql::Conn::new(self.node_opts[node].clone())
            .map_err(|e| ConnectError::from_mysql(&e))?;
        if self.nodes.len() > 1 {
            // The handshake ran with `connect_timeout`; statements get `io_timeout`.
            socket::set_io_timeout(&conn, self.options.io_timeout).map_err(|e| {
                ConnectError::from(format!("cannot set the socket timeouts: {e}").as_str())
            })?;
        }
        Ok(conn)
    }

    /// Opens a connection to the first node in list order that accepts one (start-up);
    /// the error is the last node's.
    fn open_first(&self) -> Result<(mysql::Conn, usize), ConnectError> {
        let mut last = None;
        for node in 0..self.nodes.len() {
            match self.open(node) {
                Ok(conn) => return Ok((conn, node)),
                Err(cause) => last = Some(cause),
            }
        }
        Err(last.unwrap_or_else(|| "no database node configured".into()))
    }

    /// Body of a connector thread: ping connections before hand-out, and open connections
    /// on demand, backing off on failure.
    fn connector_loop(&self) {
        let mut state = self.state.lock();
        loop {
            if state.closed {
                return;
            }
            if let Some(managed) = state.to_validate.pop_front() {
                self.validate(&mut state, managed);
                continue;
            }
            if !self.wants_connect(&state) {
                self.connector_wakeup.wait(&mut state);
                continue;
            }
            if Instant::now() < state.next_attempt {
                let until = state.next_attempt;
                self.connector_wakeup.wait_until(&mut state, until);
                continue;
            }
            state.connecting += 1;
            let node = state.writer;
            let result = MutexGuard::unlocked(&mut state, || self.open(node));
            state.connecting -= 1;
            let after = match result {
                Ok(conn) => self.on_connected(&mut state, conn, node),
                Err(message) => self.on_connect_failed(&mut state, message, node),
            };
            self.settle(&mut state, after);
        }
    }

    /// Pings a connection that idled too long (lock released meanwhile) and hands it to
    /// the oldest waiter, or replaces it when it does not answer.
    fn validate(&self, state: &mut MutexGuard<'_, State>, mut managed: Managed) {
        if managed.node != state.writer {
            // Queued before a failover or failback: not pinged (its node may hang), closed.
            state.validating -= 1;
            self.forget_locked(state, CloseReason::NotWriter);
            self.balance(state);
            let after = Aftermath {
                closing: vec![managed],
                ..Aftermath::default()
            };
            self.settle(state, after);
            return;
        }
        state
            .pinging
            .push((managed.id, managed.node, managed.socket));
        let alive = MutexGuard::unlocked(state, || managed.conn.ping().is_ok());
        state.pinging.retain(|(id, _, _)| *id != managed.id);
        state.validating -= 1;
        state.stats.pings += 1;
        let mut after = Aftermath::default();
        if state.closed {
            self.forget_locked(state, CloseReason::Shutdown);
            after.closing.push(managed);
        } else if managed.node != state.writer {
            self.forget_locked(state, CloseReason::NotWriter);
            after.closing.push(managed);
        } else if alive {
            managed.idle_since = Instant::now();
            self.grant(state, managed);
        } else {
            self.forget_locked(state, CloseReason::Broken);
            state.suspect_before = Instant::now();
            self.note_evidence(state, managed.node, Evidence::Broken);
            after.events.push(Event::PingFailed { id: managed.id });
            after.closing.push(managed);
        }
        self.balance(state);
        self.settle(state, after);
    }

    fn on_connected(&self, state: &mut State, conn: mysql::Conn, node: usize) -> Aftermath {
        let mut after = Aftermath::default();
        if state.closed || node != state.writer {
            // Counted as created and closed at once, so the totals stay consistent.
            state.total += 1;
            state.stats.created += 1;
            let managed = self.manage(conn, node, state);
            let reason = if state.closed {
                CloseReason::Shutdown
            } else {
                CloseReason::NotWriter
            };
            self.forget_locked(state, reason);
            after.closing.push(managed);
            return after;
        }
        if let Some(event) = self.note_connect_success(state) {
            after.events.push(event);
        }
        if let Some(since) = state.failover_pending.take() {
            let took = since.elapsed();
            state.stats.last_failover = Some(took);
            after.events.push(Event::FailoverDone {
                to: self.options.nodes()[node].to_string(),
                took,
            });
        }
        state.total += 1;
        state.stats.created += 1;
        let managed = self.manage(conn, node, state);
        self.grant(state, managed);
        self.connected.notify_all();
        self.balance(state);
        after
    }

    /// Ends a run of failures: available again, and no backoff left to wait (so the refill
    /// to `initial_size` starts at once).
    fn note_connect_success(&self, state: &mut State) -> Option<Event> {
        let event = (state.consecutive_failures > 0).then_some(Event::Reachable {
            failures: state.consecutive_failures,
        });
        state.unavailable = false;
        state.connect_requested = false;
        state.consecutive_failures = 0;
        state.last_error = None;
        state.next_attempt = Instant::now();
        event
    }

    fn on_connect_failed(&self, state: &mut State, cause: ConnectError, node: usize) -> Aftermath {
        let mut after = Aftermath::default();
        self.note_evidence(state, node, Evidence::ConnectFailed);
        if self.nodes.len() > 1
            && node == state.writer
            && !state.health.iter().any(Health::is_healthy)
        {
            // No node known healthy: the next connect tries the next node in list order.
            let to = writer::next_to_try(node, self.nodes.len());
            self.move_writer(state, to, false, &mut after);
        }
        state.stats.connect_failures += 1;
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        // The pool's own generator: this may run on the caller's thread (`TryOnce`), where
        // fastrand's global one would keep a thread handle until a C program exits.
        let unit = state.rng.f64();
        let delay = self
            .options
            .backoff
            .delay_with(state.consecutive_failures, unit);
        // Never shorten a wait already scheduled (another connector's failure may have
        // drawn a longer one).
        state.next_attempt = state.next_attempt.max(Instant::now() + delay);
        after.events.push(Event::ConnectFailed {
            attempt: state.consecutive_failures,
            message: cause.message.clone(),
            delay,
        });
        state.last_error = Some(cause);
        // Every node gets `max_attempts` tries before `get()` fails fast.
        let attempts = self
            .options
            .max_attempts
            .saturating_mul(self.nodes.len() as u32);
        if !state.unavailable && state.consecutive_failures >= attempts {
            state.unavailable = true;
            after.events.push(Event::Unavailable {
                failures: state.consecutive_failures,
            });
        }
        self.balance(state);
        after
    }

    fn unavailable_error(&self, state: &State) -> PoolError {
        PoolError::Unavailable {
            last_error: state
                .last_error
                .clone()
                .unwrap_or_else(|| "no connection could be made".into()),
        }
    }

    /// Wraps a new connection with its id, lifetime and idle limit (each with jitter).
    fn manage(&self, conn: mysql::Conn, node: usize, state: &mut State) -> Managed {
        // Only a pool with several nodes ever cuts a socket.
        let socket = if self.nodes.len() > 1 {
            PeerSocket::of(&conn)
        } else {
            None
        };
        let id = state.next_id;
        state.next_id += 1;
        let now = Instant::now();
        let lifetime = self.options.max_lifetime;
        let idle = self.options.idle_timeout;
        Managed {
            conn,
            id,
            expires: (!lifetime.is_zero())
                .then(|| now + lifetime - lifetime.mul_f64(state.rng.f64() * 0.1)),
            idle_limit: (!idle.is_zero()).then(|| idle + idle.mul_f64(state.rng.f64() * 0.1)),
            idle_since: now,
            schema: None,
            stmt_effects: Vec::new(),
            node,
            socket,
        }
    }

    /// Body of the reaper thread: close expired idle connections and report leaks.
    fn reaper_loop(&self) {
        let interval = self.reaper_interval();
        let mut state = self.state.lock();
        loop {
            if state.closed {
                return;
            }
            let deadline = Instant::now() + interval;
            self.reaper_wakeup.wait_until(&mut state, deadline);
            if state.closed {
                return;
            }
            let after = Aftermath {
                closing: self.take_expired(&mut state),
                events: self.find_leaks(&mut state),
            };
            self.settle(&mut state, after);
        }
    }

    fn reaper_interval(&self) -> Duration {
        let mut shortest = self.options.leak_threshold;
        for limit in [self.options.idle_timeout, self.options.max_lifetime] {
            if !limit.is_zero() {
                shortest = shortest.min(limit);
            }
        }
        (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(30))
    }

    /// Removes idle connections past their lifetime, and past their idle limit while
    /// more than `initial_size` are open.
    fn take_expired(&self, state: &mut State) -> Vec<Managed> {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut kept = VecDeque::with_capacity(state.idle.len());
        while let Some(managed) = state.idle.pop_front() {
            let too_old = managed.expires.is_some_and(|at| now >= at);
            let too_idle = managed
                .idle_limit
                .is_some_and(|limit| now - managed.idle_since >= limit)
                && state.total > self.options.initial_size;
            if too_old || too_idle {
                let reason = if too_old {
                    CloseReason::Lifetime
                } else {
                    CloseReason::Idle
                };
                self.forget_locked(state, reason);
                expired.push(managed);
            } else {
                kept.push_back(managed);
            }
        }
        state.idle = kept;
        expired
    }

    /// Connections held past the leak threshold and not reported yet (each once).
    fn find_leaks(&self, state: &mut State) -> Vec<Event> {
        let threshold = self.options.leak_threshold;
        let mut leaks = Vec::new();
        for (id, checkout) in state.in_use.iter_mut() {
            if !checkout.reported && checkout.since.elapsed() > threshold {
                checkout.reported = true;
                leaks.push(Event::Leak {
                    id: *id,
                    threshold,
                    location: checkout.location,
                });
            }
        }
        leaks
    }

    fn close(&self) {
        let mut state = self.state.lock();
        if state.closed {
            return;
        }
        state.closed = true;
        for waiter in state.waiters.drain(..) {
            waiter.give(Err(PoolError::Closed));
        }
        let mut closing: Vec<Managed> = state.idle.drain(..).collect();
        let queued: Vec<Managed> = state.to_validate.drain(..).collect();
        state.validating -= queued.len();
        closing.extend(queued);
        for _ in &closing {
            state.total -= 1;
            state.stats.count_close(CloseReason::Shutdown);
        }
        self.connector_wakeup.notify_all();
        self.reaper_wakeup.notify_all();
        self.connected.notify_all();
        for wakeup in &self.checker_wakeup {
            wakeup.notify_all();
        }
        drop(state);
        drop(closing);
    }
}

/// A random seed from the standard library's per-process hash keys (no thread handle).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// A number for the calling thread, unique for the process's life (never reused, unlike a
/// thread-local's address); 0 once the thread's locals are destroyed. Cheaper than
/// `std::thread::current()`, which allocates a handle kept until the thread exits (never,
/// for a C program's main thread).
fn current_thread() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    ID.try_with(|id| *id).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_get_distinct_numbers() {
        let here = current_thread();
        assert_ne!(here, 0);
        assert_eq!(current_thread(), here);
        let there = std::thread::spawn(current_thread).join().unwrap();
        assert_ne!(there, here);
    }

    fn shared() -> Shared {
        Shared::new(PoolOptions {
            backoff: Backoff {
                base: Duration::from_millis(100),
                cap: Duration::from_millis(100),
            },
            max_size: 4,
            initial_size: 3,
            ..PoolOptions::default()
        })
    }

    #[test]
    fn a_failure_never_shortens_a_scheduled_backoff() {
        let shared = shared();
        let mut state = shared.state.lock();
        let later = Instant::now() + Duration::from_secs(10);
        state.next_attempt = later;
        let _ = shared.on_connect_failed(&mut state, "refused".into(), 0);
        assert_eq!(state.next_attempt, later);
    }

    #[test]
    fn a_failure_schedules_the_next_attempt_after_its_delay() {
        let shared = shared();
        let mut state = shared.state.lock();
        let before = Instant::now();
        let _ = shared.on_connect_failed(&mut state, "refused".into(), 0);
        assert!(state.next_attempt >= before + Duration::from_millis(100));
        assert_eq!(state.consecutive_failures, 1);
        assert_eq!(state.last_error.as_deref(), Some("refused"));
    }

    #[test]
    fn a_success_clears_the_backoff() {
        let shared = shared();
        let mut state = shared.state.lock();
        let _ = shared.on_connect_failed(&mut state, "refused".into(), 0);
        assert!(state.next_attempt > Instant::now());
        let event = shared.note_connect_success(&mut state);
        assert!(matches!(event, Some(Event::Reachable { failures: 1 })));
        assert!(state.next_attempt <= Instant::now());
        assert_eq!(state.consecutive_failures, 0);
    }

    #[test]
    fn only_one_connect_at_a_time_while_connects_fail() {
        let shared = shared();
        let mut state = shared.state.lock();
        // Two connections short of initial_size, one connect in flight.
        state.total = 1;
        state.connecting = 1;
        assert!(
            shared.wants_connect(&state),
            "a second connect while healthy"
        );
        state.consecutive_failures = 1;
        assert!(!shared.wants_connect(&state));
        state.connecting = 0;
        assert!(shared.wants_connect(&state));
    }
}
