//! FileMaxSize and CacheFreeLeastSize on a mounted file system, through system calls:
//! `EFBIG` past the largest file size, `ENOSPC` before the cache file system's reserve, and
//! the data written before either limit intact.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::Duration;

use support::mount::MountedFs;
use valuestor::fs::FsOptions;

const MIB: u64 = 1 << 20;

/// A byte pattern that differs at every offset of a small range, so misplaced data shows.
fn pattern(len: u64, seed: u64) -> Vec<u8> {
    (0..len).map(|i| ((i + seed) % 251) as u8).collect()
}

/// The errno of `result`, which must be an error (`what` names the call).
fn errno(what: &str, result: std::io::Result<impl std::fmt::Debug>) -> Option<i32> {
    match result {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(err) => err.raw_os_error(),
    }
}

/// Bytes available to unprivileged writers on the file system holding `path`.
fn available(path: &Path) -> u64 {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes only into the struct passed; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::statvfs(c_path.as_ptr(), &mut st) },
        0,
        "statvfs"
    );
    st.f_bavail * st.f_frsize
}

#[test]
fn writes_truncates_and_allocations_past_file_max_size_fail_with_efbig() {
    let max = MIB + 123;
    let mut fs = MountedFs::start_with_options(
        |_| {},
        FsOptions {
            file_max_size: max,
            ..FsOptions::default()
        },
    );
    let content = pattern(max + 5000, 7);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(fs.path("big"))
        .unwrap();
    assert_eq!(
        errno("write_all", file.write_all(&content)),
        Some(libc::EFBIG),
        "writing {} bytes with FileMaxSize {max}",
        content.len()
    );
    assert_eq!(
        file.metadata().unwrap().len(),
        max,
        "written up to the limit"
    );
    assert_eq!(
        errno("write at the limit", file.write_at(b"x", max)),
        Some(libc::EFBIG)
    );
    assert_eq!(
        errno("truncate past the limit", file.set_len(max + 1)),
        Some(libc::EFBIG)
    );
    // SAFETY: a valid descriptor; fallocate only changes the file.
    let allocated = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, (max + 1) as i64) };
    assert_eq!(
        (allocated, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::EFBIG)),
        "fallocate past FileMaxSize"
    );
    file.set_len(max).expect("truncating to the limit is fine");
    drop(file);

    fs.remount();
    let stored = fs::read(fs.path("big")).unwrap();
    assert_eq!(stored.len() as u64, max);
    assert!(
        stored == content[..max as usize],
        "data before the limit intact"
    );
    fs.await_consistent();
}

#[test]
fn writes_that_would_take_the_cache_below_cache_free_least_size_fail_with_enospc() {
    if unsafe { libc::geteuid() } != 0 {
        return; // mounting the small tmpfs needs root
    }
    let (size, least) = (64 * MIB, 32 * MIB);
    let mut fs = MountedFs::start_with_small_cache_options(
        size,
        FsOptions {
            cache_free_least_size: least,
            ..FsOptions::default()
        },
    );
    let mut file = fs::File::create(fs.path("filler")).unwrap();
    let chunk = pattern(MIB, 3);
    let mut written = 0u64;
    let failure = loop {
        match file.write(&chunk) {
            Ok(n) => written += n as u64,
            Err(err) => break err,
        }
        assert!(
            written <= size,
            "wrote {written} bytes into a {size}-byte cache"
        );
    };
    assert_eq!(failure.raw_os_error(), Some(libc::ENOSPC), "{failure}");
    let left = available(&fs.cache_dir());
    assert!(
        left >= least,
        "{left} bytes left on the cache file system, reserve {least}"
    );
    assert!(
        written >= size - least - 4 * MIB,
        "refused after only {written} bytes ({left} left, reserve {least})"
    );
    let shown = available(&fs.mnt());
    assert!(
        shown <= left - least + MIB,
        "statfs of the mount offers {shown} bytes; {left} left minus the reserve {least}"
    );
    drop(file);

    let stored = fs::read(fs.path("filler")).unwrap();
    assert_eq!(stored.len() as u64, written);
    assert!(
        stored.chunks(MIB as usize).all(|c| c == &chunk[..c.len()]),
        "data written before the refusal intact"
    );
    let err = fs::write(fs.path("more"), pattern(MIB, 5)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    // Space freed is usable again.
    fs::remove_file(fs.path("filler")).unwrap();
    support::await_condition(Duration::from_secs(10), "freed space admitted", || {
        fs::write(fs.path("more"), pattern(MIB, 5)).is_ok()
    });
    fs.remount();
    assert_eq!(fs::read(fs.path("more")).unwrap(), pattern(MIB, 5));
    fs.await_consistent();
}
