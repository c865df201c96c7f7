//! The one error type of the metadata engine: each variant says what a caller can do.

/// Why a metadata operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// A POSIX outcome for the caller (ENOENT, EEXIST, ENOTEMPTY, ...): report it as is.
    #[error("errno {0}")]
    Errno(i32),
    /// The change conflicted with a concurrent one (deadlock, lock wait timeout, a
    /// replication certification failure) and was rolled back: running it again may succeed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached in time, or the connection broke or timed out
    /// (the outcome of a change in flight is unknown).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else (an unexpected answer, bad data, a newer schema): a bug or damage, not
    /// something a retry fixes.
    #[error("internal: {0}")]
    Internal(String),
}
