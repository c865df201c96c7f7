//! Shared test fixtures: a private MariaDB server per test.
#![allow(dead_code)]

pub mod consistency;
pub mod mariadb;
pub mod mount;
pub mod native;
pub mod server;

pub use mariadb::MariaDb;

use std::time::{Duration, Instant};

/// Pool options for a harness server: short timeouts so failures show quickly in tests.
pub fn pool_options(db: &MariaDb) -> valuestor::PoolOptions {
    valuestor::PoolOptions {
        host: db.host().to_string(),
        port: db.port(),
        user: db.user().to_string(),
        password: db.password().to_string(),
        database: Some(db.database().to_string()),
        max_size: 2,
        initial_size: 1,
        acquire_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

/// Waits until `condition` holds, checking every few milliseconds; panics after `limit`.
///
/// For conditions that have no notification to block on (another thread's progress,
/// a background thread's counters).
pub fn await_condition(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
