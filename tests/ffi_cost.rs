//! The C ABI's statement path costs about what the Rust API's does on the client: counted in
//! heap allocations per `SELECT 1` cycle (get, query, read the value, give back), which
//! unlike time does not vary with machine load. `benches/pool.rs` part 3 measures the time.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use mysql::prelude::Queryable;
use support::{pool_options, MariaDb};
use valuestor::ffi::config::{vs_config_free, vs_config_load, VsConfig};
use valuestor::ffi::conn::{vs_conn_query, vs_conn_release, VsConn};
use valuestor::ffi::pool::{vs_pool_free, vs_pool_get, vs_pool_open, VsPool};
use valuestor::ffi::result::{vs_result_free, vs_result_get_i64, vs_result_next, VsResult};
use valuestor::ffi::VsStatus;
use valuestor::Pool;

/// The system allocator, counting allocations (and reallocations) of the calling thread.
/// Only the caller's thread is counted: the pool's own threads (connector, reaper) allocate
/// on their own schedule, which would make the count depend on timing.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts one allocation of this thread (none while the thread is being torn down).
fn count_allocation() {
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

/// Allocations this thread has made so far.
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        count_allocation();
        System.realloc(ptr, layout, size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CYCLES: u64 = 200;

/// Allocations per call of `cycle`, over [`CYCLES`] calls after a warm-up.
fn allocations_per_cycle(mut cycle: impl FnMut()) -> f64 {
    for _ in 0..10 {
        cycle();
    }
    let before = allocations();
    for _ in 0..CYCLES {
        cycle();
    }
    (allocations() - before) as f64 / CYCLES as f64
}

#[test]
fn c_abi_select_allocates_about_as_little_as_the_rust_api() {
    let db = MariaDb::start();
    let mut raw = db.connect();
    let raw_cost = allocations_per_cycle(|| {
        let one: Option<u8> = raw.query_first("SELECT 1").unwrap();
        black_box(one);
    });

    let pool = Pool::new(pool_options(&db)).unwrap();
    let rust_cost = allocations_per_cycle(|| {
        let mut conn = pool.get().unwrap();
        let one: Option<u8> = conn.query_first("SELECT 1").unwrap();
        black_box(one);
    });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vs_conf.xml");
    std::fs::write(&path, db.conf_xml("")).unwrap();
    let path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut config: *mut VsConfig = std::ptr::null_mut();
    let mut c_pool: *mut VsPool = std::ptr::null_mut();
    // SAFETY: valid pointers, as a C caller passes them.
    unsafe {
        assert_eq!(vs_config_load(path.as_ptr(), &mut config), VsStatus::VS_OK);
        assert_eq!(vs_pool_open(config, &mut c_pool), VsStatus::VS_OK);
        vs_config_free(config);
    }
    let c_cost = allocations_per_cycle(|| {
        let mut conn: *mut VsConn = std::ptr::null_mut();
        let mut result: *mut VsResult = std::ptr::null_mut();
        let (mut has_row, mut one) = (false, 0i64);
        // SAFETY: each handle is used while live and freed once.
        unsafe {
            assert_eq!(vs_pool_get(c_pool, 0, &mut conn), VsStatus::VS_OK);
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
    });
    // SAFETY: opened above, freed once.
    unsafe { vs_pool_free(c_pool) };

    println!(
        "allocations per SELECT 1 cycle: raw mysql::Conn {raw_cost:.3}, Rust API {rust_cost:.3}, C ABI {c_cost:.3}"
    );
    // The C handles (connection, result) and the result's column labels are the C ABI's
    // own; anything more is per-call waste (it was 22 against the Rust API's 6).
    assert!(
        c_cost <= rust_cost + 4.0,
        "C ABI {c_cost:.3} allocations per cycle, Rust API {rust_cost:.3}"
    );
}
