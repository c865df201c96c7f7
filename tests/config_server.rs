//! `vfsserver` and its configuration file: `--check` reports keys that are recognised but
//! not used, and a configuration that is not a regular file is refused at once.

mod support;

use std::time::Duration;

use support::server::{Server, ServerDir};
use support::MariaDb;

/// Longest `--check` may take (connect once, exit), with slack for a loaded machine.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

const UNUSED: &str = "recognised but not used yet";

#[test]
fn check_reports_keys_that_are_recognised_but_not_used() {
    let db = MariaDb::start();
    let dir = ServerDir::new(
        &db,
        "\n<TapeIdleTime>100</TapeIdleTime>\n<FileMaxSize>1G</FileMaxSize>\
         \n<ThrottleValve>1M</ThrottleValve>",
    );
    let (status, output) = Server::start(&dir, &[], &["--check"]).wait(EXIT_LIMIT);
    assert!(status.success(), "{output}");
    let report = output
        .lines()
        .find(|line| line.contains(UNUSED))
        .unwrap_or_else(|| panic!("no {UNUSED:?} line in:\n{output}"));
    assert!(
        report.contains("TapeIdleTime (line ") && report.contains("ThrottleValve (line "),
        "{report}"
    );
    assert!(
        !report.contains("FileMaxSize"),
        "FileMaxSize works: {report}"
    );
}

#[test]
fn check_reports_nothing_unused_when_every_key_set_works() {
    let db = MariaDb::start();
    let dir = ServerDir::new(
        &db,
        "<FileMaxSize>1G</FileMaxSize><CacheFreeLeastSize>1G</CacheFreeLeastSize>",
    );
    let (status, output) = Server::start(&dir, &[], &["--check"]).wait(EXIT_LIMIT);
    assert!(status.success(), "{output}");
    assert!(output.contains("reachable"), "{output}");
    assert!(!output.contains(UNUSED), "{output}");
}

#[test]
fn a_fifo_as_config_is_refused_at_once() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let config = dir.config();
    std::fs::remove_file(&config).unwrap();
    let c_path = std::ffi::CString::new(config.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    for args in [&["--check"][..], &[][..]] {
        let (status, output) = Server::start(&dir, &[], args).wait(EXIT_LIMIT);
        assert!(!status.success(), "{args:?}: {output}");
        assert!(
            output.contains(&config.display().to_string())
                && output.contains("named pipe (FIFO), not a regular file"),
            "{args:?}: {output}"
        );
        assert!(!dir.is_mounted());
    }
}

#[test]
fn a_mount_point_inside_the_cache_folder_is_refused_at_start() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let cache = std::fs::canonicalize(dir.root.path())
        .unwrap()
        .join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let inside = cache.join("mnt");
    let (status, output) =
        Server::start(&dir, &[], &["--mountpoint", inside.to_str().unwrap()]).wait(EXIT_LIMIT);
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(&format!(
            "MountPoint ({}) is inside CacheFolder ({})",
            inside.display(),
            cache.display()
        )),
        "{output}"
    );
    assert!(
        !support::server::mount_points().contains(&inside),
        "mounted at {inside:?}"
    );
}

#[test]
fn the_server_reports_unused_keys_at_start_and_applies_file_max_size() {
    let db = MariaDb::start();
    let dir = ServerDir::new(
        &db,
        "<FileMaxSize>4K</FileMaxSize><TapeIdleTime>100</TapeIdleTime>",
    );
    let mut server = Server::start(&dir, &[], &[]);
    assert!(
        server
            .await_notify("READY=1", Duration::from_secs(30))
            .is_some(),
        "no READY=1; output:\n{}",
        server.output()
    );
    let report = server
        .await_output(UNUSED, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no {UNUSED:?} line in:\n{}", server.output()));
    assert!(
        report.contains("WARN") && report.contains("TapeIdleTime (line "),
        "{report}"
    );
    assert!(!report.contains("FileMaxSize"), "{report}");

    let path = dir.mountpoint().join("f");
    let err = std::fs::write(&path, vec![7u8; 5000]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 4096]);

    server.signal(libc::SIGTERM);
    let (status, output) = server.wait(EXIT_LIMIT);
    assert!(status.success(), "exit {status}:\n{output}");
}
