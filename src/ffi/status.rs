//! `VsStatus`: the result of every fallible C function.

/// Result of a C ABI call. `VS_OK` is 0; the numbers are stable and never reused.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VsStatus {
    /// Success.
    VS_OK = 0,
    /// A pointer was NULL, an index out of range, a string not UTF-8, or a handle unusable.
    VS_ERR_INVALID_ARGUMENT = 1,
    /// No connection became free within the timeout.
    VS_ERR_TIMEOUT = 2,
    /// The database is unreachable; the pool fails fast until it is back.
    VS_ERR_UNAVAILABLE = 3,
    /// The server rejected a statement (see `vs_last_sql_error_code`, `vs_last_sqlstate`)
    /// or the connection broke while running it.
    VS_ERR_SQL = 4,
    /// A result set exceeded the configured size limit (DatabaseMaxResultSize).
    VS_ERR_RESULT_TOO_LARGE = 5,
    /// Memory could not be allocated.
    VS_ERR_OUT_OF_MEMORY = 6,
    /// The pool was closed.
    VS_ERR_CLOSED = 7,
    /// The configuration file is missing, malformed or inconsistent.
    VS_ERR_CONFIG = 8,
    /// A value does not convert to the requested type (or is NULL).
    VS_ERR_TYPE = 9,
    /// A bug in the library, including a caught panic.
    VS_ERR_INTERNAL = 10,
}
