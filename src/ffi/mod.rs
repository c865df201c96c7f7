//! The C ABI: opaque handles, `VsStatus` results, thread-local last error, panic guards.
//!
//! `include/valuestor.h` is generated from this module by `build.rs` (cbindgen). Rules every
//! function follows:
//! - receiver first, then inputs, then outputs (`**out`); outputs are written only on success;
//! - every pointer is checked: NULL gives `VS_ERR_INVALID_ARGUMENT`, never a crash (optional
//!   outputs say "may be NULL"); `vs_*_free(NULL)` is a no-op;
//! - every body runs inside [`guard::ffi_guard`], so a panic becomes `VS_ERR_INTERNAL`;
//! - on failure `vs_last_error()` describes what went wrong, for the calling thread.
//!
//! Handles: `VsConfig` and `VsPool` are shared and thread-safe; `VsConn`, `VsStmt` and
//! `VsResult` may move between threads but are used by one thread at a time.

pub mod config;
pub mod conn;
pub mod guard;
mod logger;
pub mod pool;
pub mod result;
pub mod status;
pub mod stmt;

pub use status::VsStatus;

/// Version of the C ABI; bumped on every incompatible change (2: `VsPoolStats` grew).
pub const VS_ABI_VERSION: u32 = 2;
/// Major version of the library (matches `Cargo.toml`).
pub const VS_VERSION_MAJOR: u32 = 0;
/// Minor version of the library (matches `Cargo.toml`).
pub const VS_VERSION_MINOR: u32 = 1;
/// Patch version of the library (matches `Cargo.toml`).
pub const VS_VERSION_PATCH: u32 = 0;

/// The ABI version this library implements; compare with `VS_ABI_VERSION` from the header.
#[no_mangle]
pub extern "C" fn vs_abi_version() -> u32 {
    guard::ffi_guard_value(VS_ABI_VERSION, || VS_ABI_VERSION)
}

/// The library version as a static NUL-terminated string such as "0.1.0"; never freed.
#[no_mangle]
pub extern "C" fn vs_version() -> *const std::ffi::c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    guard::ffi_guard_value(VERSION.as_ptr().cast(), || VERSION.as_ptr().cast())
}
