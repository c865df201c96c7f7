//! A consistency check of a catalog (and optionally its cache folder), for tests that race
//! changes against each other and then look at what was left.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use mysql::prelude::Queryable;

const DIRECTORY: u8 = 2;
const SYMLINK: u8 = 3;
const FILE: u8 = 1;
const ROOT: u64 = 1;

/// Everything wrong with the catalog behind `conn`, one line each; empty when consistent.
///
/// - every entry names an existing inode, inside an existing directory;
/// - a file's link count is the number of entries naming it; a directory is named once
///   (the root never) and has 2 + its subdirectories links;
/// - no inode is left without links (an orphan);
/// - symlinks and only symlinks have a target; attributes belong to existing inodes;
/// - with `cache`: every data file belongs to a regular file's inode and is as long as its
///   recorded size, and every regular file with a size has a data file (one that was never
///   written has none).
pub fn problems(conn: &mut mysql::Conn, cache: Option<&Path>) -> Vec<String> {
    let mut problems = Vec::new();
    let inodes: HashMap<u64, (u8, u32, u64)> = conn
        .query_map(
            "SELECT ino, kind, nlink, size FROM vs_inodes",
            |(ino, kind, nlink, size)| (ino, (kind, nlink, size)),
        )
        .expect("read inodes")
        .into_iter()
        .collect();
    // Released and damaged files keep their data only in the archive (a partial or stale
    // data file of theirs may be left by a crash; the next recall rewrites it).
    let away: HashSet<u64> = conn
        .query::<u64, _>("SELECT ino FROM vs_inodes WHERE data_state IN (4, 5)")
        .expect("read data states")
        .into_iter()
        .collect();
    let entries: Vec<(u64, Vec<u8>, u64)> = conn
        .query("SELECT parent, name, child FROM vs_dentries")
        .expect("read entries");
    let mut names = HashMap::<u64, u32>::new();
    let mut subdirs = HashMap::<u64, u32>::new();
    for (parent, name, child) in &entries {
        let shown = String::from_utf8_lossy(name);
        match inodes.get(parent) {
            Some((DIRECTORY, ..)) => {}
            Some(_) => problems.push(format!("entry {parent}/{shown} is in a non-directory")),
            None => problems.push(format!("entry {parent}/{shown} is in a missing directory")),
        }
        match inodes.get(child) {
            None => problems.push(format!(
                "entry {parent}/{shown} names missing inode {child}"
            )),
            Some((kind, ..)) => {
                *names.entry(*child).or_default() += 1;
                if *kind == DIRECTORY {
                    *subdirs.entry(*parent).or_default() += 1;
                }
            }
        }
    }
    for (ino, (kind, nlink, _)) in &inodes {
        let named = names.get(ino).copied().unwrap_or(0);
        if *nlink == 0 {
            problems.push(format!("inode {ino} is an orphan (no links)"));
        } else if *kind == DIRECTORY {
            let expected_names = u32::from(*ino != ROOT);
            if named != expected_names {
                problems.push(format!("directory {ino} is named {named} times"));
            }
            let expected = 2 + subdirs.get(ino).copied().unwrap_or(0);
            if *nlink != expected {
                problems.push(format!(
                    "directory {ino} has {nlink} links, expected {expected}"
                ));
            }
        } else if *nlink != named {
            problems.push(format!("inode {ino} has {nlink} links but {named} names"));
        }
    }
    let targets: HashSet<u64> = conn
        .query::<u64, _>("SELECT ino FROM vs_symlinks")
        .expect("read symlinks")
        .into_iter()
        .collect();
    for (ino, (kind, ..)) in &inodes {
        if (*kind == SYMLINK) != targets.contains(ino) {
            problems.push(format!(
                "inode {ino} (kind {kind}) and its symlink target disagree"
            ));
        }
    }
    for ino in targets.iter().filter(|ino| !inodes.contains_key(ino)) {
        problems.push(format!("symlink target of missing inode {ino}"));
    }
    let xattr_owners: Vec<u64> = conn
        .query("SELECT DISTINCT ino FROM vs_xattrs")
        .expect("read xattrs");
    for ino in xattr_owners.iter().filter(|ino| !inodes.contains_key(ino)) {
        problems.push(format!("extended attributes of missing inode {ino}"));
    }
    if let Some(cache) = cache {
        let files = data_files(cache);
        let with_data: std::collections::HashSet<u64> = files.iter().map(|(ino, _)| *ino).collect();
        for (ino, (kind, _, size)) in &inodes {
            if *kind == FILE && *size > 0 && !with_data.contains(ino) && !away.contains(ino) {
                problems.push(format!("inode {ino} has size {size} but no data file"));
            }
        }
        for (ino, len) in files {
            match inodes.get(&ino) {
                None => problems.push(format!("data file of missing inode {ino}")),
                Some((_, _, size)) if away.contains(&ino) && len <= *size => {}
                Some((kind, _, size)) if *kind != FILE || *size != len => problems.push(format!(
                    "data file of inode {ino} (kind {kind}, size {size}) has {len} bytes"
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

/// Everything wrong between the catalog behind `conn`, the cache folder `cache` and the
/// archive's volumes under `archive` (the archive tier), one line each; empty when they
/// agree (check [`problems`] too):
///
/// - an archived file has a live copy and its data file; a released or damaged file has a
///   live copy (a damaged one's copy may be what is missing);
/// - an inode has at most one live copy, and a live copy's inode exists;
/// - every copy the catalog records (live or superseded) that is live is on its volume
///   with its recorded size; no partial copy is left on a volume.
pub fn tier_problems(conn: &mut mysql::Conn, cache: &Path, archive: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let states: HashMap<u64, (u8, u64)> = conn
        .query_map(
            "SELECT ino, data_state, size FROM vs_inodes WHERE kind = 1",
            |(ino, state, size)| (ino, (state, size)),
        )
        .expect("read states")
        .into_iter()
        .collect();
    let copies: Vec<(u64, String, u64, u64, Option<i64>)> = conn
        .query("SELECT ino, CAST(volume AS CHAR), seq, size, superseded_ns FROM vs_copies")
        .expect("read copies");
    let mut live = HashMap::<u64, u32>::new();
    for (ino, volume, seq, size, superseded) in &copies {
        if superseded.is_some() {
            continue;
        }
        *live.entry(*ino).or_default() += 1;
        if !states.contains_key(ino) {
            problems.push(format!("live copy {volume}/{seq} of missing inode {ino}"));
        }
        let damaged = states.get(ino).is_some_and(|(state, _)| *state == 5);
        let path = archive.join(volume).join(format!("{seq:012}"));
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == *size => {}
            Ok(meta) => problems.push(format!(
                "copy {volume}/{seq} of inode {ino} has {} bytes, the catalog says {size}",
                meta.len()
            )),
            Err(_) if damaged => {}
            Err(err) => problems.push(format!(
                "copy {volume}/{seq} of inode {ino} is missing: {err}"
            )),
        }
    }
    let data: HashMap<u64, u64> = data_files(cache).into_iter().collect();
    for (ino, (state, size)) in &states {
        let copies = live.get(ino).copied().unwrap_or(0);
        if copies > 1 {
            problems.push(format!("inode {ino} has {copies} live copies"));
        }
        match state {
            3 if copies == 0 => problems.push(format!("archived inode {ino} has no live copy")),
            3 if data.get(ino) != Some(size) => problems.push(format!(
                "archived inode {ino} (size {size}) has data file {:?}",
                data.get(ino)
            )),
            4 | 5 if copies == 0 => problems.push(format!(
                "released inode {ino} (state {state}) has no live copy"
            )),
            _ => {}
        }
    }
    if let Ok(volumes) = std::fs::read_dir(archive) {
        for volume in volumes.flatten() {
            for entry in std::fs::read_dir(volume.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".partial") {
                    problems.push(format!("partial copy left: {}", entry.path().display()));
                }
            }
        }
    }
    problems
}

/// The inodes with a data file in `cache`, with the file's length.
pub fn data_files(cache: &Path) -> Vec<(u64, u64)> {
    let mut files = Vec::new();
    for bucket in std::fs::read_dir(cache.join("data")).expect("list cache") {
        let bucket = bucket.unwrap();
        let bucket_name = bucket.file_name().into_string().unwrap_or_default();
        for file in std::fs::read_dir(bucket.path()).expect("list bucket") {
            let file = file.unwrap();
            let name = file.file_name().into_string().unwrap_or_default();
            // Only names the cache gives (16 hex digits, in the bucket of the inode's low
            // byte); anything else is not its data.
            let Ok(ino) = u64::from_str_radix(&name, 16) else {
                continue;
            };
            if name == format!("{ino:016x}") && bucket_name == format!("{:02x}", ino % 256) {
                files.push((ino, file.metadata().unwrap().len()));
            }
        }
    }
    files
}
