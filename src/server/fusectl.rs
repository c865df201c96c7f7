//! Aborting a FUSE connection through the fusectl file system, as root, without trusting
//! any path another user can reach: when fusectl is not mounted at its standard place it is
//! mounted for a moment on a private directory (made by `mkdtemp`, mode 0700, checked after
//! creation), and `abort` is opened without creating, truncating or following a symlink.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// Where fusectl is normally mounted.
const STANDARD: &str = "/sys/fs/fuse/connections";
/// Name prefix of the private directory fusectl is mounted on when it is not at [`STANDARD`].
const PRIVATE_PREFIX: &str = "vs-fusectl-";

/// Aborts FUSE connection `id` (its number under /sys/fs/fuse/connections), mounting
/// fusectl privately below the temporary directory if it is not mounted there.
pub(super) fn abort_connection(id: u64) -> Result<(), String> {
    abort_connection_via(id, Path::new(STANDARD), &std::env::temp_dir())
}

/// [`abort_connection`] with the standard fusectl directory and the base of the private
/// directory given.
fn abort_connection_via(id: u64, standard: &Path, temp: &Path) -> Result<(), String> {
    if standard.join(id.to_string()).exists() {
        return write_abort(standard, id)
            .map_err(|e| format!("{}/{id}/abort: {e}", standard.display()));
    }
    let dir = PrivateDir::create(temp, PRIVATE_PREFIX)
        .map_err(|e| format!("private directory for fusectl in {}: {e}", temp.display()))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    // fusectl takes no mount data.
    nix::mount::mount(
        Some("fusectl"),
        dir.path(),
        Some("fusectl"),
        flags,
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "cannot mount fusectl on {}: {}",
            dir.path().display(),
            io::Error::from(e)
        )
    })?;
    let written = write_abort(dir.path(), id)
        .map_err(|e| format!("{}/{id}/abort (fusectl): {e}", dir.path().display()));
    // UMOUNT_NOFOLLOW as the directory is ours and never a symlink. The abort's outcome is
    // what the caller needs; a mount left behind is only worth a line.
    if let Err(e) =
        nix::mount::umount2(dir.path(), MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)
    {
        log::warn!(
            "unmounting the private fusectl at {}: {e}",
            dir.path().display()
        );
    }
    written
}

/// Writes `1` to `<fusectl>/<id>/abort`: opened write-only, never created, truncated or
/// reached through a symlink in its last component.
fn write_abort(fusectl: &Path, id: u64) -> io::Result<()> {
    let path = fusectl.join(id.to_string()).join("abort");
    // std adds O_CLOEXEC; without create/truncate the flags are O_WRONLY|O_NOFOLLOW.
    let mut file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(b"1")
}

/// A directory only this user can use, made by `mkdtemp` (a fresh name, created
/// exclusively, mode 0700) and checked after creation; removed (if empty) on drop.
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Creates `<base>/<prefix>XXXXXX` and checks that it is a real directory (not a
    /// symlink), owned by this process's effective user, with mode 0700.
    fn create(base: &Path, prefix: &str) -> io::Result<PrivateDir> {
        let template = base.join(format!("{prefix}XXXXXX"));
        let dir = PrivateDir {
            path: nix::unistd::mkdtemp(&template)?,
        };
        let meta = std::fs::symlink_metadata(&dir.path)?;
        let euid = nix::unistd::geteuid().as_raw();
        let mode = meta.mode() & 0o7777;
        if !meta.file_type().is_dir() || meta.uid() != euid || mode != 0o700 {
            return Err(io::Error::other(format!(
                "{} is not a private directory after creation (directory: {}, owner {}, \
                 expected {euid}, mode {mode:o}, expected 700)",
                dir.path.display(),
                meta.file_type().is_dir(),
                meta.uid()
            )));
        }
        Ok(dir)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn abort_file_reached_through_a_symlink_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let fusectl = dir.path().join("fusectl");
        std::fs::create_dir_all(fusectl.join("42")).unwrap();
        symlink(&victim, fusectl.join("42/abort")).unwrap();

        let result = write_abort(&fusectl, 42);
        let err = result.expect_err("a symlinked abort file must not be opened");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn missing_abort_file_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("7")).unwrap();
        let err = write_abort(dir.path(), 7).expect_err("no abort file");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
        assert!(!dir.path().join("7/abort").exists());
    }

    #[test]
    fn private_dir_is_fresh_mode_700_and_ignores_a_planted_symlink() {
        let base = tempfile::tempdir().unwrap();
        let target = base.path().join("target");
        std::fs::create_dir(&target).unwrap();
        // What the old code used: a name anyone could predict and plant first.
        let planted = base
            .path()
            .join(format!("{PRIVATE_PREFIX}{}", std::process::id()));
        symlink(&target, &planted).unwrap();

        let dir = PrivateDir::create(base.path(), PRIVATE_PREFIX).unwrap();
        let path = dir.path().to_path_buf();
        assert_ne!(path, planted);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_dir(), "{path:?}: {meta:?}");
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            0o700,
            "mode of {path:?}"
        );
        assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
        drop(dir);
        assert!(!path.exists(), "{path:?} left behind");
        assert_eq!(std::fs::read_link(&planted).unwrap(), target);
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    }

    /// A file system that answers nothing but the kernel's defaults.
    struct Empty;

    impl fuser::Filesystem for Empty {}

    #[test]
    fn connection_is_aborted_through_a_private_fusectl_mount() {
        let dir = tempfile::tempdir().unwrap();
        let mnt = std::fs::canonicalize(dir.path()).unwrap().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let temp = dir.path().join("tmp");
        let target = dir.path().join("target");
        std::fs::create_dir(&temp).unwrap();
        std::fs::create_dir(&target).unwrap();
        let planted = temp.join(format!("{PRIVATE_PREFIX}{}", std::process::id()));
        symlink(&target, &planted).unwrap();
        let session =
            fuser::spawn_mount(Empty, &mnt, &fuser::Config::default()).expect("mount (needs root)");
        let entry = super::super::mountpoint::mount_entry(&mnt).expect("mounted");

        // A standard directory that does not exist forces the private fusectl mount.
        let missing = dir.path().join("no-fusectl");
        let result = abort_connection_via(entry.connection_id(), &missing, &temp);

        let after = std::fs::metadata(&mnt).and_then(|_| std::fs::read_dir(&mnt).map(|_| ()));
        crate::fs::lazy_unmount(&mnt);
        let _ = session.umount_and_join();
        // Nothing may stay mounted where the planted symlink points (other tests look for
        // fusectl in mountinfo): detach it before failing.
        let real_target = std::fs::canonicalize(&target).unwrap();
        let mounted_on_target = super::super::mountpoint::mount_entry(&real_target).is_some();
        if mounted_on_target {
            crate::fs::lazy_unmount(&real_target);
        }
        assert!(
            !mounted_on_target,
            "something was mounted on {real_target:?}"
        );
        assert_eq!(result, Ok(()));
        assert_eq!(
            after.as_ref().err().and_then(io::Error::raw_os_error),
            Some(libc::ENOTCONN),
            "the mount after the abort: {after:?}"
        );
        let left: Vec<_> = std::fs::read_dir(&temp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(
            left,
            std::slice::from_ref(&planted),
            "left in the temporary directory"
        );
        assert_eq!(std::fs::read_link(&planted).unwrap(), target);
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    }
}
