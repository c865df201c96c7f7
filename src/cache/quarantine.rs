//! The quarantine: data files the start-up sweep found without an inode are moved (renamed,
//! never copied or deleted) to `<CacheFolder>/quarantine/<UTC time>/<bucket>/<name>`, one
//! folder per sweep named `YYYYMMDDTHHMMSSZ`; bytes past an inode's recorded size are
//! copied there (`<name>.from-<size>`) before the sweep cuts them. They leave `data/` so
//! that a new inode that gets the same number never sees them, and stay until an operator
//! purges them (`vfsserver --purge-quarantine`) or they are older than
//! `CacheQuarantineDays`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Folder name of the quarantine inside the cache folder.
pub const QUARANTINE_DIR: &str = "quarantine";

/// The quarantine folder of one cache folder.
#[derive(Debug, Clone)]
pub struct Quarantine {
    dir: PathBuf,
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Sweep folders removed.
    pub folders: usize,
    /// Bytes of the files in them.
    pub bytes: u64,
}

impl Quarantine {
    /// The quarantine of the cache folder `root` (created when first used).
    pub fn new(root: &Path) -> Quarantine {
        Quarantine {
            dir: root.join(QUARANTINE_DIR),
        }
    }

    /// The quarantine folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder a sweep at `now` moves its files to.
    pub fn batch_dir(&self, now: SystemTime) -> PathBuf {
        self.dir.join(utc_name(now))
    }

    /// Moves `source` (a data file of bucket `bucket`, or another file of the cache) into
    /// `batch` (from [`Quarantine::batch_dir`]) and makes the move durable.
    pub fn take(&self, batch: &Path, bucket: Option<u8>, source: &Path) -> io::Result<PathBuf> {
        let bucket_dir = match bucket {
            Some(bucket) => batch.join(format!("{bucket:02x}")),
            None => batch.to_path_buf(),
        };
        std::fs::create_dir_all(&bucket_dir)?;
        let name = source
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let target = bucket_dir.join(name);
        std::fs::rename(source, &target)?;
        std::fs::File::open(&bucket_dir)?.sync_all()?;
        if let Some(parent) = source.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(target)
    }

    /// Copies the bytes of data file `source` (of bucket `bucket`) from offset `from` to
    /// its end into `batch`, as `<name>.from-<from>`, durably; the caller cuts them next.
    pub fn keep_tail(
        &self,
        batch: &Path,
        bucket: u8,
        source: &Path,
        from: u64,
    ) -> io::Result<PathBuf> {
        use std::io::{Seek, SeekFrom};
        let bucket_dir = batch.join(format!("{bucket:02x}"));
        std::fs::create_dir_all(&bucket_dir)?;
        let name = source
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let target = bucket_dir.join(format!("{}.from-{from}", name.to_string_lossy()));
        let mut input = std::fs::File::open(source)?;
        input.seek(SeekFrom::Start(from))?;
        let mut output = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)?;
        io::copy(&mut input, &mut output)?;
        output.sync_all()?;
        std::fs::File::open(&bucket_dir)?.sync_all()?;
        Ok(target)
    }

    /// Bytes of every file in the quarantine (0 if there is none).
    pub fn size(&self) -> io::Result<u64> {
        tree_size(&self.dir)
    }

    /// Removes sweep folders older than `age` at `now`; folders with other names are left.
    pub fn purge_older_than(&self, age: Duration, now: SystemTime) -> io::Result<Purged> {
        let cutoff = now.checked_sub(age).unwrap_or(UNIX_EPOCH);
        self.purge(|made| made < cutoff)
    }

    /// Removes every sweep folder (the operator's `--purge-quarantine`).
    pub fn purge_all(&self) -> io::Result<Purged> {
        self.purge(|_| true)
    }

    fn purge(&self, wanted: impl Fn(SystemTime) -> bool) -> io::Result<Purged> {
        let mut purged = Purged::default();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(purged),
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let Some(made) = entry.file_name().to_str().and_then(parse_utc_name) else {
                continue;
            };
            if !wanted(made) || !entry.file_type()?.is_dir() {
                continue;
            }
            let bytes = tree_size(&entry.path())?;
            std::fs::remove_dir_all(entry.path())?;
            purged.folders += 1;
            purged.bytes += bytes;
        }
        Ok(purged)
    }
}

/// Bytes of the regular files under `dir` (symlinks are not followed).
fn tree_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let meta = std::fs::symlink_metadata(entry.path())?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// `YYYYMMDDTHHMMSSZ` of `time` in UTC.
fn utc_name(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The time a `YYYYMMDDTHHMMSSZ` name stands for.
fn parse_utc_name(name: &str) -> Option<SystemTime> {
    let bytes = name.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let text = name.get(range)?;
        text.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year as i64, month as i64, day as i64)).ok()?;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(60);
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Year, month, day of day `days` since 1970-01-01 (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a date (proleptic Gregorian calendar).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_utc_times_and_parse_back() {
        let time = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        assert_eq!(utc_name(time), "20260528T202640Z");
        assert_eq!(parse_utc_name("20260528T202640Z"), Some(time));
        assert_eq!(utc_name(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(
            utc_name(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229T000000Z"
        );
        for bad in [
            "notes",
            "20261301T000000Z",
            "2026052xT202640Z",
            "20260528T202640",
        ] {
            assert_eq!(parse_utc_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn files_move_in_and_only_old_sweep_folders_are_purged() {
        let root = tempfile::tempdir().unwrap();
        let quarantine = Quarantine::new(root.path());
        assert_eq!(quarantine.size().unwrap(), 0, "none yet");
        let day = Duration::from_secs(86_400);
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        for (age, bytes) in [(40, 5usize), (2, 7)] {
            let source = root.path().join(format!("{:016x}", age));
            std::fs::write(&source, vec![1u8; bytes]).unwrap();
            let batch = quarantine.batch_dir(now - day * age);
            let moved = quarantine.take(&batch, Some(0x12), &source).unwrap();
            assert!(!source.exists() && moved.exists());
        }
        std::fs::create_dir_all(quarantine.dir().join("operator-notes")).unwrap();
        assert_eq!(quarantine.size().unwrap(), 12);
        let long = root.path().join("0000000000000077");
        std::fs::write(&long, b"keepTAIL").unwrap();
        let young = quarantine.batch_dir(now - day * 2);
        let tail = quarantine.keep_tail(&young, 0x77, &long, 4).unwrap();
        assert_eq!(std::fs::read(&tail).unwrap(), b"TAIL");
        assert!(
            tail.ends_with("77/0000000000000077.from-4"),
            "{}",
            tail.display()
        );
        assert_eq!(
            std::fs::read(&long).unwrap(),
            b"keepTAIL",
            "the source is left"
        );
        assert_eq!(quarantine.size().unwrap(), 16);

        let purged = quarantine.purge_older_than(day * 30, now).unwrap();
        assert_eq!(
            purged,
            Purged {
                folders: 1,
                bytes: 5
            }
        );
        assert_eq!(quarantine.size().unwrap(), 11, "the young folder stays");
        let purged = quarantine.purge_all().unwrap();
        assert_eq!(
            purged,
            Purged {
                folders: 1,
                bytes: 11
            }
        );
        assert!(
            quarantine.dir().join("operator-notes").exists(),
            "not ours: left"
        );
    }
}
