//! Mounting: the mount options the server uses, and a mounted session that unmounts when
//! dropped (lazily, if the mount is busy).

use std::io;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use nix::errno::Errno;
use nix::mount::MntFlags;

use super::VsFs;

/// Threads reading FUSE requests. They answer reads, writes and other requests that need no
/// database themselves and hand the rest to the catalog threads, so they never wait for the
/// database. Each costs a 16 MiB request buffer (address space, touched only as far as
/// requests are large); the server caps malloc arenas so threads do not each reserve 64 MiB.
const FUSE_THREADS: usize = 4;
/// How long an unmount is tried again while the mount is busy.
const BUSY_RETRY: Duration = Duration::from_secs(3);

/// Mount options: kernel permission checks, `allow_other` when running as root, a
/// multi-threaded session with one device descriptor per thread, and `nosuid,nodev` unless
/// `allow_suid_dev` (MountAllowSuidDev) is set.
///
/// Whoever can write the catalog decides every file's owner and mode, so honouring setuid
/// bits or device files would let any catalog writer become root; with `allow_suid_dev`
/// (honoured only when running as root, as the kernel requires) that is trusted.
pub fn mount_config(allow_suid_dev: bool) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("valuestor".into()),
        MountOption::Subtype("valuestor".into()),
        MountOption::DefaultPermissions,
    ];
    let root = nix::unistd::geteuid().is_root();
    if root {
        config.acl = SessionACL::All;
    }
    if root && allow_suid_dev {
        config.mount_options.push(MountOption::Dev);
        config.mount_options.push(MountOption::Suid);
    } else {
        config.mount_options.push(MountOption::NoDev);
        config.mount_options.push(MountOption::NoSuid);
    }
    config.n_threads = Some(FUSE_THREADS);
    config.clone_fd = true;
    config
}

/// A mounted file system served by background threads; unmounted on drop.
pub struct Mounted {
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
}

impl Mounted {
    /// Mounts `fs` at `mountpoint` (an existing directory) and serves it in the background,
    /// `nosuid,nodev`.
    pub fn spawn(fs: VsFs, mountpoint: &Path) -> io::Result<Mounted> {
        let handle = fs.stats_handle();
        let session = fuser::spawn_mount(fs, mountpoint, &mount_config(false))?;
        handle.set_notifier(session.notifier());
        Ok(Mounted {
            session: Some(session),
            mountpoint: mountpoint.to_path_buf(),
        })
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts and waits for the session to end; a busy mount is detached lazily.
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_now()
    }

    fn unmount_now(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // Busy for a moment when another thread of this process has just forked: the child
        // holds copies of our (close-on-exec) descriptors until it execs. The kernel gives
        // no notice when that ends, so try again shortly for a bounded time (as the server
        // does) before detaching.
        let deadline = Instant::now() + BUSY_RETRY;
        loop {
            match nix::mount::umount2(&self.mountpoint, MntFlags::empty()) {
                Ok(()) => return session.join(),
                Err(Errno::EBUSY) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                // Not ours to unmount directly (no privilege): fuser's way below.
                Err(_) => break,
            }
        }
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(err) => {
                lazy_unmount(&self.mountpoint);
                Err(err)
            }
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(err) = self.unmount_now() {
            log::warn!("unmounting {}: {err}", self.mountpoint.display());
        }
    }
}

/// Detaches a mount even if it is busy or its server is gone (`ENOTCONN`).
pub fn lazy_unmount(mountpoint: &Path) {
    if nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH).is_err() {
        let _ = std::process::Command::new("fusermount3")
            .arg("-uz")
            .arg(mountpoint)
            .status();
    }
}
