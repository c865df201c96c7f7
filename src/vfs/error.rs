//! The core's one error type: an errno for the caller. Catalog and data store errors become
//! one here, in one place ([`From`] impls), so every operation fails the same way.

use std::io;

use crate::log_limit;
use crate::meta::MetaError;

/// Why a file system operation failed: the errno to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("errno {0}")]
pub struct VfsError(i32);

impl VfsError {
    /// Bad file handle.
    pub const EBADF: VfsError = VfsError(libc::EBADF);
    /// Input/output error: the catalog or the data failed, or changes are fenced off.
    pub const EIO: VfsError = VfsError(libc::EIO);
    /// Invalid argument.
    pub const EINVAL: VfsError = VfsError(libc::EINVAL);
    /// Is a directory.
    pub const EISDIR: VfsError = VfsError(libc::EISDIR);
    /// Not a directory.
    pub const ENOTDIR: VfsError = VfsError(libc::ENOTDIR);
    /// No such device or address (opening a device node or fifo as a file).
    pub const ENXIO: VfsError = VfsError(libc::ENXIO);
    /// File too large (FileMaxSize).
    pub const EFBIG: VfsError = VfsError(libc::EFBIG);
    /// No space left (CacheFreeLeastSize, XattrMaxSize).
    pub const ENOSPC: VfsError = VfsError(libc::ENOSPC);
    /// No such attribute.
    pub const ENODATA: VfsError = VfsError(libc::ENODATA);
    /// Not supported.
    pub const EOPNOTSUPP: VfsError = VfsError(libc::EOPNOTSUPP);
    /// Result does not fit.
    pub const ERANGE: VfsError = VfsError(libc::ERANGE);

    /// The error for errno `code` (a positive `errno` value; anything else is `EIO`).
    pub fn from_errno(code: i32) -> VfsError {
        if code > 0 {
            VfsError(code)
        } else {
            VfsError::EIO
        }
    }

    /// The errno.
    pub fn errno(self) -> i32 {
        self.0
    }
}

/// A catalog error: its errno, or `EIO` (logged, rate-limited) when the catalog failed.
impl From<MetaError> for VfsError {
    fn from(err: MetaError) -> VfsError {
        match err {
            MetaError::Errno(code) => VfsError::from_errno(code),
            MetaError::Conflict(message)
            | MetaError::Unavailable(message)
            | MetaError::Internal(message) => {
                log_limit::warn(
                    "catalog unavailable",
                    format_args!("catalog unavailable: {message}"),
                );
                VfsError::EIO
            }
        }
    }
}

/// A data store error: its errno, or `EIO` when it has none.
impl From<io::Error> for VfsError {
    fn from(err: io::Error) -> VfsError {
        err.raw_os_error()
            .map_or(VfsError::EIO, VfsError::from_errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_the_layers_below_become_errnos() {
        assert_eq!(
            VfsError::from(MetaError::Errno(libc::ENOENT)).errno(),
            libc::ENOENT
        );
        for failed in [
            MetaError::Unavailable("gone".into()),
            MetaError::Conflict("deadlock".into()),
            MetaError::Internal("bad row".into()),
        ] {
            assert_eq!(VfsError::from(failed.clone()), VfsError::EIO, "{failed:?}");
        }
        let io = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(VfsError::from(io), VfsError::ENOSPC);
        let no_code = io::Error::from(io::ErrorKind::WriteZero);
        assert_eq!(VfsError::from(no_code), VfsError::EIO);
        assert_eq!(VfsError::from_errno(0), VfsError::EIO);
    }
}
