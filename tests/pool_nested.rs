//! Self-deadlock (nested acquisition) detection in the pool, for every API: a thread that
//! holds a connection and asks for another on an exhausted pool is logged once per call site
//! with both locations, counted, and served beyond `max_size` when `nested_overflow` allows;
//! and connect failures keep the server's code and SQLSTATE in timeout/unavailable errors.

mod support;

use std::time::Duration;

use support::{captured_log, pool_options, MariaDb};
use valuestor::{Config, Pool, PoolError, PoolOptions};

/// Self-deadlock lines logged so far that mention `marker`.
fn self_deadlock_lines(marker: &str) -> Vec<String> {
    captured_log::containing(marker)
        .into_iter()
        .filter(|line| line.contains("self-deadlock"))
        .collect()
}

/// The legacy pool's options (`ConnectionPool(max_size)`) for a `vs_conf.xml` naming `db`.
fn legacy_options(db: &MariaDb, max_size: usize) -> PoolOptions {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vs_conf.xml");
    std::fs::write(&path, db.conf_xml("")).unwrap();
    let config = Config::load(&path).expect("config loads");
    PoolOptions::legacy(&config.database, max_size)
}

fn pool(db: &MariaDb, tweak: impl FnOnce(&mut PoolOptions)) -> Pool {
    let mut options = pool_options(db);
    tweak(&mut options);
    Pool::new(options).expect("pool starts")
}

/// `file:line` of the line this is called on, as the pool's log shows a caller.
#[track_caller]
fn here() -> String {
    let location = std::panic::Location::caller();
    format!("{}:{}", location.file(), location.line())
}

#[test]
fn nested_get_on_an_exhausted_pool_is_logged_once_per_call_site_and_counted() {
    captured_log::install(log::LevelFilter::Warn);
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    let (held, held_at) = (pool.get().unwrap(), here());
    let mut nested_at = String::new();
    for _ in 0..3 {
        let (result, at) = (pool.get_timeout(Duration::from_millis(100)), here());
        nested_at = at;
        assert!(
            matches!(result, Err(PoolError::Timeout { .. })),
            "{result:?}"
        );
    }
    assert_eq!(pool.stats().self_deadlocks, 3);
    let lines = self_deadlock_lines(&nested_at);
    assert_eq!(lines.len(), 1, "one line for the call site: {lines:?}");
    assert!(lines[0].contains(&held_at), "{} lacks {held_at}", lines[0]);
    // Another call site gets its own line.
    let (result, other_at) = (pool.get_timeout(Duration::from_millis(100)), here());
    assert!(result.is_err());
    assert_eq!(self_deadlock_lines(&other_at).len(), 1);
    assert_eq!(pool.stats().self_deadlocks, 4);
    drop(held);
}

#[test]
fn a_thread_without_a_connection_waiting_is_no_self_deadlock() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 1;
        o.nested_overflow = 4;
    });
    let held = pool.get().unwrap();
    let other = pool.clone();
    let result = std::thread::spawn(move || other.get_timeout(Duration::from_millis(200)).err())
        .join()
        .unwrap();
    assert!(
        matches!(result, Some(PoolError::Timeout { .. })),
        "{result:?}"
    );
    let stats = pool.stats();
    assert_eq!((stats.self_deadlocks, stats.nested_grants), (0, 0));
    drop(held);
}

#[test]
fn nested_overflow_serves_a_holder_beyond_max_size_within_its_bound_and_shrinks_back() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 1;
        o.initial_size = 1;
        o.nested_overflow = 2;
    });
    let first = pool.get().unwrap();
    let second = pool.get_timeout(Duration::from_secs(5)).unwrap();
    let third = pool.get_timeout(Duration::from_secs(5)).unwrap();
    assert_ne!(first.id(), second.id());
    let beyond = pool.get_timeout(Duration::from_millis(200));
    assert!(
        matches!(beyond, Err(PoolError::Timeout { .. })),
        "{beyond:?}"
    );
    let stats = pool.stats();
    assert_eq!(
        (stats.in_use, stats.nested_grants, stats.self_deadlocks),
        (3, 2, 3)
    );
    drop((third, second, first));
    let stats = pool.stats();
    assert_eq!((stats.closed_overflow, stats.idle), (2, 1), "{stats:?}");
}

#[test]
fn refused_connections_keep_the_servers_code_and_sqlstate() {
    let db = MariaDb::start();
    for (tweak, code, state) in [
        (
            Box::new(|o: &mut PoolOptions| o.password = "wrong-password-7".into())
                as Box<dyn Fn(&mut PoolOptions)>,
            1045,
            "28000",
        ),
        (
            Box::new(|o: &mut PoolOptions| o.database = Some("no_such_database".into())),
            1049,
            "42000",
        ),
        (
            Box::new(|o: &mut PoolOptions| {
                o.port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            }),
            2003,
            "HY000",
        ),
    ] {
        let pool = pool(&db, |o| tweak(o));
        let err = pool.get_timeout(Duration::from_secs(20)).unwrap_err();
        let cause = match &err {
            PoolError::Unavailable { last_error } => Some(last_error),
            PoolError::Timeout { last_error, .. } => last_error.as_ref(),
            _ => None,
        };
        let cause = cause.unwrap_or_else(|| panic!("no connect error in {err:?}"));
        assert_eq!((cause.code, cause.state.as_str()), (code, state), "{err}");
        assert!(!err.to_string().contains("wrong-password-7"), "{err}");
    }
}

#[test]
fn the_legacy_pool_has_its_first_connection_open_when_new_returns() {
    // The legacy constructor connected before returning. Connecting in the background
    // instead made the first get race the first connect against its 5 s wait, and under
    // valgrind on a loaded machine that connect alone took up to 6.5 s (a pool timeout in
    // cpp_port's legacy client, whose nested calls were never the ones waiting).
    let db = MariaDb::start();
    let pool = Pool::new(legacy_options(&db, 2)).expect("legacy pool starts");
    let stats = pool.stats();
    assert_eq!(
        (stats.created, stats.idle, stats.connecting),
        (1, 1, 0),
        "(created, idle, connecting) when Pool::new returned: {stats:?}"
    );
    let conn = pool.get_timeout(Duration::from_secs(5)).expect("first get");
    assert_eq!(pool.stats().created, 1, "the first get opened another");
    drop(conn);
}

#[test]
fn the_legacy_pool_opened_while_the_database_is_down_connects_once_it_is_up() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let options = legacy_options(&db, 2);
    db.stop();
    // One attempt, refused: the pool starts all the same (a legacy constructor never throws).
    let pool = Pool::new(options).expect("legacy pool starts with the database down");
    let stats = pool.stats();
    assert_eq!(
        (stats.created, stats.connect_failures),
        (0, 1),
        "(created, connect_failures) with the database down: {stats:?}"
    );
    db.resume();
    pool.wait_until_connected(Duration::from_secs(60))
        .expect("connects in the background once the database is up");
    let conn = pool
        .get_timeout(Duration::from_secs(5))
        .expect("get after recovery");
    drop(conn);
}
