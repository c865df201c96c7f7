//! Every file system operation through system calls, with its error cases.

mod support;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Command;

use support::mount::MountedFs;

fn c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn errno_of(rc: libc::c_int) -> i32 {
    assert_eq!(rc, -1, "call succeeded but should have failed");
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

fn err(result: std::io::Result<impl std::fmt::Debug>) -> i32 {
    result.unwrap_err().raw_os_error().unwrap()
}

#[test]
fn setattr_changes_mode_owner_size_and_times() {
    let fs = MountedFs::start();
    let path = fs.path("f");
    fs::write(&path, b"0123456789").unwrap();
    let before = ctime(&fs::metadata(&path).unwrap());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o4751)).unwrap();
    let after_chmod = ctime(&fs::metadata(&path).unwrap());
    assert!(after_chmod > before, "chmod changes ctime");
    std::os::unix::fs::chown(&path, Some(1234), Some(5678)).unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o751, "chown clears set-uid");
    assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
    assert!(ctime(&meta) > after_chmod, "chown changes ctime");

    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(4).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"0123");
    file.set_len(6).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"0123\0\0");

    let times = [
        libc::timespec {
            tv_sec: 1_000_000,
            tv_nsec: 123_456_789,
        },
        libc::timespec {
            tv_sec: 2_000_000,
            tv_nsec: 987_654_321,
        },
    ];
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c(&path).as_ptr(), times.as_ptr(), 0) };
    assert_eq!(rc, 0);
    let meta = fs::metadata(&path).unwrap();
    assert_eq!((meta.atime(), meta.atime_nsec()), (1_000_000, 123_456_789));
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (2_000_000, 987_654_321));
    let now = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
    ];
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c(&path).as_ptr(), now.as_ptr(), 0) };
    assert_eq!(rc, 0);
    let meta = fs::metadata(&path).unwrap();
    assert!(meta.atime() >= started, "UTIME_NOW sets atime to now");
    assert!(meta.mtime() >= started, "UTIME_NOW sets mtime to now");
}

/// A status change time as (seconds, nanoseconds), for ordering.
fn ctime(meta: &fs::Metadata) -> (i64, i64) {
    (meta.ctime(), meta.ctime_nsec())
}

#[test]
fn ctime_advances_on_every_status_change() {
    let fs = MountedFs::start();
    fs::create_dir(fs.path("d")).unwrap();
    fs::write(fs.path("f"), b"data").unwrap();
    let stat = |rel: &str| ctime(&fs::metadata(fs.path(rel)).unwrap());

    let before = stat("f");
    fs::set_permissions(fs.path("f"), fs::Permissions::from_mode(0o600)).unwrap();
    let after = stat("f");
    assert!(after > before, "chmod");

    let before = after;
    fs::rename(fs.path("f"), fs.path("d/f")).unwrap();
    let after = stat("d/f");
    assert!(after > before, "rename changes the source's ctime");

    let before = after;
    fs::hard_link(fs.path("d/f"), fs.path("second")).unwrap();
    let after = stat("d/f");
    assert!(after > before, "link");

    let before = after;
    fs::remove_file(fs.path("second")).unwrap();
    let after = stat("d/f");
    assert!(after > before, "unlink of a file that keeps another name");

    let open = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fs.path("d/f"))
        .unwrap();
    let before = ctime(&open.metadata().unwrap());
    let name = CString::new("user.tag").unwrap();
    let rc =
        unsafe { libc::fsetxattr(open.as_raw_fd(), name.as_ptr(), b"v".as_ptr().cast(), 1, 0) };
    assert_eq!(rc, 0);
    let after = ctime(&open.metadata().unwrap());
    assert!(after > before, "setxattr on an open file");
    let before = after;
    assert_eq!(
        unsafe { libc::fremovexattr(open.as_raw_fd(), name.as_ptr()) },
        0
    );
    let after = ctime(&open.metadata().unwrap());
    assert!(after > before, "removexattr on an open file");
    let before = after;
    fs::set_permissions(fs.path("d/f"), fs::Permissions::from_mode(0o640)).unwrap();
    let after = ctime(&open.metadata().unwrap());
    assert!(after > before, "chmod by path, seen through the open file");
    assert_eq!(open.metadata().unwrap().mode() & 0o777, 0o640);
}

#[test]
fn removed_directory_has_no_links_through_an_open_handle() {
    let fs = MountedFs::start();
    fs::create_dir(fs.path("d")).unwrap();
    let dir = fs::File::open(fs.path("d")).unwrap();
    assert_eq!(dir.metadata().unwrap().nlink(), 2);
    fs::remove_dir(fs.path("d")).unwrap();
    let meta = dir.metadata().unwrap();
    assert_eq!(meta.nlink(), 0, "fstat of a removed directory");
    assert!(meta.is_dir());
}

#[test]
fn mknod_makes_fifos_sockets_and_devices_that_persist() {
    let mut fs = MountedFs::start();
    let fifo = fs.path("fifo");
    assert_eq!(unsafe { libc::mkfifo(c(&fifo).as_ptr(), 0o640) }, 0);
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let sock = fs.path("sock");
    assert_eq!(
        unsafe { libc::mknod(c(&sock).as_ptr(), libc::S_IFSOCK | 0o600, 0) },
        0
    );
    assert!(fs::metadata(&sock).unwrap().file_type().is_socket());
    let root = unsafe { libc::geteuid() } == 0;
    let (chr_rdev, blk_rdev) = (libc::makedev(1, 3), libc::makedev(7, 200));
    if root {
        let chr = fs.path("null");
        let blk = fs.path("loop");
        assert_eq!(
            unsafe { libc::mknod(c(&chr).as_ptr(), libc::S_IFCHR | 0o666, chr_rdev) },
            0
        );
        assert_eq!(
            unsafe { libc::mknod(c(&blk).as_ptr(), libc::S_IFBLK | 0o660, blk_rdev) },
            0
        );
    }
    assert_eq!(
        errno_of(unsafe { libc::mkfifo(c(&fifo).as_ptr(), 0o640) }),
        libc::EEXIST
    );

    let modes: Vec<u32> = ["fifo", "sock"]
        .iter()
        .map(|name| fs::metadata(fs.path(name)).unwrap().mode())
        .collect();

    fs.remount();

    let meta = fs::metadata(fs.path("fifo")).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.mode(), modes[0]);
    assert_eq!(fs::metadata(fs.path("sock")).unwrap().mode(), modes[1]);
    assert!(fs::metadata(fs.path("sock"))
        .unwrap()
        .file_type()
        .is_socket());
    if root {
        let chr = fs::metadata(fs.path("null")).unwrap();
        assert!(chr.file_type().is_char_device());
        assert_eq!(chr.rdev(), chr_rdev);
        let blk = fs::metadata(fs.path("loop")).unwrap();
        assert!(blk.file_type().is_block_device());
        assert_eq!(blk.rdev(), blk_rdev);
    }
}

#[test]
fn symlinks_and_hard_links() {
    let fs = MountedFs::start();
    fs::write(fs.path("target"), b"data").unwrap();
    symlink("target", fs.path("link")).unwrap();
    assert_eq!(fs::read_link(fs.path("link")).unwrap(), Path::new("target"));
    assert_eq!(fs::read(fs.path("link")).unwrap(), b"data");
    assert!(fs::symlink_metadata(fs.path("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    let long_target = "t".repeat(4095);
    symlink(&long_target, fs.path("long")).unwrap();
    assert_eq!(
        fs::read_link(fs.path("long")).unwrap(),
        Path::new(&long_target)
    );
    assert_eq!(err(fs::read_link(fs.path("target"))), libc::EINVAL);

    fs::hard_link(fs.path("target"), fs.path("second")).unwrap();
    assert_eq!(fs::metadata(fs.path("target")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(fs.path("second")).unwrap().ino(),
        fs::metadata(fs.path("target")).unwrap().ino()
    );
    fs::remove_file(fs.path("target")).unwrap();
    assert_eq!(fs::metadata(fs.path("second")).unwrap().nlink(), 1);
    assert_eq!(fs::read(fs.path("second")).unwrap(), b"data");
    fs::create_dir(fs.path("dir")).unwrap();
    assert_eq!(
        err(fs::hard_link(fs.path("dir"), fs.path("dirlink"))),
        libc::EPERM
    );
    assert_eq!(
        err(fs::hard_link(fs.path("second"), fs.path("dir"))),
        libc::EEXIST
    );
}

#[test]
fn unlink_and_rmdir_errors() {
    let fs = MountedFs::start();
    fs::create_dir(fs.path("d")).unwrap();
    fs::write(fs.path("f"), b"").unwrap();
    assert_eq!(err(fs::remove_file(fs.path("missing"))), libc::ENOENT);
    assert_eq!(err(fs::remove_file(fs.path("d"))), libc::EISDIR);
    assert_eq!(err(fs::remove_dir(fs.path("f"))), libc::ENOTDIR);
    assert_eq!(err(fs::create_dir(fs.path("d"))), libc::EEXIST);
    assert_eq!(err(fs::write(fs.path("f/x"), b"")), libc::ENOTDIR);
    assert_eq!(err(fs::read_dir(fs.path("f")).map(|_| ())), libc::ENOTDIR);
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> libc::c_int {
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            c(from).as_ptr(),
            libc::AT_FDCWD,
            c(to).as_ptr(),
            flags,
        )
    }
}

#[test]
fn rename_replaces_target_atomically() {
    let fs = MountedFs::start();
    fs::write(fs.path("new"), b"new contents").unwrap();
    fs::write(fs.path("old"), b"old contents").unwrap();
    let new_ino = fs::metadata(fs.path("new")).unwrap().ino();
    fs::rename(fs.path("new"), fs.path("old")).unwrap();
    assert_eq!(fs::read(fs.path("old")).unwrap(), b"new contents");
    assert_eq!(fs::metadata(fs.path("old")).unwrap().ino(), new_ino);
    assert!(!fs.path("new").exists());
    // The replaced file's data is reclaimed (once its release, which reaches the server
    // after `close` returns, has arrived).
    let data = fs.cache_dir().join("data");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut cache_files = count_files(&data);
    while cache_files != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        cache_files = count_files(&data);
    }
    assert_eq!(cache_files, 1, "replaced target's cache file removed");
}

#[test]
fn rename_flags_noreplace_and_exchange() {
    let fs = MountedFs::start();
    fs::write(fs.path("a"), b"A").unwrap();
    fs::write(fs.path("b"), b"B").unwrap();
    assert_eq!(
        errno_of(renameat2(
            &fs.path("a"),
            &fs.path("b"),
            libc::RENAME_NOREPLACE
        )),
        libc::EEXIST
    );
    assert_eq!(
        renameat2(&fs.path("a"), &fs.path("c"), libc::RENAME_NOREPLACE),
        0
    );
    assert_eq!(
        renameat2(&fs.path("c"), &fs.path("b"), libc::RENAME_EXCHANGE),
        0
    );
    assert_eq!(fs::read(fs.path("c")).unwrap(), b"B");
    assert_eq!(fs::read(fs.path("b")).unwrap(), b"A");
    assert_eq!(
        errno_of(renameat2(
            &fs.path("c"),
            &fs.path("zz"),
            libc::RENAME_EXCHANGE
        )),
        libc::ENOENT
    );
    // Exchange a directory with a file across directories: link counts follow.
    fs::create_dir_all(fs.path("p/q")).unwrap();
    assert_eq!(
        renameat2(&fs.path("p/q"), &fs.path("b"), libc::RENAME_EXCHANGE),
        0
    );
    assert!(fs::metadata(fs.path("b")).unwrap().is_dir());
    assert_eq!(fs::read(fs.path("p/q")).unwrap(), b"A");
    assert_eq!(fs::metadata(fs.path("p")).unwrap().nlink(), 2);
}

#[test]
fn rename_directory_rules() {
    let fs = MountedFs::start();
    fs::create_dir_all(fs.path("a/b/c")).unwrap();
    fs::create_dir_all(fs.path("full/x")).unwrap();
    fs::create_dir(fs.path("empty")).unwrap();
    fs::write(fs.path("file"), b"").unwrap();
    assert_eq!(
        err(fs::rename(fs.path("a"), fs.path("a/b/c/a"))),
        libc::EINVAL
    );
    assert_eq!(
        err(fs::rename(fs.path("a"), fs.path("full"))),
        libc::ENOTEMPTY
    );
    assert_eq!(
        err(fs::rename(fs.path("a"), fs.path("file"))),
        libc::ENOTDIR
    );
    assert_eq!(
        err(fs::rename(fs.path("file"), fs.path("empty"))),
        libc::EISDIR
    );
    fs::rename(fs.path("a/b"), fs.path("empty")).unwrap();
    assert!(fs.path("empty/c").is_dir());
    assert_eq!(fs::metadata(fs.path("a")).unwrap().nlink(), 2);
    fs::rename(fs.path("empty"), fs.path("full/moved")).unwrap();
    assert_eq!(fs::metadata(fs.path("full")).unwrap().nlink(), 4);
    assert_eq!(fs::metadata(fs.mnt()).unwrap().nlink(), 4); // 2 + directories a and full
}

fn count_files(dir: &Path) -> usize {
    let mut count = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            count += count_files(&entry.path());
        } else {
            count += 1;
        }
    }
    count
}

#[test]
fn extended_attributes_with_flags_and_size_probing() {
    // Room for a 64 KiB value (the default bound per inode is 4 KiB).
    let options = valuestor::fs::FsOptions {
        xattr_max_size: 128 * 1024,
        ..Default::default()
    };
    let fs = MountedFs::start_with_options(|_| {}, options);
    let path = fs.path("x");
    fs::write(&path, b"").unwrap();
    let p = c(&path);
    let set = |name: &str, value: &[u8], flags: i32| unsafe {
        let name = CString::new(name).unwrap();
        libc::setxattr(
            p.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    let get = |name: &str, buf: &mut [u8]| unsafe {
        let name = CString::new(name).unwrap();
        libc::getxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(set("user.colour", b"blue", 0), 0);
    assert_eq!(
        errno_of(set("user.colour", b"red", libc::XATTR_CREATE)),
        libc::EEXIST
    );
    assert_eq!(
        errno_of(set("user.size", b"1", libc::XATTR_REPLACE)),
        libc::ENODATA
    );
    assert_eq!(set("user.colour", b"green", libc::XATTR_REPLACE), 0);
    let big = vec![b'v'; 65536];
    assert_eq!(set("user.big", &big, 0), 0);
    assert_eq!(get("user.colour", &mut []), 5, "size probe");
    let mut small = [0u8; 2];
    assert_eq!(
        errno_of(get("user.colour", &mut small) as i32),
        libc::ERANGE
    );
    let mut buf = [0u8; 16];
    assert_eq!(get("user.colour", &mut buf), 5);
    assert_eq!(&buf[..5], b"green");
    let mut big_buf = vec![0u8; 65536];
    assert_eq!(get("user.big", &mut big_buf), 65536);
    assert_eq!(errno_of(get("user.none", &mut buf) as i32), libc::ENODATA);

    let list_len = unsafe { libc::listxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
    let mut list = vec![0u8; list_len as usize];
    let got = unsafe { libc::listxattr(p.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
    assert_eq!(got, list_len);
    assert_eq!(list, b"user.big\0user.colour\0");
    let remove = |name: &str| unsafe {
        let name = CString::new(name).unwrap();
        libc::removexattr(p.as_ptr(), name.as_ptr())
    };
    assert_eq!(remove("user.colour"), 0);
    assert_eq!(errno_of(remove("user.colour")), libc::ENODATA);
}

#[test]
fn names_are_bytes_up_to_255_and_injection_proof() {
    let fs = MountedFs::start();
    let ok = "n".repeat(255);
    fs::write(fs.path(&ok), b"255").unwrap();
    assert_eq!(fs::read(fs.path(&ok)).unwrap(), b"255");
    assert_eq!(fs::read_dir(fs.mnt()).unwrap().count(), 1);
    // The kernel passes names up to 1024 bytes on; every operation that takes a name says
    // ENAMETOOLONG past 255 (the kernel's lookup of the new name usually asks first: the
    // catalog tests check each operation's own check).
    let too_long = "n".repeat(256);
    let long = fs.path(&too_long);
    let too_long_errors = [
        ("lookup", err(fs::metadata(&long))),
        ("create", err(fs::write(&long, b""))),
        (
            "mknod",
            errno_of(unsafe { libc::mkfifo(c(&long).as_ptr(), 0o644) }),
        ),
        ("mkdir", err(fs::create_dir(&long))),
        ("symlink", err(symlink("target", &long))),
        ("link", err(fs::hard_link(fs.path(&ok), &long))),
        ("rename to", err(fs::rename(fs.path(&ok), &long))),
        ("rename from", err(fs::rename(&long, fs.path("x")))),
        ("unlink", err(fs::remove_file(&long))),
        ("rmdir", err(fs::remove_dir(&long))),
    ];
    for (op, errno) in too_long_errors {
        assert_eq!(errno, libc::ENAMETOOLONG, "{op}");
    }
    let long_attr = CString::new(format!("user.{}", "a".repeat(251))).unwrap();
    let rc = unsafe {
        libc::setxattr(
            c(&fs.path(&ok)).as_ptr(),
            long_attr.as_ptr(),
            b"v".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(
        errno_of(rc),
        libc::ERANGE,
        "an attribute name over 255 bytes"
    );
    assert_eq!(
        fs::read_dir(fs.mnt()).unwrap().count(),
        1,
        "nothing was created"
    );
    let names = [
        "it's",
        "say \"hi\"",
        "back\\slash",
        "new\nline",
        "caf\u{e9} \u{65e5}\u{672c} \u{1f600}",
        "x'); DROP TABLE vs_inodes; --",
        "\" OR 1=1 #",
        "%_*?",
    ];
    for name in names {
        fs::write(fs.path(name), name.as_bytes()).unwrap();
    }
    let listed: std::collections::BTreeSet<Vec<u8>> = fs::read_dir(fs.mnt())
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    for name in names {
        assert!(listed.contains(name.as_bytes()), "{name:?} not listed");
        assert_eq!(fs::read(fs.path(name)).unwrap(), name.as_bytes());
    }
    // Latin-1 bytes that are not UTF-8 are names too.
    let raw = std::ffi::OsStr::from_bytes(b"caf\xe9");
    fs::write(fs.mnt().join(raw), b"raw").unwrap();
    assert_eq!(fs::read(fs.mnt().join(raw)).unwrap(), b"raw");
    assert_eq!(listed.len() + 1, fs::read_dir(fs.mnt()).unwrap().count());
}

#[test]
fn statfs_reflects_the_cache_and_the_kernel_checks_access() {
    let fs = MountedFs::start();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c(&fs.mnt()).as_ptr(), &mut st) }, 0);
    assert_eq!(st.f_namemax, 255);
    let mut cache: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::statvfs(c(&fs.cache_dir()).as_ptr(), &mut cache) },
        0
    );
    assert_eq!(
        st.f_blocks, cache.f_blocks,
        "statfs reflects the cache file system"
    );

    let path = fs.path("f");
    fs::write(&path, b"").unwrap();
    assert_eq!(
        unsafe { libc::access(c(&path).as_ptr(), libc::R_OK | libc::W_OK) },
        0
    );
    // Mode 0644: nobody may execute it, root included (the kernel's rule for X_OK).
    assert_eq!(
        errno_of(unsafe { libc::access(c(&path).as_ptr(), libc::X_OK) }),
        libc::EACCES
    );
    assert_eq!(
        errno_of(unsafe { libc::access(c(&fs.path("none")).as_ptr(), libc::F_OK) }),
        libc::ENOENT
    );
}

fn fallocate(file: &fs::File, mode: libc::c_int, offset: i64, len: i64) -> libc::c_int {
    // Directly, not posix_fallocate: glibc emulates that by writing zeros when the file
    // system lacks the operation.
    unsafe { libc::fallocate(file.as_raw_fd(), mode, offset, len) }
}

#[test]
fn fallocate_allocates_punches_holes_and_zeroes_ranges() {
    let fs = MountedFs::start();
    let path = fs.path("f");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    assert_eq!(fallocate(&file, 0, 0, 1 << 20), 0, "mode 0");
    assert_eq!(file.metadata().unwrap().len(), 1 << 20, "mode 0 extends");
    assert_eq!(
        fallocate(&file, libc::FALLOC_FL_KEEP_SIZE, 0, 4 << 20),
        0,
        "KEEP_SIZE"
    );
    assert_eq!(
        file.metadata().unwrap().len(),
        1 << 20,
        "KEEP_SIZE keeps the size"
    );

    file.write_all_at(&[7u8; 3 * 4096], 0).unwrap();
    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    assert_eq!(fallocate(&file, punch, 4096, 4096), 0, "PUNCH_HOLE");
    let mut buf = vec![0u8; 3 * 4096];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf[..4096].iter().all(|&b| b == 7));
    assert!(
        buf[4096..8192].iter().all(|&b| b == 0),
        "the hole reads as zeros"
    );
    assert!(buf[8192..].iter().all(|&b| b == 7));
    assert_eq!(file.metadata().unwrap().len(), 1 << 20);

    assert_eq!(
        fallocate(&file, libc::FALLOC_FL_ZERO_RANGE, (1 << 20) - 10, 20),
        0,
        "ZERO_RANGE"
    );
    assert_eq!(
        file.metadata().unwrap().len(),
        (1 << 20) + 10,
        "ZERO_RANGE extends"
    );
    assert_eq!(
        errno_of(fallocate(&file, libc::FALLOC_FL_COLLAPSE_RANGE, 0, 4096)),
        libc::EOPNOTSUPP
    );
    drop(file);
    let data = fs::read(&path).unwrap();
    assert_eq!(data.len(), (1 << 20) + 10);
    assert!(data[4096..8192].iter().all(|&b| b == 0));
    fs.await_consistent();
}

/// Runs a command as the unprivileged user `nobody`; true if it succeeded.
fn as_nobody(args: &[&str]) -> bool {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .output()
        .expect("setpriv (util-linux)")
        .status
        .success()
}

#[test]
fn permissions_and_sticky_directories_are_enforced() {
    if unsafe { libc::geteuid() } != 0 {
        return; // needs root to act as another user
    }
    let fs = MountedFs::start();
    fs::set_permissions(fs.mnt(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(fs.path("tmp")).unwrap();
    fs::set_permissions(fs.path("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(fs.path("tmp/roots"), b"mine").unwrap();
    fs::set_permissions(fs.path("tmp/roots"), fs::Permissions::from_mode(0o666)).unwrap();
    fs::write(fs.path("private"), b"secret").unwrap();
    fs::set_permissions(fs.path("private"), fs::Permissions::from_mode(0o600)).unwrap();
    let p = |rel: &str| fs.path(rel).to_str().unwrap().to_string();

    assert!(
        !as_nobody(&["cat", &p("private")]),
        "mode 0600 keeps others out"
    );
    assert!(
        !as_nobody(&["touch", &p("newfile")]),
        "no write permission on 0755 dir"
    );
    assert!(as_nobody(&["touch", &p("tmp/nobodys")]));
    assert_eq!(fs::metadata(fs.path("tmp/nobodys")).unwrap().uid(), 65534);
    assert!(
        !as_nobody(&["rm", "-f", &p("tmp/roots")]),
        "sticky: not the owner"
    );
    assert!(fs.path("tmp/roots").exists());
    assert!(!as_nobody(&["mv", &p("tmp/roots"), &p("tmp/stolen")]));
    assert!(
        as_nobody(&["rm", &p("tmp/nobodys")]),
        "sticky: owner may delete"
    );
}

#[test]
fn truncate_by_path_shrinks_and_extends_with_zeros() {
    let fs = MountedFs::start();
    let path = fs.path("f");
    fs::write(&path, b"0123456789").unwrap();
    assert_eq!(unsafe { libc::truncate(c(&path).as_ptr(), 4) }, 0);
    assert_eq!(fs::read(&path).unwrap(), b"0123");
    assert_eq!(unsafe { libc::truncate(c(&path).as_ptr(), 8) }, 0);
    assert_eq!(fs::read(&path).unwrap(), b"0123\0\0\0\0");
    assert_eq!(fs::metadata(&path).unwrap().len(), 8);
    fs::create_dir(fs.path("d")).unwrap();
    assert_eq!(
        errno_of(unsafe { libc::truncate(c(&fs.path("d")).as_ptr(), 0) }),
        libc::EISDIR
    );
    fs.await_consistent();
}

#[test]
fn sizes_reach_the_catalog_on_the_timer_without_a_close() {
    let fs = MountedFs::start();
    let mut file = fs::File::create(fs.path("f")).unwrap();
    let ino = file.metadata().unwrap().ino();
    use std::io::Write;
    file.write_all(&[1u8; 12345]).unwrap();
    // No flush, fsync or close: only the timer saves it.
    let mut conn = fs.db.connect();
    support::await_condition(
        std::time::Duration::from_secs(10),
        "the size in the catalog",
        || {
            use mysql::prelude::Queryable;
            let size: Option<u64> = conn
                .exec_first("SELECT size FROM vs_inodes WHERE ino = ?", (ino,))
                .unwrap();
            size == Some(12345)
        },
    );
    drop(file);
}
