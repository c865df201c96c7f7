//! File system benchmark: the same workload on a plain directory, a passthrough FUSE mount
//! (`bindfs`) and the valuestor mount (catalog in a private MariaDB), in one run, on the
//! same disk. Prints each result and the ratio to bindfs.
//!
//! Run with `cargo bench --bench fs` (needs root for dropping the page cache, and bindfs).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::mount::MountedFs;

const FILES: usize = 2000;
const LISTED: usize = 10_000;
const SEQ_BYTES: usize = 512 << 20;
const CHUNK: usize = 1 << 20;

struct Results {
    creates_per_s: f64,
    stats_per_s: f64,
    list_ms: f64,
    write_mb_s: f64,
    read_mb_s: f64,
}

fn main() {
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

    println!(
        "file system benchmark on {} ({} cores)",
        base.display(),
        cores()
    );
    let plain_r = run("plain directory", &plain);
    let bind_r = run("bindfs (passthrough FUSE)", &bind_mnt);
    let vs_r = run("valuestor (catalog in MariaDB)", &vs.mnt());

    println!();
    println!(
        "{:<32} {:>12} {:>12} {:>14} {:>12} {:>12}",
        "", "creates/s", "stats/s", "list 10k (ms)", "write MB/s", "read MB/s"
    );
    for (name, r) in [
        ("plain directory", &plain_r),
        ("bindfs", &bind_r),
        ("valuestor", &vs_r),
    ] {
        println!(
            "{:<32} {:>12.0} {:>12.0} {:>14.1} {:>12.0} {:>12.0}",
            name, r.creates_per_s, r.stats_per_s, r.list_ms, r.write_mb_s, r.read_mb_s
        );
    }
    println!(
        "{:<32} {:>12.2} {:>12.2} {:>14.2} {:>12.2} {:>12.2}",
        "valuestor / bindfs",
        vs_r.creates_per_s / bind_r.creates_per_s,
        vs_r.stats_per_s / bind_r.stats_per_s,
        bind_r.list_ms / vs_r.list_ms,
        vs_r.write_mb_s / bind_r.write_mb_s,
        vs_r.read_mb_s / bind_r.read_mb_s
    );
    println!("(ratios above 1 mean valuestor is faster; the listing ratio is bindfs time / ours)");
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        valuestor::fs::lazy_unmount(&self.0);
    }
}

fn run(name: &str, root: &Path) -> Results {
    eprintln!("running on {name} ...");
    let small = root.join("small");
    fs::create_dir(&small).unwrap();
    let started = Instant::now();
    for i in 0..FILES {
        fs::File::create(small.join(format!("f{i}"))).unwrap();
    }
    let creates_per_s = FILES as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for i in 0..FILES {
        std::hint::black_box(fs::metadata(small.join(format!("f{i}"))).unwrap());
    }
    let stats_per_s = FILES as f64 / started.elapsed().as_secs_f64();

    let many = root.join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..LISTED {
        fs::File::create(many.join(format!("entry-{i:05}"))).unwrap();
    }
    drop_caches();
    let started = Instant::now();
    let listed = fs::read_dir(&many).unwrap().count();
    let list_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(listed, LISTED);

    let big = root.join("big.bin");
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i * 7) as u8).collect();
    let started = Instant::now();
    let mut file = fs::File::create(&big).unwrap();
    for _ in 0..SEQ_BYTES / CHUNK {
        file.write_all(&chunk).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);
    let write_mb_s = mb_per_s(started.elapsed());
    drop_caches();
    let started = Instant::now();
    let mut file = fs::File::open(&big).unwrap();
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
    let read_mb_s = mb_per_s(started.elapsed());
    fs::remove_file(&big).unwrap();
    Results {
        creates_per_s,
        stats_per_s,
        list_ms,
        write_mb_s,
        read_mb_s,
    }
}

fn mb_per_s(elapsed: Duration) -> f64 {
    SEQ_BYTES as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
}

/// Drops the page cache so reads come from the files, not memory (needs root).
fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = fs::write("/proc/sys/vm/drop_caches", "3");
}
