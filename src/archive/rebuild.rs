//! Rebuilding the catalog's view of the archive from the volumes alone: every volume's
//! manifest is streamed and, per inode, the latest copy that no mark has retired is kept.

use std::collections::HashMap;

use super::error::{is_missing, ArchiveError};
use super::manifest::{CopyRecord, ManifestReader, Record, TornTail, MANIFEST_NAME};
use super::volume::ArchiveFolder;

/// A copy that a rebuilt catalog would point to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveCopy {
    /// The volume holding it.
    pub volume: String,
    /// Its manifest record.
    pub record: CopyRecord,
}

/// What [`rebuild`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rebuild {
    /// Per inode, its latest live copy; sorted by inode.
    pub live: Vec<LiveCopy>,
    /// Torn last lines skipped (each also logged once).
    pub torn: Vec<TornTail>,
    /// Copy records read.
    pub copies: u64,
    /// Mark records read.
    pub marks: u64,
}

/// Reads the manifests of all volumes of `folder` and returns, per inode, its latest live
/// copy: a copy is live until a superseded or deleted mark on its volume names it; among
/// the live copies of one inode the latest is the one with the highest ctime, then the
/// latest recorded, then the highest (volume, seq). Records are streamed; memory grows with
/// the live copies, not with the manifests' length. A corrupt line is an error naming the
/// manifest and the line; a torn last line is skipped and reported.
pub fn rebuild(folder: &ArchiveFolder) -> Result<Rebuild, ArchiveError> {
    let mut out = Rebuild::default();
    let mut best: HashMap<u64, LiveCopy> = HashMap::new();
    for label in folder.labels()? {
        let path = folder.volume_path(&label)?.join(MANIFEST_NAME);
        let mut reader = match ManifestReader::open(&path) {
            Ok(r) => r,
            Err(e) if is_missing(&e) && folder.volume_path(&label)?.is_dir() => continue,
            Err(e) => return Err(ArchiveError::volume(&label, "open manifest", path, e)),
        };
        // The live copies of this volume by seq: marks only name copies on their own volume.
        let mut live: HashMap<u64, CopyRecord> = HashMap::new();
        for record in reader.by_ref() {
            match record? {
                Record::Copy(c) => {
                    out.copies += 1;
                    live.insert(c.seq, c);
                }
                Record::Mark(m) => {
                    out.marks += 1;
                    // A copy number is never reused on a volume, so the mark retires that copy
                    // whatever inode it names: a catalog rebuilt from the manifests numbers
                    // its files anew, and its clean-up marks copies with the new numbers.
                    match live.remove(&m.seq) {
                        Some(c) if c.meta.ino != m.ino => log::info!(
                            "archive manifest {path:?}: a {:?} mark names copy {} as inode {}, \
                             recorded for inode {} (renumbered by a rebuild): copy retired",
                            m.kind,
                            m.seq,
                            m.ino,
                            c.meta.ino
                        ),
                        Some(_) => {}
                        None => log::warn!(
                            "archive manifest {path:?}: a {:?} mark names copy {} (inode {}), \
                             which is not a live copy on this volume: mark ignored",
                            m.kind,
                            m.seq,
                            m.ino
                        ),
                    }
                }
            }
        }
        if let Some(t) = reader.torn() {
            out.torn.push(t.clone());
        }
        for (_, record) in live {
            let candidate = LiveCopy {
                volume: label.clone(),
                record,
            };
            match best.get(&candidate.record.meta.ino) {
                Some(current) if order_key(current) >= order_key(&candidate) => {}
                _ => {
                    best.insert(candidate.record.meta.ino, candidate);
                }
            }
        }
    }
    out.live = best.into_values().collect();
    out.live.sort_by_key(|c| c.record.meta.ino);
    Ok(out)
}

fn order_key(c: &LiveCopy) -> (i64, i64, &str, u64) {
    (
        c.record.meta.ctime_ns,
        c.record.archived_ns,
        c.volume.as_str(),
        c.record.seq,
    )
}
