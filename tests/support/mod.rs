//! Shared test fixtures: a private MariaDB server per test.
#![allow(dead_code)]

pub mod captured_log;
pub mod consistency;
pub mod galera;
pub mod mariadb;
pub mod mount;
pub mod native;
pub mod proxy;
pub mod server;
pub mod tier;
pub mod workload;

pub use mariadb::MariaDb;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Pool options for a harness server: short timeouts so failures show quickly in tests.
///
/// On the shared Galera cluster (`VS_TEST_GALERA=1`) every node is named, first node first,
/// with health checks every second.
pub fn pool_options(db: &MariaDb) -> valuestor::PoolOptions {
    let more_nodes = db
        .database_host()
        .split(',')
        .skip(1)
        .map(|entry| {
            let (host, port) = entry.rsplit_once(':').expect("host:port");
            valuestor::config::DbNode::new(host, port.parse().expect("port"))
        })
        .collect();
    valuestor::PoolOptions {
        more_nodes,
        health_interval: Duration::from_secs(1),
        health_timeout: Duration::from_secs(1),
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

/// Runs `cargo build <what>` for the profile and target directory of this test executable
/// (cargo's own lock serialises concurrent test processes) and returns `target/<profile>`.
///
/// `cargo test` builds neither the static library nor the examples, so tests that need
/// them build them once per process this way and never use a stale artifact.
pub fn cargo_build(what: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf();
    let target_dir = dir.parent().expect("target/<profile> has a parent");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .args(what)
        .arg("--quiet")
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if dir.file_name().is_some_and(|name| name == "release") {
        command.arg("--release");
    }
    let output = command.output().expect("run cargo build");
    assert!(
        output.status.success(),
        "cargo build {} failed:\n{}",
        what.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}
