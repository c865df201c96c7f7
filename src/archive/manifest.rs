//! A volume's manifest: an append-only text file with one record per copy written to the
//! volume and one per later mark (superseded, deleted), so a lost catalog can be rebuilt
//! from the volumes alone.
//!
//! Format (version 1), one record a line, fields separated by one space, every byte of a
//! value printable ASCII:
//!
//! ```text
//! valuestor-archive-manifest 1
//! copy seq=1 ino=42 size=5 mode=100644 uid=0 gid=0 mtime=1700000000000000000 ctime=... archived=... md5=<hex>|- sha1=<hex>|- path=/a%20b crc=1a2b3c4d
//! superseded seq=1 ino=42 archived=... crc=...
//! ```
//!
//! `mode` is octal, times are nanoseconds since the epoch, `path` is the file's path at
//! archive time with every byte outside `!`..`~` and `%` itself written `%XX`. `crc` is the
//! CRC-32 (IEEE) of the line's bytes before ` crc=`. Each append is one `write` followed by
//! `fdatasync`. A crash during an append leaves a last line without its newline: readers
//! ignore it and report it once, the next writer cuts it off. Any other bad line is an error
//! that names it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::ArchiveError;

/// The manifest's file name inside a volume directory.
pub const MANIFEST_NAME: &str = "manifest";
/// The first line of every manifest.
pub const HEADER: &str = "valuestor-archive-manifest 1";
/// The longest path a record holds, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// The longest line a reader accepts, newline excluded: a record with a `MAX_PATH` path
/// escaped entirely (`%XX` for each byte) and every other field at its widest fits.
pub const MAX_LINE: usize = 3 * MAX_PATH + 512;

/// The attributes of an archived file, as they were when its copy was made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileMeta {
    /// The file's inode number in the catalog.
    pub ino: u64,
    /// Its path at archive time (raw bytes; at most [`MAX_PATH`]).
    pub path: Vec<u8>,
    /// Mode bits including the file type (`st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

/// One copy on a volume, as its manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyRecord {
    /// The copy's sequence number on its volume (also its file name there).
    pub seq: u64,
    /// Bytes in the copy.
    pub size: u64,
    /// The archived file's attributes.
    pub meta: FileMeta,
    /// When the copy was recorded, nanoseconds since the epoch.
    pub archived_ns: i64,
    /// MD5 of the content, when computed.
    pub md5: Option<[u8; 16]>,
    /// SHA1 of the content, when computed.
    pub sha1: Option<[u8; 20]>,
}

/// What a mark says about an earlier copy on the same volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// A newer copy of the file replaces this one.
    Superseded,
    /// The file was deleted.
    Deleted,
}

/// A mark appended after a copy: that copy is no longer live (it may be cleaned up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Superseded or deleted.
    pub kind: MarkKind,
    /// The marked copy's sequence number on this volume.
    pub seq: u64,
    /// The marked copy's inode (checked against the copy's record on rebuild).
    pub ino: u64,
    /// When the mark was recorded, nanoseconds since the epoch.
    pub archived_ns: i64,
}

/// One manifest record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A copy was written.
    Copy(CopyRecord),
    /// An earlier copy was marked.
    Mark(Mark),
}

/// A torn last line found by a reader (a crash during an append).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The manifest file.
    pub path: PathBuf,
    /// The torn line's 1-based number.
    pub line: u64,
    /// Byte offset where it starts: the valid manifest's length.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// Streams the records of one manifest, one bounded line at a time.
///
/// Iterating yields records in file order; an error ends the iteration. After the last
/// record, [`ManifestReader::torn`] tells whether a torn last line was skipped.
pub struct ManifestReader {
    path: PathBuf,
    input: BufReader<File>,
    line: u64,
    offset: u64,
    buf: Vec<u8>,
    torn: Option<TornTail>,
    done: bool,
}

/// Appends records to one volume's manifest; each append is on disk when it returns.
pub struct ManifestWriter {
    path: PathBuf,
    file: File,
    len: u64,
    max_seq: u64,
}

impl ManifestReader {
    /// Opens the manifest at `path` for reading.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        Ok(ManifestReader {
            path: path.to_owned(),
            input: BufReader::with_capacity(64 * 1024, file),
            line: 0,
            offset: 0,
            buf: Vec::with_capacity(256),
            torn: None,
            done: false,
        })
    }

    /// The torn last line skipped by the iteration, if any (known once it has ended).
    pub fn torn(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// Length in bytes of the manifest's complete lines read so far.
    pub fn valid_len(&self) -> u64 {
        self.offset
    }

    fn corrupt(&self, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::ManifestCorrupt {
            path: self.path.clone(),
            line: self.line,
            reason: reason.into(),
        }
    }

    /// Reads the next complete line into `self.buf` (newline removed). `Ok(false)` at the end
    /// (including a torn last line, which is recorded in `self.torn`).
    fn next_line(&mut self) -> Result<bool, ArchiveError> {
        self.buf.clear();
        self.line += 1;
        let limit = MAX_LINE as u64 + 1;
        let n = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| self.corrupt(format!("read failed: {e}")))?;
        if n == 0 {
            return Ok(false);
        }
        if self.buf.last() != Some(&b'\n') {
            if n as u64 == limit {
                return Err(self.corrupt(format!("longer than {MAX_LINE} bytes")));
            }
            // No newline and the reader is at the end: the tail of an interrupted append.
            self.torn = Some(TornTail {
                path: self.path.clone(),
                line: self.line,
                offset: self.offset,
                len: n as u64,
            });
            return Ok(false);
        }
        self.offset += n as u64;
        self.buf.pop();
        Ok(true)
    }
}

impl Iterator for ManifestReader {
    type Item = Result<Record, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = (|| {
            if self.line == 0 {
                if !self.next_line()? {
                    return Ok(None);
                }
                if self.buf != HEADER.as_bytes() {
                    let got = String::from_utf8_lossy(&self.buf).into_owned();
                    return Err(self.corrupt(format!("not a manifest header: {got:?}")));
                }
            }
            if !self.next_line()? {
                return Ok(None);
            }
            parse_record(&self.buf)
                .map(Some)
                .map_err(|r| self.corrupt(r))
        })();
        match result {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                if let Some(t) = &self.torn {
                    log::warn!(
                        "archive manifest {:?}: ignoring torn last line {} ({} bytes at offset {}): \
                         an append was interrupted",
                        t.path,
                        t.line,
                        t.len,
                        t.offset
                    );
                }
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl ManifestWriter {
    /// Opens (creating if needed) the manifest at `path` for appending: reads it through,
    /// cuts off a torn last line, writes the header into an empty file. `volume` names the
    /// volume in errors.
    pub fn open(volume: &str, path: &Path) -> Result<Self, ArchiveError> {
        let io_err = |op, e| ArchiveError::volume(volume, op, path.to_owned(), e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io_err("open manifest", e))?;
        let mut reader = ManifestReader::open(path).map_err(|e| io_err("open manifest", e))?;
        let mut max_seq = 0;
        for record in reader.by_ref() {
            let seq = match record? {
                Record::Copy(c) => c.seq,
                Record::Mark(m) => m.seq,
            };
            max_seq = max_seq.max(seq);
        }
        let mut len = reader.valid_len();
        if let Some(t) = reader.torn() {
            log::warn!(
                "archive volume {volume}: cutting the torn last line {} off {:?} (now {} bytes)",
                t.line,
                t.path,
                t.offset
            );
            file.set_len(t.offset)
                .map_err(|e| io_err("truncate manifest", e))?;
            file.sync_data().map_err(|e| io_err("fsync manifest", e))?;
        }
        let mut writer = ManifestWriter {
            path: path.to_owned(),
            file,
            len,
            max_seq,
        };
        if len == 0 {
            let header = format!("{HEADER}\n");
            writer.write_line(volume, header.as_bytes())?;
            len = writer.len;
        }
        debug_assert_eq!(writer.len, len);
        Ok(writer)
    }

    /// The highest sequence number any record names (0 when there is none).
    pub fn max_seq(&self) -> u64 {
        self.max_seq
    }

    /// The manifest's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` and syncs it to disk. On failure the manifest is cut back to its
    /// previous length, so no partial record stays behind.
    pub fn append(&mut self, volume: &str, record: &Record) -> Result<(), ArchiveError> {
        let line = format_record(record)?;
        self.write_line(volume, line.as_bytes())?;
        let seq = match record {
            Record::Copy(c) => c.seq,
            Record::Mark(m) => m.seq,
        };
        self.max_seq = self.max_seq.max(seq);
        Ok(())
    }

    fn write_line(&mut self, volume: &str, line: &[u8]) -> Result<(), ArchiveError> {
        let result = self
            .file
            .write_all_at(line, self.len)
            .map_err(|e| ("append to manifest", e))
            .and_then(|()| self.file.sync_data().map_err(|e| ("fsync manifest", e)));
        match result {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err((op, e)) => {
                // Best effort: the record must not stay half-written. If this fails too,
                // the torn line is cut off by the next writer or ignored by readers.
                let _ = self.file.set_len(self.len);
                let _ = self.file.sync_data();
                Err(ArchiveError::volume(volume, op, self.path.clone(), e))
            }
        }
    }
}

/// Formats `record` as one manifest line, newline included.
pub fn format_record(record: &Record) -> Result<String, ArchiveError> {
    let mut s = String::with_capacity(256);
    match record {
        Record::Copy(c) => {
            if c.meta.path.len() > MAX_PATH {
                return Err(ArchiveError::RecordTooLong {
                    ino: c.meta.ino,
                    len: c.meta.path.len(),
                    max: MAX_PATH,
                });
            }
            let m = &c.meta;
            s.push_str(&format!(
                "copy seq={} ino={} size={} mode={:o} uid={} gid={} mtime={} ctime={} archived={} md5={} sha1={} path=",
                c.seq,
                m.ino,
                c.size,
                m.mode,
                m.uid,
                m.gid,
                m.mtime_ns,
                m.ctime_ns,
                c.archived_ns,
                c.md5.as_ref().map_or("-".to_owned(), |d| hex(d)),
                c.sha1.as_ref().map_or("-".to_owned(), |d| hex(d)),
            ));
            escape_into(&m.path, &mut s);
        }
        Record::Mark(m) => {
            let kind = match m.kind {
                MarkKind::Superseded => "superseded",
                MarkKind::Deleted => "deleted",
            };
            s.push_str(&format!(
                "{kind} seq={} ino={} archived={}",
                m.seq, m.ino, m.archived_ns
            ));
        }
    }
    let crc = crc32(s.as_bytes());
    s.push_str(&format!(" crc={crc:08x}\n"));
    Ok(s)
}

/// Parses one manifest line (without its newline); the error says what is wrong.
pub fn parse_record(line: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not ASCII text".to_owned())?;
    let (body, crc) = text
        .rsplit_once(" crc=")
        .ok_or_else(|| "no crc field".to_owned())?;
    let want = u32::from_str_radix(crc, 16).map_err(|_| format!("crc {crc:?} is not hex"))?;
    let got = crc32(body.as_bytes());
    if crc.len() != 8 || want != got {
        return Err(format!(
            "crc mismatch: line says {crc}, content gives {got:08x}"
        ));
    }
    let mut tokens = body.split(' ');
    let kind = tokens.next().unwrap_or_default();
    let mut fields = Fields::default();
    for token in tokens {
        let (key, value) = token
            .split_once('=')
            .ok_or_else(|| format!("field {token:?} has no '='"))?;
        fields.set(key, value)?;
    }
    match kind {
        "copy" => Ok(Record::Copy(CopyRecord {
            seq: fields.num("seq")?,
            size: fields.num("size")?,
            meta: FileMeta {
                ino: fields.num("ino")?,
                path: unescape(fields.get("path")?)?,
                mode: u32::from_str_radix(fields.get("mode")?, 8)
                    .map_err(|_| "mode is not an octal number".to_owned())?,
                uid: fields.num("uid")?,
                gid: fields.num("gid")?,
                mtime_ns: fields.num("mtime")?,
                ctime_ns: fields.num("ctime")?,
            },
            archived_ns: fields.num("archived")?,
            md5: fields.digest("md5")?,
            sha1: fields.digest("sha1")?,
        })),
        "superseded" | "deleted" => Ok(Record::Mark(Mark {
            kind: if kind == "deleted" {
                MarkKind::Deleted
            } else {
                MarkKind::Superseded
            },
            seq: fields.num("seq")?,
            ino: fields.num("ino")?,
            archived_ns: fields.num("archived")?,
        })),
        other => Err(format!("unknown record kind {other:?}")),
    }
}

/// The fields of one line, by key (unknown keys are ignored: later versions may add some).
#[derive(Default)]
struct Fields<'a> {
    values: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    fn set(&mut self, key: &'a str, value: &'a str) -> Result<(), String> {
        if self.values.iter().any(|(k, _)| *k == key) {
            return Err(format!("field {key} appears twice"));
        }
        // A line holds at most a few dozen fields; more is corruption, not a record.
        if self.values.len() >= 32 {
            return Err("too many fields".to_owned());
        }
        self.values.push((key, value));
        Ok(())
    }

    fn get(&self, key: &str) -> Result<&'a str, String> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("field {key} is missing"))
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        let v = self.get(key)?;
        v.parse()
            .map_err(|_| format!("field {key}={v:?} is not a number"))
    }

    fn digest<const N: usize>(&self, key: &str) -> Result<Option<[u8; N]>, String> {
        let v = self.get(key)?;
        if v == "-" {
            return Ok(None);
        }
        unhex(v)
            .map(Some)
            .ok_or_else(|| format!("field {key}={v:?} is not {} hex digits", 2 * N))
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Appends `bytes` to `out`, printable ASCII as is, every other byte and `%` as `%XX`.
pub fn escape_into(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if (b'!'..=b'~').contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Reverses [`escape_into`].
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape at byte {i} of the path"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// CRC-32 (IEEE 802.3, as zlib's `crc32`) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CopyRecord {
        CopyRecord {
            seq: 7,
            size: 12345,
            meta: FileMeta {
                ino: 42,
                path: b"/dir/a b%\xff\nc".to_vec(),
                mode: 0o100644,
                uid: 1000,
                gid: 100,
                mtime_ns: 1_700_000_000_123_456_789,
                ctime_ns: -5,
            },
            archived_ns: 1_800_000_000_000_000_000,
            md5: Some([0xab; 16]),
            sha1: None,
        }
    }

    #[test]
    fn copy_record_round_trips_with_escaped_path() {
        let record = Record::Copy(sample());
        let line = format_record(&record).unwrap();
        assert!(line.ends_with('\n'));
        assert!(line.is_ascii(), "{line:?}");
        assert!(line.contains("path=/dir/a%20b%25%FF%0Ac "), "{line:?}");
        assert_eq!(parse_record(line.trim_end().as_bytes()), Ok(record));
    }

    #[test]
    fn mark_round_trips() {
        let record = Record::Mark(Mark {
            kind: MarkKind::Deleted,
            seq: 3,
            ino: 9,
            archived_ns: 11,
        });
        let line = format_record(&record).unwrap();
        assert_eq!(parse_record(line.trim_end().as_bytes()), Ok(record));
    }

    #[test]
    fn flipped_byte_fails_the_crc() {
        let line = format_record(&Record::Copy(sample())).unwrap();
        let bad = line.trim_end().replacen("size=12345", "size=12346", 1);
        let err = parse_record(bad.as_bytes()).unwrap_err();
        assert!(err.contains("crc mismatch"), "{err}");
    }

    #[test]
    fn longest_path_fits_in_a_line() {
        let mut c = sample();
        c.meta.path = vec![b' '; MAX_PATH];
        c.sha1 = Some([1; 20]);
        c.meta.mtime_ns = i64::MIN;
        c.meta.ctime_ns = i64::MIN;
        c.archived_ns = i64::MIN;
        c.seq = u64::MAX;
        c.size = u64::MAX;
        c.meta.ino = u64::MAX;
        let line = format_record(&Record::Copy(c.clone())).unwrap();
        assert!(line.len() <= MAX_LINE, "{} > {MAX_LINE}", line.len());
        c.meta.path.push(b'x');
        assert!(matches!(
            format_record(&Record::Copy(c)),
            Err(ArchiveError::RecordTooLong { len: 4097, .. })
        ));
    }

    #[test]
    fn reader_refuses_a_line_longer_than_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_NAME);
        let mut text = format!("{HEADER}\n");
        text.push_str(&"x".repeat(MAX_LINE + 1));
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        let mut reader = ManifestReader::open(&path).unwrap();
        match reader.next() {
            Some(Err(ArchiveError::ManifestCorrupt { line, reason, .. })) => {
                assert_eq!(line, 2, "{reason}");
                assert!(reason.contains("longer than"), "{reason}");
            }
            other => panic!("an over-long line gave {other:?}"),
        }
        assert!(reader.next().is_none(), "the reader goes on after an error");
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
