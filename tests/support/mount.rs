//! A mounted valuestor file system on a private MariaDB, unmounted when dropped (even when
//! the test panics), for tests that drive it through ordinary system calls.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use valuestor::cache::Cache;
use valuestor::fs::{FsOptions, Mounted, VsFs};
use valuestor::meta::mysql::MysqlMeta;
use valuestor::{Pool, PoolOptions};

use super::{pool_options, MariaDb};

/// A mount in a temporary directory, with its cache folder and database.
pub struct MountedFs {
    // Declared first: dropped (unmounted) before the database and directories go.
    mounted: Option<Mounted>,
    /// A size-limited tmpfs mounted on the cache folder, if any.
    small_cache: bool,
    pool: Pool,
    options: PoolOptions,
    fs_options: FsOptions,
    root: tempfile::TempDir,
    /// The database; tests may kill, pause and restart it.
    pub db: MariaDb,
}

impl MountedFs {
    /// Starts a database and mounts a fresh file system.
    pub fn start() -> MountedFs {
        MountedFs::start_with(|_| {})
    }

    /// Like `start`, with pool options adjusted by `tweak`.
    pub fn start_with(tweak: impl FnOnce(&mut PoolOptions)) -> MountedFs {
        MountedFs::start_with_options(tweak, FsOptions::default())
    }

    /// Like `start`, with pool options adjusted by `tweak` and file system options `fs`.
    pub fn start_with_options(tweak: impl FnOnce(&mut PoolOptions), fs: FsOptions) -> MountedFs {
        let db = MariaDb::start();
        let mut options = pool_options(&db);
        options.max_size = 4;
        tweak(&mut options);
        let pool = connected_pool(&options);
        let root = tempfile::Builder::new()
            .prefix("vs-test-fs-")
            .tempdir()
            .expect("temporary directory");
        std::fs::create_dir(root.path().join("mnt")).unwrap();
        let mut mounted = MountedFs {
            mounted: None,
            small_cache: false,
            pool,
            options,
            fs_options: fs,
            root,
            db,
        };
        mounted.mount();
        mounted
    }

    /// Like `start`, with the cache folder on a tmpfs of `bytes` bytes and no
    /// CacheFreeLeastSize, so the cache can fill up completely (needs root).
    pub fn start_with_small_cache(bytes: u64) -> MountedFs {
        MountedFs::start_with_small_cache_options(bytes, no_reserve())
    }

    /// Like `start_with_small_cache`, with file system options `fs`.
    pub fn start_with_small_cache_options(bytes: u64, fs: FsOptions) -> MountedFs {
        MountedFs::start_with_cache_tmpfs(&format!("size={bytes}"), fs)
    }

    /// Like `start_with_small_cache`, with room for only `data_files` data files besides
    /// the cache's own directories (needs root).
    pub fn start_with_few_cache_files(bytes: u64, data_files: u64) -> MountedFs {
        // The tmpfs root, `data`, its 256 buckets and the cache's `identity` take one inode
        // each.
        let inodes = 2 + 256 + 1 + data_files;
        MountedFs::start_with_cache_tmpfs(&format!("size={bytes},nr_inodes={inodes}"), no_reserve())
    }

    fn start_with_cache_tmpfs(mount_options: &str, options: FsOptions) -> MountedFs {
        let mut fs = MountedFs::start();
        fs.unmount();
        fs.fs_options = options;
        let cache = fs.cache_dir();
        std::fs::remove_dir_all(&cache).unwrap();
        std::fs::create_dir(&cache).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", mount_options, "vs-test-cache"])
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

    /// The data file of inode `ino` in the cache folder.
    pub fn cache_file(&self, ino: u64) -> PathBuf {
        self.cache_dir()
            .join("data")
            .join(format!("{:02x}", ino % 256))
            .join(format!("{ino:016x}"))
    }

    /// The pool the file system uses.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Mounts (again) with a new file system instance over the same catalog and cache.
    pub fn mount(&mut self) {
        assert!(self.mounted.is_none(), "already mounted");
        let cache = Cache::open(&self.cache_dir()).expect("cache folder");
        let catalog = std::sync::Arc::new(MysqlMeta::new(self.pool.clone()));
        let fs = VsFs::with_options(catalog, cache, self.fs_options.clone())
            .expect("file system starts");
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

    /// Ends the file system as a killed server would end: nothing it had not committed
    /// reaches the catalog afterwards (its pool is closed first), the kernel connection is
    /// aborted (no flush or release arrives for files still open) and the mount goes. A new
    /// pool is made for the next `mount`.
    pub fn crash(&mut self) {
        let mounted = self.mounted.take().expect("mounted");
        let dev = std::fs::metadata(self.mnt()).expect("stat mount").dev();
        self.pool.close();
        abort_fuse_connection(dev);
        drop(mounted); // the session has ended; this unmounts (lazily if needed) and joins it
        self.pool = connected_pool(&self.options);
    }

    /// Waits until the catalog and cache pass [`super::consistency::problems`] (releases
    /// reach the server after `close` returns), and panics with the problems otherwise.
    pub fn await_consistent(&self) {
        let mut conn = self.db.connect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let problems = super::consistency::problems(&mut conn, Some(&self.cache_dir()));
            if problems.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "catalog inconsistent:\n{}",
                problems.join("\n")
            );
            // Nothing to block on: the release runs in the server after close(2) returned.
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// File system options without a CacheFreeLeastSize.
fn no_reserve() -> FsOptions {
    FsOptions {
        cache_free_least_size: 0,
        ..FsOptions::default()
    }
}

fn connected_pool(options: &PoolOptions) -> Pool {
    let pool = Pool::new(options.clone()).expect("pool starts");
    pool.wait_until_connected(Duration::from_secs(10))
        .expect("pool connects");
    pool
}

/// Aborts the FUSE connection of the mount whose device is `dev`, through fusectl (mounted
/// for the moment if the system has not mounted it, and unmounted again).
fn abort_fuse_connection(dev: u64) {
    static FUSECTL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = FUSECTL.lock().unwrap_or_else(|e| e.into_inner());
    let connections = Path::new("/sys/fs/fuse/connections");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // fusectl mounted elsewhere (another test's private directory) does not count.
    let mounted_here = !mounts.lines().any(|l| {
        l.contains(" - fusectl ") && l.split(' ').nth(4) == Some("/sys/fs/fuse/connections")
    });
    if mounted_here {
        let status = std::process::Command::new("mount")
            .args(["-t", "fusectl", "fusectl"])
            .arg(connections)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting fusectl needs root");
    }
    // The connection is named by the kernel's device number (major << 20 | minor).
    let kernel_dev = (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev));
    let abort = connections.join(kernel_dev.to_string()).join("abort");
    let aborted = std::fs::write(&abort, b"1");
    if mounted_here {
        let _ = std::process::Command::new("umount")
            .arg(connections)
            .status();
    }
    aborted.unwrap_or_else(|e| panic!("{}: {e}", abort.display()));
}
