//! FileMaxSize and CacheFreeLeastSize applied to writes, truncations and allocations.
//!
//! As Linux does for its maximum file size: a write starting at or beyond the limit fails
//! with `EFBIG`, one crossing it is shortened to end there; a truncate or `fallocate` past
//! it fails with `EFBIG`. Writes and allocations that would take the cache file system's
//! available space below the reserve fail with `ENOSPC` ([`Reserve`]).

use super::VfsError as Errno;

use crate::cache::Reserve;

/// The limits of one file system.
#[derive(Debug)]
pub(super) struct Limits {
    /// Largest file size in bytes; 0 means no limit.
    file_max_size: u64,
    reserve: Reserve,
}

impl Limits {
    pub(super) fn new(file_max_size: u64, reserve: Reserve) -> Limits {
        Limits {
            file_max_size,
            reserve,
        }
    }

    /// How many of `len` bytes may be written at `offset`.
    pub(super) fn write_len(&self, offset: u64, len: usize) -> Result<usize, Errno> {
        let len = match self.file_max_size {
            0 => len,
            max if len > 0 && offset >= max => return Err(Errno::EFBIG),
            max => len.min(usize::try_from(max - offset).unwrap_or(usize::MAX)),
        };
        if self.reserve.admit(len as u64) {
            Ok(len)
        } else {
            Err(Errno::ENOSPC)
        }
    }

    /// Checks a new size set by truncate or reached by `fallocate`.
    pub(super) fn check_size(&self, size: u64) -> Result<(), Errno> {
        if self.file_max_size != 0 && size > self.file_max_size {
            return Err(Errno::EFBIG);
        }
        Ok(())
    }

    /// Checks an allocation of `len` bytes ending at `end`; `allocates` is false for
    /// requests that free space (punching a hole).
    pub(super) fn allocate(&self, end: u64, len: u64, allocates: bool) -> Result<(), Errno> {
        self.check_size(end)?;
        if allocates && !self.reserve.admit(len) {
            return Err(Errno::ENOSPC);
        }
        Ok(())
    }

    /// Available bytes on the cache file system, as estimated by the reserve.
    pub(super) fn available_estimate(&self) -> u64 {
        self.reserve.available_estimate()
    }

    /// The reserve in bytes (not offered as available space).
    pub(super) fn reserved(&self) -> u64 {
        self.reserve.least()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(max: u64, least: u64, available: u64) -> Limits {
        Limits::new(max, Reserve::new(least, Box::new(move || Ok(available))))
    }

    #[test]
    fn writes_stop_at_the_maximum_file_size() {
        let limits = make(1000, 0, 0);
        assert_eq!(limits.write_len(0, 1000), Ok(1000));
        assert_eq!(
            limits.write_len(900, 200),
            Ok(100),
            "shortened to end at the limit"
        );
        assert_eq!(limits.write_len(1000, 1), Err(Errno::EFBIG));
        assert_eq!(limits.write_len(u64::MAX, 1), Err(Errno::EFBIG));
        assert_eq!(limits.write_len(1000, 0), Ok(0));
        assert_eq!(limits.check_size(1000), Ok(()));
        assert_eq!(limits.check_size(1001), Err(Errno::EFBIG));
        assert_eq!(make(0, 0, 0).write_len(u64::MAX - 1, 1 << 20), Ok(1 << 20));
    }

    #[test]
    fn writes_and_allocations_keep_the_reserve() {
        let limits = make(0, 1 << 20, 2 << 20);
        assert_eq!(limits.write_len(0, 1 << 20), Ok(1 << 20));
        assert_eq!(limits.write_len(1 << 20, 1), Err(Errno::ENOSPC));
        assert_eq!(limits.allocate(10, 10, true), Err(Errno::ENOSPC));
        assert_eq!(
            limits.allocate(10, 10, false),
            Ok(()),
            "punching a hole frees"
        );
    }
}
