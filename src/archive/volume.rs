//! The archive folder and its volumes: one directory per volume (a tape's barcode, an LTFS
//! mount in production), listed with their free space and whether they take new copies.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::error::ArchiveError;
use super::manifest::{ManifestWriter, MANIFEST_NAME};
use super::sums::sidecar_of_name;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Suffix of a copy still being written (`<seq>.partial`); a crash can leave one behind.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// The `ArchiveFolder`: a directory whose subdirectories are the volumes.
#[derive(Clone, Debug)]
pub struct ArchiveFolder {
    root: PathBuf,
    reserve: u64,
}

/// One volume as found by [`ArchiveFolder::scan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    /// The volume's label (its directory name).
    pub label: String,
    /// Its directory.
    pub path: PathBuf,
    /// Bytes available to new copies on its file system (`f_bavail * f_frsize`).
    pub free: u64,
    /// Size of its file system in bytes.
    pub total: u64,
    /// True when `free` is above the reserve (`TapeReservedMinFreeSize`).
    pub takes_copies: bool,
}

/// What [`ArchiveFolder::sweep`] cleaned up after a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// `.partial` files removed (copies interrupted before they were complete).
    pub partials_removed: Vec<PathBuf>,
    /// Manifests whose torn last line was cut off.
    pub torn_manifests: Vec<PathBuf>,
    /// Block-sums sidecars removed: `.sums.partial` files (interrupted before the copy was
    /// complete) and `.sums` files whose copy does not exist.
    pub sums_removed: Vec<PathBuf>,
}

impl ArchiveFolder {
    /// The archive at `root`; volumes take new copies while they have more than `reserve`
    /// bytes free (`TapeReservedMinFreeSize`).
    pub fn new(root: impl Into<PathBuf>, reserve: u64) -> Self {
        ArchiveFolder {
            root: root.into(),
            reserve,
        }
    }

    /// The archive folder's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The free space every volume keeps.
    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    /// The directory of volume `label`; the name is checked, the directory is not.
    pub fn volume_path(&self, label: &str) -> Result<PathBuf, ArchiveError> {
        check_label(label)?;
        Ok(self.root.join(label))
    }

    /// Lists the volumes (subdirectories; files and hidden entries are skipped), sorted by
    /// label, each with its free space. A volume that cannot be measured is an error naming
    /// it.
    pub fn scan(&self) -> Result<Vec<VolumeInfo>, ArchiveError> {
        let mut volumes = Vec::new();
        for label in self.labels()? {
            volumes.push(self.info(&label)?);
        }
        Ok(volumes)
    }

    /// Measures one volume.
    pub fn info(&self, label: &str) -> Result<VolumeInfo, ArchiveError> {
        let path = self.volume_path(label)?;
        let free = volume_space(label, &path)?;
        Ok(VolumeInfo {
            label: label.to_owned(),
            free: free.0,
            total: free.1,
            takes_copies: free.0 > self.reserve,
            path,
        })
    }

    /// The start-up sweep of every volume: removes `.partial` files and cuts torn manifest
    /// tails (see [`ArchiveFolder::sweep_volume`]). Run it before any writer starts.
    pub fn sweep(&self) -> Result<SweepReport, ArchiveError> {
        let mut report = SweepReport::default();
        for label in self.labels()? {
            let one = self.sweep_volume(&label)?;
            report.partials_removed.extend(one.partials_removed);
            report.torn_manifests.extend(one.torn_manifests);
            report.sums_removed.extend(one.sums_removed);
        }
        Ok(report)
    }

    /// Sweeps one volume after a crash: removes every `<seq>.partial` file (a copy that was
    /// never completed, hence never recorded), every `<seq>.sums.partial` file and every
    /// `<seq>.sums` file without its copy `<seq>`, and cuts off a torn last manifest line.
    /// Copies, their sidecars and complete records are never touched. Fails with [`ArchiveError::VolumeBusy`] while
    /// a writer holds the volume (its `.partial` file is a copy in progress).
    pub fn sweep_volume(&self, label: &str) -> Result<SweepReport, ArchiveError> {
        let path = self.volume_path(label)?;
        let _lock = lock_volume(label, &path)?;
        sweep_locked(label, &path)
    }

    /// The labels of all volumes, sorted.
    pub fn labels(&self) -> Result<Vec<String>, ArchiveError> {
        let entries = fs::read_dir(&self.root).map_err(|source| ArchiveError::Folder {
            path: self.root.clone(),
            source,
        })?;
        let mut labels = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ArchiveError::Folder {
                path: self.root.clone(),
                source,
            })?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                log::warn!(
                    "archive folder {:?}: skipping {:?}: not a UTF-8 volume name",
                    self.root,
                    entry.file_name()
                );
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            // Follows symbolic links: a volume may be a link to its mount point.
            match fs::metadata(entry.path()) {
                Ok(m) if m.is_dir() => labels.push(name),
                Ok(_) => {}
                Err(e) => log::warn!("archive folder {:?}: skipping {name:?}: {e}", self.root),
            }
        }
        labels.sort();
        Ok(labels)
    }
}

/// Name of the lock file a volume's writer holds (`flock`, exclusive) in the volume directory.
pub const LOCK_NAME: &str = ".lock";

/// Takes the volume's writer lock, or fails with [`ArchiveError::VolumeBusy`].
pub(crate) fn lock_volume(label: &str, path: &Path) -> Result<Flock<fs::File>, ArchiveError> {
    volume_space(label, path)?;
    let lock_path = path.join(LOCK_NAME);
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| ArchiveError::volume(label, "open lock file", lock_path.clone(), e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, Errno::EWOULDBLOCK)) => Err(ArchiveError::VolumeBusy {
            volume: label.to_owned(),
            path: lock_path,
        }),
        Err((_, e)) => Err(ArchiveError::volume(label, "lock", lock_path, e.into())),
    }
}

/// [`ArchiveFolder::sweep_volume`] for a caller that holds the volume's lock.
pub(crate) fn sweep_locked(label: &str, path: &Path) -> Result<SweepReport, ArchiveError> {
    let mut report = SweepReport::default();
    let names = list_names(label, path)?;
    for name in &names {
        if is_partial_name(name) {
            let file = path.join(name);
            fs::remove_file(&file)
                .map_err(|e| ArchiveError::volume(label, "remove partial copy", file.clone(), e))?;
            log::warn!("archive volume {label}: removed the interrupted copy {file:?}");
            report.partials_removed.push(file);
        }
    }
    let present: HashSet<&str> = names.iter().map(String::as_str).collect();
    for name in &names {
        let Some((copy, partial)) = sidecar_of_name(name) else {
            continue;
        };
        // A copy still named `.partial` was just removed, so its sidecar is an orphan too.
        if !partial && present.contains(copy) {
            continue;
        }
        let file = path.join(name);
        fs::remove_file(&file)
            .map_err(|e| ArchiveError::volume(label, "remove block sums", file.clone(), e))?;
        log::warn!(
            "archive volume {label}: removed {} block sums {file:?}",
            if partial { "interrupted" } else { "orphaned" }
        );
        report.sums_removed.push(file);
    }
    if !report.partials_removed.is_empty() || !report.sums_removed.is_empty() {
        sync_dir(label, path)?;
    }
    let manifest = path.join(MANIFEST_NAME);
    let len = |op| {
        fs::metadata(&manifest)
            .map(|m| m.len())
            .map_err(|e| ArchiveError::volume(label, op, manifest.clone(), e))
    };
    if manifest.exists() {
        let before = len("stat manifest")?;
        drop(ManifestWriter::open(label, &manifest)?);
        if len("stat manifest")? < before {
            report.torn_manifests.push(manifest);
        }
    }
    Ok(report)
}

/// True for a name `<digits>.partial`.
pub(crate) fn is_partial_name(name: &str) -> bool {
    name.strip_suffix(PARTIAL_SUFFIX)
        .is_some_and(|seq| !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()))
}

/// The sequence number of a complete copy's file name (all digits), if it is one.
pub(crate) fn copy_seq_of_name(name: &str) -> Option<u64> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// The names in a volume directory.
pub(crate) fn list_names(label: &str, path: &Path) -> Result<Vec<String>, ArchiveError> {
    let entries =
        fs::read_dir(path).map_err(|e| ArchiveError::volume(label, "list", path.to_owned(), e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ArchiveError::volume(label, "list", path.to_owned(), e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// `fsync`s a volume directory so renames and removals in it are on disk.
pub(crate) fn sync_dir(label: &str, path: &Path) -> Result<(), ArchiveError> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| ArchiveError::volume(label, "fsync directory", path.to_owned(), e))
}

/// (available, total) bytes on the file system of a volume directory.
pub(crate) fn volume_space(label: &str, path: &Path) -> Result<(u64, u64), ArchiveError> {
    let meta =
        fs::metadata(path).map_err(|e| ArchiveError::volume(label, "stat", path.to_owned(), e))?;
    if !meta.is_dir() {
        return Err(ArchiveError::VolumeMissing {
            volume: label.to_owned(),
            path: path.to_owned(),
            source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
        });
    }
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| ArchiveError::volume(label, "statvfs", path.to_owned(), e.into()))?;
    let unit = st.fragment_size();
    Ok((
        st.blocks_available().saturating_mul(unit),
        st.blocks().saturating_mul(unit),
    ))
}

fn check_label(label: &str) -> Result<(), ArchiveError> {
    if label.is_empty() || label.starts_with('.') || label.contains(['/', '\0']) {
        return Err(ArchiveError::BadVolumeName(label.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_and_copy_names_are_recognised() {
        assert!(is_partial_name("000000000012.partial"));
        assert!(!is_partial_name(".partial"));
        assert!(!is_partial_name("x.partial"));
        assert_eq!(copy_seq_of_name("000000000012"), Some(12));
        assert_eq!(copy_seq_of_name("manifest"), None);
        assert_eq!(copy_seq_of_name("12.partial"), None);
    }

    #[test]
    fn labels_that_escape_the_folder_are_refused() {
        let folder = ArchiveFolder::new("/nonexistent", 0);
        for bad in ["", ".", "..", ".hidden", "a/b", "a\0b"] {
            assert!(
                matches!(folder.volume_path(bad), Err(ArchiveError::BadVolumeName(_))),
                "{bad:?} accepted"
            );
        }
        assert_eq!(
            folder.volume_path("TAPE01L6").unwrap(),
            Path::new("/nonexistent/TAPE01L6")
        );
    }
}
