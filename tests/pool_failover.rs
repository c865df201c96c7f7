//! The pool over several database nodes (independent private MariaDB servers): failover
//! when the writer is killed or frozen, failback once it has been healthy for the delay.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use support::captured_log;
use support::{await_condition, pool_options, MariaDb};
use valuestor::config::DbNode;
use valuestor::{Pool, PoolOptions};

/// Gives `other` the test user's password and database of `first`, so one set of
/// credentials reaches both (the pool uses the same ones for every node).
fn align(first: &MariaDb, other: &MariaDb) {
    let mut root = other.root_connect().expect("private server");
    // ALTER USER takes no placeholders; the password is the harness's own hex string.
    root.query_drop(format!(
        "ALTER USER '{}'@'%' IDENTIFIED BY '{}'",
        first.user(),
        first.password()
    ))
    .expect("align password");
    root.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS `{}`",
        first.database()
    ))
    .expect("create database");
}

/// Two private servers that accept the same credentials.
fn two_nodes() -> (MariaDb, MariaDb) {
    let (a, b) = (MariaDb::start(), MariaDb::start());
    align(&a, &b);
    (a, b)
}

fn node(db: &MariaDb) -> DbNode {
    DbNode::new(db.host(), db.port())
}

/// A pool over `a` then `b`, with short health checks.
fn failover_pool(a: &MariaDb, b: &MariaDb, tweak: impl FnOnce(&mut PoolOptions)) -> Pool {
    let mut options = PoolOptions {
        more_nodes: vec![node(b)],
        health_interval: Duration::from_millis(500),
        health_timeout: Duration::from_secs(1),
        failback_delay: Duration::ZERO,
        acquire_timeout: Duration::from_secs(30),
        ..pool_options(a)
    };
    tweak(&mut options);
    Pool::new(options).expect("pool starts")
}

/// The port of the server a connection from `pool` reaches.
fn port_of_next_get(pool: &Pool) -> Result<u16, String> {
    let mut conn = pool.get().map_err(|e| format!("get failed: {e}"))?;
    conn.query_first::<u16, _>("SELECT @@port")
        .map_err(|e| format!("query failed: {e}"))?
        .ok_or_else(|| "no row".into())
}

/// A checkout that runs two statements with a short sleep between them.
fn slow_statement(pool: &Pool) -> Result<(), String> {
    let mut conn = pool.get().map_err(|e| format!("get failed: {e}"))?;
    conn.query_drop("DO SLEEP(0.02)")
        .map_err(|e| format!("sleep failed: {e}"))?;
    conn.query_drop("SELECT @@port")
        .map_err(|e| format!("query failed: {e}"))
}

#[test]
fn killing_the_writer_moves_gets_to_the_next_node_and_they_wait_meanwhile() {
    captured_log::install(log::LevelFilter::Info);
    let (mut a, b) = two_nodes();
    if !a.require_control() {
        return;
    }
    let pool = failover_pool(&a, &b, |_| {});
    assert_eq!(
        port_of_next_get(&pool),
        Ok(a.port()),
        "writes start on node 1"
    );
    a.kill();
    let killed = Instant::now();
    // Gets issued while the failover happens wait for it instead of failing; a connection
    // opened to node 1 before the kill may fail its statement (and is discarded).
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            let b_port = b.port();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let mut conn = pool.get().map_err(|e| format!("get failed: {e}"))?;
                    match conn.query_first::<u16, _>("SELECT @@port") {
                        Ok(Some(port)) if port == b_port => return Ok(port),
                        Ok(other) => return Err(format!("answered by {other:?}")),
                        Err(_) if Instant::now() < deadline => {
                            assert!(conn.is_broken(), "only connection errors are expected");
                        }
                        Err(e) => return Err(format!("still failing: {e}")),
                    }
                }
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.join().unwrap(), Ok(b.port()));
    }
    let served = killed.elapsed();
    assert_eq!(port_of_next_get(&pool), Ok(b.port()));
    let stats = pool.stats();
    assert_eq!(stats.failovers, 1, "{stats:?}");
    assert_eq!(stats.writer, node(&b).to_string());
    assert!(stats.last_failover.is_some(), "{stats:?}");
    assert!(
        !stats.nodes[0].healthy && stats.nodes[1].healthy,
        "{stats:?}"
    );
    // The checker's own connection fails its query, or the reconnect is refused.
    let health = &stats.nodes[0].health;
    assert!(
        health.starts_with("down (connect: ") || health.starts_with("down (query: "),
        "node 1's health names the error: {:?}",
        stats.nodes[0]
    );
    let logged = captured_log::containing(&format!(
        "database failover: writer {} is unhealthy",
        node(&a)
    ));
    assert_eq!(logged.len(), 1, "logged once: {logged:?}");
    let done = captured_log::containing(&format!("database failover to {} done", node(&b)));
    assert_eq!(done.len(), 1, "its duration logged once: {done:?}");
    eprintln!(
        "failover after kill: {:?} from the first evidence to a connection to node 2; \
         {served:?} from the kill until 4 callers were served by node 2",
        stats.last_failover.unwrap()
    );
}

#[test]
fn freezing_the_writer_cuts_a_statement_hung_on_it() {
    let (mut a, b) = two_nodes();
    if !a.require_control() {
        return;
    }
    let pool = failover_pool(&a, &b, |o| {
        o.io_timeout = Duration::from_secs(60);
        o.acquire_timeout = Duration::from_secs(60);
        o.health_interval = Duration::from_secs(1);
        o.health_timeout = Duration::from_secs(1);
    });
    let mut conn = pool.get().unwrap();
    assert_eq!(
        conn.query_first::<u16, _>("SELECT @@port").unwrap(),
        Some(a.port())
    );
    let id: u64 = conn.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    let hung = std::thread::spawn(move || {
        let started = Instant::now();
        let result = conn.query_drop("SELECT SLEEP(60)");
        (result.map_err(|e| e.to_string()), started.elapsed())
    });
    let mut watcher = a.connect();
    await_condition(Duration::from_secs(30), "the statement to run", || {
        let state: Option<String> = watcher
            .exec_first(
                "SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = ?",
                (id,),
            )
            .unwrap();
        state.is_some_and(|info| info.contains("SLEEP"))
    });
    drop(watcher);
    a.pause();
    let (result, took) = hung.join().unwrap();
    a.resume();
    assert!(result.is_err(), "the hung statement fails: {result:?}");
    // Bound: health timeout (1 s) + interval (1 s) + scheduling; DatabaseTimeout is 60 s.
    assert!(
        took < Duration::from_secs(30),
        "the hung statement failed after {took:?}, not within the health check bound"
    );
    let stats = pool.stats();
    assert_eq!(stats.failovers, 1, "{stats:?}");
    assert!(stats.cut_sockets >= 1, "{stats:?}");
    assert_eq!(port_of_next_get(&pool), Ok(b.port()));
    eprintln!(
        "statement on frozen node failed after {took:?}; failover took {:?} from the first \
         failed check",
        pool.stats().last_failover
    );
}

#[test]
fn the_first_node_is_written_to_again_after_the_delay_without_errors() {
    captured_log::install(log::LevelFilter::Info);
    let (mut a, b) = two_nodes();
    if !a.require_control() {
        return;
    }
    let delay = Duration::from_secs(2);
    let pool = failover_pool(&a, &b, |o| o.failback_delay = delay);
    a.kill();
    await_condition(Duration::from_secs(30), "failover to node 2", || {
        pool.stats().writer == node(&b).to_string()
    });
    assert_eq!(port_of_next_get(&pool), Ok(b.port()));
    // Gets and statements in a loop while node 1 comes back and the pool moves back.
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let runs = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (pool, stop, errors, runs) =
                (pool.clone(), stop.clone(), errors.clone(), runs.clone());
            std::thread::spawn(move || {
                let mut first_error = None;
                while !stop.load(Ordering::Relaxed) {
                    // Each checkout holds its connection for a while, so the failback
                    // happens while statements run on the old writer.
                    if let Err(e) = slow_statement(&pool) {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert(e);
                    }
                    runs.fetch_add(1, Ordering::Relaxed);
                }
                first_error
            })
        })
        .collect();
    let restarted = Instant::now();
    a.resume();
    await_condition(Duration::from_secs(60), "failback to node 1", || {
        pool.stats().failbacks == 1
    });
    let moved_after = restarted.elapsed();
    let before = runs.load(Ordering::Relaxed);
    await_condition(
        Duration::from_secs(30),
        "more gets after the failback",
        || runs.load(Ordering::Relaxed) > before + 20,
    );
    stop.store(true, Ordering::Relaxed);
    let first_errors: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "errors during failback: {first_errors:?}"
    );
    assert!(
        moved_after >= delay,
        "failed back {moved_after:?} after the restart, before the {delay:?} delay"
    );
    assert_eq!(port_of_next_get(&pool), Ok(a.port()));
    let stats = pool.stats();
    assert_eq!(stats.writer, node(&a).to_string());
    assert!(stats.closed_not_writer >= 1, "{stats:?}");
    let logged = captured_log::containing(&format!("database failback: {} healthy", node(&a)));
    assert_eq!(logged.len(), 1, "logged once: {logged:?}");
}

#[test]
fn with_every_node_down_gets_fail_fast_after_each_node_was_tried() {
    let (mut a, mut b) = two_nodes();
    if !a.require_control() {
        return;
    }
    let pool = failover_pool(&a, &b, |o| {
        o.initial_size = 0;
        o.backoff.base = Duration::from_millis(20);
        o.backoff.cap = Duration::from_millis(50);
    });
    a.kill();
    b.kill();
    let err = pool.get_timeout(Duration::from_secs(30)).unwrap_err();
    assert!(
        matches!(err, valuestor::PoolError::Unavailable { .. }),
        "{err:?}"
    );
    let stats = pool.stats();
    assert!(
        stats.connect_failures >= 2 * u64::from(pool.options().max_attempts),
        "every node failed max_attempts rounds first: {stats:?}"
    );
    b.resume();
    await_condition(Duration::from_secs(60), "node 2 to serve again", || {
        port_of_next_get(&pool) == Ok(b.port())
    });
}

#[test]
fn a_connect_to_a_frozen_node_gives_up_after_the_connect_timeout() {
    let (mut a, b) = two_nodes();
    if !a.require_control() {
        return;
    }
    // Node 1 accepts TCP (the kernel completes the handshake) but answers nothing.
    a.pause();
    let pool = failover_pool(&a, &b, |o| {
        o.initial_size = 0;
        o.max_connecting = 1;
        o.connect_timeout = Duration::from_secs(2);
        o.io_timeout = Duration::from_secs(120);
        o.acquire_timeout = Duration::from_secs(60);
    });
    let started = Instant::now();
    let port = port_of_next_get(&pool);
    let took = started.elapsed();
    a.resume();
    assert_eq!(port, Ok(b.port()));
    // The one connector was stuck in node 1's handshake: bounded by the connect timeout
    // (2 s), not by the 120 s socket timeout.
    assert!(
        took < Duration::from_secs(40),
        "the first get took {took:?}"
    );
    // Connections keep the long statement timeout: a 3 s statement outlives the 2 s
    // handshake timeout.
    let mut conn = pool.get().unwrap();
    conn.query_drop("DO SLEEP(3)")
        .expect("the statement timeout is io_timeout, not connect_timeout");
}

#[test]
fn a_writer_refusing_new_connections_is_left_although_it_answers_on_open_ones() {
    let (a, b) = two_nodes();
    if !a.require_control() {
        return;
    }
    let pool = failover_pool(&a, &b, |o| {
        o.max_size = 3;
        o.acquire_timeout = Duration::from_secs(30);
    });
    await_condition(Duration::from_secs(30), "both nodes checked", || {
        pool.stats().nodes.iter().all(|n| n.healthy)
    });
    let held = pool.get().unwrap();
    // Node 1 keeps answering on the open connections (the pool's, its checker's) but
    // refuses new ones, as a node at its connection limit does.
    let mut root = a.root_connect().unwrap();
    root.query_drop(format!("ALTER USER '{}'@'%' ACCOUNT LOCK", a.user()))
        .unwrap();
    let port = port_of_next_get(&pool);
    drop(held);
    assert_eq!(port, Ok(b.port()), "the second get is served by node 2");
    let stats = pool.stats();
    assert_eq!(stats.failovers, 1, "{stats:?}");
    assert!(
        stats.nodes[0].health.starts_with("down (connect: "),
        "node 1's health names the refusal: {:?}",
        stats.nodes[0]
    );
}
