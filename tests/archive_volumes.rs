//! The archive tier's data layer on real files: volumes (plain directories, or small tmpfs
//! mounts where fullness matters), copies written and read back, manifests, rebuild.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use valuestor::archive::manifest::{hex, MANIFEST_NAME};
use valuestor::archive::{
    rebuild, remove_copy_files, ArchiveError, ArchiveFolder, CopyOptions, CopyRecord, FileMeta,
    MarkKind, SUM_BLOCK,
};

/// An archive folder in a temporary directory, with a source directory beside it.
struct Archive {
    dir: tempfile::TempDir,
}

impl Archive {
    fn new(volumes: &[&str]) -> Archive {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("archive")).unwrap();
        fs::create_dir(dir.path().join("src")).unwrap();
        for v in volumes {
            fs::create_dir(dir.path().join("archive").join(v)).unwrap();
        }
        Archive { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("archive")
    }

    fn folder(&self, reserve: u64) -> ArchiveFolder {
        ArchiveFolder::new(self.root(), reserve)
    }

    fn volume(&self, label: &str) -> PathBuf {
        self.root().join(label)
    }

    /// Writes a source file with `content` and returns its path.
    fn source(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.dir.path().join("src").join(name);
        fs::write(&path, content).unwrap();
        path
    }
}

/// A tmpfs of a given size mounted on a directory; unmounted when dropped (also on panic).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "vs-test-volume",
            ])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs volume needs root");
        Tmpfs {
            path: path.to_owned(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        valuestor::fs::lazy_unmount(&self.path);
    }
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

fn meta(ino: u64, path: &str, ctime_ns: i64) -> FileMeta {
    FileMeta {
        ino,
        path: path.as_bytes().to_vec(),
        mode: 0o100644,
        uid: 1000,
        gid: 1000,
        mtime_ns: ctime_ns,
        ctime_ns,
    }
}

/// The first word `tool` (md5sum, sha1sum) prints for `path`.
fn tool_digest(tool: &str, path: &Path) -> String {
    let out = Command::new(tool)
        .arg(path)
        .output()
        .expect("run digest tool");
    assert!(out.status.success(), "{tool} {path:?} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Names in a volume directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn no_cancel() -> AtomicBool {
    AtomicBool::new(false)
}

/// Copies `src` to `volume` as `meta` with the default options (no digests, no cancel).
fn copy_plain(folder: &ArchiveFolder, volume: &str, src: &Path, meta: &FileMeta) -> CopyRecord {
    folder
        .writer(volume)
        .unwrap()
        .copy(
            &File::open(src).unwrap(),
            meta,
            &CopyOptions::default(),
            &no_cancel(),
        )
        .unwrap()
}

const SMALL_BLOCK: usize = 64 << 10;

/// Copies `src` to `volume` with both digests and copy blocks of `block_size`.
fn copy_digested(
    folder: &ArchiveFolder,
    volume: &str,
    src: &Path,
    meta: &FileMeta,
    block_size: usize,
) -> CopyRecord {
    let opts = CopyOptions {
        block_size,
        md5: true,
        sha1: true,
    };
    folder
        .writer(volume)
        .unwrap()
        .copy(&File::open(src).unwrap(), meta, &opts, &no_cancel())
        .unwrap()
}

/// Bytes `range` of the copy `seq` of `volume`, read back through a reader.
fn read_range(
    folder: &ArchiveFolder,
    volume: &str,
    seq: u64,
    range: &std::ops::Range<u64>,
) -> Vec<u8> {
    let reader = folder.open_copy(volume, seq).unwrap();
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    let n = reader.read_at(range.start, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn copies_read_back_byte_for_byte_with_the_tools_digests() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let mut writer = folder.writer("VOL001").unwrap();
    let sizes = [
        0,
        1,
        4095,
        SMALL_BLOCK,
        SMALL_BLOCK + 3,
        3 * SMALL_BLOCK + 17,
        1 << 20,
    ];
    let digest_sets = [(true, true), (false, false), (true, false), (false, true)];
    for (i, &size) in sizes.iter().enumerate() {
        let content = random_bytes(size, i as u64);
        let src = a.source(&format!("f{i}"), &content);
        let (md5, sha1) = digest_sets[i % digest_sets.len()];
        let opts = CopyOptions {
            block_size: SMALL_BLOCK,
            md5,
            sha1,
        };
        let record = writer
            .copy(
                &File::open(&src).unwrap(),
                &meta(100 + i as u64, "/f", 1),
                &opts,
                &no_cancel(),
            )
            .unwrap();
        assert_eq!(record.size, size as u64, "size of copy of f{i}");
        assert_eq!(
            record.md5.map(|d| hex(&d)),
            md5.then(|| tool_digest("md5sum", &src)),
            "md5 of f{i} ({size} bytes)"
        );
        assert_eq!(
            record.sha1.map(|d| hex(&d)),
            sha1.then(|| tool_digest("sha1sum", &src)),
            "sha1 of f{i} ({size} bytes)"
        );

        let reader = folder.open_copy("VOL001", record.seq).unwrap();
        assert_eq!(reader.size(), size as u64);
        let mut back = Vec::new();
        let mut buf = vec![0u8; 7919]; // ranges that straddle every block boundary
        loop {
            let n = reader.read_at(back.len() as u64, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        assert!(back == content, "f{i} ({size} bytes) read back differs");
        // A range in the middle, and one past the end.
        if size > 10 {
            let mut mid = [0u8; 5];
            assert_eq!(reader.read_at(size as u64 / 2, &mut mid).unwrap(), 5);
            assert_eq!(&mid, &content[size / 2..size / 2 + 5]);
        }
        assert_eq!(reader.read_at(size as u64 + 1, &mut buf).unwrap(), 0);
    }
}

#[test]
fn default_block_copy_of_a_large_file_matches_the_tools() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let mut writer = folder.writer("VOL001").unwrap();
    let content = random_bytes(9 << 20 | 12345, 7);
    let src = a.source("big", &content);
    let opts = CopyOptions {
        md5: true,
        sha1: true,
        ..CopyOptions::default()
    };
    let record = writer
        .copy(
            &File::open(&src).unwrap(),
            &meta(1, "/big", 1),
            &opts,
            &no_cancel(),
        )
        .unwrap();
    assert_eq!(
        record.md5.map(|d| hex(&d)),
        Some(tool_digest("md5sum", &src))
    );
    assert_eq!(
        record.sha1.map(|d| hex(&d)),
        Some(tool_digest("sha1sum", &src))
    );
    let copy = a.volume("VOL001").join(format!("{:012}", record.seq));
    assert!(
        fs::read(&copy).unwrap() == content,
        "copy {copy:?} differs from the source"
    );
}

#[test]
fn sequence_numbers_increase_and_survive_a_new_writer() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let src = a.source("f", b"hello");
    let mut seqs = Vec::new();
    {
        let mut writer = folder.writer("VOL001").unwrap();
        for ino in 1..=3 {
            let r = writer
                .copy(
                    &File::open(&src).unwrap(),
                    &meta(ino, "/f", 1),
                    &CopyOptions::default(),
                    &no_cancel(),
                )
                .unwrap();
            seqs.push(r.seq);
        }
    }
    // A complete copy whose record was lost (crash between rename and append) keeps its
    // number: the next copy must not overwrite it.
    fs::write(a.volume("VOL001").join(format!("{:012}", 10)), b"orphan").unwrap();
    let mut writer = folder.writer("VOL001").unwrap();
    let r = writer
        .copy(
            &File::open(&src).unwrap(),
            &meta(4, "/f", 1),
            &CopyOptions::default(),
            &no_cancel(),
        )
        .unwrap();
    seqs.push(r.seq);
    assert_eq!(seqs, vec![1, 2, 3, 11], "sequence numbers of four copies");
    assert_eq!(
        fs::read(a.volume("VOL001").join(format!("{:012}", 10))).unwrap(),
        b"orphan"
    );
}

#[test]
fn second_writer_of_a_volume_is_refused() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let _first = folder.writer("VOL001").unwrap();
    let second = folder.writer("VOL001");
    assert!(
        matches!(&second, Err(ArchiveError::VolumeBusy { volume, .. }) if volume == "VOL001"),
        "second writer: {:?}",
        second.err()
    );
}

#[test]
fn scan_lists_directories_with_their_free_space_and_skips_the_rest() {
    let a = Archive::new(&["B2", "A1"]);
    fs::write(a.root().join("not-a-volume"), b"x").unwrap();
    fs::create_dir(a.root().join(".hidden")).unwrap();
    let folder = a.folder(0);
    let volumes = folder.scan().unwrap();
    let labels: Vec<&str> = volumes.iter().map(|v| v.label.as_str()).collect();
    assert_eq!(labels, ["A1", "B2"]);
    let st = nix::sys::statvfs::statvfs(&a.root()).unwrap();
    let avail = st.blocks_available() * st.fragment_size();
    for v in &volumes {
        // Same file system: within 64 MiB of what statvfs said a moment ago (other writers).
        assert!(
            v.free.abs_diff(avail) < 64 << 20,
            "{} free {} vs statvfs {avail}",
            v.label,
            v.free
        );
        assert!(v.takes_copies, "{} with no reserve", v.label);
    }
}

#[test]
fn volume_at_or_below_its_reserve_takes_no_copies() {
    let a = Archive::new(&["VOL001"]);
    let free = a.folder(0).info("VOL001").unwrap().free;
    // A reserve far above what the disk has, whatever others write meanwhile.
    let folder = a.folder(free.saturating_mul(2).max(1 << 40));
    let info = folder.info("VOL001").unwrap();
    assert!(
        !info.takes_copies,
        "free {} reserve {}",
        info.free,
        folder.reserve()
    );
    let src = a.source("f", b"data");
    let mut writer = folder.writer("VOL001").unwrap();
    let err = writer
        .copy(
            &File::open(&src).unwrap(),
            &meta(1, "/f", 1),
            &CopyOptions::default(),
            &no_cancel(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::BelowReserve { volume, .. } if volume == "VOL001"),
        "copy below reserve: {err}"
    );
    assert_eq!(names(&a.volume("VOL001")), [".lock", MANIFEST_NAME]);
}

#[test]
fn full_volume_gives_volume_full_and_leaves_no_partial_and_an_intact_manifest() {
    let a = Archive::new(&["TAPE01"]);
    let _tmpfs = Tmpfs::mount(&a.volume("TAPE01"), "1m");
    let folder = a.folder(0);
    let mut writer = folder.writer("TAPE01").unwrap();
    let small = a.source("small", &random_bytes(100 << 10, 1));
    let big = a.source("big", &random_bytes(2 << 20, 2));
    let first = writer
        .copy(
            &File::open(&small).unwrap(),
            &meta(1, "/small", 1),
            &CopyOptions::default(),
            &no_cancel(),
        )
        .unwrap();
    for opts in [
        CopyOptions::default(),
        CopyOptions {
            md5: true,
            sha1: true,
            block_size: SMALL_BLOCK,
        },
    ] {
        let err = writer
            .copy(
                &File::open(&big).unwrap(),
                &meta(2, "/big", 1),
                &opts,
                &no_cancel(),
            )
            .unwrap_err();
        assert!(
            matches!(&err, ArchiveError::VolumeFull { volume, .. } if volume == "TAPE01"),
            "copy of 2 MiB to a 1 MiB volume ({opts:?}): {err}"
        );
        let left = names(&a.volume("TAPE01"));
        assert!(
            !left.iter().any(|n| n.ends_with(".partial")),
            "files left after ENOSPC: {left:?}"
        );
    }
    let rebuilt = rebuild(&folder).unwrap();
    assert_eq!(rebuilt.live.len(), 1, "{rebuilt:?}");
    assert_eq!(rebuilt.live[0].record, first);
    assert!(rebuilt.torn.is_empty(), "{rebuilt:?}");
    // The space came back: a further small copy fits.
    writer
        .copy(
            &File::open(&small).unwrap(),
            &meta(3, "/small2", 1),
            &CopyOptions::default(),
            &no_cancel(),
        )
        .unwrap();
}

#[test]
fn cancel_mid_copy_leaves_no_partial_file_and_no_record() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let fifo = a.dir.path().join("src").join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let cancel = AtomicBool::new(false);
    let vol = a.volume("VOL001");
    let mut writer = folder.writer("VOL001").unwrap();
    let opts = CopyOptions {
        block_size: SMALL_BLOCK,
        md5: true,
        sha1: true,
    };
    let err = std::thread::scope(|s| {
        let feeder = s.spawn(|| {
            let mut w = fs::OpenOptions::new()
                .write(true)
                .custom_flags(0)
                .open(&fifo)
                .unwrap();
            w.write_all(&random_bytes(SMALL_BLOCK, 1)).unwrap();
            // Wait until the first block is in the partial copy: the copy is under way.
            let partial = vol.join(format!("{:012}.partial", 1));
            let deadline = Instant::now() + Duration::from_secs(30);
            while fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) < SMALL_BLOCK as u64 {
                assert!(
                    Instant::now() < deadline,
                    "first block never reached {partial:?}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            cancel.store(true, Ordering::Relaxed);
            // More data follows; the copy must stop at the next block anyway.
            let _ = w.write_all(&random_bytes(4 * SMALL_BLOCK, 2));
        });
        let source = File::open(&fifo).unwrap();
        let result = writer.copy(&source, &meta(1, "/fifo", 1), &opts, &cancel);
        drop(source);
        feeder.join().unwrap();
        result
    });
    let err = match err {
        Err(e) => e,
        Ok(r) => panic!("a cancelled copy completed: {r:?}"),
    };
    assert!(
        matches!(&err, ArchiveError::Cancelled { volume, seq: 1 } if volume == "VOL001"),
        "cancelled copy: {err}"
    );
    assert_eq!(
        names(&vol),
        [".lock", MANIFEST_NAME],
        "files left on the volume"
    );
    let rebuilt = rebuild(&folder).unwrap();
    assert_eq!(
        rebuilt.copies, 0,
        "records after a cancelled copy: {rebuilt:?}"
    );
}

#[test]
fn leftover_partial_and_torn_manifest_tail_are_cleaned_at_the_sweep() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let src = a.source("f", b"content");
    let first = copy_plain(&folder, "VOL001", &src, &meta(1, "/f", 1));
    // A crash mid-copy and mid-append.
    let vol = a.volume("VOL001");
    fs::write(vol.join("000000000002.partial"), b"half a cop").unwrap();
    let manifest = vol.join(MANIFEST_NAME);
    let intact = fs::read(&manifest).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&manifest)
        .unwrap()
        .write_all(b"copy seq=2 ino=2 size=10 mo")
        .unwrap();

    // Readers skip the torn line and say so.
    let before = rebuild(&folder).unwrap();
    assert_eq!(before.live.len(), 1, "{before:?}");
    assert_eq!(before.torn.len(), 1, "torn tails reported: {before:?}");
    assert_eq!(before.torn[0].line, 3);
    assert_eq!(before.torn[0].offset, intact.len() as u64);

    let report = folder.sweep().unwrap();
    assert_eq!(report.partials_removed, [vol.join("000000000002.partial")]);
    assert_eq!(report.torn_manifests, std::slice::from_ref(&manifest));
    assert_eq!(
        fs::read(&manifest).unwrap(),
        intact,
        "manifest after the sweep"
    );
    assert_eq!(names(&vol), [".lock", "000000000001", MANIFEST_NAME]);

    // Appends continue on a clean line.
    let second = copy_plain(&folder, "VOL001", &src, &meta(2, "/g", 1));
    let after = rebuild(&folder).unwrap();
    let live: Vec<&CopyRecord> = after.live.iter().map(|c| &c.record).collect();
    assert_eq!(live, [&first, &second]);
    assert!(after.torn.is_empty(), "{after:?}");
}

#[test]
fn rebuild_returns_the_latest_live_copy_of_each_inode() {
    let a = Archive::new(&["A", "B"]);
    let folder = a.folder(0);
    let src = a.source("f", b"v1");
    let copy = |w: &mut valuestor::archive::VolumeWriter, ino, ctime| {
        w.copy(
            &File::open(&src).unwrap(),
            &meta(ino, &format!("/file{ino}"), ctime),
            &CopyOptions::default(),
            &no_cancel(),
        )
        .unwrap()
    };
    let mut va = folder.writer("A").unwrap();
    let mut vb = folder.writer("B").unwrap();
    // Inode 1: changed after its first copy; the new copy on B supersedes the one on A.
    let one_old = copy(&mut va, 1, 10);
    let one_new = copy(&mut vb, 1, 20);
    va.mark(MarkKind::Superseded, one_old.seq, 1).unwrap();
    // Inode 2: archived, then deleted.
    let two = copy(&mut va, 2, 10);
    va.mark(MarkKind::Deleted, two.seq, 2).unwrap();
    // Inode 3: two copies of the same version; the later one is marked superseded (a
    // clean-up decision), so the earlier one is live.
    let three_kept = copy(&mut vb, 3, 30);
    let three_dropped = copy(&mut vb, 3, 30);
    vb.mark(MarkKind::Superseded, three_dropped.seq, 3).unwrap();
    // Inode 4: two copies of the same version on two volumes, none marked: the later.
    let _four_first = copy(&mut va, 4, 40);
    let four_second = copy(&mut vb, 4, 40);

    let rebuilt = rebuild(&folder).unwrap();
    let got: Vec<(u64, &str, u64)> = rebuilt
        .live
        .iter()
        .map(|c| (c.record.meta.ino, c.volume.as_str(), c.record.seq))
        .collect();
    assert_eq!(
        got,
        [
            (1, "B", one_new.seq),
            (3, "B", three_kept.seq),
            (4, "B", four_second.seq)
        ],
        "live copies by (inode, volume, seq)"
    );
    assert_eq!(rebuilt.live[0].record, one_new);
    assert_eq!(rebuilt.live[1].record, three_kept);
    assert_eq!((rebuilt.copies, rebuilt.marks), (7, 3));
}

#[test]
fn corrupt_middle_line_is_an_error_naming_the_line() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let src = a.source("f", b"x");
    {
        let mut w = folder.writer("VOL001").unwrap();
        for ino in 1..=3 {
            w.copy(
                &File::open(&src).unwrap(),
                &meta(ino, "/f", 1),
                &CopyOptions::default(),
                &no_cancel(),
            )
            .unwrap();
        }
    }
    let manifest = a.volume("VOL001").join(MANIFEST_NAME);
    let text = fs::read_to_string(&manifest).unwrap();
    // Line 3 is the second record (line 1 is the header); change its size.
    let lines: Vec<&str> = text.lines().collect();
    let bad = lines[2].replacen("size=1 ", "size=9 ", 1);
    assert_ne!(bad, lines[2]);
    let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    changed[2] = bad;
    fs::write(&manifest, changed.join("\n") + "\n").unwrap();

    let err = rebuild(&folder).unwrap_err();
    match &err {
        ArchiveError::ManifestCorrupt { path, line, .. } => {
            assert_eq!((path, *line), (&manifest, 3), "{err}");
        }
        other => panic!("corrupt line 3 gave {other}"),
    }
    assert!(err.to_string().contains("line 3"), "{err}");
    // A writer does not append after a corrupt record either.
    assert!(matches!(
        folder.writer("VOL001"),
        Err(ArchiveError::ManifestCorrupt { line: 3, .. })
    ));
}

#[test]
fn removed_volume_directory_gives_a_volume_missing_error() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let src = a.source("f", b"data");
    let mut writer = folder.writer("VOL001").unwrap();
    let record = writer
        .copy(
            &File::open(&src).unwrap(),
            &meta(1, "/f", 1),
            &CopyOptions::default(),
            &no_cancel(),
        )
        .unwrap();
    fs::remove_dir_all(a.volume("VOL001")).unwrap();

    let is_missing = |r: &ArchiveError| matches!(r, ArchiveError::VolumeMissing { volume, .. } if volume == "VOL001");
    let err = writer
        .copy(
            &File::open(&src).unwrap(),
            &meta(2, "/f", 1),
            &CopyOptions::default(),
            &no_cancel(),
        )
        .unwrap_err();
    assert!(is_missing(&err), "copy to a removed volume: {err}");
    assert!(err.to_string().contains("VOL001"), "{err}");
    let err = folder.open_copy("VOL001", record.seq).err().unwrap();
    assert!(is_missing(&err), "reading from a removed volume: {err}");
    let err = folder.info("VOL001").unwrap_err();
    assert!(is_missing(&err), "measuring a removed volume: {err}");
    let err = folder.writer("VOL001").err().unwrap();
    assert!(is_missing(&err), "opening a removed volume: {err}");
    assert!(folder.scan().unwrap().is_empty());

    // A missing copy on a present volume is its own error.
    fs::create_dir(a.volume("VOL001")).unwrap();
    let err = folder.open_copy("VOL001", 99).err().unwrap();
    assert!(
        matches!(err, ArchiveError::CopyMissing { seq: 99, .. }),
        "missing copy: {err}"
    );
}

#[test]
fn copy_range_to_fills_a_recall_target_on_the_same_and_on_another_file_system() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let content = random_bytes(3 * SMALL_BLOCK + 1234, 5);
    let src = a.source("f", &content);
    let record = copy_plain(&folder, "VOL001", &src, &meta(1, "/f", 1));
    let reader = folder.open_copy("VOL001", record.seq).unwrap();
    // The same disk (the kernel copies) and a tmpfs (another file system: through a buffer).
    let other_fs = tempfile::tempdir_in("/dev/shm").unwrap();
    for dir in [a.dir.path().to_owned(), other_fs.path().to_owned()] {
        let target_path = dir.join("recalled");
        let target = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&target_path)
            .unwrap();
        // Out of order, as concurrent readers would ask for blocks, with a range past the end.
        let range = SMALL_BLOCK as u64;
        for block in [2u64, 0, 3, 1] {
            let n = reader.copy_range_to(block * range, range, &target).unwrap();
            let expected = (content.len() as u64 - block * range).min(range);
            assert_eq!(n, expected, "bytes of block {block} into {target_path:?}");
        }
        assert_eq!(
            reader
                .copy_range_to(content.len() as u64, range, &target)
                .unwrap(),
            0
        );
        assert!(
            fs::read(&target_path).unwrap() == content,
            "recalled file {target_path:?} differs from the source"
        );
    }
    // A target that cannot be written is the target's error, not the volume's.
    let read_only = File::open(&src).unwrap();
    let err = reader.copy_range_to(0, 10, &read_only).unwrap_err();
    assert!(
        matches!(&err, ArchiveError::Target { volume, seq, .. } if volume == "VOL001" && *seq == record.seq),
        "write to a read-only target: {err}"
    );
}

#[test]
fn copy_from_another_file_system_goes_through_buffers_and_is_exact() {
    // A source on tmpfs and a volume on the disk: the kernel cannot copy between them
    // (EXDEV), so the threads and buffers carry the data, here without digests.
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let other_fs = tempfile::tempdir_in("/dev/shm").unwrap();
    let content = random_bytes(5 * SMALL_BLOCK + 99, 9);
    let src = other_fs.path().join("f");
    fs::write(&src, &content).unwrap();
    let opts = CopyOptions {
        block_size: SMALL_BLOCK,
        ..CopyOptions::default()
    };
    let record = folder
        .writer("VOL001")
        .unwrap()
        .copy(
            &File::open(&src).unwrap(),
            &meta(1, "/f", 1),
            &opts,
            &no_cancel(),
        )
        .unwrap();
    assert_eq!(
        (record.size, record.md5, record.sha1),
        (content.len() as u64, None, None)
    );
    let copy = a.volume("VOL001").join(format!("{:012}", record.seq));
    assert!(
        fs::read(&copy).unwrap() == content,
        "copy {copy:?} differs from its source"
    );
}

#[test]
fn block_sums_sidecar_is_written_with_digests_and_not_without() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let vol = a.volume("VOL001");
    let src = a.source("f", &random_bytes(2 * SUM_BLOCK as usize + 100, 3));
    let digested = copy_digested(&folder, "VOL001", &src, &meta(1, "/f", 1), SMALL_BLOCK);
    let plain = copy_plain(&folder, "VOL001", &src, &meta(2, "/g", 1));
    assert_eq!(
        names(&vol),
        [
            ".lock".to_owned(),
            format!("{:012}", digested.seq),
            format!("{:012}.sums", digested.seq),
            format!("{:012}", plain.seq),
            MANIFEST_NAME.to_owned(),
        ],
        "files after a copy with digests (seq {}) and one without (seq {})",
        digested.seq,
        plain.seq
    );
    let without = folder.open_copy("VOL001", plain.seq).unwrap().block_sums();
    assert!(
        matches!(without, Ok(None)),
        "block sums of a copy without digests: {without:?}"
    );
}

#[test]
fn block_sums_round_trip_and_every_block_of_the_copy_checks() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let sum = SUM_BLOCK as usize;
    // Copy blocks smaller and larger than the sum block: the sums must not depend on them.
    for (i, (size, block)) in [
        (0, SMALL_BLOCK),
        (1, SMALL_BLOCK),
        (sum, SMALL_BLOCK),
        (3 * sum + 17, SMALL_BLOCK),
        (3 * sum + 17, 4 << 20),
        (2 * sum - 1, 5000),
    ]
    .into_iter()
    .enumerate()
    {
        let content = random_bytes(size, 20 + i as u64);
        let src = a.source(&format!("f{i}"), &content);
        let record = copy_digested(&folder, "VOL001", &src, &meta(1, "/f", 1), block);
        let sums = folder
            .open_copy("VOL001", record.seq)
            .unwrap()
            .block_sums()
            .unwrap()
            .unwrap_or_else(|| panic!("no block sums for f{i}"));
        assert_eq!(sums.block_size, SUM_BLOCK, "f{i}");
        assert_eq!(sums.size, size as u64, "f{i}");
        assert_eq!(
            sums.crcs.len(),
            size.div_ceil(sum),
            "CRCs for {size} bytes copied in blocks of {block}"
        );
        for (k, chunk) in content.chunks(sum).enumerate() {
            let range = sums.range(k).unwrap();
            assert_eq!(range.start, (k * sum) as u64, "f{i} block {k}");
            let back = read_range(&folder, "VOL001", record.seq, &range);
            assert!(back == chunk, "f{i} block {k} read back differs");
            assert!(
                sums.check(k, &back),
                "f{i} ({size} bytes, copy blocks of {block}): block {k} fails its check"
            );
        }
        assert!(sums.range(sums.crcs.len()).is_none(), "f{i}");
    }
}

#[test]
fn a_flipped_byte_in_a_copy_fails_exactly_that_blocks_check() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let src = a.source("f", &random_bytes(3 * SUM_BLOCK as usize + 999, 4));
    let record = copy_digested(&folder, "VOL001", &src, &meta(1, "/f", 1), SMALL_BLOCK);
    let copy = a.volume("VOL001").join(format!("{:012}", record.seq));
    let sums = folder
        .open_copy("VOL001", record.seq)
        .unwrap()
        .block_sums()
        .unwrap()
        .unwrap();
    for bad in 0..sums.crcs.len() {
        // One bit of the middle byte of block `bad`, flipped on the volume, then back.
        let range = sums.range(bad).unwrap();
        let at = range.start + (range.end - range.start) / 2;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&copy)
            .unwrap();
        let mut byte = [0u8];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut byte, at).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &[byte[0] ^ 0x10], at).unwrap();
        let verdicts: Vec<bool> = (0..sums.crcs.len())
            .map(|k| {
                let range = sums.range(k).unwrap();
                sums.check(k, &read_range(&folder, "VOL001", record.seq, &range))
            })
            .collect();
        let want: Vec<bool> = (0..sums.crcs.len()).map(|k| k != bad).collect();
        assert_eq!(
            verdicts, want,
            "checks with byte {at} (block {bad}) flipped"
        );
        std::os::unix::fs::FileExt::write_all_at(&file, &byte, at).unwrap();
    }
}

#[test]
fn a_corrupt_block_sums_sidecar_is_an_error_naming_the_copy() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let src = a.source("f", &random_bytes(2 * SUM_BLOCK as usize + 5, 6));
    let record = copy_digested(&folder, "VOL001", &src, &meta(1, "/f", 1), SMALL_BLOCK);
    let sidecar = a.volume("VOL001").join(format!("{:012}.sums", record.seq));
    let good = fs::read(&sidecar).unwrap();
    let edited = |at: usize, bytes: &[u8]| {
        let mut v = good.clone();
        v[at..at + bytes.len()].copy_from_slice(bytes);
        v
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "shorter than"),
        ("truncated", good[..good.len() - 1].to_vec(), "bytes long"),
        ("a flipped CRC", edited(40, &[good[40] ^ 1]), "CRC mismatch"),
        ("bad magic", edited(0, b"NOTSUMS\n"), "magic"),
        ("version 9", edited(8, &9u32.to_le_bytes()), "version 9"),
        // A count that would allocate 64 GiB: refused from the header alone.
        (
            "an absurd count",
            edited(32, &(1u64 << 34).to_le_bytes()),
            "block sums for",
        ),
        (
            "another copy's size",
            edited(24, &(1u64 << 40).to_le_bytes()),
            "but the copy has",
        ),
        (
            "block size 0",
            edited(16, &0u64.to_le_bytes()),
            "block size 0",
        ),
        (
            "trailing bytes",
            [good.as_slice(), b"x"].concat(),
            "bytes long",
        ),
    ];
    for (what, bytes, reason_part) in cases {
        fs::write(&sidecar, &bytes).unwrap();
        let got = folder.open_copy("VOL001", record.seq).unwrap().block_sums();
        match &got {
            Err(ArchiveError::SumsCorrupt {
                volume,
                seq,
                path,
                reason,
            }) => {
                assert_eq!(
                    (volume.as_str(), *seq, path),
                    ("VOL001", record.seq, &sidecar),
                    "sidecar with {what}"
                );
                assert!(
                    reason.contains(reason_part),
                    "sidecar with {what}: {reason_part:?} not in {reason:?}"
                );
                let text = got.as_ref().unwrap_err().to_string();
                assert!(
                    text.contains("VOL001") && text.contains(&format!("{:012}.sums", record.seq)),
                    "message for {what}: {text}"
                );
            }
            other => panic!("sidecar with {what} gave {other:?}"),
        }
    }
    fs::write(&sidecar, &good).unwrap();
    let reader = folder.open_copy("VOL001", record.seq).unwrap();
    assert!(reader.block_sums().unwrap().is_some(), "restored sidecar");
}

#[test]
fn sweep_removes_interrupted_and_orphaned_sidecars_and_keeps_live_ones() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let vol = a.volume("VOL001");
    let src = a.source("f", b"content");
    let kept = copy_digested(&folder, "VOL001", &src, &meta(1, "/f", 1), SMALL_BLOCK);
    assert_eq!(kept.seq, 1);
    let kept_sums = fs::read(vol.join("000000000001.sums")).unwrap();
    // A crash while writing a sidecar; after renaming it but before renaming its copy; and
    // a sidecar whose copy was removed without it.
    fs::write(vol.join("000000000002.sums.partial"), b"half").unwrap();
    fs::write(vol.join("000000000003.partial"), b"half a copy").unwrap();
    fs::write(vol.join("000000000003.sums"), b"sums").unwrap();
    fs::write(vol.join("000000000004.sums"), b"sums").unwrap();

    let report = folder.sweep().unwrap();
    let mut removed = report.sums_removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        [
            vol.join("000000000002.sums.partial"),
            vol.join("000000000003.sums"),
            vol.join("000000000004.sums"),
        ],
        "sidecars removed by the sweep"
    );
    assert_eq!(report.partials_removed, [vol.join("000000000003.partial")]);
    assert_eq!(
        names(&vol),
        [".lock", "000000000001", "000000000001.sums", MANIFEST_NAME]
    );
    assert!(
        fs::read(vol.join("000000000001.sums")).unwrap() == kept_sums,
        "the live copy's sidecar changed"
    );
}

#[test]
fn a_sidecar_that_does_not_fit_leaves_neither_copy_nor_sidecar() {
    // 1 MiB of tmpfs is 256 pages; the manifest's header takes one. A copy of exactly the
    // other 255 fits, then its sidecar does not.
    let a = Archive::new(&["TAPE01"]);
    let _tmpfs = Tmpfs::mount(&a.volume("TAPE01"), "1m");
    let folder = a.folder(0);
    let mut writer = folder.writer("TAPE01").unwrap();
    let used = fs::read_dir(a.volume("TAPE01"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len().div_ceil(4096))
        .sum::<u64>();
    let fits = (256 - used) as usize * 4096;
    let src = a.source("f", &random_bytes(fits, 8));
    let opts = CopyOptions {
        block_size: SMALL_BLOCK,
        md5: true,
        sha1: true,
    };
    let err = writer
        .copy(
            &File::open(&src).unwrap(),
            &meta(1, "/f", 1),
            &opts,
            &no_cancel(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::VolumeFull { volume, seq: 1, .. } if volume == "TAPE01"),
        "copy of {fits} bytes whose sidecar does not fit: {err}"
    );
    assert_eq!(
        names(&a.volume("TAPE01")),
        [".lock", MANIFEST_NAME],
        "files left after the sidecar did not fit"
    );
    assert_eq!(rebuild(&folder).unwrap().copies, 0);
}

#[test]
fn remove_copy_files_takes_the_sidecar_with_the_copy() {
    let a = Archive::new(&["VOL001"]);
    let folder = a.folder(0);
    let vol = a.volume("VOL001");
    let src = a.source("f", b"content");
    let digested = copy_digested(&folder, "VOL001", &src, &meta(1, "/f", 1), SMALL_BLOCK);
    let plain = copy_plain(&folder, "VOL001", &src, &meta(2, "/g", 1));
    remove_copy_files(&vol, digested.seq).unwrap();
    // A copy without a sidecar, and one already gone: both fine.
    remove_copy_files(&vol, plain.seq).unwrap();
    remove_copy_files(&vol, digested.seq).unwrap();
    assert_eq!(names(&vol), [".lock", MANIFEST_NAME], "files left");
}
