//! The private-MariaDB harness itself: start, query, kill, restart, query again.

mod support;

use mysql::prelude::Queryable;
use support::MariaDb;

#[test]
fn harness_server_answers_queries() {
    let db = MariaDb::start();
    let mut conn = db.connect();
    let one: Option<i64> = conn.query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
    let current: Option<String> = conn.query_first("SELECT DATABASE()").unwrap();
    assert_eq!(current.as_deref(), Some(db.database()));
}

#[test]
fn harness_kill_and_resume_keeps_data_and_port() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let port = db.port();
    let mut conn = db.connect();
    conn.query_drop("CREATE TABLE t (v INT) ENGINE=InnoDB")
        .unwrap();
    conn.query_drop("INSERT INTO t VALUES (42)").unwrap();
    db.kill();
    assert!(!db.is_running());
    assert!(
        conn.query_drop("SELECT 1").is_err(),
        "killed server still answers"
    );
    db.resume();
    assert_eq!(db.port(), port);
    let mut conn = db.connect();
    let v: Option<i64> = conn.query_first("SELECT v FROM t").unwrap();
    assert_eq!(v, Some(42));
}

#[test]
fn harness_restart_after_graceful_stop() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    db.stop();
    assert!(
        mysql::Conn::new(db.opts()).is_err(),
        "stopped server accepts connections"
    );
    db.resume();
    let one: Option<i64> = db.connect().query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
}

#[test]
fn harness_servers_run_side_by_side() {
    let a = MariaDb::start();
    let b = MariaDb::start();
    assert_ne!(a.port(), b.port());
    let one: Option<i64> = a.connect().query_first("SELECT 1").unwrap();
    let two: Option<i64> = b.connect().query_first("SELECT 2").unwrap();
    assert_eq!((one, two), (Some(1), Some(2)));
}

#[test]
fn harness_config_reaches_the_server_through_the_pool() {
    let db = MariaDb::start();
    let config = valuestor::Config::from_xml(&db.conf_xml("")).expect("harness config loads");
    let pool = valuestor::Pool::new(valuestor::PoolOptions::from_config(&config.database))
        .expect("pool starts");
    let mut conn = pool.get().expect("connection");
    let schema: Option<String> = conn.query_first("SELECT DATABASE()").unwrap();
    assert_eq!(schema.as_deref(), Some(db.database()));
}
