//! The local journal: sizes and times of files that the catalog has not recorded yet, kept
//! in `<CacheFolder>/journal` so that a stop (or crash) while the database cannot take
//! them loses nothing `write()` acknowledged.
//!
//! It is written whole, atomically (temporary file, fsync, rename, fsync of the folder),
//! when a write-back round leaves changes unsaved (the database failed) and when the file
//! system stops with changes unsaved; it is removed once a round saves everything. It is
//! never written per `write()`. At start it is replayed into the catalog before anything is
//! served; an entry is applied only if the catalog has recorded no newer change of that
//! inode (its status change time is not later than the entry's).
//!
//! Format: a `valuestor-journal 1` line, one `ino size mtime atime ctime` line per inode
//! (times in nanoseconds), and an `end COUNT` line that proves the record complete.

use std::io;
use std::path::{Path, PathBuf};

/// File name of the journal inside the cache folder.
pub const JOURNAL_FILE: &str = "journal";

const HEADER: &str = "valuestor-journal 1";

/// Unsaved size and times of one inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// The inode.
    pub ino: u64,
    /// Its size.
    pub size: u64,
    /// Last content change (ns).
    pub mtime: i64,
    /// Last access (ns).
    pub atime: i64,
    /// Last status change (ns).
    pub ctime: i64,
}

/// The journal of one cache folder.
#[derive(Debug)]
pub struct Journal {
    root: PathBuf,
    /// Whether a journal file is on disk (so clearing costs nothing when there is none).
    on_disk: bool,
}

impl Journal {
    /// The journal of the cache folder `root`.
    pub fn new(root: &Path) -> Journal {
        Journal {
            root: root.to_path_buf(),
            on_disk: root.join(JOURNAL_FILE).exists(),
        }
    }

    /// The journal file's path.
    pub fn path(&self) -> PathBuf {
        self.root.join(JOURNAL_FILE)
    }

    /// The entries on disk (none if there is no journal); a damaged journal is an error.
    pub fn read(&self) -> io::Result<Vec<Pending>> {
        let text = match std::fs::read_to_string(self.path()) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        parse(&text).map_err(|line| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: damaged at line {line}", self.path().display()),
            )
        })
    }

    /// Makes `entries` what the journal holds, durably; no entries removes it.
    pub fn record(&mut self, entries: &[Pending]) -> io::Result<()> {
        if entries.is_empty() {
            return self.clear();
        }
        crate::cache::write_atomically(&self.root, JOURNAL_FILE, render(entries).as_bytes())?;
        self.on_disk = true;
        Ok(())
    }

    /// Removes the journal (everything in it reached the catalog), durably.
    pub fn clear(&mut self) -> io::Result<()> {
        if self.on_disk {
            crate::cache::remove_durably(&self.root, JOURNAL_FILE)?;
            self.on_disk = false;
        }
        Ok(())
    }
}

fn render(entries: &[Pending]) -> String {
    let mut text = format!("{HEADER}\n");
    for e in entries {
        text.push_str(&format!(
            "{} {} {} {} {}\n",
            e.ino, e.size, e.mtime, e.atime, e.ctime
        ));
    }
    text.push_str(&format!("end {}\n", entries.len()));
    text
}

/// The entries of a journal's text, or the 1-based line where it is damaged.
fn parse(text: &str) -> Result<Vec<Pending>, usize> {
    let mut lines = text.lines().enumerate();
    if lines.next().map(|(_, l)| l) != Some(HEADER) {
        return Err(1);
    }
    let mut entries = Vec::new();
    for (index, line) in lines {
        if let Some(count) = line.strip_prefix("end ") {
            return match count.parse::<usize>() {
                Ok(count) if count == entries.len() => Ok(entries),
                _ => Err(index + 1),
            };
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let entry = match fields[..] {
            [ino, size, mtime, atime, ctime] => (|| {
                Some(Pending {
                    ino: ino.parse().ok()?,
                    size: size.parse().ok()?,
                    mtime: mtime.parse().ok()?,
                    atime: atime.parse().ok()?,
                    ctime: ctime.parse().ok()?,
                })
            })(),
            _ => None,
        };
        entries.push(entry.ok_or(index + 1)?);
    }
    Err(text.lines().count() + 1) // no end line: cut short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u64, size: u64) -> Pending {
        Pending {
            ino,
            size,
            mtime: -5,
            atime: 7,
            ctime: 1_700_000_000_000_000_000,
        }
    }

    #[test]
    fn entries_round_trip_and_an_empty_record_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::new(dir.path());
        assert_eq!(journal.read().unwrap(), []);
        let entries = [entry(3, 1 << 20), entry(u64::MAX, 0)];
        journal.record(&entries).unwrap();
        assert_eq!(Journal::new(dir.path()).read().unwrap(), entries);
        journal.record(&[]).unwrap();
        assert!(!journal.path().exists(), "nothing pending: no journal");
        assert!(!dir.path().join(".journal.tmp").exists());
    }

    #[test]
    fn a_damaged_or_cut_journal_is_an_error_naming_the_line() {
        let good = render(&[entry(1, 2), entry(3, 4)]);
        assert_eq!(parse(&good).unwrap().len(), 2);
        let cut = good.lines().take(2).collect::<Vec<_>>().join("\n");
        assert_eq!(parse(&cut), Err(3));
        assert_eq!(parse(&good.replace("3 4", "3 x")), Err(3));
        assert_eq!(parse(&good.replace("end 2", "end 3")), Err(4));
        assert_eq!(parse("other 1\nend 0\n"), Err(1));
    }
}
