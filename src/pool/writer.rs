//! Which node the pool writes through, decided from what the health checks observed and
//! the time: pure logic, no threads, no I/O.
//!
//! - The writer is the first healthy node in list order.
//! - When the writer is found unhealthy, the first healthy node in list order takes over
//!   (failover); while none is healthy the writer stays, and the pool's connects move on
//!   to the next node in list order after each failure ([`next_to_try`]).
//! - A node earlier in the list than a writer that is not known to be down becomes the
//!   writer again only once it has been healthy without a break for the failback delay
//!   (never, when the delay is zero): one good check after a failure is not enough.

use std::time::{Duration, Instant};

/// What the health checks know about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    /// Not checked yet (or never: a pool with one node has no checker).
    Unknown,
    /// Every check since `since` passed.
    Healthy { since: Instant },
    /// The last check failed, and why; `unreachable`: the node did not answer (dead or
    /// hung) rather than answering that it is not synced, ready or primary.
    Down { reason: String, unreachable: bool },
}

impl Health {
    /// Whether the last observation was a passed check.
    pub(crate) fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy { .. })
    }
}

/// What to do about the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Keep writing through the current writer.
    Stay,
    /// The writer is down: write through node `to` (healthy) instead.
    Failover { to: usize },
    /// Node `to`, earlier in the list, has been healthy long enough: go back to it.
    Failback { to: usize },
}

/// Decides about the writer `writer` given each node's health at `now`.
pub(crate) fn choose(
    writer: usize,
    nodes: &[Health],
    now: Instant,
    failback_delay: Duration,
) -> Choice {
    let first_healthy = nodes.iter().position(Health::is_healthy);
    match nodes.get(writer) {
        Some(Health::Down { .. }) | None => match first_healthy {
            Some(to) if to != writer => Choice::Failover { to },
            _ => Choice::Stay,
        },
        Some(_) => {
            if failback_delay.is_zero() {
                return Choice::Stay;
            }
            let stable = nodes[..writer].iter().position(|health| match health {
                Health::Healthy { since } => {
                    now.saturating_duration_since(*since) >= failback_delay
                }
                _ => false,
            });
            match stable {
                Some(to) => Choice::Failback { to },
                None => Choice::Stay,
            }
        }
    }
}

/// The node to try after a failed connect to `writer` while no node is known healthy:
/// the next one in list order, wrapping around.
pub(crate) fn next_to_try(writer: usize, node_count: usize) -> usize {
    if node_count == 0 {
        return 0;
    }
    (writer + 1) % node_count
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_secs(30);

    fn down() -> Health {
        Health::Down {
            reason: "refused".into(),
            unreachable: true,
        }
    }

    fn healthy_for(now: Instant, secs: u64) -> Health {
        Health::Healthy {
            since: now - Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_healthy_first_writer_stays() {
        let now = Instant::now();
        let nodes = [healthy_for(now, 100), healthy_for(now, 100)];
        assert_eq!(choose(0, &nodes, now, DELAY), Choice::Stay);
    }

    #[test]
    fn a_down_writer_fails_over_to_the_next_healthy_node_in_list_order() {
        let now = Instant::now();
        let nodes = [
            down(),
            Health::Unknown,
            healthy_for(now, 0),
            healthy_for(now, 5),
        ];
        assert_eq!(choose(0, &nodes, now, DELAY), Choice::Failover { to: 2 });
    }

    #[test]
    fn failover_prefers_the_first_healthy_node_even_before_the_writer() {
        let now = Instant::now();
        let nodes = [healthy_for(now, 1), down(), healthy_for(now, 100)];
        assert_eq!(choose(1, &nodes, now, DELAY), Choice::Failover { to: 0 });
    }

    #[test]
    fn donors_joiners_and_non_primary_nodes_are_skipped() {
        // A node that reports itself not synced is observed as down (see health.rs).
        let now = Instant::now();
        let nodes = [
            down(),
            Health::Down {
                reason: "wsrep_local_state 2 (donor/desynced)".into(),
                unreachable: false,
            },
            Health::Down {
                reason: "wsrep_cluster_status non-Primary".into(),
                unreachable: false,
            },
            healthy_for(now, 0),
        ];
        assert_eq!(choose(0, &nodes, now, DELAY), Choice::Failover { to: 3 });
    }

    #[test]
    fn with_no_healthy_node_the_writer_stays_and_connects_rotate() {
        let now = Instant::now();
        let nodes = [down(), down(), Health::Unknown];
        assert_eq!(choose(0, &nodes, now, DELAY), Choice::Stay);
        assert_eq!(next_to_try(0, 3), 1);
        assert_eq!(next_to_try(2, 3), 0);
    }

    #[test]
    fn an_unchecked_writer_stays() {
        let now = Instant::now();
        let nodes = [Health::Unknown, healthy_for(now, 100)];
        assert_eq!(choose(0, &nodes, now, DELAY), Choice::Stay);
    }

    #[test]
    fn failback_waits_for_the_delay() {
        let now = Instant::now();
        let early = [healthy_for(now, 29), healthy_for(now, 100)];
        assert_eq!(choose(1, &early, now, DELAY), Choice::Stay);
        let late = [healthy_for(now, 30), healthy_for(now, 100)];
        assert_eq!(choose(1, &late, now, DELAY), Choice::Failback { to: 0 });
    }

    #[test]
    fn one_good_check_after_a_failure_does_not_fail_back() {
        // A node that was down and passed one check is healthy "since now".
        let now = Instant::now();
        let nodes = [healthy_for(now, 0), healthy_for(now, 100)];
        assert_eq!(choose(1, &nodes, now, DELAY), Choice::Stay);
        let nodes = [down(), healthy_for(now, 100)];
        assert_eq!(choose(1, &nodes, now, DELAY), Choice::Stay);
    }

    #[test]
    fn failback_goes_to_the_earliest_stable_node() {
        let now = Instant::now();
        let nodes = [
            healthy_for(now, 5),
            healthy_for(now, 60),
            healthy_for(now, 100),
        ];
        assert_eq!(choose(2, &nodes, now, DELAY), Choice::Failback { to: 1 });
    }

    #[test]
    fn a_zero_delay_never_fails_back() {
        let now = Instant::now();
        let nodes = [healthy_for(now, 1000), healthy_for(now, 100)];
        assert_eq!(choose(1, &nodes, now, Duration::ZERO), Choice::Stay);
    }

    #[test]
    fn nodes_after_the_writer_never_take_over_a_healthy_writer() {
        let now = Instant::now();
        let nodes = [healthy_for(now, 1), healthy_for(now, 1000)];
        assert_eq!(choose(0, &nodes, now, DELAY), Choice::Stay);
    }
}
