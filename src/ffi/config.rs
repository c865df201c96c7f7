//! `VsConfig`: a loaded `vs_conf.xml`, shared and immutable.

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Arc;

use super::guard::{
    arg_out, arg_ref, arg_str, ffi_guard, ffi_guard_value, FfiError, FfiResult, Out,
};
use super::VsStatus;
use crate::config::DEFAULT_CONFIG_PATH;
use crate::Config;

/// The environment variable `vs_config_load_default` reads the file's path from.
const CONFIG_PATH_ENV: &str = "VS_CONF";

/// A loaded, validated configuration (opaque). Thread-safe and immutable.
///
/// Methods: `vs_config_load`, `vs_config_load_default`, `vs_config_with_max_pool_size`,
/// `vs_config_free`; used by `vs_pool_open`.
pub struct VsConfig {
    pub(crate) config: Config,
}

/// Loads and validates the configuration file at `path` (NUL-terminated).
///
/// On success `*out` receives a new config that the caller owns and frees with
/// `vs_config_free` (pools opened from it do not need it afterwards). Returns
/// `VS_ERR_CONFIG` for a missing, malformed or inconsistent file (the message names the
/// key, value and line), `VS_ERR_INVALID_ARGUMENT` for NULL arguments.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_config_load(path: *const c_char, out: *mut *mut VsConfig) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `path` is NULL or NUL-terminated, as this function's contract requires.
        let path = unsafe { arg_str(path, "path") }?;
        load_into(PathBuf::from(path), out)
    })
}

/// Loads the configuration the legacy way, without a path: from the file named by the
/// environment variable `VS_CONF`, or `/etc/vs/vs_conf.xml` when it is unset or empty.
///
/// Otherwise like `vs_config_load`: on success the caller owns `*out` and frees it with
/// `vs_config_free`; `VS_ERR_CONFIG` (the message names the path) when the file is
/// missing or invalid. The environment is read as `getenv` does, so do not change it from
/// another thread during the call.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_config_load_default(out: *mut *mut VsConfig) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        let path = match std::env::var_os(CONFIG_PATH_ENV) {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => PathBuf::from(DEFAULT_CONFIG_PATH),
        };
        load_into(path, out)
    })
}

/// Makes a copy of `config` whose pool opens at most `max_size` connections.
///
/// `max_size` caps DatabaseMaxPoolSize, never raises it: the copy's maximum is the smaller
/// of the two, and DatabaseInitialPoolSize is lowered to fit under it (the C++ shim's
/// legacy constructor uses `vs_pool_open_legacy` instead, whose `max_size` is the maximum).
/// `config` is not changed. On success the caller owns `*out` and frees it with `vs_config_free`;
/// `VS_ERR_INVALID_ARGUMENT` for NULL arguments or a `max_size` of 0.
///
/// # Safety
/// `config` is NULL or a live `VsConfig`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_config_with_max_pool_size(
    config: *const VsConfig,
    max_size: u32,
    out: *mut *mut VsConfig,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `config` is NULL or live, as this function's contract requires.
        let config = unsafe { arg_ref(config, "config") }?;
        if max_size == 0 {
            return Err(FfiError::invalid("max_size must be at least 1"));
        }
        let max_size = usize::try_from(max_size).unwrap_or(usize::MAX);
        out.write(into_raw(config.config.with_max_pool_size(max_size)?));
        Ok(())
    })
}

/// Frees a config from `vs_config_load`, `vs_config_load_default` or
/// `vs_config_with_max_pool_size`; NULL is a no-op.
///
/// # Safety
/// `config` is NULL or a config from those functions not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vs_config_free(config: *mut VsConfig) {
    ffi_guard_value((), || {
        if !config.is_null() {
            // SAFETY: a config from `into_raw` (an `Arc::into_raw`) not yet freed, as this
            // function's contract requires; this gives back that reference.
            drop(unsafe { Arc::from_raw(config.cast_const()) });
        }
    })
}

/// Loads the file at `path` and hands it to C through `out`.
fn load_into(path: PathBuf, out: Out<'_, *mut VsConfig>) -> FfiResult {
    let config = Config::load(&path)?;
    for warning in &config.warnings {
        log::warn!("{}: {warning}", path.display());
    }
    out.write(into_raw(config));
    Ok(())
}

fn into_raw(config: Config) -> *mut VsConfig {
    Arc::into_raw(Arc::new(VsConfig { config })).cast_mut()
}
