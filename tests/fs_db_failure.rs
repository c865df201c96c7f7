//! The database killed or hung under a mounted file system: operations that need it fail
//! with EIO within the timeout, the mount stays up, open files keep working, nothing stored
//! is lost, and everything works again once the database is back.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::mount::MountedFs;
use valuestor::pool::Backoff;

/// `DatabaseTimeout` in these tests; the socket timeout is set equal to it.
const TIMEOUT: Duration = Duration::from_secs(2);

fn start() -> MountedFs {
    MountedFs::start_with(|o| {
        o.acquire_timeout = TIMEOUT;
        o.io_timeout = TIMEOUT;
        o.backoff = Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(500),
        };
    })
}

/// Threads creating and stat-ing files, each in its own directory, until stopped; records
/// the slowest call and any error other than EIO (or ENOENT for a stat).
struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    slowest: Arc<Mutex<Duration>>,
    unexpected: Arc<Mutex<Vec<String>>>,
}

impl Workload {
    fn start(fs: &MountedFs, threads: usize) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let slowest = Arc::new(Mutex::new(Duration::ZERO));
        let unexpected = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|t| {
                let dir = fs.path(format!("load-{t}"));
                fs::create_dir(&dir).unwrap();
                let (stop, slowest, unexpected) = (
                    Arc::clone(&stop),
                    Arc::clone(&slowest),
                    Arc::clone(&unexpected),
                );
                std::thread::spawn(move || {
                    let timed = |what: &str, call: &mut dyn FnMut() -> std::io::Result<()>| {
                        let started = Instant::now();
                        let result = call();
                        let took = started.elapsed();
                        let mut slowest = slowest.lock().unwrap();
                        *slowest = (*slowest).max(took);
                        if let Err(e) = result {
                            if e.raw_os_error() != Some(libc::EIO) {
                                unexpected.lock().unwrap().push(format!("{what}: {e}"));
                            }
                        }
                    };
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let path: PathBuf = dir.join(format!("f{i}"));
                        timed("create", &mut || fs::write(&path, b"x"));
                        // Missing when its create failed, or never created at all.
                        let stat = |path: &Path| match fs::metadata(path) {
                            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                            other => other.map(drop),
                        };
                        timed("stat", &mut || stat(&path));
                        let missing = dir.join(format!("missing-{i}"));
                        timed("stat missing", &mut || stat(&missing));
                        i += 1;
                    }
                })
            })
            .collect();
        Workload {
            stop,
            threads,
            slowest,
            unexpected,
        }
    }

    /// Stops the threads; returns the slowest call and the unexpected errors.
    fn finish(self) -> (Duration, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        let slowest = *self.slowest.lock().unwrap();
        let unexpected = self.unexpected.lock().unwrap().clone();
        (slowest, unexpected)
    }
}

/// Asserts that operations needing the catalog fail with EIO within `bound`.
fn assert_catalog_calls_fail_within(fs: &MountedFs, bound: Duration) {
    for attempt in 0..3 {
        let started = Instant::now();
        let err = fs::create_dir(fs.path(format!("probe/new-{attempt}"))).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
        let took = started.elapsed();
        assert!(took < bound, "mkdir took {took:?}, bound {bound:?}");
        let started = Instant::now();
        let err = fs::metadata(fs.path(format!("probe/unseen-{attempt}"))).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
        let took = started.elapsed();
        assert!(took < bound, "lookup took {took:?}, bound {bound:?}");
    }
}

/// Asserts that an open file reads, writes and stats without the catalog, within `bound`.
fn assert_open_file_works(open: &fs::File, text: &[u8], bound: Duration) {
    let started = Instant::now();
    for round in 0..20u64 {
        open.write_all_at(text, round * 4096).unwrap();
        let mut buf = vec![0u8; text.len()];
        open.read_exact_at(&mut buf, round * 4096).unwrap();
        assert_eq!(buf, text);
        assert_eq!(
            open.metadata().unwrap().len(),
            round * 4096 + text.len() as u64
        );
    }
    let took = started.elapsed();
    assert!(took < bound, "I/O on an open file took {took:?}");
}

#[test]
fn database_killed_mid_workload_gives_eio_then_recovers() {
    let mut fs = start();
    if !fs.db.require_control() {
        return;
    }
    fs::create_dir(fs.path("probe")).unwrap();
    fs::write(fs.path("probe/before"), b"written before the crash").unwrap();
    let open = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(fs.path("probe/open"))
        .unwrap();
    let workload = Workload::start(&fs, 3);
    support::await_condition(Duration::from_secs(10), "the workload runs", || {
        fs.path("load-2/f3").exists()
    });

    fs.db.kill();

    // A dead server refuses at once: only waiting for a connection takes time.
    let bound = TIMEOUT * 2 + Duration::from_secs(1);
    assert_catalog_calls_fail_within(&fs, bound);
    assert_open_file_works(&open, b"during the outage", TIMEOUT);
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mounts.contains(fs.mnt().to_str().unwrap()),
        "the mount stays up"
    );

    fs.db.resume();
    support::await_condition(Duration::from_secs(30), "create works again", || {
        fs::write(fs.path("probe/after"), b"after").is_ok()
    });
    let (slowest, unexpected) = workload.finish();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert!(slowest < bound, "a workload call took {slowest:?}");
    assert_eq!(
        fs::read(fs.path("probe/before")).unwrap(),
        b"written before the crash"
    );
    (&open).flush().unwrap();
    drop(open);
    fs.remount();
    let data = fs::read(fs.path("probe/open")).unwrap();
    assert_eq!(data.len(), 19 * 4096 + 17);
    assert_eq!(&data[19 * 4096..], b"during the outage");
    assert_eq!(fs::read(fs.path("probe/after")).unwrap(), b"after");
    fs.await_consistent();
}

#[test]
fn hung_database_gives_eio_within_the_timeout_while_open_files_keep_working() {
    let mut fs = start();
    if !fs.db.require_control() {
        return;
    }
    fs::create_dir(fs.path("probe")).unwrap();
    let open = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(fs.path("probe/open"))
        .unwrap();
    // More threads waiting on the database than a server with 4 FUSE workers could take
    // while still reading and writing open files.
    let workload = Workload::start(&fs, 6);
    support::await_condition(Duration::from_secs(10), "the workload runs", || {
        fs.path("load-5/f3").exists()
    });

    fs.db.pause();

    // Once at least four workers wait on the database (statements hanging or waiting for a
    // connection), reads and writes of an open file need free workers of their own.
    support::await_condition(
        Duration::from_secs(10),
        "workers wait on the database",
        || {
            let stats = fs.pool().stats();
            stats.in_use + stats.waiters >= 4
        },
    );
    // Local I/O takes milliseconds; waiting for a worker would take about the timeout.
    assert_open_file_works(&open, b"while the database hangs", TIMEOUT / 2);
    // Waiting for a connection (the timeout) plus one statement that hangs until the
    // socket timeout (set equal), plus slack for a loaded machine.
    let bound = TIMEOUT * 4;
    assert_catalog_calls_fail_within(&fs, bound);

    fs.db.resume();
    support::await_condition(Duration::from_secs(30), "create works again", || {
        fs::write(fs.path("probe/after"), b"after").is_ok()
    });
    let (slowest, unexpected) = workload.finish();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert!(slowest < bound, "a workload call took {slowest:?}");
    fs::create_dir(fs.path("probe/dir")).unwrap();
    drop(open);
    fs.remount();
    let data = fs::read(fs.path("probe/open")).unwrap();
    assert_eq!(&data[19 * 4096..], b"while the database hangs");
    assert!(fs.path("probe/dir").is_dir());
    fs.await_consistent();
}

#[test]
fn truncate_with_the_database_down_fails_and_keeps_the_data() {
    let mut fs = start();
    if !fs.db.require_control() {
        return;
    }
    let content = b"0123456789abcdef".repeat(1000);
    fs::write(fs.path("by-handle"), &content).unwrap();
    fs::write(fs.path("by-path"), &content).unwrap();
    let open = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fs.path("by-handle"))
        .unwrap();

    fs.db.kill();

    let err = open.set_len(10).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let path = std::ffi::CString::new(fs.path("by-path").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::truncate(path.as_ptr(), 10) }, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EIO)
    );
    let mut buf = vec![0u8; content.len()];
    open.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, content, "the open file still has all its data");
    assert_eq!(
        fs::metadata(fs.cache_file(open_ino(&open))).unwrap().len(),
        content.len() as u64,
        "the cache file was not cut"
    );

    fs.db.resume();
    support::await_condition(Duration::from_secs(30), "the catalog answers again", || {
        fs::write(fs.path("probe"), b"").is_ok()
    });
    drop(open);
    fs.remount();
    assert_eq!(fs::read(fs.path("by-handle")).unwrap(), content);
    assert_eq!(fs::read(fs.path("by-path")).unwrap(), content);
    fs.await_consistent();
}

fn open_ino(file: &fs::File) -> u64 {
    use std::os::unix::fs::MetadataExt;
    file.metadata().unwrap().ino()
}
