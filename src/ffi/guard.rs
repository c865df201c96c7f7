//! The panic guard around every exported function, and the thread-local last error.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

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
    /// Nothing recorded since the last success: a success then writes nothing.
    clear: bool,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError {
        message: CString::default(),
        sql_code: 0,
        sqlstate: CString::default(),
        clear: true,
    });
}

/// Runs `body`, turning errors and panics into a status and the thread's last error.
///
/// Nothing here may panic outside `catch_unwind`: since Rust 1.81 a panic leaving an
/// `extern "C"` function aborts the process. The thread-local is reached with `try_with`,
/// so a call made while the thread's locals are being destroyed (from another library's
/// thread-exit handler) still returns a status instead of panicking.
pub fn ffi_guard(body: impl FnOnce() -> FfiResult) -> VsStatus {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        // A payload whose destructor panics must not unwind out of here either.
        if let Err(again) = catch_unwind(AssertUnwindSafe(|| drop(panic))) {
            std::mem::forget(again);
        }
        Err(FfiError::new(
            VsStatus::VS_ERR_INTERNAL,
            format!("internal error (panic): {what}"),
        ))
    });
    match outcome {
        Ok(()) => {
            clear_last_error();
            VsStatus::VS_OK
        }
        Err(err) => {
            set_last_error(&err.message, err.sql_code, &err.sqlstate);
            err.status
        }
    }
}

/// Runs a body that cannot fail in a way C must hear about (destructors, getters with a
/// plain return value); a panic is swallowed and `fallback` returned. The thread's last
/// error is left as it is.
pub fn ffi_guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Records the outcome of a fallible call for `vs_last_*`. Never panics: if the thread's
/// locals are already destroyed (or borrowed, which cannot happen) the record is skipped.
fn set_last_error(message: &str, sql_code: i32, sqlstate: &str) {
    let _ = LAST_ERROR.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            last.message = c_string_lossy(message);
            last.sql_code = sql_code;
            last.sqlstate = c_string_lossy(sqlstate);
            last.clear = false;
        }
    });
}

/// Records a success: the last error becomes empty. Costs no allocation (and no write) when
/// it already is, which is every call of a run of successes: this is on every call's path.
fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            if !last.clear {
                last.message = CString::default();
                last.sql_code = 0;
                last.sqlstate = CString::default();
                last.clear = true;
            }
        }
    });
}

/// Reads the thread's last error; `None` once the thread's locals are destroyed.
fn read_last_error<T>(read: impl FnOnce(&LastError) -> T) -> Option<T> {
    LAST_ERROR
        .try_with(|last| last.try_borrow().ok().map(|last| read(&last)))
        .ok()
        .flatten()
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
        // A timeout or an unavailable database keeps the server's reason for refusing
        // connections (1045 access denied, 1049 unknown database, 2003 cannot connect).
        let (sql_code, sqlstate) = match &err {
            PoolError::Sql(sql) => (i32::from(sql.code), sql.state.clone()),
            PoolError::Timeout {
                last_error: Some(cause),
                ..
            }
            | PoolError::Unavailable { last_error: cause }
            | PoolError::Connect(cause) => (i32::from(cause.code), cause.state.clone()),
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
    // SAFETY: NULL or a live, unaliased-for-writes `T`, as the caller guarantees.
    unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::invalid(format!("{name} is NULL")))
}

/// Mutably borrows `*ptr` or fails naming the argument.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that no one else uses during the borrow.
pub unsafe fn arg_mut<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, FfiError> {
    // SAFETY: NULL or a live `T` no one else uses, as the caller guarantees.
    unsafe { ptr.as_mut() }.ok_or_else(|| FfiError::invalid(format!("{name} is NULL")))
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays unchanged during the
/// borrow.
pub unsafe fn arg_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::invalid(format!("{name} is NULL")));
    }
    // SAFETY: not NULL (checked above) and NUL-terminated, as the caller guarantees.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| FfiError::invalid(format!("{name} is not valid UTF-8")))
}

/// A checked, non-NULL output pointer: written at most once, by [`Out::write`], which
/// neither reads nor drops what the caller's memory held (it may be uninitialised).
pub struct Out<'a, T> {
    ptr: NonNull<T>,
    _borrow: PhantomData<&'a mut T>,
}

impl<T> Out<'_, T> {
    /// Stores `value` in the caller's variable.
    pub fn write(self, value: T) {
        // SAFETY: `arg_out`'s caller guarantees the pointer is aligned and writable for a
        // `T` while this `Out` lives; `ptr::write` does not read or drop the old contents.
        unsafe { self.ptr.as_ptr().write(value) }
    }
}

/// Checks an output pointer.
///
/// # Safety
/// `ptr` is NULL or aligned and writable for a `T` (initialised or not) while the returned
/// [`Out`] lives, and no one else uses that memory meanwhile.
pub unsafe fn arg_out<'a, T>(ptr: *mut T, name: &str) -> Result<Out<'a, T>, FfiError> {
    match NonNull::new(ptr) {
        Some(ptr) => Ok(Out {
            ptr,
            _borrow: PhantomData,
        }),
        None => Err(FfiError::invalid(format!("{name} is NULL"))),
    }
}

/// An optional output pointer: `None` for NULL.
///
/// # Safety
/// As for [`arg_out`].
pub unsafe fn opt_out<'a, T>(ptr: *mut T) -> Option<Out<'a, T>> {
    NonNull::new(ptr).map(|ptr| Out {
        ptr,
        _borrow: PhantomData,
    })
}

/// The calling thread's last error message ("" after a success).
///
/// The string is owned by the library and stays valid until this thread's next call to a
/// function that returns `VsStatus`; other calls (`vs_last_*`, getters returning a plain
/// value, `vs_*_free`, `vs_conn_release`, `vs_pool_close`) leave it alone. Never NULL.
#[no_mangle]
pub extern "C" fn vs_last_error() -> *const c_char {
    ffi_guard_value(c"".as_ptr(), || {
        read_last_error(|last| last.message.as_ptr()).unwrap_or(c"".as_ptr())
    })
}

/// The server error number of the calling thread's last error (e.g. 1146), 0 if it was not
/// a server error or the last call succeeded.
///
/// For `VS_ERR_TIMEOUT`, `VS_ERR_UNAVAILABLE` and a failed connect it is the reason the
/// server refused connections (1045 access denied, 1049 unknown database), or the client's
/// 2003 when the server could not be reached; 0 when connecting had not failed.
#[no_mangle]
pub extern "C" fn vs_last_sql_error_code() -> c_int {
    ffi_guard_value(0, || read_last_error(|last| last.sql_code).unwrap_or(0))
}

/// The SQLSTATE of the calling thread's last error (e.g. "42S02"), "" if it was not a SQL
/// error; for timeouts and an unavailable database that of the last connect error ("28000",
/// "42000", "HY000"). Valid as long as the `vs_last_error` string. Never NULL.
#[no_mangle]
pub extern "C" fn vs_last_sqlstate() -> *const c_char {
    ffi_guard_value(c"".as_ptr(), || {
        read_last_error(|last| last.sqlstate.as_ptr()).unwrap_or(c"".as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_message() -> String {
        // SAFETY: vs_last_error returns a NUL-terminated string that lives until the next
        // fallible call on this thread; it is copied at once.
        unsafe { CStr::from_ptr(vs_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panicking_body_returns_internal_and_sets_the_message() {
        let status = ffi_guard(|| panic!("boom {}", 42));
        assert_eq!(status, VsStatus::VS_ERR_INTERNAL);
        let message = last_message();
        assert!(message.contains("panic"), "{message}");
        assert!(message.contains("boom 42"), "{message}");
        assert_eq!(vs_last_sql_error_code(), 0);
    }

    #[test]
    fn a_panic_with_a_static_message_is_reported_too() {
        assert_eq!(
            ffi_guard(|| panic!("static text")),
            VsStatus::VS_ERR_INTERNAL
        );
        assert!(last_message().contains("static text"));
    }

    #[test]
    fn a_value_guard_returns_the_fallback_on_panic() {
        assert_eq!(
            ffi_guard_value(7, || -> i32 { panic!("inside a getter") }),
            7
        );
    }

    #[test]
    fn errors_set_and_success_clears_the_last_error() {
        let status = ffi_guard(|| {
            Err(FfiError {
                status: VsStatus::VS_ERR_SQL,
                message: "bad\0message".into(),
                sql_code: 1146,
                sqlstate: "42S02".into(),
            })
        });
        assert_eq!(status, VsStatus::VS_ERR_SQL);
        assert_eq!(
            last_message(),
            "bad message",
            "an interior NUL becomes a space"
        );
        assert_eq!(vs_last_sql_error_code(), 1146);
        // SAFETY: as in last_message.
        let state = unsafe { CStr::from_ptr(vs_last_sqlstate()) };
        assert_eq!(state.to_str().unwrap(), "42S02");
        assert_eq!(ffi_guard(|| Ok(())), VsStatus::VS_OK);
        assert_eq!(last_message(), "");
        assert_eq!(vs_last_sql_error_code(), 0);
    }

    #[test]
    fn a_success_after_a_success_writes_nothing() {
        assert_eq!(ffi_guard(|| Ok(())), VsStatus::VS_OK);
        let before = (vs_last_error(), vs_last_sqlstate());
        assert_eq!(ffi_guard(|| Ok(())), VsStatus::VS_OK);
        // The same strings, not fresh empty ones (each would be an allocation per call).
        assert_eq!((vs_last_error(), vs_last_sqlstate()), before);
        assert_eq!(last_message(), "");
    }

    /// Calls the guard from a thread-local destructor that runs after `LAST_ERROR` is gone.
    struct CallsGuardOnDrop(std::sync::mpsc::Sender<(VsStatus, VsStatus, bool)>);

    impl Drop for CallsGuardOnDrop {
        fn drop(&mut self) {
            let failed = ffi_guard(|| Err(FfiError::invalid("late")));
            let succeeded = ffi_guard(|| Ok(()));
            // SAFETY: vs_last_error never returns NULL.
            let empty = unsafe { CStr::from_ptr(vs_last_error()) }.is_empty();
            let _ = self.0.send((failed, succeeded, empty));
        }
    }

    thread_local! {
        static LATE: RefCell<Option<CallsGuardOnDrop>> = const { RefCell::new(None) };
    }

    #[test]
    fn the_guard_works_after_the_threads_last_error_is_destroyed() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Thread-local destructors run in reverse order of first use: touching LATE
            // first and LAST_ERROR second makes LAST_ERROR go first at thread exit.
            LATE.with(|late| *late.borrow_mut() = Some(CallsGuardOnDrop(tx)));
            assert_eq!(
                ffi_guard(|| Err(FfiError::invalid("x"))),
                VsStatus::VS_ERR_INVALID_ARGUMENT
            );
            assert!(LAST_ERROR.try_with(|_| ()).is_ok());
        })
        .join()
        .expect("the thread exits without panicking");
        let (failed, succeeded, empty) = rx.recv().expect("the destructor ran");
        assert_eq!(failed, VsStatus::VS_ERR_INVALID_ARGUMENT);
        assert_eq!(succeeded, VsStatus::VS_OK);
        assert!(empty);
    }
}
