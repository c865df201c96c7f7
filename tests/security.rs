//! Who can do what through a running `vfsserver`: the mount is `nosuid,nodev` unless
//! MountAllowSuidDev says otherwise (a setuid-root program copied into it does not run as
//! root, a device node in it cannot be opened), and `--check` warns when the catalog user
//! can do more than the catalog needs, while a user with only that runs the file system.

mod support;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mysql::prelude::Queryable;
use support::server::{Server, ServerDir};
use support::MariaDb;
use valuestor::meta::mysql::privileges;

/// Longest start-up on a reachable database, including the first catalog migration.
const START_LIMIT: Duration = Duration::from_secs(30);
/// Longest a clean stop may take with nothing open.
const EXIT_LIMIT: Duration = Duration::from_secs(20);
/// The unprivileged user the setuid program is run as.
const NOBODY: libc::uid_t = 65534;

/// Starts vfsserver on `dir` and waits until it is mounted; the directory is opened to
/// other users so an unprivileged user can reach the mount.
fn start_mounted(dir: &ServerDir) -> Server {
    fs::set_permissions(dir.root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start(dir, &[], &[]);
    assert!(
        server.await_notify("READY=1", START_LIMIT).is_some(),
        "no READY=1 from vfsserver; output:\n{}",
        server.output()
    );
    server
}

fn stop(mut server: Server) {
    server.signal(libc::SIGTERM);
    let (status, output) = server.wait(EXIT_LIMIT);
    assert!(status.success(), "exit {status}:\n{output}");
}

/// The per-mount options of the mount at `path` (`rw,nosuid,nodev,noatime`), from
/// /proc/self/mountinfo.
fn mount_options(path: &Path) -> Vec<String> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mounts
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4).map(Path::new) == Some(path))
        .unwrap_or_else(|| panic!("{path:?} is not in mountinfo:\n{mounts}"));
    line.split(' ')
        .nth(5)
        .unwrap()
        .split(',')
        .map(String::from)
        .collect()
}

/// Copies `id` into the mount as a setuid-root program and runs `id -u` from there as an
/// unprivileged user; returns the effective uid it printed.
fn setuid_root_program_effective_uid(mnt: &Path) -> String {
    let program = mnt.join("id-setuid-root");
    fs::copy("/usr/bin/id", &program).unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o4755)).unwrap();
    let meta = fs::metadata(&program).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o4755,
        "the setuid bit was not stored"
    );
    let mut command = Command::new(&program);
    command.arg("-u");
    // SAFETY: setgroups, setgid and setuid are async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(NOBODY) != 0
                || libc::setuid(NOBODY) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().expect("run the program as nobody");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Makes a character device node for /dev/null (1, 3) in the mount and opens it for
/// writing; returns the errno of the open, or 0.
fn open_device_node(mnt: &Path) -> i32 {
    let node = CString::new(mnt.join("null-device").as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; makedev and mknod have no other preconditions.
    let made = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    assert_eq!(made, 0, "mknod: {}", std::io::Error::last_os_error());
    match fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("null-device"))
    {
        Ok(_) => 0,
        Err(err) => err.raw_os_error().unwrap_or(-1),
    }
}

#[test]
fn mount_is_nosuid_nodev_so_setuid_programs_and_devices_give_nothing() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let server = start_mounted(&dir);
    let mnt = dir.mountpoint();

    let options = mount_options(&mnt);
    assert!(
        options.contains(&"nosuid".to_string()) && options.contains(&"nodev".to_string()),
        "mount options of {mnt:?}: {options:?}"
    );
    let euid = setuid_root_program_effective_uid(&mnt);
    assert_eq!(
        euid,
        NOBODY.to_string(),
        "effective uid of a setuid-root program run by nobody"
    );
    let errno = open_device_node(&mnt);
    assert_eq!(errno, libc::EACCES, "opening a device node in the mount");
    stop(server);
}

#[test]
fn mount_allow_suid_dev_honours_setuid_bits_and_devices() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "<MountAllowSuidDev>true</MountAllowSuidDev>");
    let server = start_mounted(&dir);
    let mnt = dir.mountpoint();

    let options = mount_options(&mnt);
    assert!(
        !options.contains(&"nosuid".to_string()) && !options.contains(&"nodev".to_string()),
        "mount options of {mnt:?}: {options:?}"
    );
    assert_eq!(
        setuid_root_program_effective_uid(&mnt),
        "0",
        "effective uid of a setuid-root program run by nobody"
    );
    assert_eq!(
        open_device_node(&mnt),
        0,
        "opening a device node in the mount"
    );
    // The output is read by a thread of its own: the line may arrive after the mount.
    assert!(
        server
            .await_output("MountAllowSuidDev is set", START_LIMIT)
            .is_some(),
        "no warning about MountAllowSuidDev:\n{}",
        server.output()
    );
    stop(server);
}

/// Creates `user` with `password` and exactly the catalog's needed privileges on `db`.
fn create_minimal_user(db: &MariaDb, user: &str, password: &str) -> bool {
    let Some(mut root) = db.root_connect() else {
        eprintln!("skipped: needs a private server, VS_TEST_MYSQL_URL is set");
        return false;
    };
    // CREATE USER and GRANT take no placeholders; the names and password are our own.
    root.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
    ))
    .unwrap();
    root.query_drop(format!(
        "GRANT {} ON `{}`.* TO '{user}'@'%'",
        privileges::NEEDED.join(", "),
        db.database()
    ))
    .unwrap();
    true
}

/// Rewrites `dir`'s config to connect as `user` with `password`.
fn use_user(dir: &ServerDir, db: &MariaDb, user: &str, password: &str) {
    let text = fs::read_to_string(dir.config()).unwrap();
    let text = text
        .replace(
            &format!("<DatabaseUser>{}</DatabaseUser>", db.user()),
            &format!("<DatabaseUser>{user}</DatabaseUser>"),
        )
        .replace(
            &format!("<DatabasePassword>{}</DatabasePassword>", db.password()),
            &format!("<DatabasePassword>{password}</DatabasePassword>"),
        );
    assert!(text.contains(user), "{text}");
    fs::write(dir.config(), text).unwrap();
}

#[test]
fn check_warns_when_the_catalog_user_can_do_more_than_it_needs() {
    let db = MariaDb::start();
    // The harness's user has ALL PRIVILEGES on *.*.
    let dir = ServerDir::new(&db, "");
    let (status, output) = Server::start(&dir, &[], &["--check"]).wait(EXIT_LIMIT);
    assert!(status.success(), "{output}");
    assert!(
        output.contains("can do more than the catalog needs")
            && output.contains("ALL PRIVILEGES on *.* (every database on the server)"),
        "--check with an over-privileged user:\n{output}"
    );
    assert!(
        !output.contains("IDENTIFIED") && !output.contains(db.password()),
        "{output}"
    );

    let password = format!("pw-{:016x}", fastrand::u64(..));
    if !create_minimal_user(&db, "vs_minimal", &password) {
        return;
    }
    use_user(&dir, &db, "vs_minimal", &password);
    let (status, output) = Server::start(&dir, &[], &["--check"]).wait(EXIT_LIMIT);
    assert!(status.success(), "{output}");
    assert!(output.contains("reachable"), "{output}");
    assert!(
        !output.contains("can do more than") && !output.contains("privileges: "),
        "--check with a user holding only {:?}:\n{output}",
        privileges::NEEDED
    );
}

#[test]
fn catalog_user_with_only_the_needed_privileges_runs_the_file_system() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let password = format!("pw-{:016x}", fastrand::u64(..));
    if !create_minimal_user(&db, "vs_minimal", &password) {
        return;
    }
    use_user(&dir, &db, "vs_minimal", &password);
    // The first start creates the schema and its procedure; creating files calls it.
    let server = start_mounted(&dir);
    let mnt = dir.mountpoint();
    fs::create_dir(mnt.join("d")).unwrap();
    fs::write(mnt.join("d/f"), b"kept").unwrap();
    fs::rename(mnt.join("d/f"), mnt.join("g")).unwrap();
    fs::remove_dir(mnt.join("d")).unwrap();
    assert_eq!(fs::read(mnt.join("g")).unwrap(), b"kept");
    stop(server);
}
