//! The mount point: its path as the kernel names it, whether a mount is there (live, ours,
//! or stale after a killed server), and cleaning a stale one up before mounting.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::config::resolve_existing_prefix;
use crate::fs::lazy_unmount;

/// The source (FSName) our mounts show in /proc/self/mountinfo.
const OUR_SOURCE: &str = "valuestor";

/// `path` made absolute, without a trailing slash, with symlinks resolved (in its parents,
/// and the last component too if it is a symlink), as /proc/self/mountinfo names it.
///
/// The mount point itself is never `stat`ed through a stale mount: its parent is resolved,
/// and the last component only read with `lstat`.
pub(super) fn normalise_mountpoint(path: &Path) -> Result<PathBuf, String> {
    let absolute =
        std::path::absolute(path).map_err(|e| format!("mount point {}: {e}", path.display()))?;
    // Collecting the components drops a trailing slash and `.` components.
    let cleaned: PathBuf = absolute.components().collect();
    let (Some(parent), Some(name)) = (cleaned.parent(), cleaned.file_name()) else {
        return Err(format!(
            "mount point {}: must name a directory below /, not end in `..`",
            path.display()
        ));
    };
    let joined = resolve_existing_prefix(parent)
        .map_err(|e| format!("mount point parent {}: {e}", parent.display()))?
        .join(name);
    match std::fs::symlink_metadata(&joined) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(&joined)
            .map_err(|e| format!("mount point {} (a symlink): {e}", joined.display())),
        _ => Ok(joined),
    }
}

/// What is at a mount point.
#[derive(Debug, PartialEq, Eq)]
enum MountState {
    NotMounted,
    /// A FUSE mount whose server is gone (`ENOTCONN`).
    Stale,
    /// A working mount.
    Live(MountEntry),
}

/// Creates the mount point if missing and detaches stale mounts left by a killed server;
/// refuses a mount point where a running vfsserver is mounted.
pub(super) fn prepare_mountpoint(mountpoint: &Path) -> Result<(), String> {
    // A stale mount may hide another one below it: detach until none is left.
    for _ in 0..8 {
        match mount_state(mountpoint) {
            MountState::NotMounted => break,
            MountState::Stale => {
                log::warn!(
                    "{} is a stale mount (its server is gone); detaching it",
                    mountpoint.display()
                );
                lazy_unmount(mountpoint);
                if mount_state(mountpoint) == MountState::Stale {
                    return Err(format!(
                        "cannot detach the stale mount at {0}; detach it by hand (umount -l {0})",
                        mountpoint.display()
                    ));
                }
            }
            MountState::Live(entry) if entry.is_ours() => {
                return Err(format!(
                    "{} is already mounted by a running vfsserver; refusing to mount on top \
                     of it: stop the other server first",
                    mountpoint.display()
                ))
            }
            MountState::Live(entry) => {
                log::warn!(
                    "{} has a {} file system ({}) mounted; mounting on top of it",
                    mountpoint.display(),
                    entry.fstype,
                    entry.source
                );
                break;
            }
        }
    }
    match std::fs::metadata(mountpoint) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => std::fs::create_dir_all(mountpoint)
            .map_err(|e| format!("cannot create mount point {}: {e}", mountpoint.display())),
        Err(err) => Err(format!("mount point {}: {err}", mountpoint.display())),
        Ok(meta) if !meta.is_dir() => Err(format!(
            "mount point {} is not a directory",
            mountpoint.display()
        )),
        Ok(_) => Ok(()),
    }
}

/// A stale mount is recognised by `ENOTCONN` from `stat` or `readdir`, whatever mountinfo
/// says (the kernel may answer `stat` from its cache; listing needs the server).
fn mount_state(path: &Path) -> MountState {
    let probe = std::fs::metadata(path)
        .and_then(|_| std::fs::read_dir(path).map(|_| ()))
        .err();
    if probe.and_then(|e| e.raw_os_error()) == Some(libc::ENOTCONN) {
        return MountState::Stale;
    }
    match mount_entry(path) {
        Some(entry) => MountState::Live(entry),
        None => MountState::NotMounted,
    }
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MountEntry {
    major: u32,
    minor: u32,
    mount_point: PathBuf,
    fstype: String,
    source: String,
}

impl MountEntry {
    /// Parses a mountinfo line (see proc(5)); octal escapes in the path are undone.
    fn parse(line: &str) -> Option<MountEntry> {
        let mut fields = line.split(' ');
        let (_id, _parent, device, _root, mount_point) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let mut rest = fields.skip_while(|&f| f != "-").skip(1);
        let (fstype, source) = (rest.next()?, rest.next()?);
        let (major, minor) = device.split_once(':')?;
        let text = |field: &str| String::from_utf8_lossy(&unescape_mountinfo(field)).into_owned();
        Some(MountEntry {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
            mount_point: PathBuf::from(OsString::from_vec(unescape_mountinfo(mount_point))),
            fstype: text(fstype),
            source: text(source),
        })
    }

    /// Whether a vfsserver made this mount: type `fuse` (mounted directly, as root) or
    /// `fuse.valuestor` (through fusermount3), source `valuestor`.
    pub(super) fn is_ours(&self) -> bool {
        (self.fstype == "fuse" || self.fstype == "fuse.valuestor") && self.source == OUR_SOURCE
    }

    /// The connection's name under /sys/fs/fuse/connections (the kernel's `dev_t`).
    pub(super) fn connection_id(&self) -> u64 {
        (u64::from(self.major) << 20) | u64::from(self.minor)
    }
}

/// The top-most mount at exactly `path`, per /proc/self/mountinfo.
pub(super) fn mount_entry(path: &Path) -> Option<MountEntry> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts
        .lines()
        .rev()
        .filter_map(MountEntry::parse)
        .find(|entry| entry.mount_point == path)
}

/// Undoes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`
/// backslash) in a mountinfo field.
fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
            .and_then(|n| u8::try_from(n).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/plain"), b"/plain");
        assert_eq!(
            unescape_mountinfo(r"/a\040b\011c\012d\134e"),
            b"/a b\tc\nd\\e"
        );
        // Not an escape: too short, not octal, out of range.
        assert_eq!(unescape_mountinfo(r"/x\04"), br"/x\04");
        assert_eq!(unescape_mountinfo(r"/x\089"), br"/x\089");
        assert_eq!(unescape_mountinfo(r"/x\777"), br"/x\777");
    }

    #[test]
    fn mountinfo_line_gives_device_path_and_type() {
        let line = r"812 35 0:123 / /tmp/vs\040mnt rw,nosuid,nodev,relatime shared:1 master:2 - fuse.valuestor valuestor rw,user_id=0";
        let entry = MountEntry::parse(line).unwrap();
        assert_eq!(entry.mount_point, Path::new("/tmp/vs mnt"));
        assert_eq!(entry.fstype, "fuse.valuestor");
        assert!(entry.is_ours());
        assert_eq!((entry.major, entry.minor), (0, 123));
        assert_eq!(entry.connection_id(), 123);
        let direct = "90 35 0:50 / /opt/VS/vsMounts rw - fuse valuestor rw,user_id=0";
        assert!(MountEntry::parse(direct).unwrap().is_ours());
        let other = "91 35 0:51 / /mnt rw - fuse.sshfs host:/ rw";
        assert!(!MountEntry::parse(other).unwrap().is_ours());
        assert_eq!(MountEntry::parse("garbage"), None);
    }

    #[test]
    fn mount_point_loses_trailing_slash_and_symlinked_parent() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let configured = dir.path().join("link").join("vs mnt/");
        assert_eq!(
            normalise_mountpoint(&configured).unwrap(),
            real.join("vs mnt")
        );
        // Missing directories are kept as written, below the resolved part.
        let deep = dir.path().join("link/a/./b/");
        assert_eq!(normalise_mountpoint(&deep).unwrap(), real.join("a/b"));
        // A mount point that is itself a symlink resolves to its target.
        std::os::unix::fs::symlink(&real, dir.path().join("mnt-link")).unwrap();
        assert_eq!(
            normalise_mountpoint(&dir.path().join("mnt-link/")).unwrap(),
            real
        );
        assert!(normalise_mountpoint(Path::new("/")).is_err());
    }

    #[test]
    fn plain_directory_is_not_mounted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(mount_state(dir.path()), MountState::NotMounted);
        let root = mount_state(Path::new("/"));
        assert!(matches!(root, MountState::Live(_)), "{root:?}");
    }

    /// A file system that answers nothing but the kernel's defaults.
    struct Empty;

    impl fuser::Filesystem for Empty {}

    #[test]
    fn aborted_mount_is_stale_however_its_path_is_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let real = root.join("mnt");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&root, root.join("link")).unwrap();
        let session = fuser::spawn_mount(Empty, &real, &fuser::Config::default())
            .expect("mount (needs root)");
        let entry = mount_entry(&real).expect("the mount is in mountinfo");
        super::super::fusectl::abort_connection(entry.connection_id())
            .expect("abort the FUSE connection");
        assert_eq!(mount_state(&real), MountState::Stale);
        // mountinfo knows no such path, yet the mount behind it is stale.
        let spelled = root.join("link/mnt/");
        assert_eq!(mount_entry(&spelled), None);
        assert_eq!(mount_state(&spelled), MountState::Stale);
        lazy_unmount(&real);
        // Already detached: fuser's own unmount has nothing left to do.
        let _ = session.umount_and_join();
        assert_eq!(mount_state(&real), MountState::NotMounted);
    }
}
