//! Hardening of the mounted file system against unbounded or privileged work by any user,
//! and the attributes xfstests checks: quiet `ENOTTY` for ioctls, bounded extended
//! attributes in known namespaces, `trusted.*` listed to root only, set-user-ID and
//! set-group-ID cleared on changes by other users, `st_blocks` from the real allocation,
//! and `relatime` access times.

mod support;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::Duration;

use mysql::prelude::Queryable;
use support::captured_log;
use support::mount::MountedFs;

/// The unprivileged user the tests act as (no supplementary groups, not in group 0).
const NOBODY: u32 = 65534;

fn c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A mount whose directories `nobody` may enter (the test's temporary root is 0700).
fn start() -> MountedFs {
    let fs = MountedFs::start();
    let root = fs.mnt().parent().unwrap().to_path_buf();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(fs.mnt(), fs::Permissions::from_mode(0o777)).unwrap();
    fs
}

/// Runs `body` in a forked child acting as `nobody` (uid and gid 65534, no supplementary
/// groups, no capabilities) and returns what it returned (a negative errno on failure) with
/// the bytes it left at the start of its buffer (as many as a positive result says).
///
/// The child only makes system calls: everything it needs is prepared before the fork.
fn as_nobody(body: impl FnOnce(&mut [u8]) -> i64) -> (i64, Vec<u8>) {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let mut buf = vec![0u8; 4096];
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // The child: drop privileges, run, report, exit without unwinding or destructors.
        unsafe {
            libc::close(fds[0]);
            let ok = libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(NOBODY, NOBODY, NOBODY) == 0
                && libc::setresuid(NOBODY, NOBODY, NOBODY) == 0;
            let rc = if ok { body(&mut buf) } else { -1000 };
            let n = usize::try_from(rc).unwrap_or(0).min(buf.len());
            libc::write(fds[1], (&rc as *const i64).cast(), 8);
            libc::write(fds[1], buf.as_ptr().cast(), n);
            libc::_exit(0);
        }
    }
    unsafe { libc::close(fds[1]) };
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = unsafe { libc::read(fds[0], chunk.as_mut_ptr().cast(), chunk.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n as usize]);
    }
    unsafe {
        libc::close(fds[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
    assert!(out.len() >= 8, "the child reported nothing");
    let rc = i64::from_ne_bytes(out[..8].try_into().unwrap());
    assert_ne!(rc, -1000, "the child could not become nobody");
    (rc, out[8..].to_vec())
}

/// A system call result as the child reports it: the value, or minus errno.
fn result(rc: i64) -> i64 {
    if rc < 0 {
        -i64::from(errno())
    } else {
        rc
    }
}

fn setxattr(path: &Path, name: &str, value: &[u8]) -> Result<(), i32> {
    let name = CString::new(name).unwrap();
    let rc = unsafe {
        libc::setxattr(
            c(path).as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// The names `listxattr` gives for `path`.
fn list_names(list: &[u8]) -> Vec<String> {
    list.split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}

#[test]
fn unsupported_ioctls_are_enotty_without_a_log_line() {
    captured_log::install(log::LevelFilter::Warn);
    let fs = start();
    let path = fs.path("f");
    fs::write(&path, b"data").unwrap();
    let file = fs::File::open(&path).unwrap();
    for _ in 0..3 {
        let mut flags: libc::c_long = 0;
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
        assert_eq!((rc, errno()), (-1, libc::ENOTTY), "FS_IOC_GETFLAGS");
    }
    let warned = captured_log::containing("ioctl");
    assert!(warned.is_empty(), "ioctls were logged: {warned:?}");
}

#[test]
fn extended_attributes_outside_the_linux_namespaces_are_refused() {
    let fs = start();
    let path = fs.path("f");
    fs::write(&path, b"").unwrap();
    assert_eq!(setxattr(&path, "bogus.x", b"v"), Err(libc::EOPNOTSUPP));
    assert_eq!(setxattr(&path, "userx", b"v"), Err(libc::EOPNOTSUPP));
    let mut buf = [0u8; 8];
    let got = unsafe {
        libc::getxattr(
            c(&path).as_ptr(),
            c"bogus.x".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!((got, errno()), (-1, libc::EOPNOTSUPP), "getxattr bogus.x");
    assert_eq!(setxattr(&path, "user.x", b"v"), Ok(()));
    assert_eq!(setxattr(&path, "trusted.x", b"v"), Ok(()), "root may");
    let mut conn = fs.db.connect();
    let names: Vec<Vec<u8>> = conn.query("SELECT name FROM vs_xattrs").unwrap();
    assert_eq!(names, [b"trusted.x".to_vec(), b"user.x".to_vec()]);
}

#[test]
fn extended_attributes_of_one_file_are_bounded_by_xattr_max_size() {
    let fs = start();
    let path = fs.path("f");
    fs::write(&path, b"").unwrap();
    // The default bound is 4 KiB of names plus values, as ext4's one block.
    let chunk = vec![b'v'; 1000];
    for i in 0..4 {
        let name = format!("user.a{i}"); // 7 bytes
        assert_eq!(setxattr(&path, &name, &chunk), Ok(()), "{name}");
    }
    // 4 * 1007 = 4028 bytes stored: another 1007 would pass 4096.
    assert_eq!(setxattr(&path, "user.a4", &chunk), Err(libc::ENOSPC));
    assert_eq!(
        setxattr(&path, "user.big", &vec![b'v'; 8192]),
        Err(libc::ENOSPC),
        "one value over the bound"
    );
    // Replacing counts the new value, not the old one as well.
    assert_eq!(setxattr(&path, "user.a0", &vec![b'w'; 1050]), Ok(()));
    assert_eq!(
        setxattr(&path, "user.a0", &vec![b'w'; 1100]),
        Err(libc::ENOSPC)
    );
    // Another file has a bound of its own.
    let other = fs.path("g");
    fs::write(&other, b"").unwrap();
    assert_eq!(setxattr(&other, "user.a0", &chunk), Ok(()));
    let mut conn = fs.db.connect();
    let stored: Option<u64> = conn
        .query_first("SELECT CAST(SUM(LENGTH(name) + LENGTH(value)) AS UNSIGNED) FROM vs_xattrs")
        .unwrap();
    assert_eq!(
        stored,
        Some(1057 + 3 * 1007 + 1007),
        "what was accepted, only"
    );
}

#[test]
fn trusted_attributes_are_listed_to_root_only() {
    if !is_root() {
        return; // needs root to set trusted.* and to act as another user
    }
    let fs = start();
    let path = fs.path("f");
    fs::write(&path, b"").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    setxattr(&path, "user.shown", b"1").unwrap();
    setxattr(&path, "trusted.hidden", b"2").unwrap();

    let mut list = vec![0u8; 256];
    let n = unsafe { libc::listxattr(c(&path).as_ptr(), list.as_mut_ptr().cast(), list.len()) };
    assert!(n > 0, "listxattr as root: errno {}", errno());
    let as_root = list_names(&list[..n as usize]);
    assert_eq!(as_root, ["trusted.hidden", "user.shown"], "root sees both");

    let p = c(&path);
    let (rc, list) = as_nobody(|buf| {
        let n = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        result(n as i64)
    });
    assert!(rc >= 0, "listxattr as nobody: errno {}", -rc);
    assert_eq!(list_names(&list), ["user.shown"], "nobody sees user.* only");
    // The size probe agrees with what is listed.
    let (probe, _) = as_nobody(|_| {
        let n = unsafe { libc::listxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
        result(n as i64)
    });
    assert_eq!(probe, "user.shown\0".len() as i64);
}

/// Permission bits of `path` (with set-user-ID, set-group-ID and sticky) as the kernel
/// holds them: `statx` for the mode alone is answered from the kernel's cache while it is
/// valid, as exec's checks are, so a change the kernel was not told about shows here.
fn mode_of(path: &Path) -> u32 {
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c(path).as_ptr(),
            0,
            libc::STATX_MODE,
            &mut stx,
        )
    };
    assert_eq!(rc, 0, "statx {}: errno {}", path.display(), errno());
    u32::from(stx.stx_mode) & 0o7777
}

/// The modes xfstests generic/683-685 start from, and what a change by a user outside the
/// file's group (with write permission, without CAP_FSETID) leaves.
const CLEARED_BY_OTHERS: [(u32, u32); 6] = [
    (0o6666, 0o666), // non-exec: both go (the kernel's own fallback kept set-group-ID)
    (0o6676, 0o676), // group-exec
    (0o6766, 0o766), // user-exec
    (0o6777, 0o777), // all-exec
    (0o2666, 0o666), // set-group-ID only, non-exec
    (0o2676, 0o676), // set-group-ID only, group-exec
];

/// A root-owned file of 192 KiB with mode `mode`.
fn setid_file(fs: &MountedFs, name: &str, mode: u32) -> std::path::PathBuf {
    let path = fs.path(name);
    let _ = fs::remove_file(&path);
    fs::write(&path, vec![0x58u8; 192 * 1024]).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    assert_eq!(mode_of(&path), mode);
    path
}

/// Opens `path` for writing as nobody and runs `change` on the descriptor; returns 0 or
/// minus errno.
fn change_as_nobody(path: &Path, change: fn(libc::c_int) -> libc::c_int) -> i64 {
    let p = c(path);
    as_nobody(|_| {
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_WRONLY) };
        if fd < 0 {
            return result(-1);
        }
        let rc = result(i64::from(change(fd)));
        unsafe { libc::close(fd) };
        rc
    })
    .0
}

fn check_cleared_by_others(what: &str, change: fn(libc::c_int) -> libc::c_int) {
    let fs = start();
    let mut wrong = Vec::new();
    for (i, (before, after)) in CLEARED_BY_OTHERS.into_iter().enumerate() {
        let path = setid_file(&fs, &format!("{what}-{i}"), before);
        assert_eq!(change_as_nobody(&path, change), 0, "{what} as nobody");
        let seen = mode_of(&path);
        if seen != after {
            wrong.push(format!("{before:o} -> {seen:o}, expected {after:o}"));
        }
    }
    assert!(wrong.is_empty(), "{what} by another user: {wrong:?}");
    // Root (CAP_FSETID) keeps the bits.
    let path = setid_file(&fs, &format!("{what}-root"), 0o6666);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    assert_eq!(change(file.as_raw_fd()), 0, "{what} as root");
    drop(file);
    assert_eq!(mode_of(&path), 0o6666, "{what} by root keeps the bits");
    fs.await_consistent();
}

#[test]
fn fallocate_by_another_user_clears_set_id_bits() {
    if !is_root() {
        return;
    }
    check_cleared_by_others("fallocate", |fd| unsafe {
        libc::fallocate(fd, 0, 64 * 1024, 64 * 1024)
    });
}

#[test]
fn punch_hole_by_another_user_clears_set_id_bits() {
    if !is_root() {
        return;
    }
    check_cleared_by_others("punch", |fd| unsafe {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        libc::fallocate(fd, mode, 64 * 1024, 64 * 1024)
    });
}

#[test]
fn zero_range_by_another_user_clears_set_id_bits() {
    if !is_root() {
        return;
    }
    check_cleared_by_others("zero", |fd| unsafe {
        libc::fallocate(fd, libc::FALLOC_FL_ZERO_RANGE, 64 * 1024, 64 * 1024)
    });
}

#[test]
fn write_by_another_user_clears_set_id_bits() {
    if !is_root() {
        return;
    }
    check_cleared_by_others("write", |fd| unsafe {
        let rc = libc::pwrite(fd, b"abcd".as_ptr().cast(), 4, 0);
        if rc == 4 {
            0
        } else {
            -1
        }
    });
}

#[test]
fn truncate_by_another_user_clears_set_id_bits() {
    if !is_root() {
        return;
    }
    check_cleared_by_others("truncate", |fd| unsafe { libc::ftruncate(fd, 4096) });
}

#[test]
fn sparse_files_report_the_blocks_they_occupy() {
    let fs = start();
    let path = fs.path("sparse");
    let file = fs::File::create(&path).unwrap();
    file.set_len(100 << 20).unwrap();
    file.write_all_at(&[1u8; 4096], 0).unwrap();
    let open = file.metadata().unwrap();
    assert_eq!(open.len(), 100 << 20);
    // Size-derived blocks would be 204800; the data file holds one 4 KiB block (and a
    // file system may allocate a little more around it).
    assert!(
        open.blocks() >= 8 && open.blocks() * 512 < (1 << 20),
        "st_blocks of an open sparse file: {} (size {})",
        open.blocks(),
        open.len()
    );
    // Space allocated without a change of size or contents counts too.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            1 << 20,
            1 << 20,
        )
    };
    assert_eq!(rc, 0, "fallocate KEEP_SIZE: errno {}", errno());
    let allocated = file.metadata().unwrap().blocks();
    assert!(
        allocated >= open.blocks() + 2048,
        "st_blocks after allocating 1 MiB more: {allocated} (before {})",
        open.blocks()
    );
    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    assert_eq!(
        unsafe { libc::fallocate(file.as_raw_fd(), punch, 1 << 20, 1 << 20) },
        0
    );
    drop(file);
    fs.await_consistent();
    let closed = fs::metadata(&path).unwrap();
    assert!(
        closed.blocks() >= 8 && closed.blocks() * 512 < (1 << 20),
        "st_blocks after close: {}",
        closed.blocks()
    );
    // A fully written file counts all of its data.
    let dense = fs.path("dense");
    fs::write(&dense, vec![7u8; 1 << 20]).unwrap();
    let blocks = fs::metadata(&dense).unwrap().blocks();
    assert!(blocks >= 2048, "st_blocks of a 1 MiB file: {blocks}");
}

#[test]
fn blocks_of_closed_files_come_from_the_catalog_and_survive_a_remount() {
    let mut fs = start();
    let sparse = fs.path("sparse");
    let file = fs::File::create(&sparse).unwrap();
    file.set_len(100 << 20).unwrap();
    file.write_all_at(&[1u8; 4096], 0).unwrap();
    drop(file);
    // Empty, with space reserved: its blocks are all it has to show.
    let reserved = fs.path("reserved");
    let file = fs::File::create(&reserved).unwrap();
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, 1 << 20) };
    assert_eq!(rc, 0, "fallocate KEEP_SIZE: errno {}", errno());
    drop(file);
    let dense = fs.path("dense");
    fs::write(&dense, vec![7u8; 1 << 20]).unwrap();
    fs.await_consistent();
    let (sparse_ino, reserved_ino) = (
        fs::metadata(&sparse).unwrap().ino(),
        fs::metadata(&reserved).unwrap().ino(),
    );
    let sparse_blocks = fs::metadata(fs.cache_file(sparse_ino)).unwrap().blocks();
    let reserved_blocks = fs::metadata(fs.cache_file(reserved_ino)).unwrap().blocks();
    assert!(
        reserved_blocks >= 2048,
        "data file of the reserved file: {reserved_blocks} blocks"
    );

    // A new mount: the kernel knows nothing, the server tracks nothing.
    fs.remount();
    let after = fs::metadata(&sparse).unwrap();
    assert_eq!(
        (after.len(), after.blocks()),
        (100 << 20, sparse_blocks),
        "size and st_blocks of the sparse file after a remount (data file: {sparse_blocks} \
         blocks; size-derived would be {})",
        (100u64 << 20) / 512
    );

    // The reserved file's data file goes behind the server's back (it is empty: nothing is
    // lost). A stat that measured the data file would now see 0 blocks.
    fs::remove_file(fs.cache_file(reserved_ino)).unwrap();
    let after = fs::metadata(&reserved).unwrap();
    assert_eq!(
        (after.len(), after.blocks()),
        (0, reserved_blocks),
        "size and st_blocks of the closed reserved file: the catalog's, not a measurement"
    );
    let listed: Vec<u64> = fs::read_dir(fs.mnt())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path == &reserved)
        .map(|path| fs::symlink_metadata(path).unwrap().blocks())
        .collect();
    assert_eq!(listed, vec![reserved_blocks], "st_blocks after a listing");

    // A truncation of a closed file by path records what the cut left.
    let c_dense = CString::new(dense.as_os_str().as_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::truncate(c_dense.as_ptr(), 4096) },
        0,
        "errno {}",
        errno()
    );
    let dense_ino = fs::metadata(&dense).unwrap().ino();
    let left = fs::metadata(fs.cache_file(dense_ino)).unwrap().blocks();
    fs.remount();
    let after = fs::metadata(&dense).unwrap();
    assert_eq!(
        (after.len(), after.blocks()),
        (4096, left),
        "size and st_blocks of a 1 MiB file cut to 4 KiB"
    );
}

/// UPDATE statements the database has run so far (all sessions).
fn updates(conn: &mut mysql::Conn) -> u64 {
    let row: Option<(String, u64)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Com_update'")
        .unwrap();
    row.expect("Com_update").1
}

/// Reads `path` through the file system (its cached pages dropped first, so the read
/// reaches the server), and syncs it: whatever the read changed is in the catalog after.
fn read_uncached(path: &Path) -> Vec<u8> {
    let file = fs::File::open(path).unwrap();
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "fadvise");
    let mut buf = vec![0u8; 64];
    let n = file.read_at(&mut buf, 0).unwrap();
    buf.truncate(n);
    file.sync_all().unwrap();
    buf
}

#[test]
fn reads_move_the_access_time_as_relatime_without_a_write_per_read() {
    let fs = start();
    if !fs.db.is_private() {
        // It counts the server's UPDATE statements: other tests share that server.
        eprintln!("skipped: needs a server of its own (VS_TEST_MYSQL_URL or VS_TEST_GALERA)");
        return;
    }
    let path = fs.path("f");
    fs::write(&path, b"contents").unwrap();
    // An access time a minute before the last modification.
    let meta = fs::metadata(&path).unwrap();
    let old = libc::timespec {
        tv_sec: meta.mtime() - 60,
        tv_nsec: 0,
    };
    let times = [
        old,
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
    ];
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c(&path).as_ptr(), times.as_ptr(), 0) };
    assert_eq!(rc, 0);
    let before = fs::metadata(&path).unwrap();
    assert_eq!(before.atime(), meta.mtime() - 60);

    assert_eq!(read_uncached(&path), b"contents");
    let after = fs::metadata(&path).unwrap();
    assert!(
        (after.atime(), after.atime_nsec()) > (before.mtime(), before.mtime_nsec()),
        "atime {}.{:09} did not pass mtime {}.{:09}",
        after.atime(),
        after.atime_nsec(),
        before.mtime(),
        before.mtime_nsec()
    );
    assert_eq!(
        (after.ctime(), after.ctime_nsec()),
        (before.ctime(), before.ctime_nsec()),
        "an access is not a status change"
    );
    let mut conn = fs.db.connect();
    let ino = after.ino();
    support::await_condition(Duration::from_secs(10), "atime in the catalog", || {
        let atime: Option<i64> = conn
            .exec_first("SELECT atime_ns FROM vs_inodes WHERE ino = ?", (ino,))
            .unwrap();
        atime == Some(after.atime() * 1_000_000_000 + after.atime_nsec())
    });

    // Read again right after: the access time is newer than the last change, so relatime
    // leaves it, and nothing reaches the catalog (the fsync would have saved it).
    let updates_before = updates(&mut conn);
    assert_eq!(read_uncached(&path), b"contents");
    let updates_after = updates(&mut conn);
    assert_eq!(
        updates_after, updates_before,
        "a second read wrote to the catalog"
    );
    let again = fs::metadata(&path).unwrap();
    assert_eq!(
        (again.atime(), again.atime_nsec()),
        (after.atime(), after.atime_nsec())
    );
}

#[test]
fn chown_clears_set_user_id_and_executable_set_group_id() {
    if !is_root() {
        return;
    }
    let fs = start();
    // (before, after) for a change of owner by root: set-user-ID always goes, set-group-ID
    // when group-executable (root keeps it on a file without group-execute).
    for (i, (before, after)) in [(0o6755, 0o755), (0o6745, 0o2745), (0o2755, 0o755)]
        .into_iter()
        .enumerate()
    {
        let path = setid_file(&fs, &format!("chown-{i}"), before);
        std::os::unix::fs::chown(&path, Some(1000), Some(1000)).unwrap();
        assert_eq!(
            mode_of(&path),
            after,
            "chown of {before:o}: got {:o}",
            mode_of(&path)
        );
    }
}
