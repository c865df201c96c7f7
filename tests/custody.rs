//! Custody of file data (issue 9, points 2-4): the cache folder is bound to its catalog (a
//! wrong, empty or fresh catalog is refused, never swept), files without an inode are
//! quarantined within a bound, sizes the catalog never got survive a stop with the database
//! down (journal) and a kill -9 (extending reads zeros, not stale bytes), and a non-empty
//! file whose data file is missing is EIO with its size unchanged. Residency follows the
//! catalog's data state (issue 10): Dirty while written, Resident after the last close,
//! Released is EIO, Empty reads zeros without a data file.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql::prelude::Queryable;
use support::consistency::data_files;
use support::mount::MountedFs;
use support::server::{Server, ServerDir};
use support::MariaDb;

/// Longest a clean stop may take with nothing open.
const EXIT_LIMIT: Duration = Duration::from_secs(30);
/// Longest a stop may take while every save waits out the database timeout (5 s) a few
/// times, plus slack for a loaded machine.
const DB_DOWN_EXIT_LIMIT: Duration = Duration::from_secs(90);
/// Longest start-up on a reachable database.
const START_LIMIT: Duration = Duration::from_secs(30);

fn start_mounted(dir: &ServerDir, args: &[&str]) -> Server {
    let server = Server::start(dir, &[], args);
    assert!(
        server.await_notify("READY=1", START_LIMIT).is_some(),
        "no READY=1 from vfsserver; output:\n{}",
        server.output()
    );
    assert!(dir.is_mounted(), "READY=1 but not mounted");
    server
}

fn stop_cleanly(mut server: Server, dir: &ServerDir) -> String {
    server.signal(libc::SIGTERM);
    let (status, output) = server.wait(EXIT_LIMIT);
    assert!(status.success(), "exit {status}:\n{output}");
    assert!(!dir.is_mounted(), "still mounted after exit:\n{output}");
    output
}

/// A start that must be refused: returns its output.
fn refused_start(dir: &ServerDir, args: &[&str]) -> String {
    let (status, output) = Server::start(dir, &[], args).wait(START_LIMIT);
    assert!(!status.success(), "the server started:\n{output}");
    assert!(!dir.is_mounted(), "refused, yet mounted:\n{output}");
    output
}

fn cache_of(dir: &ServerDir) -> PathBuf {
    fs::canonicalize(dir.root.path()).unwrap().join("cache")
}

/// The token a cache folder's identity record holds.
fn cache_token(cache: &Path) -> String {
    let text = fs::read_to_string(cache.join("identity")).expect("cache identity");
    text.lines()
        .find_map(|l| l.strip_prefix("catalog="))
        .expect("catalog= line")
        .to_string()
}

fn catalog_token(db: &MariaDb, database: &str) -> String {
    let mut conn = db.connect();
    conn.query_first(format!(
        "SELECT token FROM `{database}`.vs_catalog_identity WHERE id = 1"
    ))
    .unwrap()
    .expect("catalog identity")
}

/// Points the server's config at database `name` instead.
fn use_database(dir: &ServerDir, from: &str, to: &str) {
    let config = fs::read_to_string(dir.config()).unwrap();
    let old = format!("<DatabaseName>{from}</DatabaseName>");
    assert!(config.contains(&old), "{config}");
    fs::write(
        dir.config(),
        config.replace(&old, &format!("<DatabaseName>{to}</DatabaseName>")),
    )
    .unwrap();
}

/// The files under `dir` (recursively) with their contents, sorted by name.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                files.push((name, fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

#[test]
fn cache_of_another_catalog_is_refused_untouched_until_rebound_and_quarantined() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let server = start_mounted(&dir, &[]);
    let content = pattern(100_000, 1);
    fs::write(dir.mountpoint().join("precious"), &content).unwrap();
    stop_cleanly(server, &dir);
    let cache = cache_of(&dir);
    let before = data_files(&cache);
    assert_eq!(before.len(), 1, "{before:?}");
    let ours = cache_token(&cache);

    // A typo in DatabaseName that names a fresh, empty database.
    let other = format!("{}_typo", db.database());
    db.connect()
        .query_drop(format!("CREATE DATABASE `{other}`"))
        .unwrap();
    use_database(&dir, db.database(), &other);
    let output = refused_start(&dir, &[]);
    let theirs = catalog_token(&db, &other);
    assert_ne!(ours, theirs);
    for part in [&ours, &theirs, db.database(), &other, "--rebind-cache"] {
        assert!(output.contains(part), "{part:?} missing from:\n{output}");
    }
    assert_eq!(
        data_files(&cache),
        before,
        "a refused start changes nothing"
    );

    // The right database again: served as before.
    use_database(&dir, &other, db.database());
    let server = start_mounted(&dir, &[]);
    assert_eq!(
        fs::read(dir.mountpoint().join("precious")).unwrap(),
        content
    );
    stop_cleanly(server, &dir);

    // Rebinding on purpose: the data goes to the quarantine, not away.
    use_database(&dir, db.database(), &other);
    let server = start_mounted(&dir, &["--rebind-cache"]);
    let moved = server
        .await_output("moved 1 data files without an inode", START_LIMIT)
        .expect("one WARN line for the quarantine");
    assert!(
        moved.contains("WARN") && moved.contains("quarantine"),
        "{moved}"
    );
    assert_eq!(
        data_files(&cache),
        [],
        "no data of the old catalog is served"
    );
    assert_eq!(fs::read_dir(dir.mountpoint()).unwrap().count(), 0);
    stop_cleanly(server, &dir);
    assert_eq!(cache_token(&cache), theirs, "bound to the new catalog");
    let quarantined = files_under(&cache.join("quarantine"));
    assert_eq!(quarantined.len(), 1, "{:?}", quarantined.len());
    assert_eq!(quarantined[0].1, content, "quarantined intact");

    // Only the operator removes it.
    let mut purge = Server::start(&dir, &[], &["--purge-quarantine"]);
    let (status, output) = purge.wait(EXIT_LIMIT);
    assert!(status.success(), "exit {status}:\n{output}");
    assert!(
        output.contains("removed 1 quarantine folders (100000 bytes)"),
        "{output}"
    );
    assert_eq!(files_under(&cache.join("quarantine")), []);
}

#[test]
fn cache_without_identity_is_adopted_only_by_the_catalog_that_knows_its_files() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    let server = start_mounted(&dir, &[]);
    fs::write(dir.mountpoint().join("old"), b"from before identities").unwrap();
    stop_cleanly(server, &dir);
    let cache = cache_of(&dir);
    // A cache made by the previous version has no identity record.
    fs::remove_file(cache.join("identity")).unwrap();
    let before = data_files(&cache);

    let other = format!("{}_fresh", db.database());
    db.connect()
        .query_drop(format!("CREATE DATABASE `{other}`"))
        .unwrap();
    use_database(&dir, db.database(), &other);
    let output = refused_start(&dir, &[]);
    assert!(output.contains("no identity"), "{output}");
    assert_eq!(data_files(&cache), before, "nothing swept");
    assert!(!cache.join("identity").exists());

    use_database(&dir, &other, db.database());
    let server = start_mounted(&dir, &[]);
    assert!(
        server.output().contains("adopted"),
        "adoption is logged:\n{}",
        server.output()
    );
    assert_eq!(
        fs::read(dir.mountpoint().join("old")).unwrap(),
        b"from before identities"
    );
    stop_cleanly(server, &dir);
    assert_eq!(cache_token(&cache), catalog_token(&db, db.database()));
}

#[test]
fn second_server_with_an_empty_cache_on_the_same_catalog_is_refused() {
    let db = MariaDb::start();
    let first_dir = ServerDir::new(&db, "");
    let first = start_mounted(&first_dir, &[]);
    let content = pattern(1 << 20, 2);
    fs::write(first_dir.mountpoint().join("big"), &content).unwrap();
    // While the first runs its owner lease refuses the second (tests/lease.rs); once it has
    // stopped, the cache check does.
    stop_cleanly(first, &first_dir);

    let second_dir = ServerDir::new(&db, "");
    let output = refused_start(&second_dir, &[]);
    assert!(
        output.contains("is empty and has no identity") && output.contains("files with data"),
        "{output}"
    );
    assert_eq!(data_files(&cache_of(&second_dir)), []);

    let first = start_mounted(&first_dir, &[]);
    assert_eq!(
        fs::read(first_dir.mountpoint().join("big")).unwrap(),
        content
    );
    stop_cleanly(first, &first_dir);
    let mut conn = db.connect();
    let size: Option<u64> = conn
        .query_first("SELECT size FROM vs_inodes WHERE kind = 1")
        .unwrap();
    assert_eq!(size, Some(1 << 20), "the catalog's size is untouched");
}

#[test]
fn quarantine_over_its_bound_refuses_the_start_and_deletes_nothing() {
    let db = MariaDb::start();
    let dir = ServerDir::new(&db, "<CacheQuarantineMaxSize>100</CacheQuarantineMaxSize>");
    let server = start_mounted(&dir, &[]);
    fs::write(dir.mountpoint().join("keep"), b"keep").unwrap();
    stop_cleanly(server, &dir);
    let cache = cache_of(&dir);
    let stray = 0x00de_ad00_u64;
    let stray_path = cache
        .join("data")
        .join(format!("{:02x}", stray % 256))
        .join(format!("{stray:016x}"));
    fs::write(&stray_path, vec![9u8; 1000]).unwrap();

    let output = refused_start(&dir, &[]);
    assert!(
        output.contains("CacheQuarantineMaxSize") && output.contains("--purge-quarantine"),
        "{output}"
    );
    assert_eq!(
        fs::read(&stray_path).unwrap(),
        vec![9u8; 1000],
        "still there"
    );
}

#[test]
fn missing_data_file_of_a_non_empty_file_is_eio_and_keeps_its_size() {
    let mut fs = MountedFs::start();
    let content = pattern(100_000, 3);
    fs::write(fs.path("lost"), &content).unwrap();
    let ino = fs::metadata(fs.path("lost")).unwrap().ino();
    fs.unmount();
    // Behind the server's back (as a second server with another cache would see it).
    fs::remove_file(fs.cache_file(ino)).unwrap();
    fs.mount();

    let err = fs::read(fs.path("lost")).expect_err("a read of lost data must fail");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fs.path("lost"))
        .unwrap();
    let mut buf = [0u8; 10];
    let err = file.read(&mut buf).expect_err("read through a handle");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let err = file
        .write_at(b"x", 10)
        .expect_err("a write must not make new data");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let err = file.set_len(200_000).expect_err("nor an extension");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(file.metadata().unwrap().len(), 100_000, "size kept (fstat)");
    drop(file);
    assert_eq!(fs::metadata(fs.path("lost")).unwrap().len(), 100_000);
    assert!(!fs.cache_file(ino).exists(), "no empty data file was made");
    let mut conn = fs.db.connect();
    let size: Option<u64> = conn
        .exec_first("SELECT size FROM vs_inodes WHERE ino = ?", (ino,))
        .unwrap();
    assert_eq!(size, Some(100_000), "catalog size kept");
}

#[test]
fn stale_bytes_past_the_recorded_size_never_show_and_extensions_read_zeros() {
    let mut fs = MountedFs::start();
    for name in ["cut", "grown"] {
        fs::write(fs.path(name), [b'A'; 1000]).unwrap();
    }
    let cut = fs::metadata(fs.path("cut")).unwrap().ino();
    let grown = fs::metadata(fs.path("grown")).unwrap().ino();
    fs.remount(); // nothing of either file in the page cache
                  // Bytes past the recorded end, as a crash after unsaved writes leaves them.
    for ino in [cut, grown] {
        let mut data = fs::OpenOptions::new()
            .append(true)
            .open(fs.cache_file(ino))
            .unwrap();
        data.write_all(&[b'S'; 100_000]).unwrap();
    }

    assert_eq!(
        fs::read(fs.path("cut")).unwrap(),
        [b'A'; 1000],
        "a read ends at the recorded size"
    );
    let file = fs::OpenOptions::new()
        .write(true)
        .open(fs.path("cut"))
        .unwrap();
    file.set_len(3000).unwrap();
    drop(file);
    let mut expected = vec![b'A'; 1000];
    expected.resize(3000, 0);
    let read = fs::read(fs.path("cut")).unwrap();
    assert_eq!(
        read.iter().filter(|&&b| b == b'S').count(),
        0,
        "stale bytes after truncating up"
    );
    assert_eq!(read, expected);

    let file = fs::OpenOptions::new()
        .write(true)
        .open(fs.path("grown"))
        .unwrap();
    file.write_at(b"Z", 50_000).unwrap();
    drop(file);
    let mut expected = vec![b'A'; 1000];
    expected.resize(50_000, 0);
    expected.push(b'Z');
    let read = fs::read(fs.path("grown")).unwrap();
    assert_eq!(
        read.iter().filter(|&&b| b == b'S').count(),
        0,
        "stale bytes after writing past the end"
    );
    assert_eq!(read, expected);
    fs.await_consistent();
}

#[test]
fn after_kill_9_extending_a_file_reads_zeros_not_the_unsaved_bytes() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let dir = ServerDir::new(&db, "");
    let mut server = start_mounted(&dir, &[]);
    let path = dir.mountpoint().join("grown");
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let ino = file.metadata().unwrap().ino();
    file.write_all(&[b'A'; 1000]).unwrap();
    file.sync_all().unwrap(); // size 1000 in the catalog

    // With the database frozen no later size can reach the catalog before the kill (the
    // checks after it make sure).
    db.pause();
    file.write_all(&vec![b'B'; 500_000]).unwrap();
    server.signal(libc::SIGKILL);
    server.wait(EXIT_LIMIT);
    drop(file);
    db.resume();

    // What the kill left: a catalog size behind the data file, and no journal.
    let cache = cache_of(&dir);
    let mut conn = db.connect();
    let size: Option<u64> = conn
        .exec_first("SELECT size FROM vs_inodes WHERE ino = ?", (ino,))
        .unwrap();
    let data_len = data_files(&cache)
        .into_iter()
        .find(|(i, _)| *i == ino)
        .map(|(_, len)| len);
    assert_eq!(
        (size, data_len),
        (Some(1000), Some(501_000)),
        "(catalog size, data file length) after the kill"
    );
    assert!(!cache.join("journal").exists(), "a kill writes no journal");

    let server = start_mounted(&dir, &[]);
    assert_eq!(fs::metadata(&path).unwrap().len(), 1000);
    assert_eq!(fs::read(&path).unwrap(), [b'A'; 1000]);
    let kept = files_under(&cache.join("quarantine"));
    assert_eq!(
        kept.iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>(),
        [format!("{ino:016x}.from-1000")],
        "the cut bytes are kept in the quarantine"
    );
    assert!(
        kept[0].1 == vec![b'B'; 500_000],
        "the quarantined tail is the unsaved write"
    );
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(300_000).unwrap();
    file.write_at(b"Z", 600_000).unwrap();
    drop(file);
    let read = fs::read(&path).unwrap();
    assert_eq!(read.len(), 600_001);
    let stale = read.iter().filter(|&&b| b == b'B').count();
    assert_eq!(stale, 0, "stale bytes read back after extending");
    assert!(read[..1000].iter().all(|&b| b == b'A'));
    assert!(read[1000..600_000].iter().all(|&b| b == 0));
    stop_cleanly(server, &dir);
}

#[test]
fn sigterm_with_the_database_down_exits_non_zero_and_the_journal_keeps_the_size() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let dir = ServerDir::new(&db, "");
    let mut server = start_mounted(&dir, &[]);
    let path = dir.mountpoint().join("pending");
    let content = pattern(1 << 20, 4);
    let mut file = fs::File::create(&path).unwrap();
    let ino = file.metadata().unwrap().ino();
    db.stop();
    file.write_all(&content).unwrap(); // acknowledged; only the size needs the catalog
    drop(file); // its flush fails (EIO): the catalog is down

    server.signal(libc::SIGTERM);
    let (status, output) = server.wait(DB_DOWN_EXIT_LIMIT);
    assert!(
        !status.success(),
        "a stop that could not save said success:\n{output}"
    );
    assert!(
        output.contains("1 files (1048576 bytes)") && output.contains("journal"),
        "the log says what is pending:\n{output}"
    );
    assert!(!output.contains("bye"), "{output}");
    let cache = cache_of(&dir);
    assert!(cache.join("journal").exists(), "journal kept on disk");

    db.resume();
    let server = start_mounted(&dir, &[]);
    assert!(
        server
            .output()
            .contains("replayed unsaved sizes and times of 1 files"),
        "{}",
        server.output()
    );
    assert_eq!(fs::metadata(&path).unwrap().len(), 1 << 20);
    assert_eq!(fs::read(&path).unwrap(), content);
    let mut conn = db.connect();
    let size: Option<u64> = conn
        .exec_first("SELECT size FROM vs_inodes WHERE ino = ?", (ino,))
        .unwrap();
    assert_eq!(size, Some(1 << 20), "catalog size after the replay");
    assert!(!cache.join("journal").exists(), "replayed, then removed");
    stop_cleanly(server, &dir);
}

/// The catalog's data state of `ino` (0 Empty, 1 Resident, 2 Dirty, 3 Archived, 4 Released).
fn data_state(fs: &MountedFs, ino: u64) -> Option<u8> {
    let mut conn = fs.db.connect();
    conn.exec_first("SELECT data_state FROM vs_inodes WHERE ino = ?", (ino,))
        .unwrap()
}

/// Waits (bounded) until `ino`'s data state is `want`; the last state seen otherwise.
fn await_data_state(fs: &MountedFs, ino: u64, want: u8) -> Result<(), Option<u8>> {
    let deadline = std::time::Instant::now() + START_LIMIT;
    loop {
        let seen = data_state(fs, ino);
        if seen == Some(want) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(seen);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn data_state_is_dirty_while_written_resident_after_the_last_close_empty_when_cut_to_0() {
    let fs = MountedFs::start();
    let mut file = fs::File::create(fs.path("state")).unwrap();
    let ino = file.metadata().unwrap().ino();
    assert_eq!(data_state(&fs, ino), Some(0), "created: Empty");
    file.write_all(b"some data").unwrap();
    file.sync_all().unwrap(); // saves the size, and the state with it
    assert_eq!(data_state(&fs, ino), Some(2), "written, still open: Dirty");
    drop(file);
    // The release reaches the server after close returns.
    assert_eq!(await_data_state(&fs, ino, 1), Ok(()), "closed: Resident");
    fs::OpenOptions::new()
        .write(true)
        .open(fs.path("state"))
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(await_data_state(&fs, ino, 0), Ok(()), "cut to 0: Empty");
}

#[test]
fn released_data_is_eio_and_empty_data_reads_as_zeros_without_a_data_file() {
    let mut fs = MountedFs::start();
    fs::write(fs.path("released"), b"archived only").unwrap();
    fs::write(fs.path("hole"), b"").unwrap();
    let released = fs::metadata(fs.path("released")).unwrap().ino();
    let hole = fs::metadata(fs.path("hole")).unwrap().ino();
    fs.await_consistent();
    fs.unmount();
    // As the archive tier will leave them: data only in the archive; a hole of 1000 bytes.
    fs::remove_file(fs.cache_file(released)).unwrap();
    let mut conn = fs.db.connect();
    conn.exec_drop(
        "UPDATE vs_inodes SET data_state = 4 WHERE ino = ?",
        (released,),
    )
    .unwrap();
    conn.exec_drop(
        "UPDATE vs_inodes SET data_state = 0, size = 1000 WHERE ino = ?",
        (hole,),
    )
    .unwrap();
    fs.mount();

    let err = fs::read(fs.path("released")).expect_err("released data must not read");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(fs::metadata(fs.path("released")).unwrap().len(), 13);
    assert_eq!(fs::read(fs.path("hole")).unwrap(), vec![0u8; 1000]);
    assert!(!fs.cache_file(hole).exists(), "a read makes no data file");
}
