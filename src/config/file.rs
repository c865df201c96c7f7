//! Reads the configuration and password files: regular files only, up to a size limit.
//!
//! A FIFO given as the configuration blocked the server in `open` (deaf to SIGTERM) and
//! `/dev/zero` grew it to 528 MB. The type is checked before opening, so no device is ever
//! opened (opening a tape device may rewind it), and again on the open descriptor, which is
//! opened non-blocking so that a FIFO swapped in between cannot block either. At most
//! `limit + 1` bytes are read whatever the file claims.

use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest configuration file accepted (1 MiB; the shipped sample is under 8 KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// The operating system refused (missing file, permissions, I/O error).
    Io(io::Error),
    /// The file is of a kind or size that is never read; the text says which.
    Refused(String),
}

/// The bytes of the regular file at `path`, if it holds at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    require_regular(std::fs::metadata(path).map_err(ReadError::Io)?.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    require_regular(meta.file_type())?;
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    read_at_most(&file, limit, meta.len())
}

fn read_at_most(file: &File, limit: u64, expected: u64) -> Result<Vec<u8>, ReadError> {
    // Bounded by `limit`, checked above.
    let mut bytes = Vec::with_capacity(expected as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit)); // it grew while being read
    }
    Ok(bytes)
}

fn require_regular(kind: FileType) -> Result<(), ReadError> {
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(ReadError::Refused(format!("is {what}, not a regular file")))
}

fn too_large(limit: u64) -> ReadError {
    ReadError::Refused(format!("is larger than {limit} bytes, the limit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(path: &Path, limit: u64) -> String {
        match read_regular(path, limit) {
            Err(ReadError::Refused(reason)) => reason,
            other => panic!("{}: expected a refusal, got {other:?}", path.display()),
        }
    }

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap(), b"12345");
        assert!(refusal(&file, 4).contains("larger than 4 bytes"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            read_regular(&link, 5).unwrap(),
            b"12345",
            "symlinks are followed"
        );
    }

    #[test]
    fn other_kinds_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        assert!(refusal(dir.path(), 100).contains("a directory"));
        assert!(refusal(Path::new("/dev/zero"), 100).contains("a character device"));
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(refusal(&fifo, 100).contains("named pipe"));
        assert!(matches!(
            read_regular(&dir.path().join("missing"), 100),
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
    }
}
