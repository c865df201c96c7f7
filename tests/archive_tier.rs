//! The archive tier through a real mount: `vfsserver` with its cache and volumes on small
//! tmpfs file systems, files written and read through system calls, states read from the
//! catalog, counters from the server's statistics. Needs root (tmpfs mounts).

mod support;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use support::tier::{
    Layout, TierBed, ARCHIVED, DAMAGED, DIRTY, FAST, KEEP_ALL, PATIENCE, RELEASED, RELEASE_ALL,
    RESIDENT,
};

const MIB: u64 = 1 << 20;

/// `len` bytes that differ per `seed` and position.
fn content(len: u64, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn bed(cache: u64, volumes: &[(&str, u64)], keys: &str) -> TierBed {
    TierBed::start(&Layout {
        cache,
        volumes,
        keys: &format!("{FAST}{keys}"),
    })
}

/// Waits until a copy is being written to `volume` (its `.partial` file exists).
fn await_partial_copy(volume: &std::path::Path) {
    support::await_condition(PATIENCE, "a partial copy on the volume", || {
        fs::read_dir(volume).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
    });
}

/// The error a read of all of `name` fails with (panics, naming the length, if it works).
fn read_error(bed: &TierBed, name: &str) -> std::io::Error {
    match fs::read(bed.path(name)) {
        Ok(data) => panic!("{name}: read {} bytes, expected an error", data.len()),
        Err(err) => err,
    }
}

fn assert_content(bed: &TierBed, name: &str, want: &[u8]) {
    let got = fs::read(bed.path(name)).unwrap_or_else(|e| {
        panic!(
            "read {name}: {e}; files per state (state, files, bytes): {:?}; data files in \
             the cache (ino, bytes): {:?}",
            bed.states(),
            support::consistency::data_files(&bed.cache())
        )
    });
    assert!(
        got == want,
        "{name}: read {} bytes, first difference at {:?}",
        got.len(),
        got.iter().zip(want).position(|(a, b)| a != b)
    );
}

#[test]
fn writing_several_times_the_cache_reads_back_every_byte() {
    let bed = bed(
        64 * MIB,
        &[("V1", 96 * MIB), ("V2", 96 * MIB), ("V3", 96 * MIB)],
        "<CacheFreeMinSize>20M</CacheFreeMinSize><CacheFreeMaxSize>32M</CacheFreeMaxSize>\
         <WriteCacheFreeSize>24M</WriteCacheFreeSize><CacheFreeLeastSize>4M</CacheFreeLeastSize>",
    );
    let files = 40;
    for i in 0..files {
        bed.write_file(&format!("data/f{i:02}"), &content(4 * MIB, i));
    }
    for i in 0..files {
        assert_content(&bed, &format!("data/f{i:02}"), &content(4 * MIB, i));
    }
    let counters = bed.counters();
    assert!(counters["migrated_files"] >= files, "{counters:?}");
    assert!(counters["evicted_files"] > 0, "{counters:?}");
    assert!(counters["recalled_files"] > 0, "{counters:?}");
    bed.await_consistent();
}

#[test]
fn eviction_takes_the_least_recently_used_and_never_a_dirty_or_open_file() {
    // 64 MiB cache: six 8 MiB archived files and an 8 MiB filler that is never archived
    // leave ~8 MiB free, below the lower watermark (12 MiB); reaching the upper one (28 MiB)
    // takes three files.
    let bed = bed(
        64 * MIB,
        &[("V1", 128 * MIB)],
        "<WriteToTapeFilePattern>/data/.*</WriteToTapeFilePattern>\
         <CacheFreeMinSize>12M</CacheFreeMinSize><CacheFreeMaxSize>28M</CacheFreeMaxSize>\
         <WriteCacheFreeSize>0</WriteCacheFreeSize>",
    );
    let names = ["a", "b", "c", "d", "e", "f"];
    let mut inos = std::collections::HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let ino = bed.write_file(&format!("data/{name}"), &content(8 * MIB, i as u64));
        inos.insert(*name, ino);
    }
    for name in names {
        bed.await_state(inos[name], ARCHIVED);
    }
    // Access order: f, c, a (b never): least recently used first is b, f, c, a.
    for name in ["f", "c", "a"] {
        let mut buf = [0u8; 16];
        File::open(bed.path(&format!("data/{name}")))
            .unwrap()
            .read_exact(&mut buf)
            .unwrap();
    }
    let held_open = File::open(bed.path("data/d")).unwrap();
    let mut dirty = OpenOptions::new()
        .write(true)
        .open(bed.path("data/e"))
        .unwrap();
    dirty.write_all(b"changed").unwrap();
    dirty.sync_data().unwrap();
    bed.await_state(inos["e"], DIRTY);
    bed.write_file("filler", &content(8 * MIB, 99));
    for name in ["b", "f", "c"] {
        bed.await_state(inos[name], RELEASED);
    }
    assert_eq!(bed.state(inos["a"]), ARCHIVED, "a was used last: kept");
    assert_eq!(bed.state(inos["d"]), ARCHIVED, "d is open: kept");
    assert_eq!(bed.state(inos["e"]), DIRTY, "e is dirty: kept");
    assert!(bed.cache_file(inos["d"]).exists() && bed.cache_file(inos["e"]).exists());
    for name in ["b", "f", "c"] {
        assert!(
            !bed.cache_file(inos[name]).exists(),
            "{name}'s local data dropped"
        );
    }
    drop((held_open, dirty));
}

#[test]
fn a_released_file_is_recalled_for_partial_reads_and_shared_by_many_readers() {
    let bed = bed(256 * MIB, &[("V1", 256 * MIB)], RELEASE_ALL);
    let data = Arc::new(content(48 * MIB, 5));
    let ino = bed.write_file("big", &data);
    bed.await_state(ino, RELEASED);
    assert!(!bed.cache_file(ino).exists());

    // A read in the middle gets its own bytes.
    let file = File::open(bed.path("big")).unwrap();
    let mut buf = vec![0u8; 4096];
    file.read_exact_at(&mut buf, 20 * MIB + 123).unwrap();
    assert!(
        buf == data[(20 * MIB + 123) as usize..][..4096],
        "partial read"
    );
    drop(file);
    // The recall goes on to the end, then the file is released again: local data gone.
    support::await_condition(PATIENCE, "the file recalled and released again", || {
        bed.state(ino) == RELEASED && !bed.cache_file(ino).exists()
    });

    // Eight readers open first (so none can see it released again), then read at once.
    let recalled_before = bed.counters()["recalled_files"];
    let handles: Vec<File> = (0..8)
        .map(|_| File::open(bed.path("big")).unwrap())
        .collect();
    let readers: Vec<_> = handles
        .into_iter()
        .enumerate()
        .map(|(i, mut file)| {
            let data = Arc::clone(&data);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                file.read_to_end(&mut got).unwrap();
                assert!(got == *data, "reader {i}: {} bytes differ", got.len());
            })
        })
        .collect();
    for reader in readers {
        reader.join().unwrap();
    }
    let recalled = bed.counters()["recalled_files"] - recalled_before;
    assert_eq!(recalled, 1, "eight readers, one recall");
}

#[test]
fn a_write_during_a_copy_aborts_it_and_the_final_data_is_archived() {
    // 512 MiB with both digests: the copy takes long enough to be caught in the act.
    let bed = bed(768 * MIB, &[("V1", 1536 * MIB)], KEEP_ALL);
    let data = content(512 * MIB, 11);
    let ino = bed.write_file("moving", &data);
    let volume = bed.volume("V1");
    await_partial_copy(&volume);
    let mut file = OpenOptions::new()
        .append(true)
        .open(bed.path("moving"))
        .unwrap();
    file.write_all(b"tail").unwrap();
    drop(file);
    let mut want = data;
    want.extend_from_slice(b"tail");
    bed.await_state(ino, ARCHIVED);
    let (label, seq, size) = bed.live_copy(ino).expect("a live copy");
    assert_eq!(size, want.len() as u64);
    let copy = fs::read(bed.volume(&label).join(format!("{seq:012}"))).unwrap();
    assert!(copy == want, "the archived copy is the final data");
    let counters = bed.counters();
    assert!(counters["copies_aborted"] >= 1, "{counters:?}");
}

#[test]
fn a_delete_during_a_copy_aborts_it_and_leaves_no_live_copy() {
    let bed = bed(768 * MIB, &[("V1", 1536 * MIB)], KEEP_ALL);
    let ino = bed.write_file("doomed", &content(512 * MIB, 12));
    let volume = bed.volume("V1");
    await_partial_copy(&volume);
    fs::remove_file(bed.path("doomed")).unwrap();
    support::await_condition(PATIENCE, "the copy aborted", || {
        bed.counters()["copies_aborted"] >= 1
    });
    assert_eq!(
        bed.live_copy(ino),
        None,
        "nothing recorded for a deleted file"
    );
    let copies = fs::read_dir(&volume)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().chars().all(|c| c.is_ascii_digit())
        })
        .count();
    assert_eq!(copies, 0, "the aborted copy left nothing on the volume");
    bed.await_consistent();
}

#[test]
fn recalls_spread_over_volumes_are_served_volume_by_volume() {
    // Volumes of 12 MiB with a 1 MiB reserve take five 2 MiB files each.
    let volumes = [
        ("V1", 12 * MIB),
        ("V2", 12 * MIB),
        ("V3", 12 * MIB),
        ("V4", 12 * MIB),
    ];
    let bed = bed(256 * MIB, &volumes, RELEASE_ALL);
    // The first file's recall holds the one drive (its copy becomes a FIFO, as a hung tape)
    // until every other request has queued.
    let first = bed.write_file("first", &content(9 * MIB, 1000));
    bed.await_state(first, RELEASED);
    let mut names = Vec::new();
    for i in 0..16u64 {
        let name = format!("r{i:02}");
        let ino = bed.write_file(&name, &content(2 * MIB, i));
        bed.await_state(ino, RELEASED);
        names.push((name, i));
    }
    let mut volumes_used = std::collections::HashSet::new();
    for (name, _) in &names {
        volumes_used.insert(bed.live_copy(bed.ino(name)).unwrap().0);
    }
    assert!(
        volumes_used.len() >= 3,
        "files spread over {volumes_used:?}"
    );
    let before = bed.counters()["volume_switches"];
    let (volume, seq, _) = bed.live_copy(first).unwrap();
    let fifo = bed.volume(&volume).join(format!("{seq:012}"));
    fs::remove_file(&fifo).unwrap();
    let fifo_name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo_name.as_ptr(), 0o600) }, 0);
    let big = File::open(bed.path("first")).unwrap();
    let pid = bed.server().pid();
    support::await_condition(PATIENCE, "the drive held by the first recall", || {
        drive_in_openat(pid)
    });
    // Requests in an order that jumps between volumes (odd positions, then even ones).
    let mut order: Vec<&(String, u64)> = names.iter().step_by(2).collect();
    order.extend(names.iter().skip(1).step_by(2));
    let opened: Vec<(File, u64)> = order
        .iter()
        .map(|(name, seed)| (File::open(bed.path(name)).unwrap(), *seed))
        .collect();
    let readers: Vec<_> = opened
        .into_iter()
        .map(|(mut file, seed)| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                file.read_to_end(&mut got).unwrap();
                assert!(got == content(2 * MIB, seed), "file {seed}");
            })
        })
        .collect();
    // Every request has queued (each open queued its recall): the drive goes on. The first
    // recall fails (its copy is gone), the others are served volume by volume.
    drop(OpenOptions::new().write(true).open(&fifo).unwrap());
    for reader in readers {
        reader.join().unwrap();
    }
    drop(big);
    let switches = bed.counters()["volume_switches"] - before;
    // Served in arrival order this would be about one switch per file (16); by volume it
    // is one per volume used, plus the first file's.
    assert!(
        switches <= volumes_used.len() as u64 + 1,
        "{switches} volume switches for 17 recalls over {} volumes",
        volumes_used.len()
    );
}

#[test]
fn a_removed_volume_is_eio_with_a_log_line_and_the_file_is_damaged() {
    let bed = bed(128 * MIB, &[("V1", 64 * MIB)], RELEASE_ALL);
    let ino = bed.write_file("gone", &content(3 * MIB, 3));
    bed.await_state(ino, RELEASED);
    // The volume's tmpfs stays mounted; its copies disappear (as an unmounted LTFS tape).
    for entry in fs::read_dir(bed.volume("V1")).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let err = read_error(&bed, "gone");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    bed.await_state(ino, DAMAGED);
    let line = bed
        .server()
        .await_output("recall of /gone", PATIENCE)
        .expect("a log line for the failed recall");
    assert!(
        line.contains("volume V1") && line.contains("damaged"),
        "{line}"
    );
    let again = read_error(&bed, "gone");
    assert_eq!(again.raw_os_error(), Some(libc::EIO), "damaged stays EIO");
}

#[test]
fn a_full_archive_leaves_files_resident_and_says_so() {
    // A 2 MiB volume with a 1 MiB reserve cannot take a 4 MiB file.
    let bed = bed(128 * MIB, &[("V1", 2 * MIB)], KEEP_ALL);
    let ino = bed.write_file("waits", &content(4 * MIB, 4));
    bed.server()
        .await_output("the archive is full", PATIENCE)
        .expect("the log says the archive is full");
    assert_eq!(bed.state(ino), RESIDENT);
    assert_content(&bed, "waits", &content(4 * MIB, 4));
}

#[test]
fn a_kill_during_a_copy_loses_nothing_and_the_file_is_archived_after_restart() {
    let mut bed = bed(768 * MIB, &[("V1", 1536 * MIB)], KEEP_ALL);
    let data = content(512 * MIB, 21);
    let ino = bed.write_file("killed", &data);
    let volume = bed.volume("V1");
    await_partial_copy(&volume);
    bed.kill();
    assert_eq!(
        bed.state(ino),
        RESIDENT,
        "not recorded before the copy was complete"
    );
    bed.start_server();
    bed.await_state(ino, ARCHIVED);
    let partials = fs::read_dir(&volume)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
        .count();
    assert_eq!(partials, 0, "the partial copy was swept");
    assert_content(&bed, "killed", &data);
    bed.await_consistent();
}

#[test]
fn a_kill_during_a_recall_loses_nothing_and_the_next_read_gets_every_byte() {
    let mut bed = bed(768 * MIB, &[("V1", 768 * MIB)], RELEASE_ALL);
    let data = content(512 * MIB, 31);
    let ino = bed.write_file("recalling", &data);
    bed.await_state(ino, RELEASED);
    let file = File::open(bed.path("recalling")).unwrap();
    let mut first = vec![0u8; 4096];
    file.read_exact_at(&mut first, 0).unwrap(); // the recall has started
    assert!(first == data[..4096]);
    bed.kill();
    drop(file);
    assert_eq!(bed.state(ino), RELEASED, "a partial recall is not recorded");
    bed.await_consistent();
    bed.start_server();
    assert_content(&bed, "recalling", &data);
    bed.await_consistent();
}

#[test]
fn a_kill_during_eviction_loses_nothing() {
    // Sixty archived files kept; restarted with watermarks that release them all, killed
    // while that is under way.
    let mut bed = bed(256 * MIB, &[("V1", 256 * MIB)], KEEP_ALL);
    let files = 60u64;
    let inos: Vec<u64> = (0..files)
        .map(|i| bed.write_file(&format!("e{i:02}"), &content(MIB, i)))
        .collect();
    for ino in &inos {
        bed.await_state(*ino, ARCHIVED);
    }
    bed.stop();
    bed.edit_config(
        "<CacheFreeMinSize>0</CacheFreeMinSize><CacheFreeMaxSize>0</CacheFreeMaxSize>",
        "<CacheFreeMinSize>100G</CacheFreeMinSize><CacheFreeMaxSize>100G</CacheFreeMaxSize>",
    );
    bed.start_server();
    support::await_condition(PATIENCE, "eviction under way", || {
        inos.iter().any(|ino| bed.state(*ino) == RELEASED)
    });
    bed.kill();
    bed.await_consistent();
    bed.start_server();
    for i in 0..files {
        assert_content(&bed, &format!("e{i:02}"), &content(MIB, i));
    }
    bed.await_consistent();
}

#[test]
fn after_a_recall_the_files_that_follow_on_the_volume_are_pre_read() {
    let mut bed = bed(256 * MIB, &[("V1", 256 * MIB)], RELEASE_ALL);
    let inos: Vec<u64> = (0..6u64)
        .map(|i| bed.write_file(&format!("p{i}"), &content(2 * MIB, i)))
        .collect();
    for ino in &inos {
        bed.await_state(*ino, RELEASED);
    }
    // Restarted with room in the cache and 6 MiB of pre-read: p1-p3 follow p0.
    bed.stop();
    bed.edit_config(RELEASE_ALL, KEEP_ALL);
    bed.edit_config(
        "<CacheFileSizeRead>0</CacheFileSizeRead>",
        "<CacheFileSizeRead>6M</CacheFileSizeRead>",
    );
    bed.start_server();
    assert_content(&bed, "p0", &content(2 * MIB, 0));
    for ino in &inos[1..4] {
        bed.await_state(*ino, ARCHIVED);
    }
    assert_eq!(bed.state(inos[4]), RELEASED, "beyond CacheFileSizeRead");
    assert_eq!(bed.state(inos[5]), RELEASED);
    assert_eq!(bed.counters()["pre_read_files"], 3);
    for i in 1..4u64 {
        assert_content(&bed, &format!("p{i}"), &content(2 * MIB, i));
    }
    bed.await_consistent();
}

#[test]
fn superseded_copies_are_deleted_from_the_volume_once_enough_are_due() {
    let bed = bed(
        128 * MIB,
        &[("V1", 128 * MIB)],
        &format!(
            "{KEEP_ALL}<DeleteTapeFileTriggerNum>2</DeleteTapeFileTriggerNum>\
             <DeleteTapeFileTimeDiff>0</DeleteTapeFileTimeDiff>"
        ),
    );
    let ino = bed.write_file("rewritten", &content(MIB, 0));
    bed.await_state(ino, ARCHIVED);
    for version in 1..=3u64 {
        let before = bed.live_copy(ino).unwrap().1;
        let mut file = OpenOptions::new()
            .write(true)
            .open(bed.path("rewritten"))
            .unwrap();
        file.write_all(&content(MIB, version)).unwrap();
        drop(file);
        support::await_condition(PATIENCE, "a new copy", || {
            bed.live_copy(ino).is_some_and(|(_, seq, _)| seq != before)
        });
        bed.await_state(ino, ARCHIVED);
    }
    let (_, live, _) = bed.live_copy(ino).unwrap();
    support::await_condition(PATIENCE, "superseded copies deleted", || {
        bed.counters()["copies_deleted"] >= 2
    });
    let copies: Vec<u64> = fs::read_dir(bed.volume("V1"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
        .collect();
    assert!(copies.contains(&live), "the live copy stays: {copies:?}");
    assert!(
        copies.len() <= 2,
        "at most one superseded copy left: {copies:?}"
    );
    assert_content(&bed, "rewritten", &content(MIB, 3));
    bed.await_consistent();
}

#[test]
fn a_stuck_volume_does_not_stall_requests_for_resident_files() {
    let bed = bed(
        128 * MIB,
        &[("V1", 64 * MIB)],
        &format!("{RELEASE_ALL}<WriteToTapeFilePattern>/stuck</WriteToTapeFilePattern>"),
    );
    let ino = bed.write_file("stuck", &content(MIB, 1));
    bed.await_state(ino, RELEASED);
    // The copy becomes a FIFO: the drive blocks opening it, as on a hung tape.
    let (volume, seq, _) = bed.live_copy(ino).unwrap();
    let copy = bed.volume(&volume).join(format!("{seq:012}"));
    fs::remove_file(&copy).unwrap();
    let fifo = std::ffi::CString::new(copy.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let stuck_path = bed.path("stuck");
    let stuck = std::thread::spawn(move || fs::read(stuck_path).map(|d| d.len()));
    let pid = bed.server().pid();
    support::await_condition(PATIENCE, "the drive stuck opening the copy", || {
        drive_in_openat(pid)
    });
    // Everything else goes on: create, write, read, list, stat, remove.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let other = bed.path("other");
    let mnt = bed.dir.mountpoint();
    std::thread::spawn(move || {
        fs::write(&other, b"resident").unwrap();
        assert_eq!(fs::read(&other).unwrap(), b"resident");
        assert!(fs::read_dir(&mnt).unwrap().count() >= 2);
        fs::metadata(&other).unwrap();
        fs::remove_file(&other).unwrap();
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(PATIENCE)
        .expect("requests for resident files went on while the volume was stuck");
    assert!(
        !stuck.is_finished(),
        "the read of the stuck file still waits"
    );
    // The volume comes back empty-handed: the copy is gone, the reader gets EIO.
    let writer = OpenOptions::new().write(true).open(&copy).unwrap();
    drop(writer);
    let result = stuck.join().unwrap();
    assert_eq!(
        result.map_err(|e| e.raw_os_error()),
        Err(Some(libc::EIO)),
        "a failed recall is EIO"
    );
    bed.await_state(ino, DAMAGED);
}

#[test]
fn a_cache_full_of_files_that_cannot_be_evicted_is_enospc_and_keeps_what_was_written() {
    // Nothing is archived (the pattern matches nothing), so nothing can be evicted.
    let bed = bed(
        32 * MIB,
        &[("V1", 64 * MIB)],
        "<WriteToTapeFilePattern>/none</WriteToTapeFilePattern>\
         <CacheFreeMinSize>8M</CacheFreeMinSize><CacheFreeMaxSize>16M</CacheFreeMaxSize>\
         <WriteCacheFreeSize>12M</WriteCacheFreeSize><CacheFreeLeastSize>4M</CacheFreeLeastSize>",
    );
    let first = content(8 * MIB, 1);
    bed.write_file("first", &first);
    let mut file = File::create(bed.path("second")).unwrap();
    let chunk = content(MIB, 2);
    let mut written = 0u64;
    let err = loop {
        match file.write_all(&chunk) {
            Ok(()) => written += MIB,
            Err(err) => break err,
        }
        assert!(written < 64 * MIB, "the cache never filled");
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    drop(file);
    assert_content(&bed, "first", &first);
    let kept = fs::read(bed.path("second")).unwrap();
    assert!(kept.len() as u64 >= written, "{} < {written}", kept.len());
    for (i, piece) in kept.chunks(MIB as usize).enumerate() {
        assert!(
            piece == &chunk[..piece.len()],
            "chunk {i} of what was written"
        );
    }
}

/// Whether the server's first drive thread is in `openat(2)` (blocked on the FIFO).
fn drive_in_openat(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        let comm = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let syscall = fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
        comm.trim() == "vs-tier-drive0"
            && syscall.split_whitespace().next() == Some(&libc::SYS_openat.to_string())
    })
}

#[test]
fn server_state_is_not_a_user_extended_attribute() {
    let bed = bed(64 * MIB, &[("V1", 64 * MIB)], RELEASE_ALL);
    let ino = bed.write_file("plain", b"data");
    bed.await_state(ino, RELEASED);
    let path = std::ffi::CString::new(bed.path("plain").to_str().unwrap()).unwrap();
    let mut names = vec![0u8; 4096];
    // SAFETY: listxattr into a buffer of the given length.
    let len = unsafe { libc::listxattr(path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert_eq!(
        len,
        0,
        "no extended attributes: {:?}",
        &names[..len.max(0) as usize]
    );
}

#[test]
fn copies_wait_for_a_batch_of_write_to_tape_wait_size() {
    let keys = FAST
        .replace(
            "<WriteToTapeWaitSize>0</WriteToTapeWaitSize>",
            "<WriteToTapeWaitSize>10M</WriteToTapeWaitSize>",
        )
        .replace(
            "<WriteToTapeWaitTime>0</WriteToTapeWaitTime>",
            "<WriteToTapeWaitTime>3600</WriteToTapeWaitTime>",
        );
    let bed = TierBed::start(&Layout {
        cache: 128 * MIB,
        volumes: &[("V1", 128 * MIB)],
        keys: &format!("{keys}{KEEP_ALL}"),
    });
    let inos: Vec<u64> = (0..4u64)
        .map(|i| bed.write_file(&format!("b{i}"), &content(2 * MIB, i)))
        .collect();
    support::await_condition(PATIENCE, "the four files seen waiting", || {
        bed.waiting_bytes() == 8 * MIB
    });
    for ino in &inos {
        assert_eq!(
            bed.state(*ino),
            RESIDENT,
            "8 MiB wait: below the 10 MiB batch"
        );
    }
    let last = bed.write_file("b4", &content(2 * MIB, 4));
    for ino in inos.iter().chain([&last]) {
        bed.await_state(*ino, ARCHIVED);
    }
}
