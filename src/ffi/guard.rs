//! The panic guard around every exported function, and the thread-local last error.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::VsStatus;
use crate::pool::PoolError;
use crate::ConfigError;

/// A failure on its way to C: the status plus what `vs_last_error` and friends report.
#[derive(Debug)]
pub struct FfiError {
    /// The status returned to C.
    pub status: VsStatus,
    /// The message `vs_last_error` returns.
    pub message: String,
    /// The server's error number, 0 when not a server error.
    pub sql_code: i32,
    /// The SQLSTATE, empty when not a SQL error.
    pub sqlstate: String,
}

/// What a guarded body returns.
pub type FfiResult = Result<(), FfiError>;

struct LastError {
    message: CString,
    sql_code: c_int,
    sqlstate: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError {
        message: CString::default(),
        sql_code: 0,
        sqlstate: CString::default(),
    });
}

/// Runs `body`, turning errors and panics into a status and the thread's last error.
pub fn ffi_guard(body: impl FnOnce() -> FfiResult) -> VsStatus {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(FfiError::new(
            VsStatus::VS_ERR_INTERNAL,
            format!("internal error (panic): {what}"),
        ))
    });
    match outcome {
        Ok(()) => {
            set_last_error("", 0, "");
            VsStatus::VS_OK
        }
        Err(err) => {
            set_last_error(&err.message, err.sql_code, &err.sqlstate);
            err.status
        }
    }
}

/// Runs a body that cannot fail in a way C must hear about (destructors, getters with a
/// plain return value); a panic is swallowed and `fallback` returned.
pub fn ffi_guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn set_last_error(message: &str, sql_code: i32, sqlstate: &str) {
    LAST_ERROR.with(|last| {
        let mut last = last.borrow_mut();
        last.message = c_string_lossy(message);
        last.sql_code = sql_code;
        last.sqlstate = c_string_lossy(sqlstate);
    });
}

/// A C string from Rust text; interior NULs become spaces.
pub fn c_string_lossy(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

impl FfiError {
    /// An error with a status and message.
    pub fn new(status: VsStatus, message: impl Into<String>) -> FfiError {
        FfiError {
            status,
            message: message.into(),
            sql_code: 0,
            sqlstate: String::new(),
        }
    }

    /// `VS_ERR_INVALID_ARGUMENT` with a message.
    pub fn invalid(message: impl Into<String>) -> FfiError {
        FfiError::new(VsStatus::VS_ERR_INVALID_ARGUMENT, message)
    }
}

impl From<PoolError> for FfiError {
    fn from(err: PoolError) -> FfiError {
        let status = match &err {
            PoolError::Timeout { .. } => VsStatus::VS_ERR_TIMEOUT,
            PoolError::Unavailable { .. } | PoolError::Connect(_) => VsStatus::VS_ERR_UNAVAILABLE,
            PoolError::Closed => VsStatus::VS_ERR_CLOSED,
            PoolError::InvalidOptions(_) => VsStatus::VS_ERR_CONFIG,
            PoolError::Sql(_) => VsStatus::VS_ERR_SQL,
            PoolError::ResultTooLarge { .. } => VsStatus::VS_ERR_RESULT_TOO_LARGE,
            PoolError::OutOfMemory => VsStatus::VS_ERR_OUT_OF_MEMORY,
        };
        let (sql_code, sqlstate) = match &err {
            PoolError::Sql(sql) => (i32::from(sql.code), sql.state.clone()),
            _ => (0, String::new()),
        };
        FfiError {
            status,
            message: err.to_string(),
            sql_code,
            sqlstate,
        }
    }
}

impl From<mysql::Error> for FfiError {
    fn from(err: mysql::Error) -> FfiError {
        FfiError::from(PoolError::from(err))
    }
}

impl From<ConfigError> for FfiError {
    fn from(err: ConfigError) -> FfiError {
        FfiError::new(VsStatus::VS_ERR_CONFIG, err.to_string())
    }
}

/// Borrows `*ptr` or fails naming the argument.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that no one mutates during the borrow.
pub unsafe fn arg_ref<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, FfiError> {
    ptr.as_ref()
        .ok_or_else(|| FfiError::invalid(format!("{name} is NULL")))
}

/// Mutably borrows `*ptr` or fails naming the argument.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that no one else uses during the borrow.
pub unsafe fn arg_mut<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, FfiError> {
    ptr.as_mut()
        .ok_or_else(|| FfiError::invalid(format!("{name} is NULL")))
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub unsafe fn arg_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::invalid(format!("{name} is NULL")));
    }
    CStr::from_ptr(ptr)
        .to_str()
        .map_err(|_| FfiError::invalid(format!("{name} is not valid UTF-8")))
}

/// Checks an output pointer.
pub fn arg_out<T>(ptr: *mut T, name: &str) -> Result<*mut T, FfiError> {
    if ptr.is_null() {
        Err(FfiError::invalid(format!("{name} is NULL")))
    } else {
        Ok(ptr)
    }
}

/// The calling thread's last error message ("" after a success).
///
/// The string is owned by the library and stays valid until this thread's next call into
/// the library (other than `vs_last_*`). Never NULL.
#[no_mangle]
pub extern "C" fn vs_last_error() -> *const c_char {
    ffi_guard_value(c"".as_ptr(), || {
        LAST_ERROR.with(|last| last.borrow().message.as_ptr())
    })
}

/// The server error number of the calling thread's last error (e.g. 1146), 0 if it was not
/// a server error.
#[no_mangle]
pub extern "C" fn vs_last_sql_error_code() -> c_int {
    ffi_guard_value(0, || LAST_ERROR.with(|last| last.borrow().sql_code))
}

/// The SQLSTATE of the calling thread's last error (e.g. "42S02"), "" if it was not a SQL
/// error. Valid until this thread's next call into the library. Never NULL.
#[no_mangle]
pub extern "C" fn vs_last_sqlstate() -> *const c_char {
    ffi_guard_value(c"".as_ptr(), || {
        LAST_ERROR.with(|last| last.borrow().sqlstate.as_ptr())
    })
}
