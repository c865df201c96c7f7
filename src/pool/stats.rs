//! Counters and gauges the pool keeps, and the snapshot `Pool::stats()` returns.

use std::time::Duration;

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A ping, a statement or the clean-up on return failed with a connection error.
    Broken,
    /// It sat idle longer than the idle timeout.
    Idle,
    /// It reached its maximum lifetime.
    Lifetime,
    /// The clean-up on return failed on the server's side, or the session held state the
    /// clean-up cannot undo (XA, backup locks).
    Error,
    /// The pool was closed.
    Shutdown,
    /// It came back while more than `max_size` were open (one opened for a nested request).
    Overflow,
    /// Its node is no longer the writer (failover or failback).
    NotWriter,
}

/// One node's health as the pool's checks see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// `host:port`.
    pub node: String,
    /// Whether its last check passed.
    pub healthy: bool,
    /// `healthy`, `not checked` (before the first check; always with one node, which has
    /// no checker) or why not: the connect or query error, or the Galera state, e.g.
    /// `wsrep_local_state 2 (donor/desynced)`.
    pub health: String,
}

/// A snapshot of the pool's counters (since start) and gauges (now).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections opened.
    pub created: u64,
    /// Connections closed because they were broken (see [`CloseReason::Broken`]).
    pub closed_broken: u64,
    /// Connections closed after idling too long.
    pub closed_idle: u64,
    /// Connections closed at their maximum lifetime.
    pub closed_lifetime: u64,
    /// Connections closed because their session could not be cleaned (see [`CloseReason::Error`]).
    pub closed_error: u64,
    /// Connections closed because the pool was closed.
    pub closed_shutdown: u64,
    /// Connections closed on return because more than `max_size` were open.
    pub closed_overflow: u64,
    /// Connections closed because their node stopped being the writer.
    pub closed_not_writer: u64,
    /// The node written to now (`host:port`; the socket path with `DatabaseSocket`).
    pub writer: String,
    /// Times the writer was found unhealthy and another node took over.
    pub failovers: u64,
    /// Times a preferred node became the writer again after being healthy for the
    /// failback delay.
    pub failbacks: u64,
    /// The last failover's duration: from the first evidence that the writer was unhealthy
    /// to the first connection opened to the new writer. `None` before the first one.
    pub last_failover: Option<Duration>,
    /// Connections to checked-out or pinging sockets on a failed writer cut with
    /// `shutdown(2)`, so statements hung on it fail at once.
    pub cut_sockets: u64,
    /// Every node in order of preference, with its health.
    pub nodes: Vec<NodeStats>,
    /// Failed connect attempts.
    pub connect_failures: u64,
    /// Connect failures since the last success.
    pub consecutive_failures: u64,
    /// Successful `get()` calls.
    pub checkouts: u64,
    /// `get()` calls that timed out.
    pub timeouts: u64,
    /// `get()` calls that failed because the database was unavailable: refused at once, or
    /// waiting when the pool became unavailable.
    pub fast_failures: u64,
    /// Pings sent before hand-out.
    pub pings: u64,
    /// `get()` calls by a thread that already held a connection, made while the pool was
    /// exhausted (self-deadlocks: nested acquisition).
    pub self_deadlocks: u64,
    /// Connections opened beyond `max_size` for such nested calls (`nested_overflow`).
    pub nested_grants: u64,
    /// Callers waiting now.
    pub waiters: u64,
    /// Most callers ever waiting at once.
    pub peak_waiters: u64,
    /// Connections checked out now.
    pub in_use: u64,
    /// Idle connections now.
    pub idle: u64,
    /// Connect attempts in flight now.
    pub connecting: u64,
    /// Connections being pinged (or queued for a ping) before hand-out now.
    pub validating: u64,
    /// Whether `get()` currently fails fast.
    pub unavailable: bool,
    /// Whether the pool is closed.
    pub closed: bool,
    /// Total time callers spent in `get()`, whatever the outcome (checkouts without a wait
    /// add their few nanoseconds too).
    pub wait_total: Duration,
    /// Longest single `get()`.
    pub wait_max: Duration,
    /// Total time connections were held by callers.
    pub hold_total: Duration,
    /// Longest single hold.
    pub hold_max: Duration,
}

impl PoolStats {
    /// The nodes part of a status line: `database writer db2:3306 (1 failovers, last
    /// 2.104s; 0 failbacks); nodes db1:3306 down (connect: ...), db2:3306 healthy`.
    pub fn nodes_summary(&self) -> String {
        let last = match self.last_failover {
            Some(took) => format!(", last {took:.3?}"),
            None => String::new(),
        };
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                if n.healthy {
                    format!("{} healthy", n.node)
                } else {
                    format!("{} {}", n.node, n.health)
                }
            })
            .collect();
        format!(
            "database writer {} ({} failovers{last}; {} failbacks); nodes {}",
            self.writer,
            self.failovers,
            self.failbacks,
            nodes.join(", ")
        )
    }

    /// Counts a closed connection under its reason.
    pub(crate) fn count_close(&mut self, reason: CloseReason) {
        match reason {
            CloseReason::Broken => self.closed_broken += 1,
            CloseReason::Idle => self.closed_idle += 1,
            CloseReason::Lifetime => self.closed_lifetime += 1,
            CloseReason::Error => self.closed_error += 1,
            CloseReason::Shutdown => self.closed_shutdown += 1,
            CloseReason::Overflow => self.closed_overflow += 1,
            CloseReason::NotWriter => self.closed_not_writer += 1,
        }
    }

    /// Records one wait in `get()`.
    pub(crate) fn record_wait(&mut self, waited: Duration) {
        self.wait_total += waited;
        self.wait_max = self.wait_max.max(waited);
    }

    /// Records one hold between `get()` and give-back.
    pub(crate) fn record_hold(&mut self, held: Duration) {
        self.hold_total += held;
        self.hold_max = self.hold_max.max(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_summary_names_the_writer_failovers_and_each_nodes_health() {
        let stats = PoolStats {
            writer: "db2:3306".into(),
            failovers: 1,
            last_failover: Some(Duration::from_millis(1500)),
            nodes: vec![
                NodeStats {
                    node: "db1:3306".into(),
                    healthy: false,
                    health: "down (wsrep_local_state 2 (donor/desynced))".into(),
                },
                NodeStats {
                    node: "db2:3306".into(),
                    healthy: true,
                    health: "healthy".into(),
                },
            ],
            ..PoolStats::default()
        };
        assert_eq!(
            stats.nodes_summary(),
            "database writer db2:3306 (1 failovers, last 1.500s; 0 failbacks); nodes \
             db1:3306 down (wsrep_local_state 2 (donor/desynced)), db2:3306 healthy"
        );
    }
}
