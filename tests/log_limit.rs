//! A database outage under load writes a bounded number of warnings: each kind of line
//! once per window, then a count, however many requests fail. (A test binary of its own:
//! it installs the process's logger and counts every warning.)

mod support;

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::captured_log;
use support::mount::MountedFs;
use valuestor::pool::Backoff;

/// Kinds of warning an outage writes: catalog unavailable, sizes not saved, connect
/// failed, database unavailable.
const KINDS: usize = 4;

/// Most warning lines an outage lasting `took` may write: per kind and 10 s window one line
/// and one count, plus one spare window (the outage rarely reaches a second window, but a
/// loaded machine can stretch it).
fn bound(took: Duration) -> usize {
    KINDS * 2 * (2 + (took.as_secs() / 10) as usize)
}

#[test]
fn a_database_outage_under_load_writes_a_bounded_number_of_warnings() {
    captured_log::install(log::LevelFilter::Warn);
    let mut fs = MountedFs::start_with(|o| {
        o.acquire_timeout = Duration::from_secs(2);
        o.io_timeout = Duration::from_secs(2);
        o.backoff = Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(500),
        };
    });
    let dirs: Vec<_> = (0..3)
        .map(|t| {
            let dir = fs.path(format!("load-{t}"));
            fs::create_dir(&dir).unwrap();
            dir
        })
        .collect();
    let before = captured_log::lines().len();

    let outage = Instant::now();
    fs.db.kill();
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = dirs
        .into_iter()
        .map(|dir| {
            let (stop, failed) = (Arc::clone(&stop), Arc::clone(&failed));
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // A new name each time: a lookup the kernel has not cached.
                    let err = fs::metadata(dir.join(format!("n{i}"))).unwrap_err();
                    if err.raw_os_error() == Some(libc::EIO) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // The outage: until enough requests failed to show the difference, for at least 2 s.
    let started = Instant::now();
    support::await_condition(Duration::from_secs(60), "failed requests", || {
        failed.load(Ordering::Relaxed) >= 500 && started.elapsed() >= Duration::from_secs(2)
    });
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    fs.db.resume();
    support::await_condition(Duration::from_secs(30), "the catalog back", || {
        fs::create_dir(fs.path(format!("after-{}", fastrand::u32(..)))).is_ok()
    });

    let took = outage.elapsed();
    let failed = failed.load(Ordering::Relaxed);
    let lines = captured_log::lines()[before..].to_vec();
    let bound = bound(took);
    assert!(
        lines.iter().any(|l| l.contains("catalog unavailable")),
        "the failures were not logged at all, so the bound proves nothing: {lines:#?}"
    );
    assert!(
        lines.len() <= bound,
        "{} warning lines for {failed} failed requests in {took:?} (bound {bound}):\n{}",
        lines.len(),
        lines.join("\n")
    );
}
