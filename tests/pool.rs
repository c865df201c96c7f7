//! The connection pool against a real MariaDB: sizing, fairness, start-up policies,
//! liveness, hygiene, bounds, recovery after kill and restart, close.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use support::captured_log;
use support::{await_condition, pool_options, MariaDb};
use valuestor::{Pool, PoolError, PoolOptions, StartPolicy};

fn pool(db: &MariaDb, tweak: impl FnOnce(&mut PoolOptions)) -> Pool {
    let mut options = pool_options(db);
    tweak(&mut options);
    Pool::new(options).expect("pool starts")
}

/// CPU time the calling thread has used so far.
fn thread_cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct passed.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) },
        0
    );
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

#[test]
fn waiting_for_an_exhausted_pool_sleeps_instead_of_spinning() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    let _held = pool.get().unwrap();
    let waiter = std::thread::spawn(move || {
        let before = thread_cpu_time();
        let result = pool.get_timeout(Duration::from_secs(1));
        (result.is_err(), thread_cpu_time() - before)
    });
    let (timed_out, cpu) = waiter.join().unwrap();
    assert!(timed_out, "the only connection is held");
    // A few yields before sleeping cost microseconds; spinning for the second would cost
    // most of it.
    assert!(
        cpu < Duration::from_millis(50),
        "{cpu:?} of CPU in a 1 s wait"
    );
}

#[test]
fn get_times_out_when_pool_exhausted() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 2);
    let _a = pool.get().unwrap();
    let _b = pool.get().unwrap();
    let started = Instant::now();
    let err = pool.get_timeout(Duration::from_millis(300)).unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            err,
            PoolError::Timeout {
                in_use: 2,
                max_size: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        waited >= Duration::from_millis(300),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "waited far past the timeout: {waited:?}"
    );
    assert_eq!(pool.stats().timeouts, 1);
}

#[test]
fn configured_timeout_applies_to_get() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 1;
        o.acquire_timeout = Duration::from_millis(200);
    });
    let _held = pool.get().unwrap();
    let started = Instant::now();
    assert!(matches!(pool.get(), Err(PoolError::Timeout { .. })));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn waiters_are_served_in_arrival_order() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    let held = pool.get().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for index in 0..5u64 {
        let (waiter_pool, order) = (pool.clone(), Arc::clone(&order));
        threads.push(std::thread::spawn(move || {
            let conn = waiter_pool.get_timeout(Duration::from_secs(30)).unwrap();
            order.lock().unwrap().push(index);
            drop(conn);
        }));
        // Each waiter is queued before the next one arrives.
        await_condition(Duration::from_secs(10), "waiter queued", || {
            pool.stats().waiters == index + 1
        });
    }
    drop(held);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn returned_connection_goes_to_waiter_not_newcomer() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    let held = pool.get().unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter_pool = pool.clone();
    let waiter = std::thread::spawn(move || {
        let conn = waiter_pool.get_timeout(Duration::from_secs(30)).unwrap();
        tx.send(()).unwrap();
        // Hold until the newcomer has tried.
        std::thread::park();
        drop(conn);
    });
    await_condition(Duration::from_secs(10), "waiter queued", || {
        pool.stats().waiters == 1
    });
    drop(held);
    // At once, on the releasing thread, which is running while the waiter still has to be
    // scheduled: a pool that parked the connection and woke everyone would let this caller
    // take it first.
    let newcomer = pool.get_timeout(Duration::from_millis(50));
    assert!(
        matches!(newcomer, Err(PoolError::Timeout { .. })),
        "the newcomer jumped the queue: {newcomer:?}"
    );
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the waiter got the returned connection");
    waiter.thread().unpark();
    waiter.join().unwrap();
}

/// A pool of one connection that pings before every hand-out (with a 30 s socket timeout),
/// whose server is then frozen: the next `get()` meets a ping that never answers.
fn one_connection_then_hang(db: &mut MariaDb) -> Pool {
    let pool = pool(db, |o| {
        o.max_size = 1;
        o.io_timeout = Duration::from_secs(30);
        o.ping_bypass = Duration::ZERO;
    });
    drop(pool.get().unwrap());
    db.pause();
    pool
}

#[test]
fn get_returns_within_its_timeout_when_the_server_hangs() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let pool = one_connection_then_hang(&mut db);
    let started = Instant::now();
    let result = pool.get_timeout(Duration::from_secs(1));
    let waited = started.elapsed();
    db.unpause();
    assert!(
        matches!(result, Err(PoolError::Timeout { .. })),
        "{result:?}"
    );
    assert!(
        waited >= Duration::from_secs(1),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "blocked on the hung server for {waited:?} (io_timeout 30 s)"
    );
    // The ping finishes once the server runs again: the connection was not lost.
    let mut conn = pool.get_timeout(Duration::from_secs(20)).unwrap();
    let one: Option<i64> = conn.query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
}

#[test]
fn waiter_keeps_its_place_when_its_connection_fails_the_ping() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 1;
        o.ping_bypass = Duration::ZERO;
    });
    let held = pool.get().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for name in ["first", "second"] {
        let (waiter_pool, order) = (pool.clone(), Arc::clone(&order));
        threads.push(std::thread::spawn(move || {
            let conn = waiter_pool.get_timeout(Duration::from_secs(30)).unwrap();
            order.lock().unwrap().push(name);
            drop(conn);
        }));
        let queued = threads.len() as u64;
        await_condition(Duration::from_secs(10), "waiter queued", || {
            pool.stats().waiters == queued
        });
    }
    // The connection dies while held; its return costs no round trip, so only the ping
    // before hand-out finds out, and the replacement must still go to the first waiter.
    db.connect()
        .query_drop(format!("KILL {}", held.connection_id()))
        .unwrap();
    drop(held);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec!["first", "second"]);
    assert_eq!(pool.stats().closed_broken, 1);
}

#[test]
fn close_during_a_hung_ping_wakes_the_waiter_and_hands_nothing_out() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let pool = one_connection_then_hang(&mut db);
    let waiter_pool = pool.clone();
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let result = waiter_pool.get_timeout(Duration::from_secs(60));
        (result.map(drop), started.elapsed())
    });
    await_condition(Duration::from_secs(10), "ping in flight", || {
        pool.stats().validating == 1
    });
    pool.close();
    let (result, waited) = waiter.join().unwrap();
    db.unpause();
    assert!(matches!(result, Err(PoolError::Closed)), "{result:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    await_condition(Duration::from_secs(30), "pinged connection closed", || {
        pool.stats().validating == 0
    });
    let stats = pool.stats();
    assert_eq!((stats.idle, stats.in_use, stats.checkouts), (0, 0, 1));
}

#[test]
fn fail_fast_start_reports_connect_error_when_database_down() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    db.stop();
    let started = Instant::now();
    let err = Pool::new(PoolOptions {
        start_policy: StartPolicy::FailFast,
        ..pool_options(&db)
    })
    .unwrap_err();
    assert!(matches!(err, PoolError::Connect(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!err.to_string().contains(db.password()));
}

#[test]
fn wait_start_gives_up_after_its_limit_when_database_down() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    db.stop();
    let started = Instant::now();
    let err = Pool::new(PoolOptions {
        start_policy: StartPolicy::Wait(Duration::from_millis(700)),
        ..pool_options(&db)
    })
    .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, PoolError::Connect(ref m) if !m.is_empty()),
        "{err:?}"
    );
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn wait_start_succeeds_when_database_comes_up_in_time() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    db.stop();
    let options = PoolOptions {
        start_policy: StartPolicy::Wait(Duration::from_secs(60)),
        ..pool_options(&db)
    };
    let starter = std::thread::spawn(move || Pool::new(options));
    db.resume();
    let pool = starter
        .join()
        .unwrap()
        .expect("pool starts once the database is up");
    let one: Option<i64> = pool.get().unwrap().query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
}

#[test]
fn background_start_fails_fast_then_recovers_when_database_starts() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    db.stop();
    let pool = Pool::new(PoolOptions {
        start_policy: StartPolicy::Background,
        max_attempts: 2,
        ..pool_options(&db)
    })
    .expect("background start returns at once");
    await_condition(Duration::from_secs(10), "pool unavailable", || {
        pool.stats().unavailable
    });
    let started = Instant::now();
    let err = pool.get().unwrap_err();
    assert!(matches!(err, PoolError::Unavailable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "did not fail fast"
    );
    assert!(pool.stats().fast_failures >= 1);
    db.resume();
    await_condition(Duration::from_secs(40), "pool available again", || {
        !pool.stats().unavailable && pool.stats().idle >= 1
    });
    let one: Option<i64> = pool.get().unwrap().query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
}

#[test]
fn connect_attempts_follow_the_backoff_schedule_while_the_database_is_down() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    db.stop();
    let base = Duration::from_millis(100);
    let pool = Pool::new(PoolOptions {
        start_policy: StartPolicy::Background,
        initial_size: 2,
        max_connecting: 2,
        // No jitter: every wait is exactly `base`, so the schedule allows at most one
        // attempt per `base`, however many connector threads there are.
        backoff: valuestor::pool::Backoff { base, cap: base },
        max_attempts: 1_000_000,
        ..pool_options(&db)
    })
    .expect("background start returns at once");
    await_condition(Duration::from_secs(10), "first failed connect", || {
        pool.stats().connect_failures >= 1
    });
    let before = pool.stats().connect_failures;
    let started = Instant::now();
    // The window under test: attempts happen on their own schedule, nothing to await.
    std::thread::sleep(Duration::from_secs(2));
    let stats = pool.stats();
    let window = started.elapsed();
    let attempts = stats.connect_failures - before;
    let allowed = (window.as_millis() / base.as_millis()) as u64 + 1;
    assert!(
        attempts <= allowed,
        "{attempts} connect attempts in {window:?}: faster than one per {base:?}"
    );
    assert!(
        attempts >= 5,
        "only {attempts} attempts in {window:?}: the pool stopped retrying"
    );
    assert_eq!(stats.consecutive_failures, stats.connect_failures);
    assert_eq!(stats.created, 0);
}

#[test]
fn queued_waiter_fails_when_the_database_becomes_unavailable() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    db.stop();
    let pool = Pool::new(PoolOptions {
        start_policy: StartPolicy::Background,
        initial_size: 0,
        max_attempts: 3,
        backoff: valuestor::pool::Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(200),
        },
        ..pool_options(&db)
    })
    .expect("background start returns at once");
    let started = Instant::now();
    let result = pool.get_timeout(Duration::from_secs(30));
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(PoolError::Unavailable { .. })),
        "{result:?}"
    );
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    let stats = pool.stats();
    assert_eq!((stats.fast_failures, stats.timeouts), (1, 0), "{stats:?}");
    assert!(stats.connect_failures >= 3, "{stats:?}");
    assert!(stats.wait_max >= Duration::from_millis(100), "{stats:?}");
}

#[test]
fn hot_connection_is_not_pinged_but_idle_one_is() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 1;
        o.ping_bypass = Duration::from_millis(300);
    });
    drop(pool.get().unwrap());
    drop(pool.get().unwrap());
    assert_eq!(pool.stats().pings, 0, "hot connection pinged");
    // Idling past the bypass window is the behaviour under test.
    std::thread::sleep(Duration::from_millis(400));
    drop(pool.get().unwrap());
    assert_eq!(pool.stats().pings, 1, "idle connection not pinged");
}

#[test]
fn dead_idle_connection_is_replaced_without_error() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 1;
        o.ping_bypass = Duration::ZERO;
    });
    let id = {
        let mut conn = pool.get().unwrap();
        let id: Option<u64> = conn.query_first("SELECT CONNECTION_ID()").unwrap();
        id.unwrap()
    };
    db.connect().query_drop(format!("KILL {id}")).unwrap();
    let mut conn = pool
        .get()
        .expect("a fresh connection instead of the killed one");
    let new_id: Option<u64> = conn.query_first("SELECT CONNECTION_ID()").unwrap();
    assert_ne!(new_id, Some(id));
    assert_eq!(pool.stats().closed_broken, 1);
}

#[test]
fn connections_expire_after_max_lifetime() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_lifetime = Duration::from_millis(300));
    let first = pool.get().unwrap().connection_id();
    await_condition(Duration::from_secs(10), "lifetime expiry", || {
        pool.stats().closed_lifetime >= 1
    });
    await_condition(Duration::from_secs(10), "replacement", || {
        pool.stats().idle >= 1
    });
    assert_ne!(pool.get().unwrap().connection_id(), first);
}

#[test]
fn idle_connections_above_initial_size_are_closed() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.initial_size = 0;
        o.idle_timeout = Duration::from_millis(200);
    });
    drop(pool.get().unwrap());
    await_condition(Duration::from_secs(10), "idle expiry", || {
        pool.stats().closed_idle >= 1
    });
    assert_eq!(pool.stats().idle, 0);
}

#[test]
fn open_transaction_is_rolled_back_on_return() {
    let db = MariaDb::start();
    db.connect()
        .query_drop("CREATE TABLE t (v INT) ENGINE=InnoDB")
        .unwrap();
    let pool = pool(&db, |o| o.max_size = 1);
    {
        let mut conn = pool.get().unwrap();
        conn.query_drop("BEGIN").unwrap();
        conn.query_drop("INSERT INTO t VALUES (1)").unwrap();
    }
    let mut conn = pool.get().unwrap();
    let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").unwrap();
    let rows: Option<i64> = conn.query_first("SELECT COUNT(*) FROM t").unwrap();
    assert_eq!((in_tx, rows), (Some(0), Some(0)));
}

#[test]
fn table_lock_is_released_on_return() {
    let db = MariaDb::start();
    db.connect().query_drop("CREATE TABLE t (v INT)").unwrap();
    let pool = pool(&db, |o| o.max_size = 1);
    {
        let mut conn = pool.get().unwrap();
        conn.query_drop("LOCK TABLES t WRITE").unwrap();
    }
    let mut other = db.connect();
    other
        .query_drop("SET SESSION lock_wait_timeout = 5")
        .unwrap();
    other
        .query_drop("INSERT INTO t VALUES (1)")
        .expect("lock released when the connection came back");
}

/// Runs `sql` on the next connection of a one-connection pool and returns its single value.
fn next_checkout_value<T: mysql::prelude::FromValue>(pool: &Pool, sql: &str) -> T {
    let mut conn = pool.get().unwrap();
    let value: Option<T> = conn.query_first(sql).unwrap();
    value.expect("one row")
}

#[test]
fn transaction_started_with_exec_drop_is_rolled_back_on_return() {
    let db = MariaDb::start();
    db.connect()
        .query_drop("CREATE TABLE t (v INT) ENGINE=InnoDB")
        .unwrap();
    let pool = pool(&db, |o| o.max_size = 1);
    {
        let mut conn = pool.get().unwrap();
        conn.exec_drop("START TRANSACTION", ()).unwrap();
        conn.exec_drop("INSERT INTO t VALUES (?)", (1,)).unwrap();
    }
    assert_eq!(
        next_checkout_value::<i64>(&pool, "SELECT @@in_transaction"),
        0
    );
    assert_eq!(
        next_checkout_value::<i64>(&pool, "SELECT COUNT(*) FROM t"),
        0
    );
}

#[test]
fn autocommit_off_set_with_exec_drop_is_restored_on_return() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    pool.get()
        .unwrap()
        .exec_drop("SET autocommit = 0", ())
        .unwrap();
    assert_eq!(next_checkout_value::<i64>(&pool, "SELECT @@autocommit"), 1);
}

#[test]
fn statement_prepared_in_an_earlier_checkout_still_marks_the_session() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    let statement = pool.get().unwrap().prep("SET autocommit = 0").unwrap();
    // Same connection (pool of one): the statement is executed in a later checkout.
    pool.get().unwrap().exec_drop(&statement, ()).unwrap();
    assert_eq!(next_checkout_value::<i64>(&pool, "SELECT @@autocommit"), 1);
}

#[test]
fn transaction_behind_a_select_in_a_multi_statement_query_is_rolled_back() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    pool.get()
        .unwrap()
        .query_drop("SELECT 1; START TRANSACTION")
        .unwrap();
    assert_eq!(
        next_checkout_value::<i64>(&pool, "SELECT @@in_transaction"),
        0
    );
}

#[test]
fn session_variable_and_temporary_table_are_reset_on_return() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    let default_mode: String = next_checkout_value(&pool, "SELECT @@sql_mode");
    {
        let mut conn = pool.get().unwrap();
        conn.query_drop("SET SESSION sql_mode = 'ANSI'").unwrap();
        conn.query_drop("CREATE TEMPORARY TABLE scratch (v INT)")
            .unwrap();
    }
    let mut conn = pool.get().unwrap();
    let mode: Option<String> = conn.query_first("SELECT @@sql_mode").unwrap();
    assert_eq!(mode, Some(default_mode));
    let scratch: Result<Option<i64>, _> = conn.query_first("SELECT COUNT(*) FROM scratch");
    assert!(scratch.is_err(), "temporary table survived the return");
}

#[test]
fn open_handler_is_closed_on_return() {
    let db = MariaDb::start();
    db.connect().query_drop("CREATE TABLE t (v INT)").unwrap();
    let pool = pool(&db, |o| o.max_size = 1);
    pool.get().unwrap().query_drop("HANDLER t OPEN").unwrap();
    let mut conn = pool.get().unwrap();
    let read: Result<Vec<mysql::Row>, _> = conn.query("HANDLER t READ FIRST");
    assert!(
        read.is_err(),
        "a handler opened by the previous caller is still open"
    );
}

#[test]
fn xa_transaction_closes_the_connection_on_return() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    let first = {
        let mut conn = pool.get().unwrap();
        conn.query_drop("XA START 'leak'").unwrap();
        conn.connection_id()
    };
    assert_eq!(pool.stats().closed_error, 1);
    let mut conn = pool.get().unwrap();
    assert_ne!(conn.connection_id(), first);
    let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").unwrap();
    assert_eq!(in_tx, Some(0));
}

#[test]
fn schema_changed_with_use_is_restored_on_return() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    pool.get().unwrap().query_drop("USE mysql").unwrap();
    let schema: String = next_checkout_value(&pool, "SELECT DATABASE()");
    assert_eq!(schema, db.database());
}

#[test]
fn user_variable_is_cleared_on_return_with_reset_on_return() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 1;
        o.reset_on_return = true;
    });
    pool.get().unwrap().query_drop("SET @owner = 42").unwrap();
    let owner: Option<i64> = next_checkout_value(&pool, "SELECT @owner");
    assert_eq!(owner, None);
}

#[test]
fn user_variable_is_kept_on_return_without_reset_on_return() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 1;
        o.reset_on_return = false;
    });
    pool.get().unwrap().query_drop("SET @owner = 42").unwrap();
    let owner: Option<i64> = next_checkout_value(&pool, "SELECT @owner");
    assert_eq!(owner, Some(42));
}

#[test]
fn clean_return_costs_no_round_trip() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    let questions = |conn: &mut valuestor::PooledConn| -> u64 {
        let row: Option<(String, u64)> = conn
            .query_first("SHOW SESSION STATUS LIKE 'Questions'")
            .unwrap();
        row.unwrap().1
    };
    let before = questions(&mut pool.get().unwrap());
    for _ in 0..10 {
        drop(pool.get().unwrap());
    }
    let after = questions(&mut pool.get().unwrap());
    // Only the first SHOW itself was counted in between.
    assert_eq!(after - before, 1);
}

#[test]
fn oversized_result_is_an_error_and_connection_stays_usable() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 1;
        o.max_result_bytes = 4096;
    });
    let mut conn = pool.get().unwrap();
    let err = conn
        .query_bounded("SELECT REPEAT('x', 1000) FROM seq_1_to_100")
        .unwrap_err();
    assert!(
        matches!(err, PoolError::ResultTooLarge { limit: 4096 }),
        "{err:?}"
    );
    let small = conn.query_bounded("SELECT REPEAT('x', 100)").unwrap();
    assert_eq!(small.len(), 1);
}

#[test]
fn plain_query_and_exec_are_bounded_too() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 1;
        o.max_result_bytes = 4096;
    });
    let mut conn = pool.get().unwrap();
    let rows: Result<Vec<String>, _> = conn.query("SELECT REPEAT('x', 1000) FROM seq_1_to_100");
    let err = PoolError::from(rows.unwrap_err());
    assert!(
        matches!(err, PoolError::ResultTooLarge { limit: 4096 }),
        "{err:?}"
    );
    let rows: Result<Vec<String>, _> =
        conn.exec("SELECT REPEAT('x', ?) FROM seq_1_to_100", (1000,));
    let err = PoolError::from(rows.unwrap_err());
    assert!(
        matches!(err, PoolError::ResultTooLarge { limit: 4096 }),
        "{err:?}"
    );
    // The rest of the result was read: the connection is in step and not broken.
    assert!(!conn.is_broken());
    let small: Vec<String> = conn.query("SELECT REPEAT('x', 100)").unwrap();
    assert_eq!(small.len(), 1);
}

#[test]
fn packet_over_max_allowed_packet_is_rejected_with_its_limit() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 1;
        o.max_allowed_packet = 64 * 1024;
    });
    let mut conn = pool.get().unwrap();
    let result: Result<Option<String>, _> = conn.query_first("SELECT REPEAT('x', 1048576)");
    let err = PoolError::from(result.expect_err("a 1 MiB row passed a 64 KiB packet limit"));
    assert!(
        matches!(err, PoolError::ResultTooLarge { limit: 65536 }),
        "{err:?}"
    );
    // The stream is out of step after a refused packet: the connection is not reused.
    assert!(conn.is_broken());
    drop(conn);
    assert_eq!(pool.stats().closed_broken, 1);
}

#[test]
fn error_of_a_later_statement_is_reported() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    let mut conn = pool.get().unwrap();
    let err = conn
        .query_drop("SELECT 1; SELECT * FROM no_such_table")
        .expect_err("the second statement failed");
    assert!(
        matches!(err, mysql::Error::MySqlError(ref e) if e.code == 1146),
        "{err:?}"
    );
    let one: Option<i64> = conn.query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
}

#[test]
fn close_wakes_waiters_and_refuses_new_gets() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    let held = pool.get().unwrap();
    let waiter_pool = pool.clone();
    let waiter = std::thread::spawn(move || waiter_pool.get_timeout(Duration::from_secs(60)).err());
    await_condition(Duration::from_secs(10), "waiter queued", || {
        pool.stats().waiters == 1
    });
    pool.close();
    let err = waiter.join().unwrap();
    assert!(matches!(err, Some(PoolError::Closed)), "{err:?}");
    assert!(matches!(pool.get(), Err(PoolError::Closed)));
    drop(held);
    let stats = pool.stats();
    assert_eq!((stats.idle, stats.in_use), (0, 0));
    // Closed because the pool closed, not because anything failed.
    assert_eq!(
        (
            stats.closed_shutdown,
            stats.closed_error,
            stats.closed_broken
        ),
        (1, 0, 0)
    );
}

#[test]
fn close_closes_idle_connections_as_shutdown() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 2);
    let (a, b) = (pool.get().unwrap(), pool.get().unwrap());
    drop((a, b));
    pool.close();
    let stats = pool.stats();
    assert_eq!(
        (stats.idle, stats.closed_shutdown, stats.closed_error),
        (0, 2, 0)
    );
}

#[test]
fn workload_survives_database_kill_and_restart() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    db.connect()
        .query_drop(
            "CREATE TABLE hits (id INT AUTO_INCREMENT PRIMARY KEY, worker INT) ENGINE=InnoDB",
        )
        .unwrap();
    const MAX_SIZE: usize = 2;
    let pool = pool(&db, |o| {
        o.max_size = MAX_SIZE;
        // Long enough for any restart: a caller waiting through the outage is served, so
        // only statements in flight on the killed connections may fail.
        o.acquire_timeout = Duration::from_secs(60);
        o.backoff.cap = Duration::from_millis(500);
        o.max_attempts = 1000;
    });
    const THREADS: usize = 8;
    const PER_THREAD: usize = 100;
    let progress = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel();
    for worker in 0..THREADS {
        let (pool, progress, errors, done) = (
            pool.clone(),
            progress.clone(),
            errors.clone(),
            done_tx.clone(),
        );
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut completed = 0;
            while completed < PER_THREAD && Instant::now() < deadline {
                let attempt = pool.get().map_err(|e| e.to_string()).and_then(|mut c| {
                    c.exec_drop("INSERT INTO hits (worker) VALUES (?)", (worker,))
                        .map_err(|e| e.to_string())
                });
                match attempt {
                    Ok(()) => {
                        completed += 1;
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.lock().unwrap().push(e),
                }
            }
            done.send(completed).unwrap();
        });
    }
    await_condition(Duration::from_secs(60), "workload started", || {
        progress.load(Ordering::Relaxed) >= 100
    });
    db.kill();
    db.resume();
    let mut finished = Vec::new();
    for _ in 0..THREADS {
        finished.push(
            done_rx
                .recv_timeout(Duration::from_secs(150))
                .expect("a worker hung"),
        );
    }
    assert_eq!(finished, vec![PER_THREAD; THREADS], "workers gave up");
    let errors = errors.lock().unwrap();
    assert!(
        errors.len() <= MAX_SIZE,
        "more failures than connections in flight at the kill: {errors:?}"
    );
    let stats = pool.stats();
    assert!(
        stats.closed_broken >= 1,
        "broken connections not replaced: {stats:?}"
    );
    assert!(stats.created >= 3, "{stats:?}");
}

#[test]
fn random_stress_with_kills_never_deadlocks() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let pool = pool(&db, |o| {
        o.max_size = 3;
        o.acquire_timeout = Duration::from_millis(500);
        o.backoff.cap = Duration::from_millis(200);
        o.max_attempts = 3;
        o.ping_bypass = Duration::from_millis(fastrand::u64(0..5));
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..6 {
        let (pool, stop, done) = (pool.clone(), stop.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match fastrand::u8(0..4) {
                    0 => held.clear(),
                    1 => {
                        if let Ok(mut c) = pool.get() {
                            let _ = c.query_drop("SELECT 1");
                        }
                    }
                    _ => {
                        if held.len() < 2 {
                            if let Ok(c) = pool.get() {
                                held.push(c);
                            }
                        }
                    }
                }
            }
            done.send(()).unwrap();
        });
    }
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        if round % 2 == 0 {
            db.kill();
        } else {
            db.stop();
        }
        std::thread::sleep(Duration::from_millis(200));
        db.resume();
    }
    stop.store(true, Ordering::Relaxed);
    for _ in 0..6 {
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a stress thread deadlocked");
    }
    await_condition(Duration::from_secs(30), "pool usable after stress", || {
        pool.get().is_ok()
    });
}

#[test]
fn password_never_appears_in_errors_logs_or_debug() {
    captured_log::install(log::LevelFilter::Trace);
    let db = MariaDb::start();
    let secret = format!("wrong-secret-{:016x}", fastrand::u64(..));
    let options = PoolOptions {
        password: secret.clone(),
        start_policy: StartPolicy::FailFast,
        ..pool_options(&db)
    };
    assert!(!format!("{options:?}").contains(&secret));
    let err = Pool::new(options.clone()).unwrap_err();
    assert!(!err.to_string().contains(&secret), "{err}");
    assert!(!format!("{err:?}").contains(&secret), "{err:?}");
    // A pool that keeps retrying logs its connect failures.
    let pool = Pool::new(PoolOptions {
        start_policy: StartPolicy::Background,
        max_attempts: 2,
        ..options
    })
    .unwrap();
    await_condition(Duration::from_secs(10), "unavailable", || {
        pool.stats().unavailable
    });
    let err = pool.get().unwrap_err();
    assert!(!err.to_string().contains(&secret), "{err}");
    assert!(!format!("{pool:?}").contains(&secret));
    let endpoint = format!("{}@{}:{}", db.user(), db.host(), db.port());
    assert!(
        !captured_log::containing(&endpoint).is_empty(),
        "the connect failures were not logged, so the check below proves nothing"
    );
    let leaked = captured_log::containing(&secret);
    assert!(leaked.is_empty(), "password logged: {leaked:?}");
}

#[test]
fn stats_count_checkouts_waits_and_hold_times() {
    let db = MariaDb::start();
    let pool = pool(&db, |o| o.max_size = 1);
    for _ in 0..3 {
        let c = pool.get().unwrap();
        assert_eq!(pool.stats().in_use, 1);
        drop(c);
    }
    // One long hold, during which a second caller waits.
    let held = pool.get().unwrap();
    let waiter_pool = pool.clone();
    let waiter = std::thread::spawn(move || {
        drop(waiter_pool.get_timeout(Duration::from_secs(30)).unwrap());
    });
    await_condition(Duration::from_secs(10), "waiter queued", || {
        pool.stats().waiters == 1
    });
    // The hold and the wait under test: time passing is what is measured.
    std::thread::sleep(Duration::from_millis(50));
    drop(held);
    waiter.join().unwrap();
    let stats = pool.stats();
    assert_eq!(stats.checkouts, 5);
    assert_eq!((stats.in_use, stats.waiters, stats.peak_waiters), (0, 0, 1));
    assert!(stats.created >= 1);
    assert!(stats.hold_max >= Duration::from_millis(50), "{stats:?}");
    assert!(stats.hold_total > stats.hold_max, "{stats:?}");
    assert!(stats.wait_max >= Duration::from_millis(50), "{stats:?}");
    assert!(stats.wait_total >= stats.wait_max, "{stats:?}");
}

#[test]
fn connection_held_past_the_leak_threshold_is_logged_once_with_its_caller() {
    captured_log::install(log::LevelFilter::Trace);
    let db = MariaDb::start();
    let pool = pool(&db, |o| {
        o.max_size = 2;
        o.leak_threshold = Duration::from_millis(200);
    });
    let (leaked, line) = (pool.get().unwrap(), line!());
    let leaked_at = format!("taken at {}:{line}:", file!());
    await_condition(Duration::from_secs(10), "leak logged", || {
        !captured_log::containing(&leaked_at).is_empty()
    });
    // A second leak, taken after the first was reported: by the time it is reported too,
    // the reaper has looked at the first one several more times.
    let (second, line) = (pool.get().unwrap(), line!());
    let second_at = format!("taken at {}:{line}:", file!());
    await_condition(Duration::from_secs(10), "second leak logged", || {
        !captured_log::containing(&second_at).is_empty()
    });
    let reports = captured_log::containing(&leaked_at);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].starts_with("WARN"), "{reports:?}");
    assert!(
        reports[0].contains(&format!("connection {} held", leaked.id())),
        "{reports:?}"
    );
    drop((leaked, second));
}

#[test]
fn no_more_connects_in_flight_than_max_connecting() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    // A hung server: the kernel accepts the TCP connections, the handshake never comes, so
    // every connect stays in flight (io_timeout 30 s) and can be counted.
    db.pause();
    let pool = Pool::new(PoolOptions {
        start_policy: StartPolicy::Background,
        max_size: 6,
        initial_size: 0,
        max_connecting: 2,
        io_timeout: Duration::from_secs(30),
        ..pool_options(&db)
    })
    .unwrap();
    let waiters: Vec<_> = (0..6)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.get_timeout(Duration::from_secs(3)).map(drop))
        })
        .collect();
    let port = db.port();
    await_condition(Duration::from_secs(10), "connects in flight", || {
        pool.stats().waiters == 6 && client_sockets_to(port) >= 2
    });
    // Six callers want six connections; sample the sockets while they wait.
    let mut most = 0;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        most = most.max(client_sockets_to(port));
        std::thread::sleep(Duration::from_millis(10));
    }
    let connecting = pool.stats().connecting;
    db.unpause();
    for w in waiters {
        let _ = w.join().unwrap();
    }
    assert_eq!(most, 2, "connections opened at once to a hung server");
    assert_eq!(connecting, 2);
}

/// Client-side TCP sockets to `port` on 127.0.0.1 that are connected or connecting, from
/// `/proc/net/tcp` (the server's own ends have `port` as their local port instead).
fn client_sockets_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = fields
                .get(2)
                .and_then(|remote| remote.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            // 01 ESTABLISHED, 02 SYN_SENT.
            remote_port == Some(port) && matches!(fields.get(3), Some(&"01") | Some(&"02"))
        })
        .count()
}
