//! `VsStmt`: a prepared statement with 1-based typed binds.

use std::ffi::c_char;

use mysql::prelude::Queryable;
use mysql::{Params, Statement, Value};

use super::conn::{note_breakage, with_conn, ConnSlot};
use super::guard::{arg_mut, arg_out, ffi_guard, ffi_guard_value, opt_out, FfiError, FfiResult};
use super::result::VsResult;
use super::VsStatus;
use crate::pool::{drain_checked, PoolError};

/// A prepared statement (opaque) on one connection. One thread at a time.
///
/// Methods: `vs_stmt_bind_null`, `vs_stmt_bind_i64`, `vs_stmt_bind_u64`, `vs_stmt_bind_f64`,
/// `vs_stmt_bind_text`, `vs_stmt_bind_bytes`, `vs_stmt_execute_update`,
/// `vs_stmt_execute_query`, `vs_stmt_free`.
pub struct VsStmt {
    slot: ConnSlot,
    statement: Statement,
    params: Vec<Option<Value>>,
}

impl VsStmt {
    pub(crate) fn new(slot: ConnSlot, statement: Statement) -> VsStmt {
        let count = usize::from(statement.num_params());
        VsStmt {
            slot,
            statement,
            params: vec![None; count],
        }
    }

    fn bind(&mut self, index: u32, value: Value) -> FfiResult {
        let count = self.params.len();
        let slot = (index as usize)
            .checked_sub(1)
            .and_then(|i| self.params.get_mut(i))
            .ok_or_else(|| {
                FfiError::invalid(format!(
                    "parameter index {index} out of range (the statement has {count}; indexes start at 1)"
                ))
            })?;
        *slot = Some(value);
        Ok(())
    }

    fn bound_params(&self) -> Result<Params, FfiError> {
        if self.params.is_empty() {
            return Ok(Params::Empty);
        }
        let mut values = Vec::with_capacity(self.params.len());
        for (i, value) in self.params.iter().enumerate() {
            let value = value
                .clone()
                .ok_or_else(|| FfiError::invalid(format!("parameter {} is not bound", i + 1)))?;
            values.push(value);
        }
        Ok(Params::Positional(values))
    }
}

/// Binds SQL NULL to parameter `index` (1-based).
///
/// # Safety
/// `stmt` is NULL or a live `VsStmt`.
#[no_mangle]
pub unsafe extern "C" fn vs_stmt_bind_null(stmt: *mut VsStmt, index: u32) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `stmt` is NULL or live, used by no other thread (this function's contract).
        unsafe { arg_mut(stmt, "stmt") }?.bind(index, Value::NULL)
    })
}

/// Binds a signed 64-bit integer to parameter `index` (1-based).
///
/// # Safety
/// `stmt` is NULL or a live `VsStmt`.
#[no_mangle]
pub unsafe extern "C" fn vs_stmt_bind_i64(stmt: *mut VsStmt, index: u32, value: i64) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `stmt` is NULL or live, used by no other thread (this function's contract).
        unsafe { arg_mut(stmt, "stmt") }?.bind(index, Value::Int(value))
    })
}

/// Binds an unsigned 64-bit integer to parameter `index` (1-based).
///
/// # Safety
/// `stmt` is NULL or a live `VsStmt`.
#[no_mangle]
pub unsafe extern "C" fn vs_stmt_bind_u64(stmt: *mut VsStmt, index: u32, value: u64) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `stmt` is NULL or live, used by no other thread (this function's contract).
        unsafe { arg_mut(stmt, "stmt") }?.bind(index, Value::UInt(value))
    })
}

/// Binds a double to parameter `index` (1-based).
///
/// # Safety
/// `stmt` is NULL or a live `VsStmt`.
#[no_mangle]
pub unsafe extern "C" fn vs_stmt_bind_f64(stmt: *mut VsStmt, index: u32, value: f64) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `stmt` is NULL or live, used by no other thread (this function's contract).
        unsafe { arg_mut(stmt, "stmt") }?.bind(index, Value::Double(value))
    })
}

/// Binds `len` bytes of text at `ptr` to parameter `index` (1-based); the bytes are copied.
///
/// `ptr` may be NULL only when `len` is 0 (the empty string).
///
/// # Safety
/// `stmt` is NULL or a live `VsStmt`; `ptr` is NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn vs_stmt_bind_text(
    stmt: *mut VsStmt,
    index: u32,
    ptr: *const c_char,
    len: usize,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `stmt` is NULL or live, used by no other thread (this function's contract).
        let stmt = unsafe { arg_mut(stmt, "stmt") }?;
        // SAFETY: `ptr` is NULL or readable for `len` bytes, as this function's contract
        // requires.
        let bytes = unsafe { copy_buffer(ptr.cast(), len) }?;
        stmt.bind(index, Value::Bytes(bytes))
    })
}

/// Binds `len` bytes at `ptr` (binary data) to parameter `index` (1-based); copied.
///
/// `ptr` may be NULL only when `len` is 0.
///
/// # Safety
/// `stmt` is NULL or a live `VsStmt`; `ptr` is NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn vs_stmt_bind_bytes(
    stmt: *mut VsStmt,
    index: u32,
    ptr: *const u8,
    len: usize,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `stmt` is NULL or live, used by no other thread (this function's contract).
        let stmt = unsafe { arg_mut(stmt, "stmt") }?;
        // SAFETY: `ptr` is NULL or readable for `len` bytes, as this function's contract
        // requires.
        let bytes = unsafe { copy_buffer(ptr, len) }?;
        stmt.bind(index, Value::Bytes(bytes))
    })
}

/// Executes a statement that returns no rows (INSERT, UPDATE, DELETE, DDL).
///
/// `affected_rows` and `last_insert_id` may be NULL. Every parameter must be bound
/// (`VS_ERR_INVALID_ARGUMENT` otherwise). Binds stay set for the next execution. Every
/// result set of the response is read (a `CALL` may produce several): an error in any of
/// them gives `VS_ERR_SQL`; on success `*affected_rows` is the sum over them and
/// `*last_insert_id` the last non-zero AUTO_INCREMENT id reported (0 if none).
///
/// # Safety
/// `stmt` is NULL or a live `VsStmt`; the outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_stmt_execute_update(
    stmt: *mut VsStmt,
    affected_rows: *mut u64,
    last_insert_id: *mut u64,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `stmt` is NULL or live, used by no other thread (this function's contract).
        let stmt = unsafe { arg_mut(stmt, "stmt") }?;
        let params = stmt.bound_params()?;
        let totals = with_conn(&stmt.slot, |c| {
            let outcome = c
                .exec_iter(&stmt.statement, params)
                .and_then(drain_checked)
                .map_err(PoolError::from);
            note_breakage(c, outcome)
        })?;
        // SAFETY: both are NULL or writable, as this function's contract requires.
        let (affected, last_id) = unsafe { (opt_out(affected_rows), opt_out(last_insert_id)) };
        if let Some(out) = affected {
            out.write(totals.affected_rows);
        }
        if let Some(out) = last_id {
            out.write(totals.last_insert_id);
        }
        Ok(())
    })
}

/// Executes a query and reads its whole result (bounded by DatabaseMaxResultSize).
///
/// On success `*out` receives a result the caller frees with `vs_result_free`. Result
/// sets after the first (from a `CALL`) are read and discarded; an error in any of them
/// gives `VS_ERR_SQL` and no result.
///
/// # Safety
/// `stmt` is NULL or a live `VsStmt`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_stmt_execute_query(
    stmt: *mut VsStmt,
    out: *mut *mut VsResult,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `stmt` is NULL or live, used by no other thread (this function's contract).
        let stmt = unsafe { arg_mut(stmt, "stmt") }?;
        let params = stmt.bound_params()?;
        let result = with_conn(&stmt.slot, |c| {
            let limit = c.max_result_bytes();
            let outcome = c
                .exec_iter(&stmt.statement, params)
                .map_err(PoolError::from)
                .and_then(|result| VsResult::collect(result, limit));
            note_breakage(c, outcome)
        })?;
        out.write(Box::into_raw(Box::new(result)));
        Ok(())
    })
}

/// Frees a statement; NULL is a no-op. Safe before or after its connection is released.
///
/// # Safety
/// `stmt` is NULL or a statement not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vs_stmt_free(stmt: *mut VsStmt) {
    ffi_guard_value((), || {
        if !stmt.is_null() {
            // SAFETY: a statement from `vs_conn_prepare` (a `Box::into_raw`) not yet freed,
            // as this function's contract requires.
            drop(unsafe { Box::from_raw(stmt) });
        }
    })
}

/// Copies a C buffer; NULL is allowed only for an empty one.
///
/// # Safety
/// `ptr` is NULL or readable for `len` bytes.
unsafe fn copy_buffer(ptr: *const u8, len: usize) -> Result<Vec<u8>, FfiError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(FfiError::invalid("ptr is NULL but len is not 0"));
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len)
        .map_err(|_| FfiError::new(VsStatus::VS_ERR_OUT_OF_MEMORY, "out of memory"))?;
    // SAFETY: not NULL (checked above) and readable for `len` bytes, as the caller
    // guarantees; `len` is not 0 and the bytes are copied before returning.
    bytes.extend_from_slice(unsafe { std::slice::from_raw_parts(ptr, len) });
    Ok(bytes)
}
