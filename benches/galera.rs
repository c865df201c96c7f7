//! Galera benchmark: `vfsserver` with its catalog on one private MariaDB and on a private
//! 3-node Galera cluster on loopback (every node named in `DatabaseHost`), in one run, on the
//! same disk, in rounds that alternate the order of the two; medians with the spread.
//! Then failover times: SIGKILL (and SIGSTOP) of the writing node while one thread creates
//! files, measured from the signal to the first create that succeeds afterwards, as a median
//! over several kills (the node rejoins and the server moves back between kills).
//!
//! Run with `cargo bench --bench galera` (needs root, galera-4 and rsync).
//! `VS_BENCH_ROUNDS` sets the rounds (default 5), `VS_BENCH_KILLS` the kills (default 5).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::galera::Galera;
use support::server::{Server, ServerDir};
use support::MariaDb;

/// Files created, stat'ed and put through the mixed workload per round.
const FILES: usize = 300;
/// Health checks every second with a one-second timeout; failback after three healthy
/// seconds; operations wait up to 30 s.
const KEYS: &str = "<DatabaseTimeout>30</DatabaseTimeout>\
     <DatabaseHealthInterval>1</DatabaseHealthInterval>\
     <DatabaseHealthTimeout>1</DatabaseHealthTimeout>\
     <DatabaseFailbackDelay>3</DatabaseFailbackDelay>";
const LIMIT: Duration = Duration::from_secs(180);

struct Target {
    name: &'static str,
    server: Server,
    dir: ServerDir,
    _db: MariaDb,
}

fn main() {
    let rounds = env_number("VS_BENCH_ROUNDS", 5);
    let kills = env_number("VS_BENCH_KILLS", 5);
    let single_db = MariaDb::start();
    let mut cluster = Galera::start(3);
    let cluster_db = MariaDb::on_cluster(&cluster);
    let mut targets = vec![
        start("single MariaDB", single_db),
        start("3-node Galera", cluster_db),
    ];
    let mut creates = [Vec::new(), Vec::new()];
    let mut stats = [Vec::new(), Vec::new()];
    let mut mixed = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for t in order {
            let dir = targets[t].dir.mountpoint().join(format!("r{round}"));
            fs::create_dir(&dir).unwrap();
            let (c, s) = create_and_stat(&dir);
            creates[t].push(c);
            stats[t].push(s);
            mixed[t].push(mixed_ops(&dir));
        }
    }
    println!();
    println!(
        "catalog on one MariaDB against a 3-node Galera cluster, {rounds} rounds, median (min-max)"
    );
    println!(
        "{:<34} {:>26} {:>26} {:>8}",
        "", targets[0].name, targets[1].name, "ratio"
    );
    print_row("creates/s", &creates);
    print_row("stats/s", &stats);
    print_row("mixed ops/s (see below)", &mixed);
    println!(
        "(mixed: per file create + write 4 KiB + fsync, then rename each and unlink every other)"
    );

    let galera = &mut targets[1];
    let kill_times = failovers(galera, &mut cluster, kills, Freeze::Kill);
    let stop_times = failovers(galera, &mut cluster, kills.min(3), Freeze::Stop);
    println!();
    println!(
        "failover, signal to the first successful create afterwards (one thread creating files):"
    );
    print_times("SIGKILL of the writer", &kill_times);
    print_times("SIGSTOP of the writer", &stop_times);
    for target in targets {
        target.server.signal(libc::SIGTERM);
        let mut server = target.server;
        server.wait(LIMIT);
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn start(name: &'static str, db: MariaDb) -> Target {
    let dir = ServerDir::new(&db, KEYS);
    let server = Server::start(&dir, &[], &[]);
    assert!(
        server.await_notify("READY=1", LIMIT).is_some(),
        "{name}: no READY=1:\n{}",
        server.output()
    );
    Target {
        name,
        server,
        dir,
        _db: db,
    }
}

/// Creates [`FILES`] empty files, then stats each; returns (creates/s, stats/s).
fn create_and_stat(dir: &Path) -> (f64, f64) {
    let started = Instant::now();
    for i in 0..FILES {
        fs::File::create(dir.join(format!("c{i}"))).unwrap();
    }
    let creates = FILES as f64 / started.elapsed().as_secs_f64();
    // Stats past the kernel's attribute cache: a fresh name each time would be a lookup;
    // these are the files just made (attributes cached for the mount's timeout).
    let started = Instant::now();
    for i in 0..FILES {
        fs::metadata(dir.join(format!("c{i}"))).unwrap();
    }
    (creates, FILES as f64 / started.elapsed().as_secs_f64())
}

/// Per file: create, write 4 KiB, fsync, close; then rename every file and unlink every
/// other; returns operations per second.
fn mixed_ops(dir: &Path) -> f64 {
    let data = vec![7u8; 4096];
    let started = Instant::now();
    let mut ops = 0;
    for i in 0..FILES / 2 {
        let mut file = fs::File::create(dir.join(format!("m{i}"))).unwrap();
        file.write_all(&data).unwrap();
        file.sync_all().unwrap();
        ops += 1;
    }
    for i in 0..FILES / 2 {
        fs::rename(dir.join(format!("m{i}")), dir.join(format!("n{i}"))).unwrap();
        ops += 1;
        if i % 2 == 0 {
            fs::remove_file(dir.join(format!("n{i}"))).unwrap();
            ops += 1;
        }
    }
    ops as f64 / started.elapsed().as_secs_f64()
}

#[derive(Clone, Copy, PartialEq)]
enum Freeze {
    Kill,
    Stop,
}

/// Takes the writing node (node 0) down `count` times with one thread creating files, and
/// returns the time from the signal to the first create that succeeded afterwards. Between
/// takes, node 0 comes back and the server moves back to it.
fn failovers(target: &mut Target, cluster: &mut Galera, count: usize, how: Freeze) -> Vec<f64> {
    let dir = target
        .dir
        .mountpoint()
        .join(format!("failover-{}", how as u8));
    fs::create_dir(&dir).unwrap();
    let mut times = Vec::new();
    for k in 0..count {
        let stop = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicU64::new(0));
        let completions = Arc::new(Mutex::new(Vec::<(Instant, Result<(), String>)>::new()));
        let creator = {
            let (stop, made, completions, dir) =
                (stop.clone(), made.clone(), completions.clone(), dir.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let outcome = fs::File::create(dir.join(format!("k{k}-{i}")))
                        .map(drop)
                        .map_err(|e| e.to_string());
                    completions.lock().unwrap().push((Instant::now(), outcome));
                    made.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        };
        await_count(&made, 50);
        match how {
            Freeze::Kill => cluster.kill(0),
            Freeze::Stop => cluster.pause(0),
        }
        // From when the node is gone or every thread of it has stopped (SIGSTOP takes effect
        // asynchronously: a create answered in between would count as served).
        let signalled = Instant::now();
        let first = loop {
            let found = completions
                .lock()
                .unwrap()
                .iter()
                .find(|(at, outcome)| *at > signalled && outcome.is_ok())
                .map(|(at, _)| *at);
            if let Some(at) = found {
                break at;
            }
            assert!(
                signalled.elapsed() < LIMIT,
                "no create succeeded after the failover"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        stop.store(true, Ordering::Relaxed);
        creator.join().unwrap();
        let failed: Vec<String> = completions
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, outcome)| outcome.clone().err())
            .collect();
        let took = (first - signalled).as_secs_f64();
        eprintln!("take {}: {took:.2} s; failed creates: {failed:?}", k + 1);
        times.push(took);
        match how {
            Freeze::Kill => cluster.rejoin(0),
            Freeze::Stop => {
                cluster.unpause(0);
                cluster.await_synced(0);
            }
        }
        cluster.await_cluster_size(0, 3);
        // The failback (DatabaseFailbackDelay 3 s) before the next take.
        target
            .server
            .await_database_writer(&format!("127.0.0.1:{}", cluster.port(0)));
    }
    times
}

fn await_count(counter: &AtomicU64, at_least: u64) {
    let deadline = Instant::now() + LIMIT;
    let start = counter.load(Ordering::Relaxed);
    while counter.load(Ordering::Relaxed) < start + at_least {
        assert!(
            Instant::now() < deadline,
            "the creating thread made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn cell(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    format!("{:.0} ({:.0}-{:.0})", median(values), min, max)
}

fn print_row(name: &str, values: &[Vec<f64>; 2]) {
    println!(
        "{name:<34} {:>26} {:>26} {:>8.2}",
        cell(&values[0]),
        cell(&values[1]),
        median(&values[1]) / median(&values[0])
    );
}

fn print_times(name: &str, times: &[f64]) {
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    println!(
        "  {name:<24} median {:.2} s (min {min:.2}, max {max:.2}, {} takes)",
        median(times),
        times.len()
    );
}
