//! CPU used by the whole process while the database is down, measured with `getrusage`.
//!
//! A test binary of its own, so no other test's work is counted: `RUSAGE_SELF` covers every
//! thread of this process (the pool's connectors and reaper, and the callers), and excludes
//! the `mariadbd` child.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use support::{await_condition, pool_options, MariaDb};
use valuestor::{Pool, PoolError};

/// User plus system CPU time of this process so far.
fn process_cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// One caller: queries when it can, otherwise blocks until the pool has a connection again.
fn worker(pool: Pool, stop: Arc<AtomicBool>, successes: Arc<AtomicUsize>) {
    while !stop.load(Ordering::Acquire) {
        match pool.get() {
            Ok(mut conn) => {
                if conn.query_drop("SELECT 1").is_ok() {
                    successes.fetch_add(1, Ordering::AcqRel);
                }
            }
            Err(PoolError::Closed) => return,
            Err(_) => {
                let _ = pool.wait_until_connected(Duration::from_secs(30));
            }
        }
    }
}

#[test]
fn database_down_for_five_seconds_costs_under_two_percent_cpu() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let mut options = pool_options(&db);
    options.max_size = 2;
    options.initial_size = 2;
    let pool = Pool::new(options).expect("pool starts");
    pool.wait_until_connected(Duration::from_secs(10))
        .expect("connects");

    let stop = Arc::new(AtomicBool::new(false));
    let successes: Vec<Arc<AtomicUsize>> = (0..4).map(|_| Arc::default()).collect();
    let workers: Vec<_> = successes
        .iter()
        .map(|count| {
            let (pool, stop, count) = (pool.clone(), Arc::clone(&stop), Arc::clone(count));
            std::thread::spawn(move || worker(pool, stop, count))
        })
        .collect();
    for count in &successes {
        await_condition(Duration::from_secs(10), "every worker queries", || {
            count.load(Ordering::Acquire) > 0
        });
    }

    db.kill();
    let cpu_before = process_cpu_time();
    let wall_started = Instant::now();
    await_condition(Duration::from_secs(30), "pool reports unavailable", || {
        pool.stats().unavailable
    });
    // The outage itself: nothing to wait for but time passing.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(wall_started.elapsed()));
    let cpu = process_cpu_time() - cpu_before;
    let wall = wall_started.elapsed();

    db.resume();
    let after_restart: Vec<usize> = successes
        .iter()
        .map(|c| c.load(Ordering::Acquire))
        .collect();
    for (count, before) in successes.iter().zip(after_restart) {
        await_condition(
            Duration::from_secs(60),
            "every worker queries after restart",
            || count.load(Ordering::Acquire) > before,
        );
    }
    stop.store(true, Ordering::Release);
    for w in workers {
        w.join().expect("worker does not panic");
    }

    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "CPU while the database was down: {:?} over {:?} = {:.3}%",
        cpu,
        wall,
        share * 100.0
    );
    assert!(
        share < 0.02,
        "process used {cpu:?} CPU in {wall:?} of outage ({:.2}%)",
        share * 100.0
    );
}
