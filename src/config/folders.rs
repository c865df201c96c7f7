//! MountPoint, CacheFolder and ArchiveFolder must be three separate trees: a mount point
//! inside the cache folder (or the reverse, or the same directory) was accepted and every
//! write failed. Paths are compared component by component, first as written (cleaned of
//! `.`, `..` and trailing slashes), then with symlinks resolved where the paths exist.

use std::path::{Component, Path, PathBuf};

/// `path` cleaned without touching the file system: `.` dropped, `..` taken back, a
/// trailing slash dropped.
pub fn lexical(path: &Path) -> PathBuf {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    clean
}

/// `path` cleaned, with the longest existing prefix of its parent resolved (symlinks
/// followed) and the last component as written. Nothing is looked up through the last
/// component, so this is safe for a mount point whose server is gone or hung.
pub fn resolved_parent(path: &Path) -> PathBuf {
    let clean = lexical(path);
    match (clean.parent(), clean.file_name()) {
        (Some(parent), Some(name)) => resolve_existing_prefix(parent)
            .unwrap_or_else(|_| parent.to_path_buf())
            .join(name),
        _ => clean, // `/`
    }
}

/// [`resolved_parent`], with the last component resolved too if it is a symlink. Parts
/// that cannot be resolved stay as written.
pub fn resolved(path: &Path) -> PathBuf {
    let joined = resolved_parent(path);
    match std::fs::symlink_metadata(&joined) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(&joined).unwrap_or(joined)
        }
        _ => joined,
    }
}

/// The first pair of `folders` (key, path) where one is the other or inside it, described.
pub fn first_overlap(folders: &[(&str, &Path)]) -> Option<String> {
    for (i, &(key_a, a)) in folders.iter().enumerate() {
        for &(key_b, b) in &folders[i + 1..] {
            let (shown_a, shown_b) = (a.display(), b.display());
            if a == b {
                return Some(format!(
                    "{key_a} and {key_b} are the same directory ({shown_a})"
                ));
            }
            if a.starts_with(b) {
                return Some(format!("{key_a} ({shown_a}) is inside {key_b} ({shown_b})"));
            }
            if b.starts_with(a) {
                return Some(format!("{key_b} ({shown_b}) is inside {key_a} ({shown_a})"));
            }
        }
    }
    None
}

/// Canonicalises the longest existing prefix of `path` and appends the rest (the missing
/// components, unresolved). Errors other than a missing component stop the walk; a path of
/// which nothing exists is `NotFound`. Shared with the server's mount point handling.
pub(crate) fn resolve_existing_prefix(path: &Path) -> std::io::Result<PathBuf> {
    let mut missing = Vec::new();
    let mut current = path.to_path_buf();
    loop {
        match std::fs::canonicalize(&current) {
            Ok(mut real) => {
                real.extend(missing.iter().rev());
                return Ok(real);
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => match current.file_name() {
                Some(name) => {
                    missing.push(name.to_os_string());
                    current.pop();
                }
                None => return Err(err),
            },
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: &str, b: &str) -> Option<String> {
        let (a, b) = (lexical(Path::new(a)), lexical(Path::new(b)));
        first_overlap(&[("A", &a), ("B", &b)])
    }

    #[test]
    fn overlap_is_component_wise_after_cleaning() {
        assert_eq!(overlap("/srv/vs/cache", "/srv/vs/cachex"), None);
        assert_eq!(overlap("/srv/a", "/srv/b"), None);
        assert_eq!(
            overlap("/srv/vs/", "/srv/./vs"),
            Some("A and B are the same directory (/srv/vs)".into())
        );
        assert_eq!(
            overlap("/srv/vs/cache/../cache/mnt/", "/srv/vs/cache"),
            Some("A (/srv/vs/cache/mnt) is inside B (/srv/vs/cache)".into())
        );
        assert_eq!(
            overlap("/srv", "/srv/vs"),
            Some("B (/srv/vs) is inside A (/srv)".into())
        );
    }

    #[test]
    fn symlinks_are_resolved_where_they_exist() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(real.join("cache")).unwrap();
        std::os::unix::fs::symlink(real.join("cache"), real.join("link")).unwrap();
        assert_eq!(resolved(&real.join("link/mnt/x")), real.join("cache/mnt/x"));
        assert_eq!(resolved(&real.join("link")), real.join("cache"));
        assert_eq!(resolved(&real.join("missing/.")), real.join("missing"));
        assert_eq!(resolved_parent(&real.join("link")), real.join("link"));
        assert_eq!(
            resolved_parent(&real.join("link/mnt")),
            real.join("cache/mnt")
        );
    }
}
