//! Pool benchmark: valuestor's pool side by side with r2d2 (with r2d2_mysql's connection
//! manager, see [`MySqlConnectionManager`]) and `mysql::Pool`,
//! in one run against one private MariaDB.
//!
//! Run with `cargo bench --bench pool` (set `VS_TEST_MYSQL_URL` to use an existing server;
//! the recovery part then is skipped, as it kills and restarts the server). It prints:
//!
//! 1. connection cycle (get + give back, no query), one thread, each pool at its defaults
//!    and tuned, with the ratio to valuestor;
//! 2. the same with 2 and 8 threads on a pool of 2 connections for all three;
//! 3. the statement cycle (get + `SELECT 1` + give back) through each pool, and through the
//!    C ABI (`vs_pool_get` + `vs_conn_query` + `vs_result_next` + `vs_result_get_i64` +
//!    `vs_result_free` + `vs_conn_release`), against the same query on a raw `mysql::Conn`,
//!    in interleaved short rounds, as the median of the per-round ratios (loopback round
//!    trips on a busy 2-core machine vary by 2x between rounds, so only a paired, interleaved
//!    comparison shows a 5% difference);
//! 4. recovery after `kill -9` and restart of the server under 8 threads on a pool of 2:
//!    the time from the server accepting connections again until every thread has
//!    completed a query.
//!
//! `cargo bench --bench pool -- statement` runs part 3 only.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use support::MariaDb;
use valuestor::ffi::config::{vs_config_free, vs_config_load, VsConfig};
use valuestor::ffi::conn::{vs_conn_query, vs_conn_release, VsConn};
use valuestor::ffi::pool::{vs_pool_free, vs_pool_get, vs_pool_open, VsPool};
use valuestor::ffi::result::{vs_result_free, vs_result_get_i64, vs_result_next, VsResult};
use valuestor::ffi::VsStatus;
use valuestor::{Pool, PoolOptions};

/// Length of one timed round of the connection-cycle measurements.
const ROUND: Duration = Duration::from_millis(300);
/// Timed rounds per connection-cycle measurement; the median round is reported.
const ROUNDS: usize = 5;
/// Queries per side in one interleaved `SELECT 1` round.
const QUERIES_PER_ROUND: u32 = 100;
/// Interleaved `SELECT 1` rounds per pool.
const SELECT_ROUNDS: usize = 100;
/// Worker threads in the recovery measurement.
const RECOVERY_THREADS: usize = 8;

/// One get + give back on some pool, callable from any thread.
type Cycle = Arc<dyn Fn() + Send + Sync>;

/// Makes a pool at a given size (None: the pool's default size).
type MakePool = fn(&MariaDb, Option<u32>) -> AnyPool;

/// A pool under test: a name, and how to make it.
struct Contender {
    name: &'static str,
    make: MakePool,
}

/// The three pools behind one interface.
#[derive(Clone)]
enum AnyPool {
    Valuestor(Pool),
    R2d2(r2d2::Pool<MySqlConnectionManager>),
    Mysql(mysql::Pool),
}

impl AnyPool {
    fn cycle(&self) -> Cycle {
        match self.clone() {
            AnyPool::Valuestor(pool) => Arc::new(move || drop(black_box(pool.get().expect("get")))),
            AnyPool::R2d2(pool) => Arc::new(move || drop(black_box(pool.get().expect("get")))),
            AnyPool::Mysql(pool) => {
                Arc::new(move || drop(black_box(pool.get_conn().expect("get_conn"))))
            }
        }
    }

    /// get + `SELECT 1` + give back; an error instead of a panic (the server may be down).
    fn select_one(&self) -> Result<(), String> {
        let one: Option<u8> = match self {
            AnyPool::Valuestor(pool) => {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                conn.query_first("SELECT 1").map_err(|e| e.to_string())?
            }
            AnyPool::R2d2(pool) => {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                conn.query_first("SELECT 1").map_err(|e| e.to_string())?
            }
            AnyPool::Mysql(pool) => {
                let mut conn = pool.get_conn().map_err(|e| e.to_string())?;
                conn.query_first("SELECT 1").map_err(|e| e.to_string())?
            }
        };
        black_box(one);
        Ok(())
    }
}

fn main() {
    let mut db = MariaDb::start();
    let version: Option<String> = db.connect().query_first("SELECT VERSION()").unwrap();
    println!(
        "valuestor pool benchmark: {} cores, MariaDB {} on 127.0.0.1 (a private server started for this run)",
        cores(),
        version.unwrap_or_default()
    );
    println!(
        "valuestor defaults: ping before hand-out only after 500 ms idle, no round trip on a clean return"
    );

    if std::env::args().any(|arg| arg == "statement") {
        statement_cycle(&db);
        return;
    }
    connection_cycle_single_thread(&db);
    connection_cycle_contended(&db);
    statement_cycle(&db);
    if db.is_private() {
        recovery(&mut db);
    } else {
        println!("\nrecovery: skipped (VS_TEST_MYSQL_URL: the server cannot be restarted)");
    }
}

fn contenders(tuned: bool) -> Vec<Contender> {
    let mut list = vec![Contender {
        name: "valuestor::Pool (defaults)",
        make: |db, size| AnyPool::Valuestor(valuestor_pool(db, size)),
    }];
    if tuned {
        list.push(Contender {
            name: "r2d2 + r2d2_mysql (defaults: test_on_check_out)",
            make: |db, size| AnyPool::R2d2(r2d2_pool(db, size, true)),
        });
        list.push(Contender {
            name: "r2d2 + r2d2_mysql (test_on_check_out = false)",
            make: |db, size| AnyPool::R2d2(r2d2_pool(db, size, false)),
        });
        list.push(Contender {
            name: "mysql::Pool (defaults: check_health, reset)",
            make: |db, size| AnyPool::Mysql(mysql_pool(db, size, true)),
        });
        list.push(Contender {
            name: "mysql::Pool (no check_health, no reset)",
            make: |db, size| AnyPool::Mysql(mysql_pool(db, size, false)),
        });
    } else {
        list.push(Contender {
            name: "r2d2 + r2d2_mysql (defaults)",
            make: |db, size| AnyPool::R2d2(r2d2_pool(db, size, true)),
        });
        list.push(Contender {
            name: "mysql::Pool (defaults)",
            make: |db, size| AnyPool::Mysql(mysql_pool(db, size, true)),
        });
    }
    list
}

fn connection_cycle_single_thread(db: &MariaDb) {
    println!();
    println!(
        "1. get + give back, 1 thread, each pool at its default size \
         (ns per cycle, median of {ROUNDS} rounds of {ROUND:?})"
    );
    let results: Vec<(&str, f64)> = contenders(true)
        .iter()
        .map(|c| {
            let pool = (c.make)(db, None);
            (c.name, median_ns_per_cycle(1, &pool.cycle()))
        })
        .collect();
    print_ratios(&results);
    let ours = results[0].1;
    println!(
        "   goals: under 1000 ns ({}), at least 20x faster than r2d2 and mysql::Pool at defaults ({:.0}x, {:.0}x)",
        if ours < 1000.0 { "met" } else { "missed" },
        results[1].1 / ours,
        results[3].1 / ours
    );
}

fn connection_cycle_contended(db: &MariaDb) {
    for threads in [2, 8] {
        println!();
        println!(
            "2. get + give back, {threads} threads on a pool of 2 connections \
             (ns per cycle over all threads, median of {ROUNDS} rounds)"
        );
        let results: Vec<(&str, f64)> = contenders(true)
            .iter()
            .map(|c| {
                let pool = (c.make)(db, Some(2));
                (c.name, median_ns_per_cycle(threads, &pool.cycle()))
            })
            .collect();
        print_ratios(&results);
        if threads == 8 {
            let ours = results[0].1;
            println!(
                "   goal: at least 5x faster than r2d2 and mysql::Pool at defaults ({:.1}x, {:.1}x)",
                results[1].1 / ours,
                results[3].1 / ours
            );
        }
    }
}

fn statement_cycle(db: &MariaDb) {
    println!();
    println!(
        "3. SELECT 1: get + query + give back vs the same query on a raw mysql::Conn, \
         {SELECT_ROUNDS} interleaved rounds of {QUERIES_PER_ROUND} queries each side"
    );
    if pin_client_and_server(db) {
        println!(
            "   this thread on CPU 0, mariadbd on CPU 1: otherwise each connection's round trip \
             costs 19 or 70 us depending on where the scheduler put its server thread"
        );
    }
    println!(
        "   {:<50} {:>9} {:>9} {:>14} {:>14} {:>16}",
        "", "raw us", "pooled us", "median ratio", "ratio p10-p90", "client CPU ratio"
    );
    let mut raw = db.connect();
    for contender in contenders(false) {
        let pool = (contender.make)(db, None);
        let report = interleaved(&mut raw, || pool.select_one().expect("SELECT 1"));
        report.print(contender.name);
    }
    // The pool's own share, without the checkout: the same query on one held connection.
    let pool = valuestor_pool(db, None);
    let mut held = pool.get().expect("get");
    let report = interleaved(&mut raw, || {
        let one: Option<u8> = held.query_first("SELECT 1").expect("SELECT 1");
        black_box(one);
    });
    report.print("valuestor PooledConn held across queries");
    // The same cycle through the C ABI, as a C or C++ caller makes it.
    let c_pool = CPool::open(db);
    let report = interleaved(&mut raw, || c_pool.select_one());
    report.print("valuestor C ABI (vs_pool_get ... vs_conn_release)");
    println!("   goal: valuestor within 5% of raw (median ratio at most 1.05)");
    unpin();
}

/// Pins the calling thread to CPU 0 and every thread of the harness's mariadbd to CPU 1
/// (threads it starts later inherit that), so that every connection's round trip crosses
/// CPUs the same way. False when there is one CPU or the server is not ours.
fn pin_client_and_server(db: &MariaDb) -> bool {
    let Some(pid) = db.pid() else {
        return false;
    };
    if cores() < 2 {
        return false;
    }
    let pin = |tid: libc::pid_t, cpu: usize| {
        // SAFETY: cpu_set_t is plain data; sched_setaffinity reads it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        }
    };
    let mut pinned = pin(0, 0);
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
                pinned &= pin(tid, 1);
            }
        }
    }
    pinned
}

/// A pool opened through the C ABI from a `vs_conf.xml` for the benchmark's server.
struct CPool {
    pool: *mut VsPool,
    _dir: tempfile::TempDir,
}

impl CPool {
    fn open(db: &MariaDb) -> CPool {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("vs_conf.xml");
        std::fs::write(&path, db.conf_xml("")).expect("write vs_conf.xml");
        let path = std::ffi::CString::new(path.to_str().expect("UTF-8 path")).expect("no NUL");
        let mut config: *mut VsConfig = std::ptr::null_mut();
        let mut pool: *mut VsPool = std::ptr::null_mut();
        // SAFETY: valid pointers, as a C caller passes them; the config is freed once the
        // pool is open, which the C ABI allows.
        unsafe {
            assert_eq!(vs_config_load(path.as_ptr(), &mut config), VsStatus::VS_OK);
            assert_eq!(vs_pool_open(config, &mut pool), VsStatus::VS_OK);
            vs_config_free(config);
        }
        let c_pool = CPool { pool, _dir: dir };
        c_pool.select_one(); // waits for the first connection
        c_pool
    }

    /// get + `SELECT 1` + read the value + give back, as a C caller writes it.
    fn select_one(&self) {
        let mut conn: *mut VsConn = std::ptr::null_mut();
        let mut result: *mut VsResult = std::ptr::null_mut();
        let mut has_row = false;
        let mut one = 0i64;
        // SAFETY: the pool is live; each handle is used while live and freed once.
        unsafe {
            assert_eq!(vs_pool_get(self.pool, 0, &mut conn), VsStatus::VS_OK);
            assert_eq!(
                vs_conn_query(conn, c"SELECT 1".as_ptr(), &mut result),
                VsStatus::VS_OK
            );
            assert_eq!(vs_result_next(result, &mut has_row), VsStatus::VS_OK);
            assert_eq!(vs_result_get_i64(result, 0, &mut one), VsStatus::VS_OK);
            vs_result_free(result);
            vs_conn_release(conn);
        }
        assert!(has_row && one == 1);
        black_box(one);
    }
}

impl Drop for CPool {
    fn drop(&mut self) {
        // SAFETY: opened in `open`, freed once.
        unsafe { vs_pool_free(self.pool) };
    }
}

/// Lets the calling thread run on every CPU again.
fn unpin() {
    // SAFETY: as in `pin_client_and_server`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..cores() {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn recovery(db: &mut MariaDb) {
    println!();
    println!(
        "4. recovery after kill -9 and restart of the server, {RECOVERY_THREADS} threads \
         looping get + SELECT 1 + give back on a pool of 2 (a failed call sleeps 5 ms)"
    );
    println!(
        "   time from the server accepting connections again until every thread completed a query"
    );
    for contender in contenders(false) {
        let pool = (contender.make)(db, Some(2));
        match recovery_time(db, &pool) {
            Some(t) => println!(
                "   {:<50} {:>8.0} ms",
                contender.name,
                t.as_secs_f64() * 1e3
            ),
            None => println!("   {:<50} did not recover within 60 s", contender.name),
        }
    }
    println!(
        "   (valuestor's probe follows its backoff: 100 ms doubling to 30 s with full jitter)"
    );
}

/// Kills and restarts the server under load; the time from ready to every thread served.
fn recovery_time(db: &mut MariaDb, pool: &AnyPool) -> Option<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let successes: Arc<Vec<AtomicU64>> =
        Arc::new((0..RECOVERY_THREADS).map(|_| AtomicU64::new(0)).collect());
    let workers: Vec<_> = (0..RECOVERY_THREADS)
        .map(|index| {
            let (pool, stop, successes) = (pool.clone(), Arc::clone(&stop), Arc::clone(&successes));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match pool.select_one() {
                        Ok(()) => {
                            successes[index].fetch_add(1, Ordering::Release);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        })
        .collect();
    let all_served = |since: &[u64]| {
        successes
            .iter()
            .zip(since)
            .all(|(count, before)| count.load(Ordering::Acquire) > *before)
    };
    let zero = vec![0; RECOVERY_THREADS];
    support::await_condition(Duration::from_secs(30), "workload running", || {
        all_served(&zero)
    });
    db.kill();
    db.resume();
    let ready = Instant::now();
    let at_ready: Vec<u64> = successes
        .iter()
        .map(|c| c.load(Ordering::Acquire))
        .collect();
    let mut recovered = None;
    while ready.elapsed() < Duration::from_secs(60) {
        if all_served(&at_ready) {
            recovered = Some(ready.elapsed());
            break;
        }
        // Polling other threads' progress: 1 ms resolution is enough for this measurement.
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    recovered
}

fn valuestor_pool(db: &MariaDb, size: Option<u32>) -> Pool {
    let mut options = PoolOptions {
        host: db.host().to_string(),
        port: db.port(),
        user: db.user().to_string(),
        password: db.password().to_string(),
        database: Some(db.database().to_string()),
        ..PoolOptions::default()
    };
    if let Some(size) = size {
        options.max_size = size as usize;
        options.initial_size = size as usize;
    }
    let pool = Pool::new(options).expect("valuestor pool");
    pool.wait_until_connected(Duration::from_secs(10))
        .expect("connects");
    pool
}

fn r2d2_pool(
    db: &MariaDb,
    size: Option<u32>,
    defaults: bool,
) -> r2d2::Pool<MySqlConnectionManager> {
    let manager = MySqlConnectionManager::new(db.opts());
    let mut builder = r2d2::Pool::builder();
    if let Some(size) = size {
        builder = builder.max_size(size);
    }
    if !defaults {
        builder = builder.test_on_check_out(false);
    }
    builder.build(manager).expect("r2d2 pool")
}

fn mysql_pool(db: &MariaDb, size: Option<u32>, defaults: bool) -> mysql::Pool {
    let mut pool_opts = mysql::PoolOpts::default();
    if let Some(size) = size {
        let size = size as usize;
        let constraints = mysql::PoolConstraints::new(size, size).expect("min <= max");
        pool_opts = pool_opts.with_constraints(constraints);
    }
    if !defaults {
        pool_opts = pool_opts
            .with_check_health(false)
            .with_reset_connection(false);
    }
    let opts = mysql::OptsBuilder::from_opts(db.opts()).pool_opts(pool_opts);
    mysql::Pool::new(opts).expect("mysql pool")
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn print_ratios(results: &[(&str, f64)]) {
    let ours = results[0].1;
    println!("   {:<50} {:>12} {:>14}", "", "ns/cycle", "vs valuestor");
    for (name, ns) in results {
        println!("   {name:<50} {ns:>12.0} {:>13.1}x", ns / ours);
    }
}

/// Median over rounds of wall time per completed cycle, `threads` threads cycling at once.
fn median_ns_per_cycle(threads: usize, cycle: &Cycle) -> f64 {
    // Warm-up: connections opened, caches filled.
    run_round(threads, cycle, ROUND / 3);
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| run_round(threads, cycle, ROUND))
        .collect();
    median(&mut rounds)
}

/// Runs `cycle` on `threads` threads for about `length`; returns wall ns per cycle.
fn run_round(threads: usize, cycle: &Cycle, length: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (cycle, stop, start) = (Arc::clone(cycle), Arc::clone(&stop), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    cycle();
                    done += 1;
                }
                done
            })
        })
        .collect();
    start.wait();
    let started = Instant::now();
    // The round's length is what is being timed.
    std::thread::sleep(length);
    stop.store(true, Ordering::Relaxed);
    let total: u64 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    let elapsed = started.elapsed();
    elapsed.as_nanos() as f64 / total.max(1) as f64
}

/// Raw and pooled per-query times of interleaved rounds, their per-round ratios, and the
/// same for the client thread's CPU time (which load from other processes hardly changes:
/// it shows the client-side work apart from the round trip).
struct Interleaved {
    raw: Vec<f64>,
    pooled: Vec<f64>,
    ratios: Vec<f64>,
    cpu_ratios: Vec<f64>,
}

impl Interleaved {
    fn print(mut self, name: &str) {
        let raw = median(&mut self.raw) / 1e3;
        let pooled = median(&mut self.pooled) / 1e3;
        self.ratios.sort_by(f64::total_cmp);
        let ratio = median(&mut self.ratios);
        let p10 = self.ratios[self.ratios.len() / 10];
        let p90 = self.ratios[self.ratios.len() * 9 / 10];
        let cpu = median(&mut self.cpu_ratios);
        println!(
            "   {name:<50} {raw:>9.2} {pooled:>9.2} {ratio:>14.3} {p10:>6.2} - {p90:<6.2} {cpu:>16.3}"
        );
    }
}

/// Alternates rounds of `SELECT 1` on `raw` and of `pooled`, switching which goes first, so
/// that load on a shared machine hits both alike; a round pair gives one ratio.
fn interleaved(raw: &mut mysql::Conn, mut pooled: impl FnMut()) -> Interleaved {
    let mut raw_query = || {
        let one: Option<u8> = raw.query_first("SELECT 1").expect("SELECT 1");
        black_box(one);
    };
    for _ in 0..QUERIES_PER_ROUND {
        raw_query();
        pooled();
    }
    let mut result = Interleaved {
        raw: Vec::with_capacity(SELECT_ROUNDS),
        pooled: Vec::with_capacity(SELECT_ROUNDS),
        ratios: Vec::with_capacity(SELECT_ROUNDS),
        cpu_ratios: Vec::with_capacity(SELECT_ROUNDS),
    };
    for round in 0..SELECT_ROUNDS {
        let ((r, r_cpu), (p, p_cpu)) = if round % 2 == 0 {
            let r = per_query(&mut raw_query);
            (r, per_query(&mut pooled))
        } else {
            let p = per_query(&mut pooled);
            (per_query(&mut raw_query), p)
        };
        result.raw.push(r);
        result.pooled.push(p);
        result.ratios.push(p / r);
        result.cpu_ratios.push(p_cpu / r_cpu);
    }
    result
}

/// Wall time and this thread's CPU time per query over one round, in ns.
fn per_query(query: &mut impl FnMut()) -> (f64, f64) {
    let started = Instant::now();
    let cpu_started = thread_cpu_ns();
    for _ in 0..QUERIES_PER_ROUND {
        query();
    }
    let cpu = (thread_cpu_ns() - cpu_started) / f64::from(QUERIES_PER_ROUND);
    (
        started.elapsed().as_nanos() as f64 / f64::from(QUERIES_PER_ROUND),
        cpu.max(1.0),
    )
}

/// CPU time the calling thread has used, in ns.
fn thread_cpu_ns() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the struct passed.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as f64 * 1e9 + now.tv_nsec as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// r2d2_mysql 28's connection manager, call for call: connect with `Conn::new`, validate
/// (on check-out, r2d2's default) and test for breakage (on every return) with a ping.
///
/// Written here instead of depending on r2d2_mysql, which switches on mysql's "minimal"
/// feature (the C zlib backend); feature unification would then change how
/// libvaluestor.a must be linked whenever it is built together with the benchmarks.
#[derive(Debug)]
struct MySqlConnectionManager {
    opts: mysql::Opts,
}

impl MySqlConnectionManager {
    fn new(opts: mysql::Opts) -> MySqlConnectionManager {
        MySqlConnectionManager { opts }
    }
}

impl r2d2::ManageConnection for MySqlConnectionManager {
    type Connection = mysql::Conn;
    type Error = mysql::Error;

    fn connect(&self) -> Result<mysql::Conn, mysql::Error> {
        mysql::Conn::new(self.opts.clone())
    }

    fn is_valid(&self, conn: &mut mysql::Conn) -> Result<(), mysql::Error> {
        conn.ping()
    }

    fn has_broken(&self, conn: &mut mysql::Conn) -> bool {
        self.is_valid(conn).is_err()
    }
}
