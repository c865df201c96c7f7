//! `VsPool`: the connection pool, shared by every thread of the program.

use std::time::Duration;

use super::config::VsConfig;
use super::conn::VsConn;
use super::guard::{arg_out, arg_ref, ffi_guard, ffi_guard_value};
use super::VsStatus;
use crate::pool::{Pool, PoolOptions, PoolStats};

/// A connection pool (opaque). Thread-safe: any thread may take connections from it.
///
/// Methods: `vs_pool_open`, `vs_pool_get`, `vs_pool_stats`, `vs_pool_close`, `vs_pool_free`.
pub struct VsPool {
    pub(crate) pool: Pool,
}

/// Counters and gauges of a pool, as `vs_pool_stats` fills them. Times are microseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct VsPoolStats {
    /// Connections opened since the pool started.
    pub created: u64,
    /// Connections closed because they broke.
    pub closed_broken: u64,
    /// Connections closed after idling too long.
    pub closed_idle: u64,
    /// Connections closed at the end of their lifetime.
    pub closed_lifetime: u64,
    /// Connections closed for other reasons (cleaning failed, pool closed).
    pub closed_error: u64,
    /// Failed connect attempts since the pool started.
    pub connect_failures: u64,
    /// Failed connect attempts since the last success.
    pub consecutive_failures: u64,
    /// Successful `vs_pool_get` calls.
    pub checkouts: u64,
    /// Gets that timed out.
    pub timeouts: u64,
    /// Gets refused at once because the database is unavailable.
    pub fast_failures: u64,
    /// Liveness pings sent.
    pub pings: u64,
    /// Callers waiting now.
    pub waiters: u64,
    /// Most callers ever waiting at once.
    pub peak_waiters: u64,
    /// Connections checked out now.
    pub in_use: u64,
    /// Connections idle in the pool now.
    pub idle: u64,
    /// Connects in progress now.
    pub connecting: u64,
    /// 1 while the database is considered unavailable, else 0.
    pub unavailable: u64,
    /// 1 once the pool is closed, else 0.
    pub closed: u64,
    /// Total time callers waited in `vs_pool_get`, microseconds.
    pub wait_total_us: u64,
    /// Longest wait in `vs_pool_get`, microseconds.
    pub wait_max_us: u64,
    /// Total time connections were held, microseconds.
    pub hold_total_us: u64,
    /// Longest a connection was held, microseconds.
    pub hold_max_us: u64,
}

/// Opens a pool with the `Database*` settings of `config`.
///
/// Returns at once even if the database is down (connections are opened in the background
/// with backoff). On success `*out` receives a pool the caller owns and frees with
/// `vs_pool_free`. `config` may be freed afterwards.
///
/// # Safety
/// `config` is NULL or a live `VsConfig`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_pool_open(config: *const VsConfig, out: *mut *mut VsPool) -> VsStatus {
    ffi_guard(|| {
        let out = arg_out(out, "out")?;
        let config = arg_ref(config, "config")?;
        let pool = Pool::new(PoolOptions::from_config(&config.config.database))?;
        *out = Box::into_raw(Box::new(VsPool { pool }));
        Ok(())
    })
}

/// Takes a connection, waiting at most `timeout_ms` milliseconds (0: DatabaseTimeout).
///
/// On success `*out` receives a connection the caller gives back with `vs_conn_release`.
/// Never returns a broken or absent connection: `VS_ERR_TIMEOUT` when none became free in
/// time, `VS_ERR_UNAVAILABLE` at once while the database is unreachable, `VS_ERR_CLOSED`
/// after `vs_pool_close`.
///
/// # Safety
/// `pool` is NULL or a live `VsPool`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_pool_get(
    pool: *mut VsPool,
    timeout_ms: u32,
    out: *mut *mut VsConn,
) -> VsStatus {
    ffi_guard(|| {
        let out = arg_out(out, "out")?;
        let pool = &arg_ref(pool.cast_const(), "pool")?.pool;
        let conn = if timeout_ms == 0 {
            pool.get()?
        } else {
            pool.get_timeout(Duration::from_millis(u64::from(timeout_ms)))?
        };
        *out = Box::into_raw(Box::new(VsConn::new(conn, pool.clone())));
        Ok(())
    })
}

/// Copies the pool's counters and gauges into `*out`.
///
/// # Safety
/// `pool` is NULL or a live `VsPool`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_pool_stats(pool: *const VsPool, out: *mut VsPoolStats) -> VsStatus {
    ffi_guard(|| {
        let out = arg_out(out, "out")?;
        let pool = arg_ref(pool, "pool")?;
        *out = VsPoolStats::from(&pool.pool.stats());
        Ok(())
    })
}

/// Closes the pool: waiting callers get `VS_ERR_CLOSED`, new gets are refused, idle
/// connections close now and checked-out ones when released. NULL is a no-op. The handle
/// must still be freed with `vs_pool_free`.
///
/// # Safety
/// `pool` is NULL or a live `VsPool`.
#[no_mangle]
pub unsafe extern "C" fn vs_pool_close(pool: *mut VsPool) {
    ffi_guard_value((), || {
        if let Some(pool) = pool.as_ref() {
            pool.pool.close();
        }
    })
}

/// Frees a pool handle; NULL is a no-op.
///
/// Connections still checked out keep the pool alive until they are released; then it
/// closes and its threads are joined (one busy connecting or pinging is waited for up to
/// 1 s), so none is left running when this call (or that last `vs_conn_release`) returns.
/// Do not use `pool` after this call.
///
/// # Safety
/// `pool` is NULL or a pool from `vs_pool_open` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vs_pool_free(pool: *mut VsPool) {
    ffi_guard_value((), || {
        if !pool.is_null() {
            drop(Box::from_raw(pool));
        }
    })
}

impl From<&PoolStats> for VsPoolStats {
    fn from(s: &PoolStats) -> VsPoolStats {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        VsPoolStats {
            created: s.created,
            closed_broken: s.closed_broken,
            closed_idle: s.closed_idle,
            closed_lifetime: s.closed_lifetime,
            closed_error: s.closed_error,
            connect_failures: s.connect_failures,
            consecutive_failures: s.consecutive_failures,
            checkouts: s.checkouts,
            timeouts: s.timeouts,
            fast_failures: s.fast_failures,
            pings: s.pings,
            waiters: s.waiters,
            peak_waiters: s.peak_waiters,
            in_use: s.in_use,
            idle: s.idle,
            connecting: s.connecting,
            unavailable: u64::from(s.unavailable),
            closed: u64::from(s.closed),
            wait_total_us: us(s.wait_total),
            wait_max_us: us(s.wait_max),
            hold_total_us: us(s.hold_total),
            hold_max_us: us(s.hold_max),
        }
    }
}
