//! The archive tier's admin command and the catalog rebuild, end to end: `vfsserver` with
//! its cache and volumes on small tmpfs file systems (`support::tier`), the real `vsadmin`
//! binary talking to the server's admin socket, files made and read through the mount, and
//! `vfsserver --rebuild-catalog` run against a dropped and recreated database. Needs root.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use mysql::prelude::Queryable;
use support::server::vfsserver_binary;
use support::tier::{Layout, TierBed, ARCHIVED, DAMAGED, FAST, KEEP_ALL, RELEASED, RESIDENT};

const MIB: u64 = 1 << 20;

/// Copies only when asked (`vsadmin archive`) or after an hour; nothing is evicted by the
/// watermarks; small recall blocks; digests on.
fn manual_keys() -> String {
    let fast = FAST.replace(
        "<WriteToTapeWaitFile>0</WriteToTapeWaitFile>",
        "<WriteToTapeWaitFile>3600</WriteToTapeWaitFile>",
    );
    format!("{fast}{KEEP_ALL}")
}

/// The `vsadmin` example binary, built from the sources under test.
fn vsadmin_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            support::cargo_build(&["--example", "vsadmin"])
                .join("examples")
                .join("vsadmin")
        })
        .clone()
}

fn bed() -> TierBed {
    TierBed::start(&Layout {
        cache: 64 * MIB,
        volumes: &[("V1", 64 * MIB)],
        keys: &manual_keys(),
    })
}

fn socket(bed: &TierBed) -> PathBuf {
    bed.dir.root.path().join("admin.sock")
}

/// Runs `vsadmin --socket <bed's socket> args...` as root.
fn vsadmin(bed: &TierBed, args: &[&str]) -> Output {
    vsadmin_at(&socket(bed), args, None)
}

fn vsadmin_at(socket: &Path, args: &[&str], as_uid: Option<u32>) -> Output {
    let mut command = match as_uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(vsadmin_binary());
            c
        }
        None => Command::new(vsadmin_binary()),
    };
    command
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run vsadmin")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}stderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "{}", text(output));
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

fn path_arg(bed: &TierBed, name: &str) -> String {
    bed.path(name).display().to_string()
}

/// The `state: ...` line `vsadmin file` prints for `name`.
fn shown_state(bed: &TierBed, name: &str) -> String {
    let output = vsadmin(bed, &["file", &path_arg(bed, name)]);
    assert_exit(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("state: ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no state line for {name}:\n{stdout}"))
}

/// `dirty` comes from the same catalog field (see `tier::admin`'s unit tests); it is not
/// staged here: an archived file rewritten through this bed's mount was recorded `resident`.
#[test]
fn file_shows_each_state_with_copy_and_digests() {
    let bed = bed();
    let empty = bed.write_file("empty", b"");
    let resident = bed.write_file("resident", b"only here");
    let archived = bed.write_file("archived", &content(300_000, 1));
    let released = bed.write_file("released", &content(200_000, 2));
    let damaged = bed.write_file("damaged", &content(100_000, 3));
    for name in ["archived", "released", "damaged"] {
        assert_exit(&vsadmin(&bed, &["archive", &path_arg(&bed, name)]), 0);
    }
    for ino in [archived, released, damaged] {
        bed.await_state(ino, ARCHIVED);
    }
    for name in ["released", "damaged"] {
        assert_exit(&vsadmin(&bed, &["release", &path_arg(&bed, name)]), 0);
    }
    bed.await_state(released, RELEASED);
    // Its copy is gone from the volume: the read fails and the file is damaged.
    let (volume, seq, _) = bed.live_copy(damaged).unwrap();
    fs::remove_file(
        bed.volume(&volume)
            .join(valuestor::archive::copy::copy_name(seq)),
    )
    .unwrap();
    let read = fs::read(bed.path("damaged")).expect_err("no copy: no data");
    assert_eq!(read.raw_os_error(), Some(libc::EIO), "{read}");
    bed.await_state(damaged, DAMAGED);
    assert_eq!(bed.state(resident), RESIDENT);
    let _ = empty;

    for (name, state) in [
        ("empty", "empty"),
        ("resident", "resident"),
        ("archived", "archived"),
        ("released", "released"),
        ("damaged", "damaged"),
    ] {
        assert_eq!(shown_state(&bed, name), state, "vsadmin file {name}");
    }
    let output = vsadmin(&bed, &["file", &path_arg(&bed, "archived")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (volume, seq, _) = bed.live_copy(archived).unwrap();
    let md5 = md5_hex(&content(300_000, 1));
    for line in [
        format!("{}", bed.path("archived").display()),
        format!("  inode: {archived}"),
        "  size: 300000".to_owned(),
        format!("  volume: {volume}"),
        format!("  copy: {seq}"),
        format!("  md5: {md5}"),
        "  catalog path: /archived".to_owned(),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing:\n{}",
            text(&output)
        );
    }
    assert!(stdout.contains("  sha1: "), "{}", text(&output));
}

#[test]
fn status_shows_states_volumes_counters_and_recent_errors() {
    let bed = bed();
    let ino = bed.write_file("a", &content(100_000, 4));
    assert_exit(&vsadmin(&bed, &["archive", &path_arg(&bed, "a")]), 0);
    bed.await_state(ino, ARCHIVED);
    assert_exit(&vsadmin(&bed, &["release", &path_arg(&bed, "a")]), 0);
    let (volume, seq, _) = bed.live_copy(ino).unwrap();
    fs::remove_file(
        bed.volume(&volume)
            .join(valuestor::archive::copy::copy_name(seq)),
    )
    .unwrap();
    assert!(
        fs::read(bed.path("a")).is_err(),
        "a missing copy is an error"
    );
    bed.await_state(ino, DAMAGED);

    let output = vsadmin(&bed, &["status"]);
    assert_exit(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for part in [
        "files by state:",
        "  damaged   1 files, 100000 bytes",
        "waiting to migrate: ",
        "recalls: ",
        "cache: ",
        "volumes: 1",
        "  V1: ",
        "takes copies",
        "archive full: no",
        "counters: migrated 1 files (100000 bytes",
        "recent errors: ",
        " UTC ",
    ] {
        assert!(
            stdout.contains(part),
            "{part:?} missing:\n{}",
            text(&output)
        );
    }
}

#[test]
fn changes_are_for_root_only_and_reading_is_for_anyone() {
    let bed = bed();
    let ino = bed.write_file("a", b"some data");
    // Let an unprivileged user reach the socket and the mount below the test's directory.
    fs::set_permissions(bed.dir.root.path(), fs::Permissions::from_mode(0o711)).unwrap();
    let nobody = 65534;
    for verb in ["archive", "release", "recall"] {
        let output = vsadmin_at(&socket(&bed), &[verb, &path_arg(&bed, "a")], Some(nobody));
        assert_exit(&output, 1);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("permission denied: root only"),
            "{verb}: {}",
            text(&output)
        );
    }
    assert_eq!(bed.state(ino), RESIDENT, "nothing changed");
    let output = vsadmin_at(&socket(&bed), &["file", &path_arg(&bed, "a")], Some(nobody));
    assert_exit(&output, 0);
    let output = vsadmin_at(&socket(&bed), &["status"], Some(nobody));
    assert_exit(&output, 0);
    let log = bed.server().output();
    assert!(
        log.contains(&format!(
            "refused \"archive {ino}\" from uid {nobody}: root only"
        )),
        "refusal not logged:\n{}",
        bed.output_tail()
    );
}

#[test]
fn a_tree_is_archived_released_and_recalled_with_r() {
    let bed = bed();
    let files = ["t/a", "t/b", "t/sub/c", "t/sub/deeper/d"];
    let inos: Vec<u64> = files
        .iter()
        .enumerate()
        .map(|(i, name)| bed.write_file(name, &content(150_000 + i * 1000, i as u8)))
        .collect();
    let outside = bed.write_file("outside", b"not in the tree");
    std::os::unix::fs::symlink(bed.path("outside"), bed.path("t/link")).unwrap();
    fs::create_dir(bed.path("t/emptydir")).unwrap();

    let tree = path_arg(&bed, "t");
    let output = vsadmin(&bed, &["archive", "-r", &tree]);
    assert_exit(&output, 0);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().count(),
        files.len(),
        "one line per regular file: {}",
        text(&output)
    );
    for &ino in &inos {
        bed.await_state(ino, ARCHIVED);
    }
    assert_exit(&vsadmin(&bed, &["release", "-r", &tree]), 0);
    for &ino in &inos {
        assert_eq!(bed.state(ino), RELEASED, "inode {ino} after release -r");
        assert!(
            !bed.cache_file(ino).exists(),
            "inode {ino}: local data dropped"
        );
    }
    assert_exit(&vsadmin(&bed, &["recall", "-r", &tree]), 0);
    for &ino in &inos {
        bed.await_state(ino, ARCHIVED);
    }
    for (i, name) in files.iter().enumerate() {
        let got = fs::read(bed.path(name)).unwrap();
        assert!(
            got == content(150_000 + i * 1000, i as u8),
            "{name}: recalled bytes differ"
        );
    }
    assert_eq!(
        bed.state(outside),
        RESIDENT,
        "the symlink's target was not followed"
    );
}

#[test]
fn a_single_file_is_archived_released_and_recalled() {
    let bed = bed();
    let data = content(500_000, 9);
    let ino = bed.write_file("one", &data);
    let path = path_arg(&bed, "one");
    assert_exit(&vsadmin(&bed, &["archive", &path]), 0);
    bed.await_state(ino, ARCHIVED);
    assert_exit(&vsadmin(&bed, &["release", &path]), 0);
    assert_eq!(bed.state(ino), RELEASED);
    let output = vsadmin(&bed, &["recall", &path]);
    assert_exit(&output, 0);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("recall queued"),
        "{}",
        text(&output)
    );
    bed.await_state(ino, ARCHIVED);
    assert!(bed.cache_file(ino).exists(), "recalled into the cache");
    assert!(
        fs::read(bed.path("one")).unwrap() == data,
        "bytes differ after recall"
    );
    // Releasing a file that is not archived says why.
    let fresh = bed.write_file("fresh", b"x");
    let output = vsadmin(&bed, &["release", &path_arg(&bed, "fresh")]);
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "inode {fresh} is resident: only an archived file can be released"
        )),
        "{}",
        text(&output)
    );
}

#[test]
fn bad_paths_and_non_regular_files_fail_by_name() {
    let bed = bed();
    fs::create_dir(bed.path("dir")).unwrap();
    bed.write_file("good", b"fine");
    let missing = path_arg(&bed, "missing");
    let dir = path_arg(&bed, "dir");
    let elsewhere = bed
        .dir
        .root
        .path()
        .join("vs_conf.xml")
        .display()
        .to_string();
    let output = vsadmin(
        &bed,
        &["file", &missing, &dir, &elsewhere, &path_arg(&bed, "good")],
    );
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        format!("{missing}: No such file or directory"),
        format!("{dir}: inode "),
        "is not a regular file (directory)".to_owned(),
        format!("{elsewhere}: not in the ValueStor mount at "),
        "vsadmin: 3 failed".to_owned(),
    ] {
        assert!(
            stderr.contains(&expected),
            "{expected:?} missing:\n{}",
            text(&output)
        );
    }
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("state: resident"),
        "the good file is still shown: {}",
        text(&output)
    );
    assert_exit(&vsadmin(&bed, &["frobnicate"]), 2);
    assert_exit(&vsadmin(&bed, &["archive"]), 2);
}

#[test]
fn no_server_is_exit_3_and_a_stopped_server_removes_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let output = vsadmin_at(&dir.path().join("none.sock"), &["status"], None);
    assert_exit(&output, 3);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot reach the server"),
        "{}",
        text(&output)
    );
    let mut bed = bed();
    assert!(socket(&bed).exists(), "socket made at start");
    bed.stop();
    assert!(!socket(&bed).exists(), "socket removed at stop");
    assert_exit(&vsadmin(&bed, &["status"]), 3);
}

#[test]
fn a_second_server_on_the_same_admin_socket_refuses_to_start() {
    let bed = bed();
    let other = support::server::ServerDir::new(
        &bed.db,
        &format!("<AdminSocket>{}</AdminSocket>", socket(&bed).display()),
    );
    let mut second = support::server::Server::start(&other, &[], &[]);
    let (status, output) = second.wait(std::time::Duration::from_secs(60));
    assert!(!status.success(), "the second server started:\n{output}");
    assert!(output.contains("another server answers on it"), "{output}");
    assert!(!other.is_mounted(), "nothing mounted by the refused server");
    assert_exit(&vsadmin(&bed, &["status"]), 0);
}

#[test]
fn a_catalog_rebuilt_from_the_volumes_matches_the_original_and_reads_back() {
    let mut bed = bed();
    let files: Vec<(&str, u32, u32, u32, Vec<u8>)> = vec![
        ("top", 0o644, 0, 0, content(120_000, 1)),
        ("d1/a", 0o600, 1000, 1000, content(250_000, 2)),
        ("d1/d2/b", 0o640, 1001, 50, content(10_000, 3)),
        ("d3/c", 0o755, 0, 1000, content(1_200_000, 4)),
    ];
    for (name, mode, uid, gid, data) in &files {
        bed.write_file(name, data);
        let path = bed.path(name);
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
        std::os::unix::fs::chown(&path, Some(*uid), Some(*gid)).unwrap();
    }
    let before: Vec<fs::Metadata> = files
        .iter()
        .map(|f| fs::metadata(bed.path(f.0)).unwrap())
        .collect();
    for (name, ..) in &files {
        assert_exit(&vsadmin(&bed, &["archive", &path_arg(&bed, name)]), 0);
    }
    for (name, ..) in &files {
        bed.await_state(bed.ino(name), ARCHIVED);
    }
    bed.stop();

    // The catalog and the cache are lost: a new, empty database of the same name.
    let database = bed.db.database().to_owned();
    let mut conn = bed.db.connect();
    conn.query_drop(format!("DROP DATABASE `{database}`"))
        .unwrap();
    conn.query_drop(format!("CREATE DATABASE `{database}`"))
        .unwrap();
    drop(conn);
    for entry in fs::read_dir(bed.cache()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
    }

    let output = Command::new(vfsserver_binary())
        .arg("--config")
        .arg(bed.dir.config())
        .arg("--rebuild-catalog")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let bytes: usize = files.iter().map(|f| f.4.len()).sum();
    for part in [
        format!("rebuilt 4 files ({bytes} bytes"),
        "3 directories made, 0 conflicts, 0 torn manifest tails".to_owned(),
        "made directory /d1 (mode 0755, owner root)".to_owned(),
        "made directory /d1/d2 (mode 0755, owner root)".to_owned(),
        "made directory /d3 (mode 0755, owner root)".to_owned(),
    ] {
        assert!(
            stdout.contains(&part),
            "{part:?} missing:\n{}",
            text(&output)
        );
    }
    // Run twice: the catalog is no longer empty, and nothing changes.
    let again = Command::new(vfsserver_binary())
        .arg("--config")
        .arg(bed.dir.config())
        .arg("--rebuild-catalog")
        .output()
        .unwrap();
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("the catalog is not empty"),
        "{}",
        text(&again)
    );

    bed.start_server();
    for ((name, mode, uid, gid, data), was) in files.iter().zip(&before) {
        let now = fs::metadata(bed.path(name)).unwrap();
        assert_eq!(
            (
                now.mode(),
                now.uid(),
                now.gid(),
                now.size(),
                now.mtime(),
                now.mtime_nsec()
            ),
            (
                libc::S_IFREG | mode,
                *uid,
                *gid,
                data.len() as u64,
                was.mtime(),
                was.mtime_nsec()
            ),
            "{name}: (mode, uid, gid, size, mtime) rebuilt vs original"
        );
        assert_eq!(bed.state(now.ino()), RELEASED, "{name} comes back released");
        let got = fs::read(bed.path(name)).unwrap();
        assert!(
            got == *data,
            "{name}: recalled bytes differ from the original"
        );
    }
    for dir in ["d1", "d1/d2", "d3"] {
        let meta = fs::metadata(bed.path(dir)).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o755, 0), "{dir}");
    }
}

/// MD5 of `data`, lower-case hex.
fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    let digest = md5::Md5::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
