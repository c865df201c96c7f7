//! File system benchmark: the same workload on a plain directory, a passthrough FUSE mount
//! (`bindfs`) and the valuestor mount (catalog in a private MariaDB), in one run, on the
//! same disk. Each measurement is repeated in rounds that rotate the order of the three, and
//! the median is reported with the spread, because this shared 2-core machine's disk and
//! scheduler vary by 2-3x from minute to minute.
//!
//! Run with `cargo bench --bench fs` (needs root for dropping the page cache, and bindfs).
//! `VS_BENCH_ROUNDS` sets the number of rounds (default 5).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use support::mount::MountedFs;

/// Files created and stat'ed per create round.
const FILES: usize = 300;
/// Create rounds per round of the other measurements.
const CREATE_ROUNDS_PER_ROUND: usize = 4;
/// Entries of the directory that is listed.
const LISTED: usize = 10_000;
/// Bytes written and read sequentially per round.
const SEQ_BYTES: usize = 256 << 20;
/// Size of each write and read call.
const CHUNK: usize = 1 << 20;

/// One measured quantity: a value per round for each target.
struct Metric {
    name: &'static str,
    unit: &'static str,
    /// Whether a larger value is better (rates) or worse (times).
    higher_is_better: bool,
    values: [Vec<f64>; 3],
}

const TARGETS: [&str; 3] = ["plain directory", "bindfs (passthrough FUSE)", "valuestor"];

fn main() {
    let rounds: usize = std::env::var("VS_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let vs = MountedFs::start();
    let base = vs.mnt().parent().unwrap().to_path_buf();
    let plain = base.join("plain");
    let bind_src = base.join("bind-src");
    let bind_mnt = base.join("bind-mnt");
    for dir in [&plain, &bind_src, &bind_mnt] {
        fs::create_dir_all(dir).unwrap();
    }
    let bindfs = Command::new("bindfs")
        .arg(&bind_src)
        .arg(&bind_mnt)
        .status()
        .expect("bindfs (apt-get install bindfs)");
    assert!(bindfs.success(), "bindfs failed to mount");
    let _unmount_bindfs = Unmount(bind_mnt.clone());
    let roots = [plain, bind_mnt, vs.mnt()];

    println!(
        "file system benchmark on {} ({} cores), {rounds} rounds, order rotated each round",
        base.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "valuestor: catalog in a private MariaDB on loopback (innodb_flush_log_at_trx_commit=2), \
         data in a cache folder on the same disk"
    );
    let mut creates = Metric::new("creates", "files/s", true);
    let mut stats = Metric::new("stats", "stats/s", true);
    let mut lists = Metric::new("list 10,000 entries (cold)", "ms", false);
    let mut writes = Metric::new("sequential write + fsync", "MB/s", true);
    let mut reads = Metric::new("sequential read (cold)", "MB/s", true);

    for (target, root) in roots.iter().enumerate() {
        let many = root.join("many");
        fs::create_dir(&many).unwrap();
        for i in 0..LISTED {
            fs::File::create(many.join(format!("entry-{i:05}"))).unwrap();
        }
        eprintln!("prepared {LISTED} entries on {}", TARGETS[target]);
    }
    // Creates and stats first, in short interleaved rounds and with warm caches: a page
    // cache drop (which the cold listing and read below need) makes ext4's creates on this
    // disk slow for a while, which would hit whichever target comes next.
    for round in 0..rounds * CREATE_ROUNDS_PER_ROUND {
        for step in 0..3 {
            let target = (round + step) % 3;
            let dir = roots[target].join(format!("small-{round}"));
            fs::create_dir(&dir).unwrap();
            let (c, s) = create_and_stat(&dir);
            creates.values[target].push(c);
            stats.values[target].push(s);
        }
    }
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        for step in 0..3 {
            let target = (round + step) % 3;
            let root = &roots[target];
            lists.values[target].push(list_cold(&root.join("many")));
            let (w, r) = write_and_read(&root.join(format!("big-{round}.bin")));
            writes.values[target].push(w);
            reads.values[target].push(r);
        }
    }

    println!();
    println!(
        "{:<28} {:>9} {:>22} {:>22} {:>22} {:>16}",
        "median (min-max)", "unit", TARGETS[0], "bindfs", "valuestor", "valuestor/bindfs"
    );
    for metric in [&creates, &stats, &lists, &writes, &reads] {
        metric.print();
    }
    println!("(a ratio above 1 means valuestor is better; for times it is bindfs time / ours)");
}

impl Metric {
    fn new(name: &'static str, unit: &'static str, higher_is_better: bool) -> Metric {
        Metric {
            name,
            unit,
            higher_is_better,
            values: [Vec::new(), Vec::new(), Vec::new()],
        }
    }

    fn print(&self) {
        let cells: Vec<String> = self
            .values
            .iter()
            .map(|v| {
                let (lo, mid, hi) = spread(v);
                format!("{} ({}-{})", round(mid), round(lo), round(hi))
            })
            .collect();
        let (bind, ours) = (median(&self.values[1]), median(&self.values[2]));
        let ratio = if self.higher_is_better {
            ours / bind
        } else {
            bind / ours
        };
        println!(
            "{:<28} {:>9} {:>22} {:>22} {:>22} {:>16.2}",
            self.name, self.unit, cells[0], cells[1], cells[2], ratio
        );
    }
}

fn median(values: &[f64]) -> f64 {
    spread(values).1
}

/// Minimum, median and maximum.
fn spread(values: &[f64]) -> (f64, f64, f64) {
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

fn round(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Creates `FILES` empty files in `dir`, then stats each; returns both rates per second.
fn create_and_stat(dir: &Path) -> (f64, f64) {
    let started = Instant::now();
    for i in 0..FILES {
        fs::File::create(dir.join(format!("f{i}"))).unwrap();
    }
    let creates = FILES as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for i in 0..FILES {
        std::hint::black_box(fs::metadata(dir.join(format!("f{i}"))).unwrap());
    }
    let stats = FILES as f64 / started.elapsed().as_secs_f64();
    (creates, stats)
}

/// Lists `dir` with cold caches; returns milliseconds.
fn list_cold(dir: &Path) -> f64 {
    drop_caches();
    let started = Instant::now();
    let listed = fs::read_dir(dir).unwrap().count();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(listed, LISTED);
    ms
}

/// Writes `SEQ_BYTES` to `path` and fsyncs, then reads it back with cold caches; returns
/// both rates in MB/s and removes the file.
fn write_and_read(path: &Path) -> (f64, f64) {
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i * 7) as u8).collect();
    let started = Instant::now();
    let mut file = fs::File::create(path).unwrap();
    for _ in 0..SEQ_BYTES / CHUNK {
        file.write_all(&chunk).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);
    let write = mb_per_s(started.elapsed().as_secs_f64());
    drop_caches();
    let started = Instant::now();
    let mut file = fs::File::open(path).unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, SEQ_BYTES);
    let read = mb_per_s(started.elapsed().as_secs_f64());
    fs::remove_file(path).unwrap();
    (write, read)
}

fn mb_per_s(seconds: f64) -> f64 {
    SEQ_BYTES as f64 / (1 << 20) as f64 / seconds
}

/// Drops the page cache so reads come from the files, not memory (needs root).
fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = fs::write("/proc/sys/vm/drop_caches", "3");
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        valuestor::fs::lazy_unmount(&self.0);
    }
}
