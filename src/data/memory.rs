//! [`MemoryStore`]: a data store in memory, the fake for fast tests of the core (no cache
//! folder to bind, nothing to sweep). Its journal folder is a temporary directory.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{DataFile, DataStore, Reserve, Space};

/// Largest data one inode may hold here (a bound on what a test can make it allocate).
pub const MEMORY_FILE_MAX: u64 = 64 << 20;

/// Data of every inode in memory; lost when dropped.
pub struct MemoryStore {
    folder: PathBuf,
    files: Mutex<HashMap<u64, Arc<Mutex<Vec<u8>>>>>,
}

impl MemoryStore {
    /// An empty store keeping the core's journal in `folder` (an existing directory).
    pub fn new(folder: &Path) -> MemoryStore {
        MemoryStore {
            folder: folder.to_path_buf(),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// The data of `ino`, if it has some (for tests to compare).
    pub fn contents(&self, ino: u64) -> Option<Vec<u8>> {
        self.files.lock().get(&ino).map(|data| data.lock().clone())
    }
}

/// An open handle on data in a [`MemoryStore`].
struct MemoryFile(Arc<Mutex<Vec<u8>>>);

fn too_large() -> io::Error {
    io::Error::from_raw_os_error(libc::EFBIG)
}

/// `offset + len` as an index into data, if within [`MEMORY_FILE_MAX`].
fn end_of(offset: u64, len: usize) -> io::Result<usize> {
    let end = offset.checked_add(len as u64).ok_or_else(too_large)?;
    if end > MEMORY_FILE_MAX {
        return Err(too_large());
    }
    usize::try_from(end).map_err(|_| too_large())
}

impl DataFile for MemoryFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = self.0.lock();
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let end = end_of(offset, buf.len())?;
        let mut data = self.0.lock();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[end - buf.len()..end].copy_from_slice(buf);
        Ok(buf.len())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = end_of(len, 0)?;
        self.0.lock().resize(len, 0);
        Ok(())
    }

    fn blocks(&self) -> io::Result<u64> {
        Ok((self.0.lock().len() as u64).div_ceil(512))
    }

    fn sync(&self, _data_only: bool) -> io::Result<()> {
        Ok(())
    }

    fn allocate(&self, mode: i32, offset: u64, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| too_large())?;
        let end = end_of(offset, len)?;
        let mut data = self.0.lock();
        if mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0 {
            let stop = end.min(data.len());
            let start = (end - len).min(stop);
            data[start..stop].fill(0);
        }
        if mode & libc::FALLOC_FL_KEEP_SIZE == 0 && data.len() < end {
            data.resize(end, 0);
        }
        Ok(())
    }
}

impl DataStore for MemoryStore {
    fn open(&self, ino: u64) -> io::Result<Option<Box<dyn DataFile>>> {
        Ok(self
            .files
            .lock()
            .get(&ino)
            .map(|data| Box::new(MemoryFile(Arc::clone(data))) as Box<dyn DataFile>))
    }

    fn create(&self, ino: u64) -> io::Result<(Box<dyn DataFile>, bool)> {
        let mut files = self.files.lock();
        let created = !files.contains_key(&ino);
        let data = files.entry(ino).or_default();
        Ok((Box::new(MemoryFile(Arc::clone(data))), created))
    }

    fn remove(&self, ino: u64) -> io::Result<()> {
        self.files.lock().remove(&ino);
        Ok(())
    }

    fn sync_entry(&self, _ino: u64) -> io::Result<()> {
        Ok(())
    }

    fn blocks(&self, ino: u64) -> u64 {
        self.files
            .lock()
            .get(&ino)
            .map_or(0, |data| (data.lock().len() as u64).div_ceil(512))
    }

    fn describe(&self, ino: u64) -> String {
        format!("in-memory data of inode {ino}")
    }

    fn space(&self) -> io::Result<Space> {
        Ok(Space {
            block_size: 4096,
            blocks: 1 << 20,
            blocks_free: 1 << 20,
            blocks_available: 1 << 20,
            files: 1 << 20,
            files_free: 1 << 20,
        })
    }

    fn reserve(&self, least: u64) -> Reserve {
        Reserve::new(least, Box::new(|| Ok(u64::MAX)))
    }

    fn folder(&self) -> &Path {
        &self.folder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_data_reads_back_what_was_written_with_holes_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new(dir.path());
        assert!(store.open(3).unwrap().is_none(), "nothing yet");
        let (file, created) = store.create(3).unwrap();
        assert!(created);
        assert_eq!(file.write_at(b"abc", 4).unwrap(), 3);
        let mut buf = [9u8; 10];
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 7);
        assert_eq!(&buf[..7], b"\0\0\0\0abc");
        file.allocate(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 4, 1)
            .unwrap();
        assert_eq!(store.contents(3).unwrap(), b"\0\0\0\0\0bc");
        assert!(file.set_len(MEMORY_FILE_MAX + 1).is_err(), "bounded");
        store.remove(3).unwrap();
        assert!(store.open(3).unwrap().is_none());
    }
}
