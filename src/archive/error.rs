//! The archive layer's error: every variant names the volume, the copy or the manifest line
//! it is about, and the cause.

use std::io;
use std::path::PathBuf;

/// What went wrong in the archive's data layer.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive folder itself cannot be listed.
    #[error("archive folder {path:?}: {source}")]
    Folder {
        /// The `ArchiveFolder` directory.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// A volume name that cannot be a directory of the archive folder (empty, `.`-prefixed,
    /// or containing `/` or NUL).
    #[error("volume name {0:?} is not a plain directory name")]
    BadVolumeName(String),
    /// The volume's directory is gone (unmounted, removed, tape taken out).
    #[error("volume {volume}: {path:?} is missing: {source}")]
    VolumeMissing {
        /// The volume's label.
        volume: String,
        /// The path that was not found.
        path: PathBuf,
        /// The system's error (ENOENT, ENOTDIR, ...).
        source: io::Error,
    },
    /// An I/O error on a volume other than a missing directory or a full file system.
    #[error("volume {volume}: {op} {path:?}: {source}")]
    VolumeIo {
        /// The volume's label.
        volume: String,
        /// What was being done (`"write copy"`, `"fsync directory"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The volume's file system ran out of space (ENOSPC/EDQUOT) while copy `seq` was written;
    /// the partial copy was removed and the manifest is unchanged.
    #[error("volume {volume} is full: copy {seq} ({path:?}) did not fit: {source}")]
    VolumeFull {
        /// The volume's label.
        volume: String,
        /// The copy that did not fit.
        seq: u64,
        /// Its (removed) partial file.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The volume has no more than its reserve (`TapeReservedMinFreeSize`) free, so it takes
    /// no new copy.
    #[error("volume {volume} takes no new copies: {free} bytes free, reserve is {reserve}")]
    BelowReserve {
        /// The volume's label.
        volume: String,
        /// Bytes available on its file system.
        free: u64,
        /// The reserve it must keep.
        reserve: u64,
    },
    /// Another writer (in this or another process) holds the volume.
    #[error("volume {volume} is being written by another writer ({path:?} is locked)")]
    VolumeBusy {
        /// The volume's label.
        volume: String,
        /// The lock file.
        path: PathBuf,
    },
    /// Reading the file to be archived failed; the partial copy was removed.
    #[error("copy {seq} to volume {volume}: reading the source failed: {source}")]
    Source {
        /// The volume's label.
        volume: String,
        /// The copy being written.
        seq: u64,
        /// The system's error.
        source: io::Error,
    },
    /// The copy was cancelled (the file changed or was deleted); the partial copy was removed
    /// and nothing was recorded.
    #[error("copy {seq} to volume {volume} was cancelled")]
    Cancelled {
        /// The volume's label.
        volume: String,
        /// The abandoned copy.
        seq: u64,
    },
    /// Writing a range read from a copy to its target (a cache file being recalled) failed.
    #[error("copy {seq} of volume {volume}: writing to the recall target failed: {source}")]
    Target {
        /// The volume's label.
        volume: String,
        /// The copy being read.
        seq: u64,
        /// The system's error.
        source: io::Error,
    },
    /// A copy asked for by (volume, seq) is not on the volume.
    #[error("volume {volume}: copy {seq} ({path:?}) is missing: {source}")]
    CopyMissing {
        /// The volume's label.
        volume: String,
        /// The copy's sequence number.
        seq: u64,
        /// Where it should be.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// A copy's block-sums sidecar exists but cannot be used: bad magic or version, a
    /// header that does not describe the copy (size, block count, length), or a CRC of the
    /// sidecar itself that does not match.
    #[error("volume {volume}: block sums of copy {seq} ({path:?}) are corrupt: {reason}")]
    SumsCorrupt {
        /// The volume's label.
        volume: String,
        /// The copy's sequence number.
        seq: u64,
        /// The sidecar file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A manifest line that is not a valid record and is not the torn last one.
    #[error("manifest {path:?} line {line}: {reason}")]
    ManifestCorrupt {
        /// The manifest file.
        path: PathBuf,
        /// The 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A record that cannot be written (path longer than the manifest allows).
    #[error("manifest record for inode {ino} is too long: path of {len} bytes (max {max})")]
    RecordTooLong {
        /// The file's inode.
        ino: u64,
        /// Its path's length in bytes.
        len: usize,
        /// The maximum path length.
        max: usize,
    },
}

impl ArchiveError {
    /// Maps an I/O error on a volume: a missing directory or file becomes
    /// [`ArchiveError::VolumeMissing`], anything else [`ArchiveError::VolumeIo`].
    pub(crate) fn volume(volume: &str, op: &'static str, path: PathBuf, source: io::Error) -> Self {
        if is_missing(&source) {
            ArchiveError::VolumeMissing {
                volume: volume.to_owned(),
                path,
                source,
            }
        } else {
            ArchiveError::VolumeIo {
                volume: volume.to_owned(),
                op,
                path,
                source,
            }
        }
    }
}

/// True for the errors that say a path (or one of its parents) is not there.
pub(crate) fn is_missing(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// True for the errors that say a file system is full.
pub(crate) fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}
