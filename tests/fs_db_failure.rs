//! The database killed under a mounted file system: operations that need it fail with EIO
//! within the timeout, the mount stays up, open files keep working, and everything works
//! again once the database is back.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use support::mount::MountedFs;
use valuestor::pool::Backoff;

#[test]
fn database_killed_mid_workload_gives_eio_then_recovers() {
    let mut fs = MountedFs::start_with(|o| {
        o.acquire_timeout = Duration::from_secs(2);
        o.backoff = Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(500),
        };
    });
    if !fs.db.require_control() {
        return;
    }
    fs::create_dir(fs.path("work")).unwrap();
    fs::write(fs.path("work/before"), b"written before the crash").unwrap();
    let open = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(fs.path("work/open"))
        .unwrap();

    fs.db.kill();

    for attempt in 0..3 {
        let started = Instant::now();
        let err = fs::create_dir(fs.path(format!("work/new-{attempt}"))).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "no hang");
        let err = fs::metadata(fs.path(format!("work/unseen-{attempt}"))).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    }
    // Data of an open file needs no database.
    open.write_all_at(b"during the outage", 0).unwrap();
    let mut buf = [0u8; 17];
    open.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"during the outage");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mounts.contains(fs.mnt().to_str().unwrap()),
        "the mount stays up"
    );

    fs.db.resume();
    support::await_condition(Duration::from_secs(30), "create works again", || {
        fs::write(fs.path("work/after"), b"after").is_ok()
    });
    assert_eq!(
        fs::read(fs.path("work/before")).unwrap(),
        b"written before the crash"
    );
    (&open).flush().unwrap();
    drop(open);
    fs.remount();
    assert_eq!(
        fs::read(fs.path("work/open")).unwrap(),
        b"during the outage"
    );
    assert_eq!(fs::read(fs.path("work/after")).unwrap(), b"after");
}
