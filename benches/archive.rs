//! Archive data layer benchmark: migration (a file's copy to a volume, with and without
//! MD5+SHA1; with them the copy also computes a CRC-32 per 1 MiB block and writes its
//! `.sums` sidecar) and recall (reading a copy back into a cache file) against `cp` between the same
//! directories, in one run, on one disk. Rounds interleave the methods (rotating their order)
//! and the page cache is dropped before each measurement when running as root, so every
//! method reads cold data; medians are reported with the spread, since this shared machine's
//! disk varies a lot from minute to minute.
//!
//! Run with `cargo bench --bench archive`. `VS_BENCH_ROUNDS` (default 5), `VS_BENCH_FILES`
//! (default 8) and `VS_BENCH_FILE_MB` (default 64) size it; `VS_BENCH_DIR` picks the disk
//! (default: the system's temporary directory).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use valuestor::archive::copy::start_writeback;
use valuestor::archive::{ArchiveFolder, CopyOptions, FileMeta};

/// The copy methods compared for migration.
const MIGRATE: [&str; 4] = [
    "cp all, then sync all",
    "cp + sync, file by file",
    "archive copy, no digests",
    "archive copy, MD5+SHA1",
];
/// The methods compared for recall.
const RECALL: [&str; 4] = [
    "cp all, then sync all",
    "cp + sync, file by file",
    "archive read_at into a cache file",
    "archive copy_range_to a cache file",
];

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn main() {
    let rounds = env_num("VS_BENCH_ROUNDS", 5);
    let files = env_num("VS_BENCH_FILES", 8);
    let file_mb = env_num("VS_BENCH_FILE_MB", 64);
    let base = match std::env::var_os("VS_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("temporary directory");
    let src = base.path().join("cache-src");
    let archive = base.path().join("archive");
    let cp_dir = base.path().join("cp-volume");
    let recall_dir = base.path().join("cache-recall");
    for d in [&src, &archive, &cp_dir, &recall_dir] {
        fs::create_dir_all(d).unwrap();
    }
    let total = (files * file_mb) as f64 * (1 << 20) as f64;
    let mut rng = fastrand::Rng::with_seed(11);
    let mut block = vec![0u8; 1 << 20];
    let mut sources = Vec::new();
    for i in 0..files {
        let path = src.join(format!("file{i}"));
        let mut f = File::create(&path).unwrap();
        for _ in 0..file_mb {
            rng.fill(&mut block);
            f.write_all(&block).unwrap();
        }
        f.sync_all().unwrap();
        sources.push(path);
    }
    let can_drop = nix::unistd::geteuid().is_root() && std::env::var_os("VS_BENCH_WARM").is_none();
    println!(
        "archive benchmark in {} ({} cores): {files} files x {file_mb} MiB, {rounds} rounds, \
         methods interleaved, page cache {}",
        base.path().display(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if can_drop {
            "dropped before each measurement"
        } else {
            "NOT dropped (not root): numbers are from memory"
        }
    );
    println!(
        "every method ends with the data on disk: the archive fsyncs each file before the next \
         (a copy is durable before it is recorded), so cp is shown both ways"
    );
    let (md5_rate, sha1_rate, crc_rate) = digest_rates();
    println!(
        "digests in memory on one core (the ceiling for a copy with both): MD5 {md5_rate:.0} MB/s, \
         SHA1 {sha1_rate:.0} MB/s; block CRC-32 (crc32fast) {crc_rate:.0} MB/s"
    );

    let mut migrate: [Vec<f64>; 4] = Default::default();
    let mut recall: [Vec<f64>; 4] = Default::default();
    let mut volume_no = 0;
    for round in 0..rounds {
        for k in 0..MIGRATE.len() {
            let m = (k + round) % MIGRATE.len();
            volume_no += 1;
            let label = format!("VOL{volume_no:03}");
            let vol = archive.join(&label);
            fs::create_dir(&vol).unwrap();
            clear_dir(&cp_dir);
            drop_caches(can_drop);
            let started = Instant::now();
            match m {
                0 => cp(&sources, &cp_dir),
                1 => cp_each(&sources, &cp_dir),
                _ => archive_copy(&archive, &label, &sources, m == 3),
            }
            migrate[m].push(total / started.elapsed().as_secs_f64() / 1e6);
            // The last no-digest volume is kept for the recall measurements.
            if m != 2 || round + 1 < rounds {
                fs::remove_dir_all(&vol).unwrap();
            }
        }
    }
    let kept = fs::read_dir(&archive)
        .unwrap()
        .next()
        .expect("the kept volume")
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let kept_dir = archive.join(&kept);
    let copies: Vec<PathBuf> = (1..=files as u64)
        .map(|seq| kept_dir.join(format!("{seq:012}")))
        .collect();
    let folder = ArchiveFolder::new(&archive, 0);
    for round in 0..rounds {
        for k in 0..RECALL.len() {
            let m = (k + round) % RECALL.len();
            clear_dir(&recall_dir);
            drop_caches(can_drop);
            let started = Instant::now();
            match m {
                0 => cp(&copies, &recall_dir),
                1 => cp_each(&copies, &recall_dir),
                2 => archive_recall(&folder, &kept, files as u64, &recall_dir),
                _ => archive_recall_kernel(&folder, &kept, files as u64, &recall_dir),
            }
            recall[m].push(total / started.elapsed().as_secs_f64() / 1e6);
        }
    }
    println!();
    report("migration: cache dir -> volume dir", &MIGRATE, &migrate);
    report("recall: volume dir -> cache dir", &RECALL, &recall);
}

/// MB/s of MD5, of SHA1 and of CRC-32 over 256 MiB in memory, each on one thread.
fn digest_rates() -> (f64, f64, f64) {
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
    let mut crc = crc32fast::Hasher::new();
    let c = rate(&mut |b| crc.update(b));
    std::hint::black_box((md5.finalize(), sha1.finalize(), crc.finalize()));
    (m, s, c)
}

/// Prints each method's median MB/s, its spread and its ratios to the two cp methods.
fn report(title: &str, names: &[&str], values: &[Vec<f64>]) {
    println!(
        "{title}  (ratios: to \"{}\" / to \"{}\")",
        names[0], names[1]
    );
    let (all, each) = (median(&values[0]), median(&values[1]));
    for (name, v) in names.iter().zip(values) {
        let med = median(v);
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        println!(
            "  {name:<34} median {med:7.1} MB/s (min {lo:6.1}, max {hi:6.1})  ratio {:.2}x / {:.2}x",
            med / all,
            med / each
        );
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn cp(files: &[PathBuf], dest: &Path) {
    let status = Command::new("cp")
        .args(files)
        .arg(dest)
        .status()
        .expect("run cp");
    assert!(status.success(), "cp failed");
    let copied: Vec<PathBuf> = files
        .iter()
        .map(|f| dest.join(f.file_name().unwrap()))
        .collect();
    let status = Command::new("sync")
        .args(&copied)
        .status()
        .expect("run sync");
    assert!(status.success(), "sync failed");
}

/// `cp` and `sync` of one file at a time: each file on disk before the next starts.
fn cp_each(files: &[PathBuf], dest: &Path) {
    for f in files {
        cp(std::slice::from_ref(f), dest);
    }
}

fn archive_copy(archive: &Path, label: &str, files: &[PathBuf], digests: bool) {
    let folder = ArchiveFolder::new(archive, 0);
    let mut writer = folder.writer(label).unwrap();
    let opts = CopyOptions {
        md5: digests,
        sha1: digests,
        ..CopyOptions::default()
    };
    let cancel = AtomicBool::new(false);
    for (i, f) in files.iter().enumerate() {
        let meta = FileMeta {
            ino: i as u64 + 1,
            path: f.as_os_str().as_encoded_bytes().to_vec(),
            mode: 0o100644,
            ..FileMeta::default()
        };
        writer
            .copy(&File::open(f).unwrap(), &meta, &opts, &cancel)
            .unwrap();
    }
}

/// Reads every copy back in 4 MiB ranges into a cache file, as recall does (writeback of
/// each range started at once), and syncs it.
fn archive_recall(folder: &ArchiveFolder, label: &str, copies: u64, dest: &Path) {
    let mut buf = vec![0u8; 4 << 20];
    for seq in 1..=copies {
        let reader = folder.open_copy(label, seq).unwrap();
        let mut out = File::create(dest.join(format!("{seq}"))).unwrap();
        let mut offset = 0;
        loop {
            let n = reader.read_at(offset, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).unwrap();
            start_writeback(&out, offset, n);
            offset += n as u64;
        }
        out.sync_all().unwrap();
    }
}

/// Recalls every copy in 4 MiB ranges with `copy_range_to` (the kernel copies), and syncs.
fn archive_recall_kernel(folder: &ArchiveFolder, label: &str, copies: u64, dest: &Path) {
    const RANGE: u64 = 4 << 20;
    for seq in 1..=copies {
        let reader = folder.open_copy(label, seq).unwrap();
        let out = File::create(dest.join(format!("{seq}"))).unwrap();
        let mut offset = 0;
        while offset < reader.size() {
            let n = reader.copy_range_to(offset, RANGE, &out).unwrap();
            assert!(n > 0, "copy {seq} ended early at {offset}");
            start_writeback(&out, offset, n as usize);
            offset += n;
        }
        out.sync_all().unwrap();
    }
}

fn clear_dir(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
}

fn drop_caches(can: bool) {
    if can {
        // Dirty pages first, so dropping leaves nothing cached.
        let _ = Command::new("sync").status();
        let _ = fs::write("/proc/sys/vm/drop_caches", "3");
    }
}
