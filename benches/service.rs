//! vfsserver as an operator sees it, in one run: CPU while the database is down, time from
//! the database coming up to the mount, and peak resident memory and thread count under a
//! mixed workload of 8 parallel writers and readers.
//!
//! Run with `cargo build --release --example vfsserver && cargo bench --bench service`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::server::{Server, ServerDir};
use support::MariaDb;

const WORKLOAD: Duration = Duration::from_secs(15);

fn main() {
    let mut db = MariaDb::start();
    let dir = ServerDir::new(&db, "");
    db.stop();
    let mut server = Server::start(&dir, &[], &[]);
    server
        .await_notify("STATUS=waiting", Duration::from_secs(10))
        .expect("server waits for the database");
    let cpu_before = server.cpu_time();
    let waited = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let cpu = server.cpu_time() - cpu_before;
    let wall = waited.elapsed();
    db.resume();
    let up = Instant::now();
    server
        .await_notify("READY=1", Duration::from_secs(30))
        .expect("READY=1");
    let to_mount = up.elapsed();

    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (stop, bytes, mnt) = (Arc::clone(&stop), Arc::clone(&bytes), dir.mountpoint());
            std::thread::spawn(move || {
                let chunk = vec![w as u8; 256 * 1024];
                let mut buf = vec![0u8; 256 * 1024];
                let mut round = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let path = mnt.join(format!("w{w}-{}", round % 16));
                    if w % 2 == 0 {
                        let mut f = fs::File::create(&path).unwrap();
                        for _ in 0..16 {
                            f.write_all(&chunk).unwrap();
                        }
                        bytes.fetch_add(16 * chunk.len() as u64, Ordering::Relaxed);
                    } else if let Ok(mut f) =
                        fs::File::open(mnt.join(format!("w{}-{}", w - 1, round % 16)))
                    {
                        while let Ok(n) = f.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            bytes.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                    let _ = fs::metadata(&path);
                    round += 1;
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut peak_rss_kb = 0;
    let mut peak_threads = 0;
    while started.elapsed() < WORKLOAD {
        std::thread::sleep(Duration::from_millis(100));
        let (rss, threads) = server.rss_kb_and_threads();
        peak_rss_kb = peak_rss_kb.max(rss);
        peak_threads = peak_threads.max(threads);
    }
    stop.store(true, Ordering::Release);
    for w in workers {
        w.join().unwrap();
    }
    let moved = bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64;
    server.signal(libc::SIGTERM);
    let (status, _) = server.wait(Duration::from_secs(30));

    println!("vfsserver service benchmark");
    println!(
        "  CPU while the database was down    {:?} over {:.1} s = {:.3}%",
        cpu,
        wall.as_secs_f64(),
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
    );
    println!(
        "  database up -> READY=1 (mounted)   {:.2} s",
        to_mount.as_secs_f64()
    );
    println!(
        "  8 writers/readers for {:?}: {:.0} MiB moved, peak RSS {:.1} MB, peak threads {}",
        WORKLOAD,
        moved,
        peak_rss_kb as f64 / 1024.0,
        peak_threads
    );
    println!("  exit after SIGTERM                 {status}");
}
