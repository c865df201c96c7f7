//! `vfsserver` as a process against a harness database: waiting for the database without
//! CPU and mounting within 3 s of it answering, READY/STATUS/STOPPING/WATCHDOG on a test
//! notify socket, SIGTERM/SIGINT/second signal/SIGUSR1, SIGKILL and stale mounts, memory
//! and thread limits, `--check`, `--wait-db`.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::server::{Server, ServerDir};
use support::{await_condition, MariaDb};

/// Longest a clean stop may take with nothing open (unmount, close the pool).
const EXIT_LIMIT: Duration = Duration::from_secs(20);
/// Longest a stop may take with files held open: busy retries, the grace period for open
/// files, then cutting them off (see `valuestor::server`), plus slack for a loaded machine.
const HELD_OPEN_EXIT_LIMIT: Duration = Duration::from_secs(45);
/// Longest start-up on a reachable database, including the first catalog migration.
const START_LIMIT: Duration = Duration::from_secs(30);

fn start_mounted(dir: &ServerDir) -> Server {
    let server = Server::start(dir, &[], &[]);
    await_ready(&server, dir);
    server
}

fn await_ready(server: &Server, dir: &ServerDir) {
    assert!(
        server.await_notify("READY=1", START_LIMIT).is_some(),
        "no READY=1 from vfsserver; output:\n{}",
        server.output()
    );
    assert!(
        dir.is_mounted(),
        "READY=1 but {:?} is not mounted",
        dir.mountpoint()
    );
}

/// Stops `server` with SIGTERM and checks it exits 0 with the mount gone.
fn stop_cleanly(mut server: Server, dir: &ServerDir) -> String {
    server.signal(libc::SIGTERM);
    let (status, output) = server.wait(EXIT_LIMIT);
    assert!(status.success(), "exit {status}:\n{output}");
    assert!(!dir.is_mounted(), "still mounted after exit:\n{output}");
    output
}

/// 4 KiB whose content tells which write it was.
fn block(i: u64) -> Vec<u8> {
    format!("{i:08}").repeat(512).into_bytes()
}

#[test]
fn waits_for_the_database_without_cpu_then_mounts_within_3_s() {
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
    let unreachable = server
        .await_output("unreachable", Duration::from_secs(10))
        .expect("the outage is logged");
    for part in [db.host(), &db.port().to_string(), db.user()] {
        assert!(
            unreachable.contains(part),
            "{part:?} missing from: {unreachable}"
        );
    }
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

    // `resume` returns once the database completes a handshake: from then on it is reachable.
    db.resume();
    let reachable = Instant::now();
    assert!(
        server
            .await_notify("READY=1", Duration::from_secs(15))
            .is_some(),
        "READY=1 after the database came back"
    );
    let to_mount = reachable.elapsed();
    eprintln!("mounted {to_mount:?} after the database became reachable");
    assert!(
        to_mount < Duration::from_secs(3),
        "mounted {to_mount:?} after the database became reachable (limit 3 s)"
    );
    assert!(dir.is_mounted());
    fs::write(dir.mountpoint().join("hello"), b"world").unwrap();
    assert_eq!(fs::read(dir.mountpoint().join("hello")).unwrap(), b"world");
    let output = stop_cleanly(server, &dir);
    assert!(!output.contains(db.password()), "password in log");
}

#[test]
fn sigterm_during_writes_keeps_all_flushed_data() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let mut server = start_mounted(&dir);
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
    let (status, output) = server.wait(EXIT_LIMIT);
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    assert!(status.success(), "exit {status}: {output}");
    assert!(!dir.is_mounted(), "still mounted after exit: {output}");

    let written = completed.load(Ordering::Acquire);
    let server = start_mounted(&dir);
    for i in 0..written {
        let content = fs::read(dir.mountpoint().join(format!("f{i}"))).unwrap();
        assert_eq!(content, format!("file {i}").repeat(1000).as_bytes(), "f{i}");
    }
    stop_cleanly(server, &dir);
}

#[test]
fn sigint_stops_cleanly_with_one_stopping_and_no_unmount_warning() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let mut server = start_mounted(&dir);
    fs::write(dir.mountpoint().join("kept"), b"after SIGINT").unwrap();
    server.signal(libc::SIGINT);
    let (status, output) = server.wait(EXIT_LIMIT);
    assert!(status.success(), "exit {status}:\n{output}");
    assert!(!dir.is_mounted(), "still mounted:\n{output}");
    let messages = server.notify_messages();
    let stopping = messages.iter().filter(|m| *m == "STOPPING=1").count();
    assert_eq!(
        stopping, 1,
        "STOPPING=1 sent {stopping} times: {messages:?}"
    );
    for noise in ["WARN", "ERROR", "Failed to umount", "Unmount failed"] {
        assert!(
            !output.contains(noise),
            "{noise:?} in a clean stop:\n{output}"
        );
    }

    let server = start_mounted(&dir);
    assert_eq!(
        fs::read(dir.mountpoint().join("kept")).unwrap(),
        b"after SIGINT"
    );
    stop_cleanly(server, &dir);
}

#[test]
fn file_held_open_across_sigterm_keeps_every_acknowledged_write() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let mut server = start_mounted(&dir);
    let path = dir.mountpoint().join("held");
    let mut file = fs::File::create(&path).unwrap();
    let acknowledged = Arc::new(AtomicU64::new(0));
    let writer = {
        let acknowledged = Arc::clone(&acknowledged);
        std::thread::spawn(move || {
            for i in 0.. {
                // One 4 KiB write is one FUSE request: answered in full or not at all.
                match file.write(&block(i)) {
                    Ok(4096) => acknowledged.store((i + 1) * 4096, Ordering::Release),
                    _ => break,
                }
                // Pacing, not synchronisation: keeps the file to a few MB over the
                // shutdown's grace period.
                std::thread::sleep(Duration::from_millis(2));
            }
            // Closing reaches no server any more.
        })
    };
    await_condition(Duration::from_secs(30), "writes on the held file", || {
        acknowledged.load(Ordering::Acquire) >= 64 * 1024
    });
    server.signal(libc::SIGTERM);
    let at_signal = acknowledged.load(Ordering::Acquire);
    let status = server
        .try_wait_for(HELD_OPEN_EXIT_LIMIT)
        .expect("server exits while a file is held open");
    writer.join().unwrap();
    let output = server.wait(Duration::ZERO).1;
    assert!(status.success(), "exit {status}:\n{output}");
    assert!(!dir.is_mounted(), "still mounted:\n{output}");
    // Cut off by aborting the connection, so nothing changed after the last save.
    assert!(
        output.contains("cutting them off") && !output.contains("cannot abort"),
        "{output}"
    );
    let written = acknowledged.load(Ordering::Acquire);
    assert!(
        written > at_signal,
        "the held file stopped taking writes at the signal ({at_signal} bytes)"
    );

    let server = start_mounted(&dir);
    let content = fs::read(&path).unwrap();
    // A write cut off in flight may have reached the server without its answer reaching us.
    assert!(
        content.len() as u64 == written || content.len() as u64 == written + 4096,
        "after restart the file has {} bytes; {written} were acknowledged",
        content.len()
    );
    for (i, chunk) in content.chunks(4096).enumerate() {
        assert!(chunk == block(i as u64), "block {i} differs");
    }
    stop_cleanly(server, &dir);
}

#[test]
fn second_stop_signal_exits_at_once() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let mut server = start_mounted(&dir);
    let mut held = fs::File::create(dir.mountpoint().join("held")).unwrap();
    held.write_all(b"keeps the mount busy").unwrap();
    server.signal(libc::SIGTERM);
    // The first stop is now retrying the busy unmount (3 s), then waits up to 10 s for the
    // held file; the mount is still attached.
    let stopping = server.await_notify("STATUS=stopping: unmounting", Duration::from_secs(15));
    assert!(stopping.is_some(), "not stopping:\n{}", server.output());
    assert!(dir.is_mounted());
    let second = Instant::now();
    server.signal(libc::SIGINT);
    // Otherwise the first stop would take the rest of 3 s of unmount retries plus 10 s.
    let (status, output) = server.wait(Duration::from_secs(5));
    eprintln!("exited {:?} after the second signal", second.elapsed());
    assert_eq!(status.code(), Some(1), "{output}");
    // Detached, not left stale.
    assert!(!dir.is_mounted(), "mount left behind:\n{output}");
    drop(held);
}

#[test]
fn stop_signal_while_waiting_for_the_database_exits_cleanly() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let dir = ServerDir::new(&db, "");
    db.stop();
    let mut server = Server::start(&dir, &[], &[]);
    server
        .await_notify("STATUS=waiting for the database", Duration::from_secs(10))
        .expect("waits for the database");
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    let (status, output) = server.wait(EXIT_LIMIT);
    eprintln!("exited {:?} after SIGTERM", signalled.elapsed());
    assert!(status.success(), "exit {status}:\n{output}");
    let messages = server.notify_messages();
    assert_eq!(
        messages.iter().filter(|m| *m == "STOPPING=1").count(),
        1,
        "{messages:?}"
    );
    assert!(!messages.iter().any(|m| m == "READY=1"), "{messages:?}");
    assert!(!dir.is_mounted());
}

#[test]
fn sigkill_then_restart_cleans_the_stale_mount() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    kill_then_restart_over_the_stale_mount(&dir);
}

/// Kills a server that wrote a file, checks it left a stale mount, and starts another that
/// must clean it up (not mount on top) and find the file intact.
fn kill_then_restart_over_the_stale_mount(dir: &ServerDir) {
    let mut server = start_mounted(dir);
    fs::write(dir.mountpoint().join("survivor"), b"intact").unwrap();
    server.signal(libc::SIGKILL);
    let (status, _) = server.wait(EXIT_LIMIT);
    assert!(!status.success());
    // A killed FUSE server leaves a stale mount behind.
    assert!(dir.is_mounted());
    let stale = fs::read_dir(dir.mountpoint()).map(|_| ()).unwrap_err();
    assert_eq!(stale.raw_os_error(), Some(libc::ENOTCONN), "{stale}");

    let server = start_mounted(dir);
    assert_eq!(dir.mount_count(), 1, "mounted on top of the stale mount");
    assert_eq!(
        fs::read(dir.mountpoint().join("survivor")).unwrap(),
        b"intact"
    );
    stop_cleanly(server, dir);
}

#[test]
fn stale_mount_behind_a_trailing_slash_and_a_symlinked_parent_is_cleaned() {
    let db = MariaDb::start();
    // MountPoint as an operator may write it: through a symlink, with a trailing slash
    // (and a space, which mountinfo escapes as \040).
    let dir = ServerDir::with_mount_point(&db, "", |root| {
        fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        (
            format!("{}/link/vs mnt/", root.display()),
            root.join("real/vs mnt"),
        )
    });
    kill_then_restart_over_the_stale_mount(&dir);
}

#[test]
fn stale_mount_is_cleaned_before_the_database_answers() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let dir = ServerDir::new(&db, "");
    let mut server = start_mounted(&dir);
    server.signal(libc::SIGKILL);
    server.wait(EXIT_LIMIT);
    assert!(dir.is_mounted(), "a killed server leaves a stale mount");
    db.stop();

    let server = Server::start(&dir, &[], &[]);
    server
        .await_notify("STATUS=waiting for the database", Duration::from_secs(10))
        .expect("waits for the database");
    assert!(
        !dir.is_mounted(),
        "stale mount still there while waiting:\n{}",
        server.output()
    );
    fs::read_dir(dir.mountpoint()).expect("the mount point is usable again");
    db.resume();
    await_ready(&server, &dir);
    stop_cleanly(server, &dir);
}

#[test]
fn second_server_refuses_to_mount_over_a_live_one() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let first = start_mounted(&dir);
    fs::write(dir.mountpoint().join("first"), b"still served").unwrap();
    // Through a symlinked parent and with a trailing slash: the same directory.
    std::os::unix::fs::symlink(dir.root.path(), dir.root.path().join("link")).unwrap();
    let spelled_differently = format!("{}/link/mnt/", dir.root.path().display());
    let (status, output) =
        Server::start(&dir, &[], &["--mountpoint", &spelled_differently]).wait(EXIT_LIMIT);
    assert!(!status.success(), "second server ran:\n{output}");
    assert!(
        output.contains("already mounted by a running vfsserver"),
        "{output}"
    );
    assert_eq!(dir.mount_count(), 1);
    assert_eq!(
        fs::read(dir.mountpoint().join("first")).unwrap(),
        b"still served"
    );
    stop_cleanly(first, &dir);
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
    await_ready(&server, &dir);
    let limits = fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max address space") && l.contains("1073741824")),
        "{limits}"
    );
    let data = vec![42u8; 8 << 20];
    fs::write(dir.mountpoint().join("big"), &data).unwrap();
    assert_eq!(fs::read(dir.mountpoint().join("big")).unwrap(), data);
    let (rss_kb, threads) = server.rss_kb_and_threads();
    let address_space_kb = server.proc_status("VmPeak");
    eprintln!(
        "vfsserver under prlimit: {rss_kb} kB resident, {address_space_kb} kB address space \
         at most, {threads} threads"
    );
    assert!(threads < 64, "{threads} threads");
    // Well inside LimitAS=1G, with room for the threads of a busy server (malloc arenas
    // are capped, or each thread would reserve 64 MiB).
    assert!(
        address_space_kb < 512 << 10,
        "{address_space_kb} kB of address space"
    );
    stop_cleanly(server, &dir);
}

#[test]
fn resident_memory_stays_under_64_mb_with_8_writers_and_8_readers() {
    const FILE: usize = 4 << 20;
    const CHUNK: usize = 256 << 10;
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let server = start_mounted(&dir);
    let writers_done = Arc::new(AtomicUsize::new(0));
    let read_bytes = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for w in 0..8u8 {
        let (mnt, done) = (dir.mountpoint(), Arc::clone(&writers_done));
        threads.push(std::thread::spawn(move || {
            let chunk = vec![w; CHUNK];
            // 8 rounds over 4 files: 32 MiB per writer, files rewritten while read.
            for round in 0..8 {
                let mut f = fs::File::create(mnt.join(format!("w{w}-{}", round % 4))).unwrap();
                for _ in 0..FILE / CHUNK {
                    f.write_all(&chunk).unwrap();
                }
            }
            done.fetch_add(1, Ordering::AcqRel);
        }));
    }
    for r in 0..8u8 {
        let (mnt, done, read) = (
            dir.mountpoint(),
            Arc::clone(&writers_done),
            Arc::clone(&read_bytes),
        );
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            // Until every writer is done, plus one full pass over this writer's files.
            let mut last_pass = false;
            loop {
                last_pass |= done.load(Ordering::Acquire) == 8;
                for k in 0..4 {
                    if let Ok(mut f) = fs::File::open(mnt.join(format!("w{r}-{k}"))) {
                        use std::io::Read;
                        while let Ok(n) = f.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            read.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                }
                if last_pass {
                    break;
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let peak_kb = server.peak_rss_kb();
    let threads = server.proc_status("Threads");
    eprintln!(
        "8 writers (256 MiB) and 8 readers ({} MiB): vfsserver peak RSS (VmHWM) {:.1} MB, {threads} threads",
        read_bytes.load(Ordering::Relaxed) >> 20,
        peak_kb as f64 / 1024.0
    );
    assert!(read_bytes.load(Ordering::Relaxed) >= 8 * 4 * FILE as u64);
    assert!(peak_kb < 64 * 1024, "peak RSS {peak_kb} kB");
    assert!(threads < 64, "{threads} threads");
    stop_cleanly(server, &dir);
}

#[test]
fn watchdog_is_fed_when_watchdog_usec_is_set() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let server = Server::start_with_env(&dir, &[], &[], &[("WATCHDOG_USEC", "1000000")]);
    await_ready(&server, &dir);
    // Fed every half interval (0.5 s) while the mount answers statfs.
    assert!(
        server.await_notify_count("WATCHDOG=1", 3, Duration::from_secs(10)),
        "WATCHDOG=1 messages: {:?}\n{}",
        server.notify_messages(),
        server.output()
    );
    stop_cleanly(server, &dir);
}

#[test]
fn sigusr1_logs_statistics_while_waiting_and_while_mounted() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let dir = ServerDir::new(&db, "");
    db.stop();
    let server = Server::start(&dir, &[], &[]);
    server
        .await_notify("STATUS=waiting for the database", Duration::from_secs(10))
        .expect("waits for the database");
    server.signal(libc::SIGUSR1);
    let waiting = server
        .await_output("statistics: waiting", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no statistics while waiting:\n{}", server.output()));
    assert!(waiting.contains("connect failures"), "{waiting}");

    db.resume();
    await_ready(&server, &dir);
    let held = fs::File::create(dir.mountpoint().join("open")).unwrap();
    server.signal(libc::SIGUSR1);
    let serving = server
        .await_output("statistics: serving", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no statistics while mounted:\n{}", server.output()));
    assert!(serving.contains("1 open files"), "{serving}");
    assert!(serving.contains("checkouts"), "{serving}");
    drop(held);
    stop_cleanly(server, &dir);
}

#[test]
fn check_validates_config_and_connects_once() {
    let mut db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let (status, output) = Server::start(&dir, &[], &["--check"]).wait(EXIT_LIMIT);
    assert!(status.success(), "{output}");
    assert!(output.contains("reachable"), "{output}");
    assert!(!dir.is_mounted());

    fs::write(
        dir.config(),
        "<VSConf>\n<DatabaseMaxPoolSize>zero</DatabaseMaxPoolSize>\n</VSConf>\n",
    )
    .unwrap();
    let (status, output) = Server::start(&dir, &[], &["--check"]).wait(EXIT_LIMIT);
    assert!(!status.success());
    assert!(
        output.contains("DatabaseMaxPoolSize") && output.contains("line 2"),
        "{output}"
    );

    if db.require_control() {
        let good = ServerDir::new(&db, "");
        db.stop();
        let (status, output) = Server::start(&good, &[], &["--check"]).wait(EXIT_LIMIT);
        assert!(!status.success());
        assert!(output.contains("database at"), "{output}");
        assert!(!output.contains(db.password()));
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
    let (status, output) = Server::start(&dir, &[], &["--wait-db", "2"]).wait(EXIT_LIMIT);
    assert!(!status.success());
    assert!(output.contains("not reachable within 2 s"), "{output}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(!output.contains(db.password()));
}

#[test]
fn wait_db_zero_tries_once() {
    let mut db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let server = Server::start(&dir, &[], &["--wait-db", "0"]);
    await_ready(&server, &dir);
    stop_cleanly(server, &dir);

    if db.require_control() {
        db.stop();
        let (status, output) = Server::start(&dir, &[], &["--wait-db", "0"]).wait(EXIT_LIMIT);
        assert!(!status.success());
        assert!(output.contains("not reachable within 0 s"), "{output}");
    }
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
