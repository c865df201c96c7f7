//! `VsPool`: the connection pool, shared by every thread of the program.

use std::sync::Arc;
use std::time::Duration;

use super::config::VsConfig;
use super::conn::VsConn;
use super::guard::{arg_out, arg_ref, ffi_guard, ffi_guard_value, FfiError};
use super::logger;
use super::VsStatus;
use crate::pool::{Pool, PoolOptions, PoolStats};

/// A connection pool (opaque). Thread-safe: any thread may take connections from it.
///
/// Methods: `vs_pool_open`, `vs_pool_open_legacy`, `vs_pool_get`, `vs_pool_stats`,
/// `vs_pool_close`, `vs_pool_free`.
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
    /// Gets by a thread that already held a connection, made while the pool was exhausted
    /// (self-deadlocks: nested acquisition; each call site is logged once).
    pub self_deadlocks: u64,
    /// Connections opened beyond the maximum for such nested gets (legacy pools only).
    pub nested_grants: u64,
    /// Connections closed on release because more than the maximum were open.
    pub closed_overflow: u64,
}

/// How long a get waits on an exhausted pool opened by `vs_pool_open_legacy`, at most
/// (DatabaseTimeout when that is shorter). The legacy pool returned NULL at once.
pub const VS_LEGACY_ACQUIRE_TIMEOUT_MS: u32 = 5000;

/// Opens a pool with the `Database*` settings of `config`.
///
/// Returns at once even if the database is down (connections are opened in the background
/// with backoff). The library's warnings (connect failures, leaked connections,
/// self-deadlocks) go to stderr, at the level `RUST_LOG` sets (default `warn`), unless the
/// program already installed a Rust logger. On success `*out` receives a pool the caller owns and frees with
/// `vs_pool_free`. `config` may be freed afterwards.
///
/// # Safety
/// `config` is NULL or a live `VsConfig`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_pool_open(config: *const VsConfig, out: *mut *mut VsPool) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `config` is NULL or live, as this function's contract requires.
        let config = unsafe { arg_ref(config, "config") }?;
        logger::install();
        let pool = Pool::new(PoolOptions::from_config(&config.config.database))?;
        out.write(Box::into_raw(Box::new(VsPool { pool })));
        Ok(())
    })
}

/// Opens a pool with the semantics of the legacy C++ `ConnectionPool(int maxSize)`.
///
/// Unlike `vs_pool_open`: at most `max_size` connections (DatabaseMaxPoolSize is not
/// used; they open lazily, DatabaseInitialPoolSize at start, so a large maximum costs
/// nothing until used); connections have no default schema, as Connector/C++ connected, so
/// `CREATE DATABASE` and then `vs_conn_set_schema` work on a fresh server (a schema a
/// caller selects stays selected for the next one, as in the legacy pool); a get on an
/// exhausted pool waits at most `VS_LEGACY_ACQUIRE_TIMEOUT_MS` (or DatabaseTimeout when
/// shorter); and a thread that already holds a connection and asks for another while all
/// are in use gets one beyond `max_size` instead of waiting for itself (at most
/// `2 * max_size` such extra connections, each closed on release).
///
/// Opens the first connection before returning, as the legacy constructor did, so the first
/// get does not spend its wait on a connect (under load or valgrind a first connect can take
/// seconds); if that one attempt fails (the database is down), returns all the same and keeps
/// connecting in the background. Warnings go to stderr as with `vs_pool_open`. On success `*out` receives a pool the caller frees with `vs_pool_free`; `VS_ERR_INVALID_ARGUMENT` for NULL arguments or a
/// `max_size` of 0. `config` may be freed afterwards.
///
/// # Safety
/// `config` is NULL or a live `VsConfig`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_pool_open_legacy(
    config: *const VsConfig,
    max_size: u32,
    out: *mut *mut VsPool,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `config` is NULL or live, as this function's contract requires.
        let config = unsafe { arg_ref(config, "config") }?;
        if max_size == 0 {
            return Err(FfiError::invalid("max_size must be at least 1"));
        }
        let options = PoolOptions::legacy(&config.config.database, max_size as usize);
        logger::install();
        let pool = Pool::new(options)?;
        out.write(Box::into_raw(Box::new(VsPool { pool })));
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
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `pool` is NULL or live, as this function's contract requires.
        let pool = &unsafe { arg_ref(pool.cast_const(), "pool") }?.pool;
        let conn = if timeout_ms == 0 {
            pool.get()?
        } else {
            pool.get_timeout(Duration::from_millis(u64::from(timeout_ms)))?
        };
        out.write(Arc::into_raw(VsConn::new(conn, pool.clone())).cast_mut());
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
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `pool` is NULL or live, as this function's contract requires.
        let pool = unsafe { arg_ref(pool, "pool") }?;
        out.write(VsPoolStats::from(&pool.pool.stats()));
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
        // SAFETY: `pool` is NULL or live, as this function's contract requires.
        if let Some(pool) = unsafe { pool.as_ref() } {
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
            // SAFETY: a pool from `vs_pool_open*` (a `Box::into_raw`) not yet freed, as this
            // function's contract requires.
            drop(unsafe { Box::from_raw(pool) });
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
            self_deadlocks: s.self_deadlocks,
            nested_grants: s.nested_grants,
            closed_overflow: s.closed_overflow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::LEGACY_ACQUIRE_TIMEOUT;

    #[test]
    fn the_header_states_the_core_legacy_wait() {
        assert_eq!(
            Duration::from_millis(u64::from(VS_LEGACY_ACQUIRE_TIMEOUT_MS)),
            LEGACY_ACQUIRE_TIMEOUT
        );
    }
}
