//! A mounted valuestor file system on a private MariaDB, unmounted when dropped (even when
//! the test panics), for tests that drive it through ordinary system calls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use valuestor::cache::Cache;
use valuestor::catalog::Catalog;
use valuestor::fs::{Mounted, VsFs};
use valuestor::{Pool, PoolOptions};

use super::{pool_options, MariaDb};

/// A mount in a temporary directory, with its cache folder and database.
pub struct MountedFs {
    // Declared first: dropped (unmounted) before the database and directories go.
    mounted: Option<Mounted>,
    /// A size-limited tmpfs mounted on the cache folder, if any.
    small_cache: bool,
    pool: Pool,
    root: tempfile::TempDir,
    /// The database; tests may kill and restart it.
    pub db: MariaDb,
}

impl MountedFs {
    /// Starts a database and mounts a fresh file system.
    pub fn start() -> MountedFs {
        MountedFs::start_with(|_| {})
    }

    /// Like `start`, with pool options adjusted by `tweak`.
    pub fn start_with(tweak: impl FnOnce(&mut PoolOptions)) -> MountedFs {
        let db = MariaDb::start();
        let mut options = pool_options(&db);
        options.max_size = 4;
        tweak(&mut options);
        let pool = Pool::new(options).expect("pool starts");
        pool.wait_until_connected(Duration::from_secs(10))
            .expect("pool connects");
        let root = tempfile::Builder::new()
            .prefix("vs-test-fs-")
            .tempdir()
            .expect("temporary directory");
        std::fs::create_dir(root.path().join("mnt")).unwrap();
        let mut fs = MountedFs {
            mounted: None,
            small_cache: false,
            pool,
            root,
            db,
        };
        fs.mount();
        fs
    }

    /// Like `start`, with the cache folder on a tmpfs of `bytes` bytes (needs root).
    pub fn start_with_small_cache(bytes: u64) -> MountedFs {
        let mut fs = MountedFs::start();
        fs.unmount();
        let cache = fs.cache_dir();
        std::fs::remove_dir_all(&cache).unwrap();
        std::fs::create_dir(&cache).unwrap();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes}"),
                "vs-test-cache",
            ])
            .arg(&cache)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs cache needs root");
        fs.small_cache = true;
        fs.mount();
        fs
    }

    /// The mount point.
    pub fn mnt(&self) -> PathBuf {
        self.root.path().join("mnt")
    }

    /// A path inside the mount.
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.mnt().join(relative)
    }

    /// The cache folder.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    /// The pool the file system uses.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Mounts (again) with a new file system instance over the same catalog and cache.
    pub fn mount(&mut self) {
        assert!(self.mounted.is_none(), "already mounted");
        let cache = Cache::open(&self.cache_dir()).expect("cache folder");
        let fs = VsFs::new(Catalog::new(self.pool.clone()), cache).expect("file system starts");
        self.mounted = Some(Mounted::spawn(fs, &self.mnt()).expect("mount"));
    }

    /// Unmounts (flushing everything); the data stays in the catalog and cache.
    pub fn unmount(&mut self) {
        if let Some(mounted) = self.mounted.take() {
            mounted.unmount().expect("unmount");
        }
    }

    /// Unmounts and mounts again.
    pub fn remount(&mut self) {
        self.unmount();
        self.mount();
    }
}

impl Drop for MountedFs {
    fn drop(&mut self) {
        drop(self.mounted.take());
        if self.small_cache {
            valuestor::fs::lazy_unmount(&self.cache_dir());
        }
    }
}
