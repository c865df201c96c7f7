//! The admin protocol between `vsadmin` and the server's admin socket
//! (`crate::server::admin`): one request per line, the answer as text lines and an end
//! marker. Pure parsing and formatting, so both ends and their tests share it.
//!
//! Requests (files are named by inode number; `vsadmin` resolves paths in the mount):
//!
//! - `mount`: the mount point (so the client can check a path is in the mount);
//! - `status`: the tier's status;
//! - `file INO`: what the tier knows of one regular file;
//! - `archive INO`, `release INO`, `recall INO`: changes, for uid 0 only.
//!
//! The answer is zero or more lines, then `.ok` or `.error MESSAGE`. An answer line that
//! starts with `.` is sent with one more `.` in front (as SMTP does), so no answer line is
//! taken for the end marker.

use std::fmt::Write as _;

use crate::meta::DataState;

use super::{FileStatus, TierStatus};

/// Longest request line accepted, in bytes (with its newline).
pub const REQUEST_MAX: usize = 64 * 1024;

/// The answer of a successful request ends with this line.
pub const END_OK: &str = ".ok";
/// The answer of a failed request ends with this, a space and the reason.
pub const END_ERROR: &str = ".error";
/// The reason given to a change asked by anyone but root.
pub const ROOT_ONLY: &str = "permission denied: root only";

/// One request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The mount point.
    Mount,
    /// The tier's status.
    Status,
    /// One file's state.
    File(u64),
    /// Archive the file at the next migration round.
    Archive(u64),
    /// Drop the file's local data now.
    Release(u64),
    /// Queue a recall of the file.
    Recall(u64),
}

impl Request {
    /// Parses one request line (without its newline).
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split_ascii_whitespace();
        let verb = words.next().ok_or("empty request")?;
        let ino = |words: &mut std::str::SplitAsciiWhitespace<'_>| -> Result<u64, String> {
            let text = words
                .next()
                .ok_or_else(|| format!("{verb}: an inode number is missing"))?;
            match text.parse::<u64>() {
                Ok(ino) if ino > 0 => Ok(ino),
                _ => Err(format!("{verb}: {text:?} is not an inode number")),
            }
        };
        let request = match verb {
            "mount" => Request::Mount,
            "status" => Request::Status,
            "file" => Request::File(ino(&mut words)?),
            "archive" => Request::Archive(ino(&mut words)?),
            "release" => Request::Release(ino(&mut words)?),
            "recall" => Request::Recall(ino(&mut words)?),
            other => return Err(format!("unknown request {other:?}")),
        };
        match words.next() {
            Some(extra) => Err(format!("{verb}: unexpected {extra:?}")),
            None => Ok(request),
        }
    }

    /// Whether the request changes something (then only root may ask it).
    pub fn is_change(self) -> bool {
        matches!(
            self,
            Request::Archive(_) | Request::Release(_) | Request::Recall(_)
        )
    }

    /// The inode it names, if any.
    pub fn ino(self) -> Option<u64> {
        match self {
            Request::Mount | Request::Status => None,
            Request::File(ino)
            | Request::Archive(ino)
            | Request::Release(ino)
            | Request::Recall(ino) => Some(ino),
        }
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Mount => write!(f, "mount"),
            Request::Status => write!(f, "status"),
            Request::File(ino) => write!(f, "file {ino}"),
            Request::Archive(ino) => write!(f, "archive {ino}"),
            Request::Release(ino) => write!(f, "release {ino}"),
            Request::Recall(ino) => write!(f, "recall {ino}"),
        }
    }
}

/// An answer as sent: `lines`, then the end marker for `result`.
pub fn encode_answer(lines: &[String], result: &Result<(), String>) -> String {
    let mut out = String::new();
    for line in lines.iter().flat_map(|l| l.split('\n')) {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push('\n');
    }
    match result {
        Ok(()) => out.push_str(END_OK),
        Err(reason) => {
            out.push_str(END_ERROR);
            out.push(' ');
            out.push_str(&reason.replace('\n', " "));
        }
    }
    out.push('\n');
    out
}

/// Reads one answer line: `Ok(None)` for an answer line (pushed onto `lines`),
/// `Ok(Some(result))` for the end marker, `Err` for a line that is neither.
pub fn decode_line(line: &str, lines: &mut Vec<String>) -> Option<Result<(), String>> {
    if line == END_OK {
        return Some(Ok(()));
    }
    if let Some(reason) = line.strip_prefix(END_ERROR) {
        return Some(Err(reason.trim_start().to_owned()));
    }
    lines.push(line.strip_prefix('.').unwrap_or(line).to_owned());
    None
}

/// The answer lines of `file`: one `key: value` per line.
pub fn file_lines(file: &FileStatus, path: Option<&[u8]>) -> Vec<String> {
    let mut lines = vec![
        format!("inode: {}", file.ino),
        format!("state: {}", state_name(file)),
        format!("size: {}", file.size),
    ];
    if let Some(local) = file.recalling {
        lines.push(format!("recalled so far: {local} bytes"));
    }
    if let Some(path) = path {
        lines.push(format!("catalog path: {}", String::from_utf8_lossy(path)));
    }
    match &file.copy {
        Some(copy) => {
            lines.push(format!("volume: {}", copy.volume));
            lines.push(format!("copy: {}", copy.seq));
            lines.push(format!("archived at: {}", utc(copy.archived_ns)));
            if let Some(md5) = copy.md5 {
                lines.push(format!("md5: {}", hex(&md5)));
            }
            if let Some(sha1) = copy.sha1 {
                lines.push(format!("sha1: {}", hex(&sha1)));
            }
        }
        None => lines.push("volume: none (no copy in the archive)".into()),
    }
    lines
}

/// The state an operator sees: the catalog's state, or `recalling` while a recall of a
/// released or damaged file runs or waits.
pub fn state_name(file: &FileStatus) -> &'static str {
    match (file.state, file.recalling) {
        (DataState::Released | DataState::Damaged, Some(_)) => "recalling",
        (state, _) => state.name(),
    }
}

/// The answer lines of `status`.
pub fn status_lines(status: &TierStatus) -> Vec<String> {
    let mut lines = vec!["files by state:".to_owned()];
    for total in &status.states {
        lines.push(format!(
            "  {:<9} {} files, {} bytes",
            total.state.name(),
            total.files,
            total.bytes
        ));
    }
    lines.push(format!(
        "waiting to migrate: {} bytes",
        status.waiting_bytes
    ));
    let (waiting, running) = status.recalls;
    lines.push(format!("recalls: {waiting} waiting, {running} running"));
    for (volume, count) in &status.recall_queues {
        lines.push(format!("  queue of {volume}: {count} waiting"));
    }
    match status.cache {
        Some((free, total, low, high)) => lines.push(format!(
            "cache: {free} of {total} bytes free; eviction starts below {low} free and stops above {high}"
        )),
        None => lines.push("cache: free space unknown (statvfs failed)".into()),
    }
    lines.push(format!("volumes: {}", status.volumes.len()));
    for volume in &status.volumes {
        lines.push(format!(
            "  {}: {} of {} bytes free, {}",
            volume.label,
            volume.free,
            volume.total,
            if volume.takes_copies {
                "takes copies"
            } else {
                "full (at its reserve, takes no copies)"
            }
        ));
    }
    lines.push(format!(
        "archive full: {}",
        if status.archive_full {
            "yes (no volume took the last copy; files stay dirty)"
        } else {
            "no"
        }
    ));
    lines.push(format!("counters: {}", status.counters));
    if status.errors.is_empty() {
        lines.push("recent errors: none".into());
    } else {
        lines.push(format!("recent errors: {}", status.errors.len()));
        for (at, message) in &status.errors {
            lines.push(format!("  {} {message}", utc(*at)));
        }
    }
    lines
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `ns` since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{ArchiveCopy, StateTotal};
    use crate::tier::CounterValues;

    #[test]
    fn requests_parse_with_their_inode() {
        assert_eq!(Request::parse("status"), Ok(Request::Status));
        assert_eq!(Request::parse("  file 42 "), Ok(Request::File(42)));
        assert_eq!(Request::parse("archive 7"), Ok(Request::Archive(7)));
        assert_eq!(Request::parse("release 7"), Ok(Request::Release(7)));
        assert_eq!(Request::parse("recall 7"), Ok(Request::Recall(7)));
        assert_eq!(Request::parse("mount"), Ok(Request::Mount));
        for request in [Request::Status, Request::File(3), Request::Recall(9)] {
            assert_eq!(Request::parse(&request.to_string()), Ok(request));
        }
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let err = |line: &str| Request::parse(line).unwrap_err();
        assert_eq!(err(""), "empty request");
        assert_eq!(err("file"), "file: an inode number is missing");
        assert_eq!(err("file x1"), "file: \"x1\" is not an inode number");
        assert_eq!(err("file 0"), "file: \"0\" is not an inode number");
        assert_eq!(err("status now"), "status: unexpected \"now\"");
        assert_eq!(err("delete 5"), "unknown request \"delete\"");
    }

    #[test]
    fn only_archive_release_and_recall_are_changes() {
        assert!(!Request::Status.is_change());
        assert!(!Request::File(1).is_change());
        assert!(!Request::Mount.is_change());
        assert!(Request::Archive(1).is_change());
        assert!(Request::Release(1).is_change());
        assert!(Request::Recall(1).is_change());
    }

    #[test]
    fn answers_round_trip_with_dotted_lines_and_errors() {
        let lines = vec!["a".to_owned(), ".ok".to_owned(), "..x".to_owned()];
        for result in [Ok(()), Err("inode 5 is dirty: no".to_owned())] {
            let text = encode_answer(&lines, &result);
            let mut got = Vec::new();
            let mut end = None;
            for line in text.lines() {
                assert!(end.is_none(), "a line after the end marker in {text:?}");
                end = decode_line(line, &mut got);
            }
            assert_eq!(got, lines, "answer lines of {text:?}");
            assert_eq!(end, Some(result), "end marker of {text:?}");
        }
    }

    #[test]
    fn file_lines_show_state_copy_and_digests() {
        let file = FileStatus {
            ino: 12,
            state: DataState::Released,
            size: 1000,
            recalling: None,
            copy: Some(ArchiveCopy {
                ino: 12,
                volume: "V2".into(),
                seq: 5,
                size: 1000,
                mtime: 0,
                md5: Some([0xab; 16]),
                sha1: Some([0x01; 20]),
                archived_ns: 86_400 * 1_000_000_000,
                superseded_ns: None,
            }),
        };
        let lines = file_lines(&file, Some(b"/d/f"));
        let expected = [
            "inode: 12",
            "state: released",
            "size: 1000",
            "catalog path: /d/f",
            "volume: V2",
            "copy: 5",
            "archived at: 1970-01-02 00:00:00 UTC",
            &format!("md5: {}", "ab".repeat(16)),
            &format!("sha1: {}", "01".repeat(20)),
        ];
        assert_eq!(lines, expected);
        let recalling = FileStatus {
            recalling: Some(100),
            ..file
        };
        assert_eq!(state_name(&recalling), "recalling");
        let dirty = FileStatus {
            state: DataState::Dirty,
            copy: None,
            ..recalling
        };
        assert_eq!(state_name(&dirty), "dirty");
        assert!(file_lines(&dirty, None).contains(&"volume: none (no copy in the archive)".into()));
    }

    #[test]
    fn status_lines_show_every_part() {
        let status = TierStatus {
            states: vec![StateTotal {
                state: DataState::Archived,
                files: 2,
                bytes: 300,
            }],
            waiting_bytes: 77,
            recalls: (3, 1),
            recall_queues: vec![("V1".into(), 3)],
            cache: Some((10, 100, 20, 40)),
            volumes: vec![crate::archive::VolumeInfo {
                label: "V1".into(),
                path: "/a/V1".into(),
                free: 5,
                total: 9,
                takes_copies: false,
            }],
            archive_full: true,
            counters: CounterValues {
                migrated_files: 4,
                ..CounterValues::default()
            },
            errors: vec![(0, "recall of /x failed".into())],
        };
        let text = status_lines(&status).join("\n");
        for part in [
            "  archived  2 files, 300 bytes",
            "waiting to migrate: 77 bytes",
            "recalls: 3 waiting, 1 running",
            "  queue of V1: 3 waiting",
            "cache: 10 of 100 bytes free; eviction starts below 20 free and stops above 40",
            "  V1: 5 of 9 bytes free, full (at its reserve, takes no copies)",
            "archive full: yes",
            "migrated 4 files",
            "  1970-01-01 00:00:00 UTC recall of /x failed",
        ] {
            assert!(text.contains(part), "{part:?} missing from:\n{text}");
        }
    }

    #[test]
    fn utc_formats_dates_across_leap_years() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400 * 1_000_000_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(
            utc(1_798_761_599 * 1_000_000_000 + 5),
            "2026-12-31 23:59:59 UTC"
        );
        assert_eq!(utc(-1_000_000_000), "1969-12-31 23:59:59 UTC");
    }
}
