//! vfsserver as an operator sees it, in one run: CPU while the database is down, time from
//! the database starting (and accepting connections) to the mount, and peak resident memory
//! and thread count under a mixed workload of 8 parallel writers and 8 parallel readers.
//!
//! Run with `cargo build --release --example vfsserver && cargo bench --bench service` (the
//! benchmark also builds the example itself, in the same profile). Peak memory is the
//! kernel's high-water mark (`VmHWM`), so no spike between samples is missed.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use support::server::{Server, ServerDir};
use support::MariaDb;

/// How long the database stays down while the server waits for it.
const OUTAGE: Duration = Duration::from_secs(10);
/// How long the 16 workers run.
const WORKLOAD: Duration = Duration::from_secs(15);
const FILE: usize = 4 << 20;
const CHUNK: usize = 256 << 10;

fn main() {
    let mut db = MariaDb::start();
    let version: String = db
        .connect()
        .query_first("SELECT VERSION()")
        .unwrap()
        .unwrap_or_default();
    let dir = ServerDir::new(&db, "");
    db.stop();
    let mut server = Server::start(&dir, &[], &[]);
    server
        .await_notify("STATUS=waiting", Duration::from_secs(10))
        .expect("server waits for the database");
    let cpu_before = server.cpu_time();
    let waited = Instant::now();
    // The outage being measured: time must pass.
    std::thread::sleep(OUTAGE);
    let cpu = server.cpu_time() - cpu_before;
    let wall = waited.elapsed();

    let db_start = Instant::now();
    db.resume();
    let accepting = Instant::now();
    server
        .await_notify("READY=1", Duration::from_secs(30))
        .expect("READY=1");
    let ready = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let read = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..8u8 {
        let (stop, written, mnt) = (Arc::clone(&stop), Arc::clone(&written), dir.mountpoint());
        workers.push(std::thread::spawn(move || {
            let chunk = vec![w; CHUNK];
            let mut round = 0;
            while !stop.load(Ordering::Acquire) {
                let mut f = fs::File::create(mnt.join(format!("w{w}-{}", round % 4))).unwrap();
                for _ in 0..FILE / CHUNK {
                    f.write_all(&chunk).unwrap();
                    written.fetch_add(CHUNK as u64, Ordering::Relaxed);
                }
                round += 1;
            }
        }));
    }
    for r in 0..8u8 {
        let (stop, read, mnt) = (Arc::clone(&stop), Arc::clone(&read), dir.mountpoint());
        workers.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            let mut round = 0;
            while !stop.load(Ordering::Acquire) {
                if let Ok(mut f) = fs::File::open(mnt.join(format!("w{r}-{}", round % 4))) {
                    while let Ok(n) = f.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        read.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
                let _ = fs::metadata(mnt.join(format!("w{r}-{}", (round + 1) % 4)));
                round += 1;
            }
        }));
    }
    let started = Instant::now();
    let mut peak_threads = 0;
    while started.elapsed() < WORKLOAD {
        // Threads live long, so sampling finds their peak; memory uses VmHWM instead.
        std::thread::sleep(Duration::from_millis(100));
        peak_threads = peak_threads.max(server.proc_status("Threads"));
    }
    stop.store(true, Ordering::Release);
    for w in workers {
        w.join().unwrap();
    }
    let ran = started.elapsed().as_secs_f64();
    let peak_rss_kb = server.peak_rss_kb();
    let threads_after = server.proc_status("Threads");
    let mib = |bytes: &AtomicU64| bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64;
    let stopping = Instant::now();
    server.signal(libc::SIGTERM);
    let (status, _) = server.wait(Duration::from_secs(30));
    let stopped = stopping.elapsed();

    println!(
        "vfsserver service benchmark (MariaDB {version} on loopback, {} CPUs, {} build)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "  CPU while the database was down    {} ms over {:.1} s = {:.3}% (test limit 2%)",
        cpu.as_millis(),
        wall.as_secs_f64(),
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
    );
    println!(
        "  mariadbd started -> READY=1        {:.2} s",
        ready.duration_since(db_start).as_secs_f64()
    );
    println!(
        "  database accepting -> READY=1      {:.2} s (test limit 3 s)",
        ready.saturating_duration_since(accepting).as_secs_f64()
    );
    println!(
        "  8 writers + 8 readers, {ran:.1} s:    wrote {:.0} MiB ({:.0} MiB/s), read {:.0} MiB ({:.0} MiB/s)",
        mib(&written),
        mib(&written) / ran,
        mib(&read),
        mib(&read) / ran
    );
    println!(
        "  peak RSS (VmHWM)                   {:.1} MB (test limit 64 MB; MemoryMax 512M)",
        peak_rss_kb as f64 / 1024.0
    );
    println!(
        "  threads                            peak {peak_threads}, {threads_after} after the workload (TasksMax 256)"
    );
    println!(
        "  SIGTERM -> exit                    {status} in {:.2} s",
        stopped.as_secs_f64()
    );
}
