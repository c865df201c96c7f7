//! The owner lease on the catalog (issue 10), with real `vfsserver` processes on a private
//! MariaDB: a second server on the same catalog refuses to start and names the holder; a
//! holder killed with SIGKILL is taken over by a server waiting with `--wait-lease` once its
//! lease expires, and the orphan purge runs under the new lease; a lease row changed under a
//! running server (a restored backup) stops its changes with EIO while reads go on; a clean
//! stop releases the lease, and a restart on the same host after a kill does not wait. The
//! statistics (SIGUSR1) name the holder and the last renewal; `STATUS=` tells of a loss. A
//! restore of a backup taken during the run (same token, older renewal count) is noticed
//! too, and servers asking at once get the lease one at a time (the row lock).
//!
//! "Another host" is a server started in a UTS namespace of its own with another host name
//! (`unshare --uts`): it cannot prove a holder on this host dead and must wait for expiry.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use mysql::prelude::Queryable;
use support::server::{Server, ServerDir};
use support::{await_condition, pool_options, MariaDb};
use valuestor::meta::lease::{Acquired, LeaseHolder, OwnerLease};
use valuestor::meta::mysql::MysqlMeta;
use valuestor::meta::MetaEngine;
use valuestor::Pool;

/// Longest start-up on a reachable database, including the first catalog migration.
const START_LIMIT: Duration = Duration::from_secs(30);
/// Longest a clean stop may take with nothing open.
const EXIT_LIMIT: Duration = Duration::from_secs(20);
/// Generous bound for taking over from a killed holder whose lease lasts 4 s: its expiry,
/// one poll, and start-up on a loaded machine.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(60);
/// Generous bound for a running server (lease 3 s, a renewal every second) to notice that
/// its lease row changed.
const LOSS_LIMIT: Duration = Duration::from_secs(30);

/// Runs the server as if on host `other-host`: a UTS namespace with that host name, then
/// `exec` (so the test's pid and signals are the server's own).
const OTHER_HOST: &[&str] = &[
    "unshare",
    "--uts",
    "sh",
    "-c",
    "echo other-host > /proc/sys/kernel/hostname && exec \"$0\" \"$@\"",
];

fn start_mounted(dir: &ServerDir, wrapper: &[&str], args: &[&str]) -> Server {
    let server = Server::start(dir, wrapper, args);
    await_ready(&server, dir, START_LIMIT);
    server
}

fn await_ready(server: &Server, dir: &ServerDir, limit: Duration) {
    assert!(
        server.await_notify("READY=1", limit).is_some(),
        "no READY=1 from vfsserver within {limit:?}; output:\n{}",
        server.output()
    );
    assert!(dir.is_mounted(), "READY=1 but not mounted");
}

fn stop_cleanly(mut server: Server, dir: &ServerDir) -> String {
    server.signal(libc::SIGTERM);
    let (status, output) = server.wait(EXIT_LIMIT);
    assert!(status.success(), "exit {status}:\n{output}");
    assert!(!dir.is_mounted(), "still mounted after exit:\n{output}");
    output
}

/// This host's name, as a server started here records it.
fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// How the lease names the server `pid` mounted at `dir`'s mount point on `host`.
fn holder_text(pid: u32, host: &str, dir: &ServerDir) -> String {
    format!(
        "vfsserver pid {pid} on host {host} (mount point {})",
        dir.mountpoint().display()
    )
}

fn lease_token(db: &MariaDb) -> String {
    db.connect()
        .query_first("SELECT token FROM vs_owner_lease WHERE id = 1")
        .unwrap()
        .expect("the lease row")
}

fn errno_of(result: std::io::Result<impl std::fmt::Debug>) -> Option<i32> {
    result.expect_err("the change succeeded").raw_os_error()
}

#[test]
fn second_server_on_the_same_catalog_refuses_naming_the_holder() {
    let db = MariaDb::start();
    let first_dir = ServerDir::new(&db, "");
    let first = start_mounted(&first_dir, &[], &[]);
    fs::write(first_dir.mountpoint().join("mine"), b"first").unwrap();

    let second_dir = ServerDir::new(&db, "");
    let (status, output) = Server::start(&second_dir, &[], &[]).wait(START_LIMIT);
    assert!(!status.success(), "the second server ran:\n{output}");
    assert!(!second_dir.is_mounted(), "refused, yet mounted:\n{output}");
    let holder = holder_text(first.pid(), &host_name(), &first_dir);
    assert!(
        output.contains(&format!("its owner lease is held by {holder}"))
            && output.contains("--wait-lease"),
        "expected the holder `{holder}` in:\n{output}"
    );

    // The first is unaffected: it still reads and changes.
    fs::write(first_dir.mountpoint().join("after"), b"still mine").unwrap();
    assert_eq!(
        fs::read(first_dir.mountpoint().join("mine")).unwrap(),
        b"first"
    );
    stop_cleanly(first, &first_dir);
}

#[test]
fn killed_holder_is_taken_over_by_a_waiting_server_which_then_purges_its_orphans() {
    let db = MariaDb::start();
    let lease = "<OwnerLeaseTimeout>4</OwnerLeaseTimeout>";
    let first_dir = ServerDir::new(&db, lease);
    let mut first = start_mounted(&first_dir, &[], &[]);
    let first_pid = first.pid();
    // An open-but-unlinked file: the catalog keeps its inode with no links while it is open.
    let path = first_dir.mountpoint().join("open-unlinked");
    let held = fs::File::create(&path).unwrap();
    let ino = held.metadata().unwrap().ino();
    fs::remove_file(&path).unwrap();
    let nlink: Option<u32> = db
        .connect()
        .exec_first("SELECT nlink FROM vs_inodes WHERE ino = ?", (ino,))
        .unwrap();
    assert_eq!(
        nlink,
        Some(0),
        "the open-unlinked inode {ino} in the catalog"
    );

    // Another host waits while the first lives: it must not purge that inode.
    let second_dir = ServerDir::new(&db, lease);
    let second = Server::start(&second_dir, OTHER_HOST, &["--wait-lease", "300"]);
    second
        .await_output("waiting up to 300 s", START_LIMIT)
        .unwrap_or_else(|| panic!("not waiting for the lease:\n{}", second.output()));
    assert!(!second_dir.is_mounted(), "mounted under a live holder");

    first.signal(libc::SIGKILL);
    first.wait(EXIT_LIMIT);
    drop(held);
    await_ready(&second, &second_dir, TAKEOVER_LIMIT);

    let output = second.output();
    let lines: Vec<&str> = output.lines().collect();
    let holder = holder_text(first_pid, &host_name(), &first_dir);
    let took = lines
        .iter()
        .position(|l| l.contains("took over the owner lease") && l.contains(&holder))
        .unwrap_or_else(|| panic!("no take-over from `{holder}` logged:\n{output}"));
    let purged = lines
        .iter()
        .position(|l| l.contains(&format!("reclaimed unlinked inode {ino}")))
        .unwrap_or_else(|| panic!("inode {ino} not purged:\n{output}"));
    assert!(
        took < purged,
        "the purge (line {purged}) ran before the take-over (line {took}):\n{output}"
    );
    let row: Option<u64> = db
        .connect()
        .exec_first("SELECT ino FROM vs_inodes WHERE ino = ?", (ino,))
        .unwrap();
    assert_eq!(row, None, "the orphan is gone from the catalog");
    fs::write(second_dir.mountpoint().join("new owner"), b"writes").unwrap();
    stop_cleanly(second, &second_dir);
}

#[test]
fn lease_row_changed_under_a_running_server_stops_changes_with_eio_but_not_reads() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "<OwnerLeaseTimeout>3</OwnerLeaseTimeout>");
    let server = start_mounted(&dir, &[], &[]);
    let kept = dir.mountpoint().join("kept");
    fs::write(&kept, b"before the restore").unwrap();
    fs::create_dir(dir.mountpoint().join("dir")).unwrap();
    let mut writer = fs::OpenOptions::new().write(true).open(&kept).unwrap();

    // As a restore of a backup taken under another server would leave it.
    db.connect()
        .query_drop("UPDATE vs_owner_lease SET token = 'restored-from-a-backup' WHERE id = 1")
        .unwrap();
    let why = server
        .await_output("the owner lease is lost", LOSS_LIMIT)
        .unwrap_or_else(|| panic!("the loss was not noticed:\n{}", server.output()));
    assert!(
        why.contains("ERROR") && why.contains("another server run's token") && why.contains("EIO"),
        "{why}"
    );

    let status = server.await_notify("STATUS=serving reads only", LOSS_LIMIT);
    assert!(
        status
            .as_ref()
            .is_some_and(|s| s.contains("the owner lease is lost")),
        "{status:?} in {:?}",
        server.notify_messages()
    );

    let mnt = dir.mountpoint();
    assert_eq!(errno_of(fs::write(mnt.join("new"), b"x")), Some(libc::EIO));
    assert_eq!(errno_of(writer.write_all(b"changed")), Some(libc::EIO));
    assert_eq!(errno_of(fs::create_dir(mnt.join("d2"))), Some(libc::EIO));
    assert_eq!(
        errno_of(fs::rename(&kept, mnt.join("moved"))),
        Some(libc::EIO)
    );
    assert_eq!(errno_of(fs::remove_file(&kept)), Some(libc::EIO));
    assert_eq!(errno_of(fs::remove_dir(mnt.join("dir"))), Some(libc::EIO));
    // Reads go on.
    assert_eq!(fs::read(&kept).unwrap(), b"before the restore");
    let mut names: Vec<_> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["dir", "kept"]);
    assert!(
        server
            .output()
            .contains("change refused (EIO): the owner lease is lost"),
        "{}",
        server.output()
    );
    drop(writer);
    // The stop saves nothing into a catalog that is not this server's: sizes and times
    // still unsaved (the read's access time) stay in the journal, and it exits 1 saying so.
    let mut server = server;
    server.signal(libc::SIGTERM);
    let (_, output) = server.wait(EXIT_LIMIT);
    assert!(!dir.is_mounted(), "still mounted after exit:\n{output}");
    assert_eq!(
        lease_token(&db),
        "restored-from-a-backup",
        "the row it lost is left alone"
    );
}

#[test]
fn clean_stop_releases_so_a_server_on_another_host_starts_at_once() {
    let db = MariaDb::start();
    // A lease of ten minutes: a server that had to wait for it would not start here.
    let dir = ServerDir::new(&db, "<OwnerLeaseTimeout>600</OwnerLeaseTimeout>");
    let first = start_mounted(&dir, &[], &[]);
    let first_pid = first.pid();
    let holder = holder_text(first_pid, &host_name(), &dir);
    first.signal(libc::SIGUSR1);
    let report = first.await_output("owner lease: held by", START_LIMIT);
    assert!(
        report
            .as_ref()
            .is_some_and(|r| r.contains(&holder) && r.contains("last renewed")),
        "statistics without the lease: {report:?}"
    );
    let output = stop_cleanly(first, &dir);
    assert!(output.contains("released the owner lease"), "{output}");
    assert_eq!(lease_token(&db), "", "released in the catalog");

    // No --wait-lease: a held lease would refuse this start.
    let second = start_mounted(&dir, OTHER_HOST, &[]);
    assert!(
        second.output().contains(&format!(
            "last held by {holder}, which released it on a clean stop"
        )),
        "{}",
        second.output()
    );
    stop_cleanly(second, &dir);
}

#[test]
fn restart_on_the_same_host_after_a_kill_does_not_wait_for_the_lease() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "<OwnerLeaseTimeout>600</OwnerLeaseTimeout>");
    let mut first = start_mounted(&dir, &[], &[]);
    let first_pid = first.pid();
    first.signal(libc::SIGKILL);
    first.wait(EXIT_LIMIT);

    // Its lease lasts ten more minutes, but its process is provably gone.
    let second = start_mounted(&dir, &[], &[]);
    let holder = holder_text(first_pid, &host_name(), &dir);
    assert!(
        second
            .output()
            .contains(&format!("from {holder}, which no longer runs on this host")),
        "{}",
        second.output()
    );
    stop_cleanly(second, &dir);
}

#[test]
fn a_restored_row_with_this_runs_token_but_an_older_renewal_stops_changes() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "<OwnerLeaseTimeout>3</OwnerLeaseTimeout>");
    let server = start_mounted(&dir, &[], &[]);
    let beat = || -> u64 {
        db.connect()
            .query_first("SELECT beat FROM vs_owner_lease WHERE id = 1")
            .unwrap()
            .expect("the lease row")
    };
    // A backup taken now, restored after the next renewal: same token, older count.
    let backup = beat();
    await_condition(LOSS_LIMIT, "a renewal", || beat() > backup);
    db.connect()
        .exec_drop("UPDATE vs_owner_lease SET beat = ? WHERE id = 1", (backup,))
        .unwrap();
    let why = server
        .await_output("the owner lease is lost", LOSS_LIMIT)
        .unwrap_or_else(|| panic!("the restore was not noticed:\n{}", server.output()));
    assert!(why.contains("went back in time"), "{why}");
    let err = fs::write(dir.mountpoint().join("new"), b"x").expect_err("created");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
}

#[test]
fn servers_asking_at_once_get_the_lease_one_at_a_time() {
    let db = MariaDb::start();
    let meta = MysqlMeta::new(Pool::new(pool_options(&db)).unwrap());
    meta.migrate(0, 0).unwrap();
    let ttl = Duration::from_secs(60);
    let start = std::sync::Barrier::new(4);
    let outcomes: Vec<(LeaseHolder, Acquired)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let start = &start;
                let db = &db;
                scope.spawn(move || {
                    let meta = MysqlMeta::new(Pool::new(pool_options(db)).unwrap());
                    let me = LeaseHolder::this_process(std::path::Path::new(&format!("/mnt/{i}")))
                        .unwrap();
                    start.wait();
                    let acquired = meta.acquire(&me, ttl).unwrap();
                    (me, acquired)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let winners: Vec<&LeaseHolder> = outcomes
        .iter()
        .filter(|(_, a)| matches!(a, Acquired::Taken { .. }))
        .map(|(me, _)| me)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:#?}");
    for (_, acquired) in &outcomes {
        if let Acquired::HeldBy(state) = acquired {
            assert_eq!(&state.holder, winners[0], "a loser names the winner");
        }
    }
    assert_eq!(lease_token(&db), winners[0].token);
}
