//! [`Cache`] as a [`DataStore`]: data files in the cache folder, custody by its identity,
//! quarantine and sweep ([`super::custody`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use nix::fcntl::{fallocate, FallocateFlags};

use super::custody::{self, Binding, StartError, SweepOptions};
use super::{DataFile, DataStore, Reserve, Space};
use crate::cache::Cache;
use crate::meta::MetaEngine;

impl DataFile for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        FileExt::write_at(self, buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn blocks(&self) -> io::Result<u64> {
        Ok(self.metadata()?.blocks())
    }

    fn sync(&self, data_only: bool) -> io::Result<()> {
        if data_only {
            self.sync_data()
        } else {
            self.sync_all()
        }
    }

    fn allocate(&self, mode: i32, offset: u64, len: u64) -> io::Result<()> {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        };
        fallocate(self, FallocateFlags::from_bits_retain(mode), offset, len)
            .map_err(|errno| io::Error::from_raw_os_error(errno as i32))
    }
}

impl DataStore for Cache {
    fn open(&self, ino: u64) -> io::Result<Option<Box<dyn DataFile>>> {
        Ok(self
            .open_existing(ino)?
            .map(|file| Box::new(file) as Box<dyn DataFile>))
    }

    fn create(&self, ino: u64) -> io::Result<(Box<dyn DataFile>, bool)> {
        let (file, created) = self.open_data(ino)?;
        Ok((Box::new(file), created))
    }

    fn remove(&self, ino: u64) -> io::Result<()> {
        Cache::remove(self, ino)
    }

    fn sync_entry(&self, ino: u64) -> io::Result<()> {
        Cache::sync_entry(self, ino)
    }

    fn blocks(&self, ino: u64) -> u64 {
        self.allocated_blocks(ino)
    }

    fn describe(&self, ino: u64) -> String {
        format!("data file {}", self.path(ino).display())
    }

    fn space(&self) -> io::Result<Space> {
        Cache::space(self)
    }

    fn reserve(&self, least: u64) -> Reserve {
        Cache::reserve(self, least)
    }

    fn folder(&self) -> &Path {
        self.root()
    }

    fn bind(
        &self,
        catalog: &dyn MetaEngine,
        rebind: bool,
        journal: &Path,
    ) -> Result<Binding, StartError> {
        let binding = custody::bind_cache(catalog, self, rebind)?;
        if binding.foreign {
            custody::set_aside_foreign(self, journal)?;
        }
        Ok(binding)
    }

    fn sweep(
        &self,
        catalog: &dyn MetaEngine,
        binding: Binding,
        options: &SweepOptions,
    ) -> Result<(), StartError> {
        custody::purge_old_quarantine(self, options.quarantine_days);
        custody::sweep_cache(catalog, self, options.quarantine_max_size, binding.foreign)?;
        binding.commit(self)
    }
}
