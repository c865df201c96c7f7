//! `VsConn`: a checked-out connection, and the statements that run on it.

use std::ffi::c_char;
use std::sync::Arc;

use mysql::prelude::Queryable;
use parking_lot::Mutex;

use super::guard::{
    arg_out, arg_ref, arg_str, ffi_guard, ffi_guard_value, opt_out, FfiError, FfiResult,
};
use super::result::VsResult;
use super::stmt::VsStmt;
use super::VsStatus;
use crate::pool::{drain_checked, Pool, PoolError, PooledConn, Totals};

/// A `VsConn` as its statements hold it: the handle C gets is this `Arc`'s pointer, so a
/// checkout costs one allocation for both.
pub(crate) type ConnSlot = Arc<VsConn>;

/// A connection checked out of a pool (opaque). Usable from any thread, one at a time.
///
/// Methods: `vs_conn_execute`, `vs_conn_query`, `vs_conn_ping`, `vs_conn_set_schema`,
/// `vs_conn_set_autocommit`, `vs_conn_begin`, `vs_conn_commit`, `vs_conn_rollback`,
/// `vs_conn_prepare`, `vs_conn_release`.
pub struct VsConn {
    /// The connection, and its pool kept open while the connection is out (even after
    /// `vs_pool_free`); both taken out by `vs_conn_release`, so statements that outlive the
    /// release keep neither.
    slot: Mutex<Option<(PooledConn, Pool)>>,
}

impl VsConn {
    /// A new handle for `conn`, shared by the statements prepared on it.
    pub(crate) fn new(conn: PooledConn, pool: Pool) -> ConnSlot {
        Arc::new(VsConn {
            slot: Mutex::new(Some((conn, pool))),
        })
    }
}

/// Runs `f` on the connection of `conn`, or fails if it was released.
pub(crate) fn with_conn<T>(
    conn: &VsConn,
    f: impl FnOnce(&mut PooledConn) -> Result<T, FfiError>,
) -> Result<T, FfiError> {
    let mut guard = conn.slot.lock();
    let (conn, _) = guard.as_mut().ok_or_else(released)?;
    f(conn)
}

/// Runs `sql` (one statement, or several separated by `;`) when no rows are needed.
///
/// Every statement's response is read. The first statement the server rejects ends the
/// call with `VS_ERR_SQL` (its code and SQLSTATE in `vs_last_sql_error_code` and
/// `vs_last_sqlstate`); the server runs no statement after it, and those before it have
/// taken effect (committed, unless a transaction is open). On success `*affected_rows`
/// receives the affected rows summed over all statements (`affected_rows` may be NULL);
/// rows of statements that return some are read and discarded.
///
/// # Safety
/// `conn` is NULL or a live `VsConn`; `sql` is NULL or NUL-terminated; `affected_rows` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_conn_execute(
    conn: *mut VsConn,
    sql: *const c_char,
    affected_rows: *mut u64,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `conn` is NULL or live, as this function's contract requires.
        let conn = unsafe { arg_ref(conn.cast_const(), "conn") }?;
        // SAFETY: `sql` is NULL or NUL-terminated, as this function's contract requires.
        let sql = unsafe { arg_str(sql, "sql") }?;
        let totals = with_conn(conn, |c| {
            let outcome = execute_all(c, sql);
            note_breakage(c, outcome)
        })?;
        // SAFETY: `affected_rows` is NULL or writable, as this function's contract requires.
        if let Some(out) = unsafe { opt_out(affected_rows) } {
            out.write(totals.affected_rows);
        }
        Ok(())
    })
}

/// Runs a query and reads its whole first result set (bounded by DatabaseMaxResultSize).
///
/// On success `*out` receives a result the caller frees with `vs_result_free`; it stays
/// valid after the connection is released. `VS_ERR_RESULT_TOO_LARGE` past the limit. When
/// `sql` holds several statements, the result is the first one's; the others' responses
/// are read and discarded, and an error in any of them fails the call with `VS_ERR_SQL`
/// (no result is returned).
///
/// # Safety
/// `conn` is NULL or a live `VsConn`; `sql` is NULL or NUL-terminated; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn vs_conn_query(
    conn: *mut VsConn,
    sql: *const c_char,
    out: *mut *mut VsResult,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `conn` is NULL or live, as this function's contract requires.
        let conn = unsafe { arg_ref(conn.cast_const(), "conn") }?;
        // SAFETY: `sql` is NULL or NUL-terminated, as this function's contract requires.
        let sql = unsafe { arg_str(sql, "sql") }?;
        let result = with_conn(conn, |c| {
            let limit = c.max_result_bytes();
            let outcome = c
                .query_iter(sql)
                .map_err(PoolError::from)
                .and_then(|result| VsResult::collect(result, limit));
            note_breakage(c, outcome)
        })?;
        out.write(Box::into_raw(Box::new(result)));
        Ok(())
    })
}

/// Checks that the server answers (COM_PING); `VS_ERR_SQL` if the connection is broken
/// (it is then discarded when released).
///
/// # Safety
/// `conn` is NULL or a live `VsConn`.
#[no_mangle]
pub unsafe extern "C" fn vs_conn_ping(conn: *mut VsConn) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `conn` is NULL or live, as this function's contract requires.
        let conn = unsafe { arg_ref(conn.cast_const(), "conn") }?;
        with_conn(conn, |c| Ok(c.ping()?))
    })
}

/// Makes `schema` the default database of this connection (restored when released).
///
/// # Safety
/// `conn` is NULL or a live `VsConn`; `schema` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn vs_conn_set_schema(conn: *mut VsConn, schema: *const c_char) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `conn` is NULL or live, as this function's contract requires.
        let conn = unsafe { arg_ref(conn.cast_const(), "conn") }?;
        // SAFETY: `schema` is NULL or NUL-terminated, as this function's contract requires.
        let schema = unsafe { arg_str(schema, "schema") }?;
        with_conn(conn, |c| Ok(c.set_schema(schema)?))
    })
}

/// Turns autocommit on (`enabled` true) or off for this connection: `SET autocommit = 1/0`.
///
/// With autocommit off, statements join a transaction that lasts until `vs_conn_commit` or
/// `vs_conn_rollback`; the next statement then starts a new one. Turning it on commits
/// what is open. Table locks behave as in MySQL: `LOCK TABLES` commits the open
/// transaction, and COMMIT or ROLLBACK do not release table locks (`UNLOCK TABLES` does).
/// A connection released with autocommit off is rolled back, unlocked and set back to
/// autocommit before anyone else gets it.
///
/// # Safety
/// `conn` is NULL or a live `VsConn`.
#[no_mangle]
pub unsafe extern "C" fn vs_conn_set_autocommit(conn: *mut VsConn, enabled: bool) -> VsStatus {
    ffi_guard(|| {
        // The pool sees `SET autocommit` and restores the session when the connection returns.
        let sql = if enabled {
            "SET autocommit = 1"
        } else {
            "SET autocommit = 0"
        };
        // SAFETY: `conn` is NULL or live, as this function's contract requires.
        unsafe { run_simple(conn, sql) }
    })
}

/// Starts a transaction. A connection released inside one is rolled back.
///
/// # Safety
/// `conn` is NULL or a live `VsConn`.
#[no_mangle]
pub unsafe extern "C" fn vs_conn_begin(conn: *mut VsConn) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `conn` is NULL or live, as this function's contract requires.
        unsafe { run_simple(conn, "START TRANSACTION") }
    })
}

/// Commits the current transaction.
///
/// # Safety
/// `conn` is NULL or a live `VsConn`.
#[no_mangle]
pub unsafe extern "C" fn vs_conn_commit(conn: *mut VsConn) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `conn` is NULL or live, as this function's contract requires.
        unsafe { run_simple(conn, "COMMIT") }
    })
}

/// Rolls back the current transaction.
///
/// # Safety
/// `conn` is NULL or a live `VsConn`.
#[no_mangle]
pub unsafe extern "C" fn vs_conn_rollback(conn: *mut VsConn) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `conn` is NULL or live, as this function's contract requires.
        unsafe { run_simple(conn, "ROLLBACK") }
    })
}

/// Prepares `sql` (with `?` placeholders) on this connection.
///
/// On success `*out` receives a statement the caller frees with `vs_stmt_free`. A statement
/// outliving `vs_conn_release` is safe: executing it then fails with
/// `VS_ERR_INVALID_ARGUMENT` and SQLSTATE 08003.
///
/// # Safety
/// `conn` is NULL or a live `VsConn`; `sql` is NULL or NUL-terminated; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn vs_conn_prepare(
    conn: *mut VsConn,
    sql: *const c_char,
    out: *mut *mut VsStmt,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `conn` is NULL or live, as this function's contract requires.
        let conn = unsafe { arg_ref(conn.cast_const(), "conn") }?;
        // SAFETY: `sql` is NULL or NUL-terminated, as this function's contract requires.
        let sql = unsafe { arg_str(sql, "sql") }?;
        let prepared = with_conn(conn, |c| Ok(c.prep(sql)?))?;
        let conn: *const VsConn = conn;
        // SAFETY: a live `VsConn` handle is the pointer of an `Arc` (`vs_pool_get`); one
        // more strong count, owned by the statement, keeps it alive as long as the statement.
        let shared = unsafe {
            Arc::increment_strong_count(conn);
            Arc::from_raw(conn)
        };
        out.write(Box::into_raw(Box::new(VsStmt::new(shared, prepared))));
        Ok(())
    })
}

/// Gives the connection back to its pool; NULL is a no-op.
///
/// An open transaction is rolled back and locks released before reuse; a broken connection
/// is discarded. Results already read stay valid; statements of this connection can no
/// longer execute. Do not use `conn` after this call.
///
/// # Safety
/// `conn` is NULL or a connection from `vs_pool_get` not yet released.
#[no_mangle]
pub unsafe extern "C" fn vs_conn_release(conn: *mut VsConn) {
    ffi_guard_value((), || {
        if !conn.is_null() {
            // SAFETY: a connection from `vs_pool_get` (an `Arc::into_raw`) not yet released,
            // as this function's contract requires; this gives back that reference.
            let conn = unsafe { Arc::from_raw(conn.cast_const()) };
            let taken = conn.slot.lock().take();
            drop(taken);
        }
    })
}

/// The error for a statement whose connection was released: `VS_ERR_INVALID_ARGUMENT` with
/// SQLSTATE 08003 (the SQL standard's "connection does not exist"), which the C++ shim
/// also uses for a closed `vs::Connection`.
fn released() -> FfiError {
    FfiError {
        sqlstate: "08003".into(),
        ..FfiError::invalid("the connection was released")
    }
}

/// Runs `sql` and reads every result set it produces.
fn execute_all(conn: &mut PooledConn, sql: &str) -> Result<Totals, PoolError> {
    let result = conn.query_iter(sql)?;
    Ok(drain_checked(result)?)
}

/// Converts `outcome` for C; when it failed because the connection broke (also in a later
/// result set, which the pool's own checks do not see), the connection is marked broken
/// so the pool discards it on release.
pub(crate) fn note_breakage<T>(
    conn: &mut PooledConn,
    outcome: Result<T, PoolError>,
) -> Result<T, FfiError> {
    if let Err(PoolError::Sql(sql)) = &outcome {
        if sql.connection_broken {
            conn.mark_broken();
        }
    }
    outcome.map_err(FfiError::from)
}

/// Runs `sql`, which returns no rows, on `conn`.
///
/// # Safety
/// `conn` is NULL or a live `VsConn`.
unsafe fn run_simple(conn: *mut VsConn, sql: &str) -> FfiResult {
    // SAFETY: `conn` is NULL or live, as this function's contract requires.
    let conn = unsafe { arg_ref(conn.cast_const(), "conn") }?;
    with_conn(conn, |c| Ok(c.query_drop(sql)?))
}
