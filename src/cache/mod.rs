//! File data in the cache folder: one file per inode, read and written in place.
//!
//! Layout: `<CacheFolder>/data/<ino % 256 as 2 hex digits>/<ino as 16 hex digits>`. The
//! fan-out keeps directories small; the names are derived from inode numbers only, never
//! from user-supplied names. A data file is made on the first write (or extension), so
//! files that stay empty cost no cache entry; the file system answers a read of a non-empty
//! file whose data file is missing with `EIO`.
//!
//! Beside `data/`: `identity` binds the folder to its catalog ([`identity`]), `quarantine/`
//! holds data files the start-up sweep found without an inode ([`quarantine`]), and
//! `journal` keeps sizes and times the catalog has not recorded yet (`crate::fs`).

pub mod identity;
pub mod quarantine;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

mod reserve;

pub use reserve::{Reserve, RECHECK_INTERVAL, REFRESH_BYTES, REFRESH_INTERVAL};

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
    root: PathBuf,
    data: PathBuf,
}

impl Cache {
    /// Opens (and creates if needed) the cache under `root`.
    pub fn open(root: &Path) -> io::Result<Cache> {
        let data = root.join("data");
        for bucket in 0..256u32 {
            std::fs::create_dir_all(data.join(format!("{bucket:02x}")))?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
            data,
        })
    }

    /// The cache folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether any data file exists (stops at the first one found).
    pub fn has_data_files(&self) -> io::Result<bool> {
        for bucket in 0..=255u8 {
            if !self.bucket_inodes(bucket)?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Where the data of `ino` lives.
    pub fn path(&self, ino: u64) -> PathBuf {
        self.bucket(ino).join(format!("{ino:016x}"))
    }

    fn bucket(&self, ino: u64) -> PathBuf {
        self.data.join(format!("{:02x}", ino % 256))
    }

    /// Opens the data file of `ino` for reading and writing, creating it empty if missing;
    /// the flag says whether this call created it (its directory entry is then not durable
    /// until [`Cache::sync_entry`]).
    pub fn open_data(&self, ino: u64) -> io::Result<(File, bool)> {
        let path = self.path(ino);
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        loop {
            match options.open(&path) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                other => return other.map(|file| (file, false)),
            }
            match options.clone().create_new(true).mode(0o600).open(&path) {
                // Created by someone else in between: open theirs.
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                other => return other.map(|file| (file, true)),
            }
        }
    }

    /// Opens the data file of `ino` for reading and writing if it exists; a file that was
    /// never written has none.
    pub fn open_existing(&self, ino: u64) -> io::Result<Option<File>> {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(ino))
        {
            Ok(file) => Ok(Some(file)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The 512-byte blocks the data file of `ino` occupies (holes take none); 0 when it
    /// has none or it cannot be examined.
    pub fn allocated_blocks(&self, ino: u64) -> u64 {
        std::fs::symlink_metadata(self.path(ino)).map_or(0, |meta| meta.blocks())
    }

    /// Makes the directory entry of the data file of `ino` durable (fsyncs its bucket).
    pub fn sync_entry(&self, ino: u64) -> io::Result<()> {
        File::open(self.bucket(ino))?.sync_all()
    }

    /// Deletes the data of `ino`; a missing file is fine.
    pub fn remove(&self, ino: u64) -> io::Result<()> {
        match std::fs::remove_file(self.path(ino)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    /// The inodes with a data file in bucket `bucket`. Only names this cache gives are
    /// counted (16 hex digits of an inode that belongs in this bucket); anything else is
    /// left alone.
    pub fn bucket_inodes(&self, bucket: u8) -> io::Result<Vec<u64>> {
        let mut inos = Vec::new();
        for entry in std::fs::read_dir(self.data.join(format!("{bucket:02x}")))? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(ino) = u64::from_str_radix(name, 16) else {
                continue;
            };
            if name == format!("{ino:016x}") && ino % 256 == u64::from(bucket) {
                inos.push(ino);
            }
        }
        Ok(inos)
    }

    /// A [`Reserve`] of `least` bytes on the cache file system.
    pub fn reserve(&self, least: u64) -> Reserve {
        let cache = self.clone();
        Reserve::new(
            least,
            Box::new(move || {
                let space = cache.space()?;
                Ok(space.blocks_available.saturating_mul(space.block_size))
            }),
        )
    }

    /// Space on the cache file system.
    pub fn space(&self) -> io::Result<Space> {
        let st = nix::sys::statvfs::statvfs(&self.data)?;
        Ok(Space {
            block_size: st.fragment_size(),
            blocks: st.blocks(),
            blocks_free: st.blocks_free(),
            blocks_available: st.blocks_available(),
            files: st.files(),
            files_free: st.files_free(),
        })
    }
}

/// Replaces `dir/name` with `bytes` so that a crash leaves the old or the new content, never
/// a mix: written to a temporary file, fsynced, renamed over the name, directory fsynced.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Removes `dir/name` durably (the directory is fsynced); a missing file is fine.
pub fn remove_durably(dir: &Path, name: &str) -> io::Result<()> {
    match std::fs::remove_file(dir.join(name)) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn data_files_round_trip_and_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let (file, created) = cache.open_data(0x1234).unwrap();
        assert!(created);
        file.write_all_at(b"hello", 3).unwrap();
        let (file, created) = cache.open_data(0x1234).unwrap();
        assert!(!created, "an existing file is opened, not created");
        let mut buf = [0u8; 8];
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 8);
        assert_eq!(&buf, b"\0\0\0hello");
        assert!(cache.path(0x1234).ends_with("34/0000000000001234"));
        assert!(cache.open_existing(0x1234).unwrap().is_some());
        assert!(
            cache.open_existing(0x4321).unwrap().is_none(),
            "never written"
        );
        assert!(!cache.path(0x4321).exists(), "looking does not create");
        cache.sync_entry(0x1234).unwrap();
        cache.remove(0x1234).unwrap();
        cache.remove(0x1234).unwrap();
        assert!(!cache.path(0x1234).exists());
        assert!(cache.space().unwrap().blocks > 0);
    }

    #[test]
    fn bucket_listing_counts_only_names_the_cache_gives() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache.open_data(0x0134).unwrap();
        cache.open_data(0x0234).unwrap();
        let bucket = dir.path().join("data/34");
        for foreign in ["notes.txt", "1234", "0000000000001235", "000000000000ABCD"] {
            std::fs::write(bucket.join(foreign), b"").unwrap();
        }
        let mut inos = cache.bucket_inodes(0x34).unwrap();
        inos.sort();
        assert_eq!(inos, [0x0134, 0x0234]);
    }
}
