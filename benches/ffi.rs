//! Cost of a connection checkout through the C ABI (`vs_pool_get` + `vs_conn_release`)
//! next to the Rust API (`Pool::get` + drop), on the same pool settings, in one run.
//!
//! Run with `cargo bench --bench ffi` (starts a private MariaDB).

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use support::MariaDb;
use valuestor::ffi::config::{vs_config_free, vs_config_load, VsConfig};
use valuestor::ffi::conn::{vs_conn_release, VsConn};
use valuestor::ffi::pool::{vs_pool_free, vs_pool_get, vs_pool_open, VsPool};
use valuestor::ffi::VsStatus;
use valuestor::{Config, Pool, PoolOptions};

const CYCLES: u32 = 200_000;
const ROUNDS: usize = 7;

fn main() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vs_conf.xml");
    std::fs::write(&path, db.conf_xml("")).unwrap();

    let config = Config::load(&path).unwrap();
    let pool = Pool::new(PoolOptions::from_config(&config.database)).unwrap();
    pool.wait_until_connected(Duration::from_secs(10)).unwrap();
    let rust = best(|| {
        black_box(pool.get().unwrap());
    });

    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut c_config: *mut VsConfig = std::ptr::null_mut();
    let mut c_pool: *mut VsPool = std::ptr::null_mut();
    // SAFETY: valid pointers, as a C caller would pass them.
    unsafe {
        assert_eq!(
            vs_config_load(c_path.as_ptr(), &mut c_config),
            VsStatus::VS_OK
        );
        assert_eq!(vs_pool_open(c_config, &mut c_pool), VsStatus::VS_OK);
    }
    let c_abi = best(|| {
        let mut conn: *mut VsConn = std::ptr::null_mut();
        // SAFETY: the pool is live; the connection is released right away.
        unsafe {
            assert_eq!(vs_pool_get(c_pool, 0, &mut conn), VsStatus::VS_OK);
            vs_conn_release(black_box(conn));
        }
    });
    // SAFETY: freeing what was opened above, once.
    unsafe {
        vs_pool_free(c_pool);
        vs_config_free(c_config);
    }

    println!("checkout + give back, single thread, best of {ROUNDS} rounds of {CYCLES}");
    println!("  Rust API   Pool::get + drop               {rust:>8.0} ns");
    println!("  C ABI      vs_pool_get + vs_conn_release  {c_abi:>8.0} ns");
    println!(
        "  C ABI overhead                            {:>8.0} ns ({:.1}x)",
        c_abi - rust,
        c_abi / rust
    );
}

fn best(mut cycle: impl FnMut()) -> f64 {
    for _ in 0..CYCLES / 10 {
        cycle();
    }
    (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..CYCLES {
                cycle();
            }
            started.elapsed().as_nanos() as f64 / f64::from(CYCLES)
        })
        .fold(f64::INFINITY, f64::min)
}
