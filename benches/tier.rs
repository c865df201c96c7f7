//! Archive tier benchmark, end to end through a real `vfsserver` mount (catalog in a private
//! MariaDB): migration and recall against `cp` of the same data on the same disk, the time
//! to the first byte of a released large file against the copy of one block, resident reads
//! and writes with and without a tier, and 1,000 recalls by 16 threads over 4 volumes (volume
//! switches against the arrival order). Rounds rotate the order of what they compare;
//! medians are reported with min-max, because this shared 2-core machine's disk and
//! scheduler vary a lot from minute to minute.
//!
//! Run with `cargo bench --bench tier` as root (tmpfs volumes for part 5, page cache drops).
//! Arguments pick parts: `migrate`, `recall`, `ttfb`, `resident`, `spread` (default all).
//! Environment: `VS_BENCH_DIR` (the disk for cache, volumes and cp; default the system's
//! temporary directory; a tmpfs such as /dev/shm is fine), `VS_BENCH_ROUNDS` (5),
//! `VS_BENCH_FILES` (8) and `VS_BENCH_FILE_MB` (64) for migration and recall,
//! `VS_BENCH_BIG_MB` (1024) for the time to first byte, `VS_BENCH_SEQ_MB` (256) for resident
//! I/O, `VS_BENCH_RECALLS` (1000), `VS_BENCH_RECALL_KB` (64), `VS_BENCH_THREADS` (16) and
//! `VS_BENCH_DRIVES` (`1,2`) for part 5.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use support::server::{Server, ServerDir};
use support::tier::{Layout, TierBed, RELEASED, RESIDENT};
use support::MariaDb;

const MIB: u64 = 1 << 20;
/// Size of each write and read call through the mount.
const CHUNK: usize = 1 << 20;
/// Longest any wait for the tier (a migration, an eviction, a recall) may take.
const PATIENCE: Duration = Duration::from_secs(300);
/// How often the catalog is polled while timing the tier.
const POLL: Duration = Duration::from_millis(10);

/// Copies as soon as a file is closed (no batching, migration scan every 200 ms), a 1 MiB
/// reserve per volume, an eviction check every second, no pre-read.
const BASE: &str = "<WriteToTapeWaitFile>0</WriteToTapeWaitFile>\
    <WriteToTapeWaitSize>0</WriteToTapeWaitSize>\
    <WriteToTapeWaitTime>0</WriteToTapeWaitTime>\
    <TapeReservedMinFreeSize>1M</TapeReservedMinFreeSize>\
    <CachePurgeWaitTime>1</CachePurgeWaitTime>\
    <CacheFileSizeRead>0</CacheFileSizeRead>\
    <CacheFreeMinPercent>0</CacheFreeMinPercent>\
    <CacheFreeMaxPercent>0</CacheFreeMaxPercent>";
/// Releases every archived, closed file (the lower watermark is above any cache).
const RELEASE_ALL: &str = "<CacheFreeMinSize>100000G</CacheFreeMinSize>\
    <CacheFreeMaxSize>100000G</CacheFreeMaxSize>\
    <WriteCacheFreeSize>0</WriteCacheFreeSize>";
/// Never evicts.
const KEEP_ALL: &str = "<CacheFreeMinSize>0</CacheFreeMinSize>\
    <CacheFreeMaxSize>0</CacheFreeMaxSize>\
    <WriteCacheFreeSize>0</WriteCacheFreeSize>";
const NO_DIGESTS: &str =
    "<DigestMD5Enable>false</DigestMD5Enable><DigestSHA1Enable>false</DigestSHA1Enable>";
const DIGESTS: &str =
    "<DigestMD5Enable>true</DigestMD5Enable><DigestSHA1Enable>true</DigestSHA1Enable>";

/// What the run is sized by.
struct Setup {
    rounds: usize,
    files: usize,
    file_mb: u64,
    big_mb: u64,
    seq_mb: u64,
    recalls: usize,
    recall_kb: u64,
    threads: usize,
    drives: Vec<usize>,
    /// Directory on the benchmark's disk for cp targets and block files.
    scratch: PathBuf,
    can_drop: bool,
}

fn main() {
    let dir = std::env::var_os("VS_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    // Servers, caches and volumes go to the system's temporary directory (tests/support):
    // pointed at the benchmark's disk so everything is on it.
    std::env::set_var("TMPDIR", &dir);
    let scratch = tempfile::tempdir_in(&dir).expect("a scratch directory in VS_BENCH_DIR");
    let setup = Setup {
        rounds: env_num("VS_BENCH_ROUNDS", 5) as usize,
        files: env_num("VS_BENCH_FILES", 8) as usize,
        file_mb: env_num("VS_BENCH_FILE_MB", 64),
        big_mb: env_num("VS_BENCH_BIG_MB", 1024),
        seq_mb: env_num("VS_BENCH_SEQ_MB", 256),
        recalls: env_num("VS_BENCH_RECALLS", 1000) as usize,
        recall_kb: env_num("VS_BENCH_RECALL_KB", 64),
        threads: env_num("VS_BENCH_THREADS", 16) as usize,
        drives: std::env::var("VS_BENCH_DRIVES")
            .unwrap_or_else(|_| "1,2".into())
            .split(',')
            .filter_map(|d| d.trim().parse().ok())
            .collect(),
        scratch: scratch.path().to_path_buf(),
        can_drop: nix::unistd::geteuid().is_root(),
    };
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);

    let fs_type = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(&dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let tmpfs = fs_type == "tmpfs";
    let env: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("VS_BENCH_"))
        .map(|(k, v)| format!("{k}={v} "))
        .collect();
    println!(
        "command: {}cargo bench --bench tier{}{}",
        env.concat(),
        if parts.is_empty() { "" } else { " -- " },
        parts.join(" ")
    );
    println!(
        "archive tier benchmark through a vfsserver mount: cache, volumes and cp targets in {} \
         ({fs_type}{}), {} cores, load average {}, {} rounds, order rotated each round",
        dir.display(),
        if tmpfs { ": memory, not a disk" } else { "" },
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        setup.rounds
    );
    println!(
        "page cache: {}",
        match (setup.can_drop, tmpfs) {
            (false, _) => "NOT dropped (not root): reads may come from memory",
            (true, false) => "dropped before each measurement (sync; echo 3 > drop_caches)",
            (true, true) =>
                "dropped before each measurement (the mount's cached pages go; tmpfs data is \
                 its storage and stays)",
        }
    );
    if wants("migrate") {
        migration(&setup);
    }
    if wants("recall") {
        recall(&setup);
    }
    if wants("ttfb") {
        first_byte(&setup);
    }
    if wants("resident") {
        resident(&setup);
    }
    if wants("spread") {
        spread_recalls(&setup);
    }
}

// ---------------------------------------------------------------------------------------
// 1. Migration against cp

/// N files written with no volume yet (nothing can migrate), then a volume is created and the
/// time until every file is `Archived` in the catalog is taken; against `cp` of the same
/// cache data files to a directory on the same disk, then `sync` of the copies.
fn migration(setup: &Setup) {
    let (files, mb) = (setup.files, setup.file_mb);
    println!();
    println!(
        "1. migration: {files} files x {mb} MiB, written first with no volume, then a volume \
         directory created; timed until all are Archived in the catalog (polled every 10 ms)"
    );
    let plain = format!("{BASE}{KEEP_ALL}");
    let mut beds = [
        bed(&[], &format!("{plain}{NO_DIGESTS}")),
        bed(&[], &format!("{plain}{DIGESTS}")),
    ];
    let cp_dir = setup.scratch.join("cp-volume");
    let total = (files as u64 * mb * MIB) as f64;
    let names = [
        "cp to a volume dir, then sync",
        "tier, no digests (from volume created)",
        "tier, no digests (from first copy)",
        "tier, MD5+SHA1 (from volume created)",
        "tier, MD5+SHA1 (from first copy)",
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    // CPU seconds per GB: cp + sync (child processes), the server without and with digests.
    let mut cpu: [Vec<f64>; 3] = Default::default();
    let gb = total / 1e9;
    for round in 0..setup.rounds {
        eprintln!("migration round {} of {}", round + 1, setup.rounds);
        let label = format!("V{round:02}");
        let written: Vec<Vec<u64>> = beds
            .iter()
            .map(|b| {
                let inos: Vec<u64> = (0..files)
                    .map(|i| write_file(&b.path(&format!("r{round}-f{i}")), mb * MIB, i as u64).0)
                    .collect();
                await_count(b, &inos, RESIDENT, "files saved, not migrated (no volume)");
                inos
            })
            .collect();
        for step in 0..3 {
            match (round + step) % 3 {
                0 => {
                    fs::create_dir_all(&cp_dir).unwrap();
                    let sources: Vec<PathBuf> =
                        written[0].iter().map(|&i| beds[0].cache_file(i)).collect();
                    drop_caches(setup.can_drop);
                    let (started, cpu_before) = (Instant::now(), children_cpu());
                    cp_and_sync(&sources, &cp_dir);
                    rates[0].push(total / started.elapsed().as_secs_f64() / 1e6);
                    cpu[0].push((children_cpu() - cpu_before) / gb);
                    fs::remove_dir_all(&cp_dir).unwrap();
                }
                which => {
                    let b = &beds[which - 1];
                    drop_caches(setup.can_drop);
                    let cpu_before = b.server().cpu_time();
                    let (whole, copying) = time_migration(b, &label, &written[which - 1]);
                    cpu[which].push((b.server().cpu_time() - cpu_before).as_secs_f64() / gb);
                    let row = 1 + 2 * (which - 1);
                    rates[row].push(total / whole.as_secs_f64() / 1e6);
                    rates[row + 1].push(total / copying.as_secs_f64() / 1e6);
                }
            }
        }
        // The next round starts again without a volume: files deleted, server stopped,
        // the volume removed, server started again.
        for (b, inos) in beds.iter_mut().zip(&written) {
            for i in 0..inos.len() {
                fs::remove_file(b.path(&format!("r{round}-f{i}"))).unwrap();
            }
            b.stop();
            fs::remove_dir_all(b.volume(&label)).unwrap();
            b.start_server();
        }
    }
    let rows: Vec<Row> = names
        .iter()
        .zip(rates)
        .map(|(name, values)| Row::new(name, "MB/s", values))
        .collect();
    print_table(&rows, 0, "ratio to cp");
    println!("   targets: no digests >= 0.90x cp, MD5+SHA1 >= 0.70x cp");
    println!(
        "   CPU seconds per GB copied, median: cp + sync {:.2} (the cp and sync processes), \
         tier without digests {:.2}, with MD5+SHA1 {:.2} (the vfsserver process, all its \
         threads, during the measurement)",
        spread(&cpu[0]).1,
        spread(&cpu[1]).1,
        spread(&cpu[2]).1
    );
    let (md5, sha1) = digest_rates();
    println!(
        "   digests in memory on one core of this process, measured now (the ceiling of a \
         copy with both): MD5 {md5:.0} MB/s, SHA1 {sha1:.0} MB/s"
    );
    println!(
        "   (\"from volume created\" includes the wait for the next migration scan, up to 200 \
         ms with WriteToTapeWaitFile 0; \"from first copy\" starts when the first copy file \
         appears on the volume)"
    );
}

/// Creates volume `label`, then waits until all `inos` are archived: (time from the volume
/// created, time from the first copy file seen on it).
fn time_migration(b: &TierBed, label: &str, inos: &[u64]) -> (Duration, Duration) {
    let mut conn = b.db.connect();
    let volume = b.volume(label);
    let started = Instant::now();
    fs::create_dir(&volume).unwrap();
    let mut first = None;
    loop {
        if first.is_none() && has_copy(&volume) {
            first = Some(Instant::now());
        }
        if count_in_state(&mut conn, inos, support::tier::ARCHIVED) == inos.len() {
            let end = Instant::now();
            let first = first.unwrap_or(started);
            return (end - started, end - first);
        }
        assert!(
            started.elapsed() < PATIENCE,
            "files not archived after {PATIENCE:?}: {:?}\n{}",
            b.states(),
            b.output_tail()
        );
        std::thread::sleep(if first.is_none() {
            Duration::from_millis(1)
        } else {
            POLL
        });
    }
}

/// User plus system CPU seconds of the waited-for child processes so far.
fn children_cpu() -> f64 {
    rusage(libc::RUSAGE_CHILDREN)
}

/// User plus system CPU seconds of this process so far (all its threads).
fn own_cpu() -> f64 {
    rusage(libc::RUSAGE_SELF)
}

fn rusage(who: libc::c_int) -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given (zeroed already, so it is initialised
    // whatever it returns); `who` is RUSAGE_SELF or RUSAGE_CHILDREN.
    let usage = unsafe {
        libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// MB/s of MD5 and of SHA1 over 256 MiB in memory, each on one thread.
fn digest_rates() -> (f64, f64) {
    use md5::Digest;
    let data = vec![0x5au8; 4 << 20];
    let rate = |f: &mut dyn FnMut(&[u8])| {
        let started = Instant::now();
        for _ in 0..64 {
            f(&data);
        }
        (64 * data.len()) as f64 / started.elapsed().as_secs_f64() / 1e6
    };
    let mut md5 = md5::Md5::new();
    let mut sha1 = sha1::Sha1::new();
    let m = rate(&mut |b| md5.update(b));
    let s = rate(&mut |b| sha1.update(b));
    std::hint::black_box((md5.finalize(), sha1.finalize()));
    (m, s)
}

/// Whether a copy (`<seq>` or `<seq>.partial`) is in `volume`.
fn has_copy(volume: &Path) -> bool {
    fs::read_dir(volume).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(|c: char| c.is_ascii_digit())
        })
    })
}

// ---------------------------------------------------------------------------------------
// 2. Recall against cp

/// N released files read back through the mount, one reader thread per file, all opened at
/// once; against `cp` of their copies from the volume to a directory on the same disk, then
/// `sync`.
fn recall(setup: &Setup) {
    let (files, mb) = (setup.files, setup.file_mb);
    println!();
    println!(
        "2. recall: {files} released files x {mb} MiB (no digests recorded, CacheFileSizeBlock \
         128M, ArchiveDrives 1) read through the mount by {files} threads at once (one per \
         file, 1 MiB reads to the end), until every byte is read"
    );
    let b = bed(&[("V1", 0)], &format!("{BASE}{RELEASE_ALL}{NO_DIGESTS}"));
    let inos: Vec<u64> = (0..files)
        .map(|i| write_file(&b.path(&format!("f{i}")), mb * MIB, i as u64).0)
        .collect();
    let mut conn = b.db.connect();
    await_released(&b, &mut conn, &inos, 0);
    let copies: Vec<PathBuf> = inos
        .iter()
        .map(|&ino| {
            let (label, seq, _) = b.live_copy(ino).expect("a live copy");
            b.volume(&label).join(format!("{seq:012}"))
        })
        .collect();
    let cp_dir = setup.scratch.join("cp-cache");
    let total = (files as u64 * mb * MIB) as f64;
    let mut rates = vec![Vec::new(), Vec::new()];
    // CPU seconds per GB: cp + sync; the server; the reading threads (this process).
    let mut cpu: [Vec<f64>; 3] = Default::default();
    let gb = total / 1e9;
    let mut recalled = 0;
    for round in 0..setup.rounds {
        eprintln!("recall round {} of {}", round + 1, setup.rounds);
        for step in 0..2 {
            if (round + step) % 2 == 0 {
                fs::create_dir_all(&cp_dir).unwrap();
                drop_caches(setup.can_drop);
                let (started, cpu_before) = (Instant::now(), children_cpu());
                cp_and_sync(&copies, &cp_dir);
                rates[0].push(total / started.elapsed().as_secs_f64() / 1e6);
                cpu[0].push((children_cpu() - cpu_before) / gb);
                fs::remove_dir_all(&cp_dir).unwrap();
            } else {
                await_released(&b, &mut conn, &inos, recalled);
                drop_caches(setup.can_drop);
                let (server_before, self_before) = (b.server().cpu_time(), own_cpu());
                let started = Instant::now();
                let readers: Vec<_> = (0..files)
                    .map(|i| {
                        let path = b.path(&format!("f{i}"));
                        std::thread::spawn(move || read_all(&path))
                    })
                    .collect();
                for reader in readers {
                    assert_eq!(reader.join().unwrap(), mb * MIB, "bytes read back");
                }
                rates[1].push(total / started.elapsed().as_secs_f64() / 1e6);
                cpu[1].push((b.server().cpu_time() - server_before).as_secs_f64() / gb);
                cpu[2].push((own_cpu() - self_before) / gb);
                recalled += files as u64;
            }
        }
    }
    let rows = vec![
        Row::new("cp from the volume, then sync", "MB/s", rates.remove(0)),
        Row::new(
            "tier recall, read through the mount",
            "MB/s",
            rates.remove(0),
        ),
    ];
    print_table(&rows, 0, "ratio to cp");
    println!("   target: recall >= 0.90x cp");
    println!(
        "   CPU seconds per GB, median: cp + sync {:.2}; recall: vfsserver {:.2} (copies back, \
         answers the reads) + the reading threads {:.2} (their system calls, the kernel's FUSE \
         side)",
        spread(&cpu[0]).1,
        spread(&cpu[1]).1,
        spread(&cpu[2]).1
    );
}

// ---------------------------------------------------------------------------------------
// 3. Time to first byte

/// Open + first 4 KiB read of a released large file, for two recall block sizes, against
/// `cp` of a block-sized file on the same disk (without and with `sync`).
fn first_byte(setup: &Setup) {
    let size = setup.big_mb * MIB;
    let blocks = [128 * MIB, 16 * MIB];
    println!();
    println!(
        "3. time to first byte: open + 4 KiB read at offset 0 of a released {} MiB file (no \
         digests recorded), against cp of one block-sized file on the same disk",
        setup.big_mb
    );
    let beds: Vec<TierBed> = blocks
        .iter()
        .map(|block| {
            bed(
                &[("V1", 0)],
                &format!(
                    "{BASE}{RELEASE_ALL}{NO_DIGESTS}<CacheFileSizeBlock>{}M</CacheFileSizeBlock>",
                    block / MIB
                ),
            )
        })
        .collect();
    let mut heads = Vec::new();
    let mut conns = Vec::new();
    let mut inos = Vec::new();
    for b in &beds {
        let (ino, head) = write_file(&b.path("big"), size, 77);
        let mut conn = b.db.connect();
        await_released(b, &mut conn, &[ino], 0);
        heads.push(head);
        conns.push(conn);
        inos.push(ino);
    }
    let block_files: Vec<PathBuf> = blocks
        .iter()
        .map(|&block| {
            let path = setup.scratch.join(format!("block-{}M", block / MIB));
            write_plain(&path, block);
            path
        })
        .collect();
    let cp_dir = setup.scratch.join("cp-block");
    // Per block size: TTFB, cp, cp + sync (ms).
    let mut times: [[Vec<f64>; 3]; 2] = Default::default();
    let mut recalled = [0u64; 2];
    for round in 0..setup.rounds {
        eprintln!("first-byte round {} of {}", round + 1, setup.rounds);
        for step in 0..4 {
            let what = (round + step) % 4;
            let k = what / 2;
            if what % 2 == 0 {
                let b = &beds[k];
                await_released(b, &mut conns[k], &inos[k..k + 1], recalled[k]);
                drop_caches(setup.can_drop);
                let started = Instant::now();
                let file = File::open(b.path("big")).unwrap();
                let mut buf = vec![0u8; 4096];
                file.read_exact_at(&mut buf, 0).unwrap();
                let ms = started.elapsed().as_secs_f64() * 1e3;
                assert!(buf == heads[k], "the first 4 KiB are the file's");
                times[k][0].push(ms);
                drop(file);
                recalled[k] += 1;
            } else {
                fs::create_dir_all(&cp_dir).unwrap();
                drop_caches(setup.can_drop);
                let started = Instant::now();
                cp(std::slice::from_ref(&block_files[k]), &cp_dir);
                let copied = started.elapsed().as_secs_f64() * 1e3;
                sync(&cp_dir.join(block_files[k].file_name().unwrap()));
                let synced = started.elapsed().as_secs_f64() * 1e3;
                times[k][1].push(copied);
                times[k][2].push(synced);
                fs::remove_dir_all(&cp_dir).unwrap();
            }
        }
    }
    let mut rows = Vec::new();
    for (k, block) in blocks.iter().enumerate() {
        let [ttfb, copied, synced] = std::mem::take(&mut times[k]);
        let mb = block / MIB;
        rows.push(Row::new(
            &format!("block {mb}M: TTFB (open + 4 KiB)"),
            "ms",
            ttfb,
        ));
        rows.push(Row::new(
            &format!("block {mb}M: cp of {mb} MiB"),
            "ms",
            copied,
        ));
        rows.push(Row::new(
            &format!("block {mb}M: cp of {mb} MiB + sync"),
            "ms",
            synced,
        ));
    }
    print_table(&rows, usize::MAX, "");
    for (k, block) in blocks.iter().enumerate() {
        let (ttfb, cp) = (rows[3 * k].median(), rows[3 * k + 1].median());
        println!(
            "   block {}M: TTFB - cp(block) = {:+.1} ms (target <= +20 ms: {})",
            block / MIB,
            ttfb - cp,
            if ttfb <= cp + 20.0 { "met" } else { "MISSED" }
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. Resident reads and writes

/// Sequential write (+ fsync) and cold read of a resident file through a mount without an
/// archive and through one with a tier that runs but copies nothing.
fn resident(setup: &Setup) {
    let bytes = setup.seq_mb * MIB;
    println!();
    println!(
        "4. resident I/O: {} MiB written (1 MiB writes, fsync) and read back (1 MiB reads, \
         page cache dropped), through a mount without ArchiveFolder and one with a tier \
         (KEEP_ALL, WriteToTapeFilePattern matching nothing: the tier scans but never copies)",
        setup.seq_mb
    );
    let plain = PlainBed::start();
    let tier = bed(
        &[("V1", 0)],
        &format!(
            "{BASE}{KEEP_ALL}{NO_DIGESTS}<WriteToTapeFilePattern>/never-archived</WriteToTapeFilePattern>"
        ),
    );
    let roots = [plain.dir.mountpoint(), tier.dir.mountpoint()];
    let mut writes = [Vec::new(), Vec::new()];
    let mut reads = [Vec::new(), Vec::new()];
    for round in 0..setup.rounds {
        eprintln!("resident round {} of {}", round + 1, setup.rounds);
        for step in 0..2 {
            let k = (round + step) % 2;
            let path = roots[k].join(format!("seq-{round}"));
            let started = Instant::now();
            write_file(&path, bytes, round as u64);
            writes[k].push(bytes as f64 / started.elapsed().as_secs_f64() / 1e6);
            drop_caches(setup.can_drop);
            let started = Instant::now();
            assert_eq!(read_all(&path), bytes);
            reads[k].push(bytes as f64 / started.elapsed().as_secs_f64() / 1e6);
            fs::remove_file(&path).unwrap();
        }
    }
    let [w0, w1] = writes;
    let [r0, r1] = reads;
    print_table(
        &[
            Row::new("write + fsync, no archive", "MB/s", w0),
            Row::new("write + fsync, with tier", "MB/s", w1),
        ],
        0,
        "ratio",
    );
    print_table(
        &[
            Row::new("read (cold), no archive", "MB/s", r0),
            Row::new("read (cold), with tier", "MB/s", r1),
        ],
        0,
        "ratio",
    );
    println!("   target: with tier >= 0.95x without");
}

/// A `vfsserver` without an archive.
struct PlainBed {
    server: Server,
    dir: ServerDir,
    _db: MariaDb,
}

impl PlainBed {
    fn start() -> PlainBed {
        let db = MariaDb::start();
        let dir = ServerDir::new(&db, "");
        let server = Server::start(&dir, &[], &[]);
        assert!(
            server
                .await_notify("READY=1", Duration::from_secs(60))
                .is_some(),
            "no READY=1 from vfsserver:\n{}",
            server.output()
        );
        PlainBed {
            server,
            dir,
            _db: db,
        }
    }
}

impl Drop for PlainBed {
    fn drop(&mut self) {
        self.server.signal(libc::SIGKILL);
        for _ in 0..self.dir.mount_count() {
            valuestor::fs::lazy_unmount(&self.dir.mountpoint());
        }
    }
}

// ---------------------------------------------------------------------------------------
// 5. Many recalls over four volumes

/// Small released files spread over 4 volumes (small tmpfs volumes that migration fills in
/// turn), opened and read by threads in random order; the tier's volume switches against
/// those the same requests would cause served in arrival order.
fn spread_recalls(setup: &Setup) {
    let (count, kb, threads) = (setup.recalls, setup.recall_kb, setup.threads);
    println!();
    println!(
        "5. {count} recalls of released {kb} KiB files over 4 volumes (tmpfs volumes sized so \
         migration fills them in turn; cache on the benchmark's disk), {threads} threads each \
         opening and reading its share in random order"
    );
    println!(
        "   {:<14} {:>10} {:>9} {:>22} {:>20} {:>10} {:>12}",
        "ArchiveDrives",
        "files",
        "total s",
        "files per volume",
        "switches (tier)",
        "arrival",
        "recalls/s"
    );
    for &drives in &setup.drives {
        spread_once(setup, drives, count, kb, threads);
    }
    println!(
        "   \"arrival\": volume changes if the requests were served in the order their opens \
         were issued (one drive; the first load counts as one, as in the tier's counter)"
    );
}

fn spread_once(setup: &Setup, drives: usize, count: usize, kb: u64, threads: usize) {
    let per_volume = count.div_ceil(4) as u64;
    // Each file takes its size rounded to pages; the manifest about 300 bytes per copy.
    let file_bytes = (kb * 1024).div_ceil(4096) * 4096 + 300;
    let small = MIB + per_volume * file_bytes;
    let sizes = [small, small, small, 2 * small + 4 * MIB];
    let volumes: Vec<(String, u64)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| (format!("V{}", i + 1), s.div_ceil(4096) * 4096))
        .collect();
    let layout: Vec<(&str, u64)> = volumes.iter().map(|(l, s)| (l.as_str(), *s)).collect();
    let b = bed(
        &layout,
        &format!("{BASE}{RELEASE_ALL}{NO_DIGESTS}<ArchiveDrives>{drives}</ArchiveDrives>"),
    );
    let mut conn = b.db.connect();
    fs::create_dir_all(b.path("many")).unwrap();
    let inos: Vec<u64> = (0..count)
        .map(|i| write_file(&b.path(&format!("many/f{i:04}")), kb * 1024, i as u64).0)
        .collect();
    await_released(&b, &mut conn, &inos, 0);
    let volume_of: Vec<String> = inos
        .iter()
        .map(|&ino| b.live_copy(ino).expect("a live copy").0)
        .collect();
    let mut per_volume = std::collections::BTreeMap::<&str, usize>::new();
    for v in &volume_of {
        *per_volume.entry(v.as_str()).or_default() += 1;
    }
    let spread: Vec<String> = per_volume.iter().map(|(v, n)| format!("{v}:{n}")).collect();
    let mut order: Vec<usize> = (0..count).collect();
    fastrand::Rng::with_seed(5).shuffle(&mut order);
    let switches_before = b.counters()["volume_switches"];
    drop_caches(setup.can_drop);
    let mount = b.dir.mountpoint();
    let volume_of = Arc::new(volume_of);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let share: Vec<usize> = order.iter().copied().skip(t).step_by(threads).collect();
            let mount = mount.clone();
            std::thread::spawn(move || {
                let mut issued = Vec::new();
                for i in share {
                    let at = Instant::now();
                    let n = read_all(&mount.join(format!("many/f{i:04}")));
                    assert_eq!(n, kb * 1024, "bytes of file {i}");
                    issued.push((at, i));
                }
                issued
            })
        })
        .collect();
    let mut issued: Vec<(Instant, usize)> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let total = started.elapsed().as_secs_f64();
    issued.sort();
    let mut arrival = 0;
    let mut last: Option<&str> = None;
    for (_, i) in &issued {
        let v = volume_of[*i].as_str();
        if last != Some(v) {
            arrival += 1;
            last = Some(v);
        }
    }
    let settled = Instant::now();
    let switches = loop {
        let c = b.counters();
        if c["recalled_files"] + c["recall_failures"] >= count as u64
            || settled.elapsed() > PATIENCE
        {
            break c["volume_switches"] - switches_before;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "   {drives:<14} {count:>10} {total:>9.2} {:>22} {switches:>20} {arrival:>10} {:>12.0}",
        spread.join(" "),
        count as f64 / total
    );
}

// ---------------------------------------------------------------------------------------
// Helpers

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// A server with a tier whose cache is a plain directory on the benchmark's disk; volumes
/// of size 0 are plain directories there too, others small tmpfs.
fn bed(volumes: &[(&str, u64)], keys: &str) -> TierBed {
    TierBed::start(&Layout {
        cache: 0,
        volumes,
        keys,
    })
}

/// Writes `len` bytes (differing per `seed`) to `path` in 1 MiB writes and fsyncs; returns
/// the inode and the first 4 KiB.
fn write_file(path: &Path, len: u64, seed: u64) -> (u64, Vec<u8>) {
    use std::os::unix::fs::MetadataExt;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut buf = vec![0u8; CHUNK];
    let mut file = File::create(path).unwrap();
    let mut head = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        rng.fill(&mut buf[..n]);
        if head.is_empty() {
            head = buf[..n.min(4096)].to_vec();
        }
        file.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    file.sync_all().unwrap();
    (file.metadata().unwrap().ino(), head)
}

/// A file of `len` bytes outside the mount.
fn write_plain(path: &Path, len: u64) {
    write_file(path, len, 3);
}

/// Reads `path` to its end in 1 MiB reads; returns the bytes read.
fn read_all(path: &Path) -> u64 {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n as u64,
            Err(e) => panic!("read {} at {total}: {e}", path.display()),
        }
    }
}

/// How many of `inos` are in `state`.
fn count_in_state(conn: &mut mysql::Conn, inos: &[u64], state: u8) -> usize {
    let mut total = 0;
    for part in inos.chunks(500) {
        let marks = vec!["?"; part.len()].join(",");
        let mut params: Vec<mysql::Value> = vec![state.into()];
        params.extend(part.iter().map(|&i| mysql::Value::from(i)));
        let n: Option<u64> = conn
            .exec_first(
                format!("SELECT COUNT(*) FROM vs_inodes WHERE data_state = ? AND ino IN ({marks})"),
                params,
            )
            .unwrap();
        total += n.unwrap_or(0) as usize;
    }
    total
}

/// Waits until all of `inos` are in `state`.
fn await_count(b: &TierBed, inos: &[u64], state: u8, what: &str) {
    let mut conn = b.db.connect();
    let deadline = Instant::now() + PATIENCE;
    while count_in_state(&mut conn, inos, state) < inos.len() {
        assert!(
            Instant::now() < deadline,
            "{what}: not reached after {PATIENCE:?}; files per state {:?}\n{}",
            b.states(),
            b.output_tail()
        );
        std::thread::sleep(POLL);
    }
}

/// Waits until the tier has finished `recalled` recalls since start (the readers of the last
/// round may be done before the recall's fsync and record) and every one of `inos` is
/// released again, its local data gone.
fn await_released(b: &TierBed, conn: &mut mysql::Conn, inos: &[u64], recalled: u64) {
    let deadline = Instant::now() + PATIENCE;
    if recalled > 0 {
        loop {
            let c = b.counters();
            if c["recalled_files"] + c["recall_failures"] >= recalled {
                assert_eq!(c["recall_failures"], 0, "recalls failed: {c:?}");
                break;
            }
            assert!(Instant::now() < deadline, "recalls unfinished: {c:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    while count_in_state(conn, inos, RELEASED) < inos.len()
        || inos.iter().any(|&i| b.cache_file(i).exists())
    {
        assert!(
            Instant::now() < deadline,
            "files not released after {PATIENCE:?}; files per state {:?}\n{}",
            b.states(),
            b.output_tail()
        );
        std::thread::sleep(POLL);
    }
}

/// `cp` of `files` into `dest`, then `sync` of the copies.
fn cp_and_sync(files: &[PathBuf], dest: &Path) {
    cp(files, dest);
    for f in files {
        sync(&dest.join(f.file_name().unwrap()));
    }
}

fn cp(files: &[PathBuf], dest: &Path) {
    let status = Command::new("cp")
        .args(files)
        .arg(dest)
        .status()
        .expect("run cp");
    assert!(
        status.success(),
        "cp {files:?} {}: {status}",
        dest.display()
    );
}

fn sync(file: &Path) {
    let status = Command::new("sync").arg(file).status().expect("run sync");
    assert!(status.success(), "sync {}: {status}", file.display());
}

/// Drops the page cache (dirty pages written first) when allowed.
fn drop_caches(can: bool) {
    if can {
        let _ = Command::new("sync").status();
        let _ = fs::write("/proc/sys/vm/drop_caches", "3");
    }
}

/// One measured quantity: a value per round.
struct Row {
    name: String,
    unit: &'static str,
    values: Vec<f64>,
}

impl Row {
    fn new(name: &str, unit: &'static str, values: Vec<f64>) -> Row {
        Row {
            name: name.to_owned(),
            unit,
            values,
        }
    }

    fn median(&self) -> f64 {
        spread(&self.values).1
    }
}

/// Prints `rows` (median, min-max) with each row's median as a ratio to row `base`'s (no
/// ratio column when `base` is out of range).
fn print_table(rows: &[Row], base: usize, ratio: &str) {
    println!(
        "   {:<42} {:>5} {:>30} {:>12}",
        "median (min-max)", "unit", "", ratio
    );
    let base = rows.get(base).map(Row::median);
    for row in rows {
        let (lo, mid, hi) = spread(&row.values);
        let cell = format!("{} ({}-{})", fmt(mid), fmt(lo), fmt(hi));
        let ratio = base.map_or(String::new(), |b| format!("{:.2}", mid / b));
        println!("   {:<42} {:>5} {cell:>30} {ratio:>12}", row.name, row.unit);
    }
}

/// Minimum, median and maximum.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let mid = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (sorted[0], mid, sorted[n - 1])
}

fn fmt(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}
