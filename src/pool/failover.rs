//! Several database nodes: each node's checker thread, the evidence the pool itself sees,
//! and moving the writer (failover and failback), with the statements on a failed writer
//! cut. The decisions themselves are pure functions in `writer.rs` and `health.rs`.

use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

use super::writer::{self, Choice, Health};
use super::{health, Aftermath, CloseReason, Event, Managed, Shared, State};

/// What the pool saw that suggests a node failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Evidence {
    /// A connect to it failed.
    ConnectFailed,
    /// A connection to it broke (a ping or statement failed with a connection error).
    Broken,
}

impl Shared {
    /// Something the pool saw suggests node `node` failed (a connect failed, a connection
    /// broke): its checker checks now instead of at its next interval.
    pub(super) fn note_evidence(&self, state: &mut State, node: usize, evidence: Evidence) {
        if self.nodes.len() < 2 {
            return;
        }
        if node == state.writer && state.writer_suspect_since.is_none() {
            state.writer_suspect_since = Some(Instant::now());
        }
        state.check_now[node] = true;
        if evidence == Evidence::ConnectFailed {
            // The checker's open connection says nothing about new ones (a node at its
            // connection limit keeps answering on it): check with a new connection.
            state.reconnect[node] = true;
        }
        self.checker_wakeup[node].notify_one();
    }

    /// Body of node `node`'s checker thread: check every `health_interval` (or at once on
    /// evidence) over a connection of its own, record the outcome, and move the writer.
    pub(super) fn checker_loop(&self, node: usize) {
        let interval = self.options.health_interval;
        let mut conn: Option<mysql::Conn> = None;
        let mut state = self.state.lock();
        let mut next_check = Instant::now();
        loop {
            if state.closed {
                break;
            }
            if !state.check_now[node] && Instant::now() < next_check {
                self.checker_wakeup[node].wait_until(&mut state, next_check);
                continue;
            }
            state.check_now[node] = false;
            let reconnect = std::mem::take(&mut state.reconnect[node]);
            let opts = &self.health_opts[node];
            let outcome = MutexGuard::unlocked(&mut state, || {
                if reconnect {
                    drop(conn.take()); // COM_QUIT: I/O, with the lock released
                }
                health::check(&mut conn, opts)
            });
            next_check = Instant::now() + interval;
            if state.closed {
                break;
            }
            let after = self.observe(&mut state, node, outcome);
            self.settle(&mut state, after);
        }
        // Closed with the lock released: COM_QUIT is I/O.
        MutexGuard::unlocked(&mut state, || drop(conn));
    }

    /// Records one check of node `node` and moves the writer if that changes the choice.
    pub(super) fn observe(
        &self,
        state: &mut State,
        node: usize,
        outcome: Result<(), health::Failure>,
    ) -> Aftermath {
        let mut after = Aftermath::default();
        let now = Instant::now();
        let name = || self.nodes[node].to_string();
        match outcome {
            Ok(()) => {
                if !state.health[node].is_healthy() {
                    if matches!(state.health[node], Health::Down { .. }) {
                        after.events.push(Event::NodeUp { node: name() });
                    }
                    state.health[node] = Health::Healthy { since: now };
                }
                if node == state.writer {
                    state.writer_suspect_since = None;
                }
            }
            Err(health::Failure {
                reason,
                unreachable,
            }) => {
                // Logged when the node goes down, not at every failed check while it stays down.
                if !matches!(state.health[node], Health::Down { .. }) {
                    after.events.push(Event::NodeDown {
                        node: name(),
                        reason: reason.clone(),
                    });
                }
                if node == state.writer && state.writer_suspect_since.is_none() {
                    state.writer_suspect_since = Some(now);
                }
                state.health[node] = Health::Down {
                    reason,
                    unreachable,
                };
            }
        }
        let from = state.writer;
        match writer::choose(from, &state.health, now, self.options.failback_delay) {
            Choice::Stay => {}
            Choice::Failover { to } => {
                let (cause, unreachable) = match &state.health[from] {
                    Health::Down {
                        reason,
                        unreachable,
                    } => (reason.clone(), *unreachable),
                    _ => ("unhealthy".into(), true),
                };
                state.stats.failovers += 1;
                state.failover_pending = Some(state.writer_suspect_since.unwrap_or(now));
                // Statements on a dead or hung node are cut; on a node that answers but is
                // not synced (a donor, say) they finish, and close when given back.
                let cut = if unreachable {
                    Some(self.cut_sockets(state, from))
                } else {
                    None
                };
                self.move_writer(state, to, true, &mut after);
                after.events.push(Event::Failover {
                    from: self.nodes[from].to_string(),
                    to: self.nodes[to].to_string(),
                    cause,
                    cut,
                });
            }
            Choice::Failback { to } => {
                let healthy_for = match state.health[to] {
                    Health::Healthy { since } => now.saturating_duration_since(since),
                    _ => Duration::ZERO,
                };
                state.stats.failbacks += 1;
                self.move_writer(state, to, true, &mut after);
                after.events.push(Event::Failback {
                    from: self.nodes[from].to_string(),
                    to: self.nodes[to].to_string(),
                    healthy_for,
                });
            }
        }
        after
    }

    /// Makes node `to` the writer: idle connections (all to the old writer) are closed and
    /// checked-out ones close when given back. With `fresh` (a healthy node takes over)
    /// connects start at once, without the backoff and failure count of the old writer;
    /// without (trying the next node while none is known healthy) the backoff goes on.
    pub(super) fn move_writer(
        &self,
        state: &mut State,
        to: usize,
        fresh: bool,
        after: &mut Aftermath,
    ) {
        if state.writer == to {
            return;
        }
        state.writer = to;
        state.writer_suspect_since = None;
        let idle: Vec<Managed> = state.idle.drain(..).collect();
        for _ in &idle {
            self.forget_locked(state, CloseReason::NotWriter);
        }
        after.closing.extend(idle);
        if fresh {
            state.consecutive_failures = 0;
            state.unavailable = false;
            state.next_attempt = Instant::now();
        }
        self.balance(state);
        self.wake_connectors(state);
    }

    /// Cuts the sockets of connections to `node` that are checked out or being pinged, so
    /// statements hung on it fail now; they are discarded when given back. Done under the
    /// pool lock: a connection in `in_use` cannot be closed (its descriptor reused) before
    /// its give-back takes the lock, and `PeerSocket::cut` confirms the peer besides.
    pub(super) fn cut_sockets(&self, state: &mut State, node: usize) -> usize {
        let mut cut = 0;
        let checked_out = state
            .in_use
            .values()
            .filter(|c| c.node == node)
            .filter_map(|c| c.socket);
        let pinging = state
            .pinging
            .iter()
            .filter(|(_, n, _)| *n == node)
            .filter_map(|(_, _, s)| *s);
        for socket in checked_out.chain(pinging) {
            if socket.cut() {
                cut += 1;
            }
        }
        state.stats.cut_sockets += cut as u64;
        cut
    }
}
