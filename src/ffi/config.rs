//! `VsConfig`: a loaded `vs_conf.xml`, shared and immutable.

use std::ffi::c_char;
use std::sync::Arc;

use super::guard::{arg_out, arg_str, ffi_guard, ffi_guard_value};
use super::VsStatus;
use crate::Config;

/// A loaded, validated configuration (opaque). Thread-safe and immutable.
///
/// Methods: `vs_config_load`, `vs_config_free`; used by `vs_pool_open`.
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
        let out = arg_out(out, "out")?;
        let path = arg_str(path, "path")?;
        let config = Config::load(path)?;
        for warning in &config.warnings {
            log::warn!("{path}: {warning}");
        }
        *out = Arc::into_raw(Arc::new(VsConfig { config })).cast_mut();
        Ok(())
    })
}

/// Frees a config from `vs_config_load`; NULL is a no-op.
///
/// # Safety
/// `config` is NULL or a config from `vs_config_load` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vs_config_free(config: *mut VsConfig) {
    ffi_guard_value((), || {
        if !config.is_null() {
            drop(Arc::from_raw(config.cast_const()));
        }
    })
}
