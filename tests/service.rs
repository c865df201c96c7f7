//! `vfsserver` as a process: waiting for the database without CPU, READY=1, SIGTERM and
//! SIGKILL, limits, `--check`, `--wait-db`.

mod support;

use std::fs;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::server::{Server, ServerDir};
use support::{await_condition, MariaDb};

const EXIT_LIMIT: Duration = Duration::from_secs(20);

fn start_mounted(dir: &ServerDir) -> Server {
    let server = Server::start(dir, &[], &[]);
    assert!(
        server
            .await_notify("READY=1", Duration::from_secs(30))
            .is_some(),
        "no READY=1 from vfsserver"
    );
    assert!(dir.is_mounted());
    server
}

#[test]
fn waits_for_the_database_without_cpu_then_mounts() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let dir = ServerDir::new(&db, "");
    db.stop();
    let server = Server::start(&dir, &[], &[]);
    let status = server
        .await_notify("STATUS=waiting for the database", Duration::from_secs(10))
        .expect("STATUS= while waiting");
    assert!(
        !status.contains(db.password()),
        "password in status: {status}"
    );
    let cpu_before = server.cpu_time();
    let started = Instant::now();
    // The outage being measured: time must pass.
    std::thread::sleep(Duration::from_secs(5));
    let cpu = server.cpu_time() - cpu_before;
    let share = cpu.as_secs_f64() / started.elapsed().as_secs_f64();
    eprintln!(
        "vfsserver CPU while waiting for the database: {cpu:?} = {:.2}%",
        share * 100.0
    );
    assert!(share < 0.02, "server used {cpu:?} while waiting");
    assert!(!dir.is_mounted());

    db.resume();
    let up = Instant::now();
    assert!(
        server
            .await_notify("READY=1", Duration::from_secs(15))
            .is_some(),
        "READY=1 after the database came back"
    );
    let to_mount = up.elapsed();
    eprintln!("mounted {to_mount:?} after the database became reachable");
    assert!(dir.is_mounted());
    fs::write(dir.mountpoint().join("hello"), b"world").unwrap();
    assert_eq!(fs::read(dir.mountpoint().join("hello")).unwrap(), b"world");
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait(EXIT_LIMIT);
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(!dir.is_mounted(), "unmounted on SIGTERM");
    assert!(stderr.contains("unreachable"), "logs the outage: {stderr}");
    assert!(!stderr.contains(db.password()), "password in log");
}

#[test]
fn sigterm_during_writes_keeps_all_flushed_data() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let server = start_mounted(&dir);
    use std::os::unix::fs::MetadataExt;
    let mount_dev = fs::metadata(dir.mountpoint()).unwrap().dev();
    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, completed, mnt) = (Arc::clone(&stop), Arc::clone(&completed), dir.mountpoint());
        std::thread::spawn(move || {
            for i in 0.. {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                // Counts only files written to and closed on the mount: once it is
                // detached, new paths would land in the directory underneath.
                let result = fs::File::create(mnt.join(format!("f{i}"))).and_then(|mut f| {
                    f.write_all(format!("file {i}").repeat(1000).as_bytes())?;
                    f.flush()?;
                    Ok(f.metadata()?.dev())
                });
                if result.ok() != Some(mount_dev) {
                    break;
                }
                completed.store(i + 1, Ordering::Release);
            }
        })
    };
    await_condition(Duration::from_secs(30), "some files written", || {
        completed.load(Ordering::Acquire) >= 20
    });
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait(EXIT_LIMIT);
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(!dir.is_mounted(), "still mounted after exit: {stderr}");

    let written = completed.load(Ordering::Acquire);
    let server = start_mounted(&dir);
    for i in 0..written {
        let content = fs::read(dir.mountpoint().join(format!("f{i}"))).unwrap();
        assert_eq!(content, format!("file {i}").repeat(1000).as_bytes(), "f{i}");
    }
    server.signal(libc::SIGTERM);
    assert!(server.wait(EXIT_LIMIT).0.success());
}

#[test]
fn sigkill_then_restart_cleans_the_stale_mount() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let server = start_mounted(&dir);
    fs::write(dir.mountpoint().join("survivor"), b"intact").unwrap();
    server.signal(libc::SIGKILL);
    let (status, _) = server.wait(EXIT_LIMIT);
    assert!(!status.success());
    // A killed FUSE server leaves a stale mount behind.
    assert!(dir.is_mounted());
    let stale = fs::read_dir(dir.mountpoint()).map(|_| ()).unwrap_err();
    assert_eq!(stale.raw_os_error(), Some(libc::ENOTCONN), "{stale}");

    let server = start_mounted(&dir);
    assert_eq!(
        fs::read(dir.mountpoint().join("survivor")).unwrap(),
        b"intact"
    );
    server.signal(libc::SIGTERM);
    assert!(server.wait(EXIT_LIMIT).0.success());
}

#[test]
fn works_under_address_space_and_data_limits() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let server = Server::start(
        &dir,
        &["prlimit", "--as=1073741824", "--data=1073741824", "--"],
        &[],
    );
    assert!(server
        .await_notify("READY=1", Duration::from_secs(30))
        .is_some());
    let data = vec![42u8; 8 << 20];
    fs::write(dir.mountpoint().join("big"), &data).unwrap();
    assert_eq!(fs::read(dir.mountpoint().join("big")).unwrap(), data);
    let (rss_kb, threads) = server.rss_kb_and_threads();
    eprintln!("vfsserver under prlimit: {rss_kb} kB resident, {threads} threads");
    assert!(threads < 64, "{threads} threads");
    server.signal(libc::SIGTERM);
    let (status, stderr) = server.wait(EXIT_LIMIT);
    assert!(status.success(), "exit {status}: {stderr}");
}

#[test]
fn check_validates_config_and_connects_once() {
    let mut db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let server = Server::start(&dir, &[], &["--check"]);
    let (status, stderr) = server.wait(EXIT_LIMIT);
    assert!(status.success(), "{stderr}");
    assert!(!dir.is_mounted());

    fs::write(
        dir.config(),
        "<VSConf>\n<DatabaseMaxPoolSize>zero</DatabaseMaxPoolSize>\n</VSConf>\n",
    )
    .unwrap();
    let (status, stderr) = Server::start(&dir, &[], &["--check"]).wait(EXIT_LIMIT);
    assert!(!status.success());
    assert!(
        stderr.contains("DatabaseMaxPoolSize") && stderr.contains("line 2"),
        "{stderr}"
    );

    if db.require_control() {
        let good = ServerDir::new(&db, "");
        db.stop();
        let (status, stderr) = Server::start(&good, &[], &["--check"]).wait(EXIT_LIMIT);
        assert!(!status.success());
        assert!(stderr.contains("database at"), "{stderr}");
        assert!(!stderr.contains(db.password()));
    }
}

#[test]
fn wait_db_limit_ends_with_a_clear_error() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let dir = ServerDir::new(&db, "");
    db.stop();
    let started = Instant::now();
    let (status, stderr) = Server::start(&dir, &[], &["--wait-db", "2"]).wait(EXIT_LIMIT);
    assert!(!status.success());
    assert!(stderr.contains("not reachable within 2 s"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn version_and_unknown_arguments() {
    let out = std::process::Command::new(support::server::vfsserver_binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = std::process::Command::new(support::server::vfsserver_binary())
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
