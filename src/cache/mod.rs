//! File data in the cache folder: one file per inode, read and written in place.
//!
//! Layout: `<CacheFolder>/data/<ino % 256 as 2 hex digits>/<ino as 16 hex digits>`. The
//! fan-out keeps directories small; the names are derived from inode numbers only, never
//! from user-supplied names.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Free and total space of the file system holding the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Fragment size in bytes.
    pub block_size: u64,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Blocks available to unprivileged users.
    pub blocks_available: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
}

/// The cache folder.
#[derive(Debug, Clone)]
pub struct Cache {
    data: PathBuf,
}

impl Cache {
    /// Opens (and creates if needed) the cache under `root`.
    pub fn open(root: &Path) -> io::Result<Cache> {
        let data = root.join("data");
        for bucket in 0..256u32 {
            std::fs::create_dir_all(data.join(format!("{bucket:02x}")))?;
        }
        Ok(Cache { data })
    }

    /// Where the data of `ino` lives.
    pub fn path(&self, ino: u64) -> PathBuf {
        self.data
            .join(format!("{:02x}", ino % 256))
            .join(format!("{ino:016x}"))
    }

    /// Opens the data file of `ino` for reading and writing, creating it empty if missing.
    pub fn open_data(&self, ino: u64) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.path(ino))
    }

    /// Sets the length of the data of `ino` (truncate or extend with zeros).
    pub fn set_len(&self, ino: u64, size: u64) -> io::Result<()> {
        self.open_data(ino)?.set_len(size)
    }

    /// Deletes the data of `ino`; a missing file is fine.
    pub fn remove(&self, ino: u64) -> io::Result<()> {
        match std::fs::remove_file(self.path(ino)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    /// Space on the cache file system.
    pub fn space(&self) -> io::Result<Space> {
        let path = std::ffi::CString::new(self.data.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: statvfs writes only into the struct passed; the path is NUL-terminated.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Space {
            block_size: st.f_frsize,
            blocks: st.f_blocks,
            blocks_free: st.f_bfree,
            blocks_available: st.f_bavail,
            files: st.f_files,
            files_free: st.f_ffree,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn data_files_round_trip_and_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let file = cache.open_data(0x1234).unwrap();
        file.write_all_at(b"hello", 3).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 8);
        assert_eq!(&buf, b"\0\0\0hello");
        assert!(cache.path(0x1234).ends_with("34/0000000000001234"));
        cache.set_len(0x1234, 2).unwrap();
        assert_eq!(std::fs::metadata(cache.path(0x1234)).unwrap().len(), 2);
        cache.remove(0x1234).unwrap();
        cache.remove(0x1234).unwrap();
        assert!(!cache.path(0x1234).exists());
        assert!(cache.space().unwrap().blocks > 0);
    }
}
