//! Copies on a volume: writing a file's content as the volume's next copy (digests computed
//! in the same pass, cancellable between blocks, on disk before it is recorded) and reading a
//! copy back by byte ranges.
//!
//! A copy is written as `<seq>.partial`, fsynced, renamed to `<seq>` (twelve digits), the
//! directory fsynced, and only then recorded in the volume's manifest. A crash therefore
//! leaves either a `.partial` file (removed by the next sweep), or a complete copy with or
//! without its record; a recorded copy is always complete.
//!
//! Without digests the data is copied by the kernel (`copy_file_range`, as `cp` does) where
//! both file systems allow it. Otherwise, or with digests, a pipeline of threads overlaps
//! reading, hashing (MD5 and SHA1 each on its own thread) and writing; the blocks in flight
//! are a fixed set of buffers (one more than the stages), so memory stays bounded.
//!
//! Whenever the pipeline carries the data (always with a digest), the write stage also
//! computes a CRC-32 per [`SUM_BLOCK`] bytes; they are written to the sidecar `<seq>.sums`
//! (see [`super::sums`]) as `<seq>.sums.partial`, fsynced and renamed before the copy's own
//! rename, so the directory fsync that follows covers both. A crash leaves at worst a
//! `.sums.partial` file or a `.sums` file without its copy, both removed by the next sweep.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use nix::fcntl::Flock;
use sha1::Sha1;

use super::error::{is_full, is_missing, ArchiveError};
use super::manifest::{
    CopyRecord, FileMeta, ManifestWriter, Mark, MarkKind, Record, MANIFEST_NAME,
};
use super::sums::{self, BlockSums, Summer, SUMS_PARTIAL_SUFFIX, SUMS_SUFFIX, SUM_BLOCK};
use super::volume::{
    copy_seq_of_name, list_names, lock_volume, sweep_locked, sync_dir, volume_space, ArchiveFolder,
    SweepReport, PARTIAL_SUFFIX,
};

/// Default size of one copy block: 4 MiB.
pub const DEFAULT_BLOCK_SIZE: usize = 4 << 20;
/// Smallest accepted block size.
pub const MIN_BLOCK_SIZE: usize = 4 << 10;
/// Largest accepted block size.
pub const MAX_BLOCK_SIZE: usize = 64 << 20;

/// How a copy is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOptions {
    /// Bytes per block: the unit of reading, writing and cancel checks (clamped to
    /// [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`]; default [`DEFAULT_BLOCK_SIZE`]).
    pub block_size: usize,
    /// Compute MD5 (`DigestMD5Enable`; default off).
    pub md5: bool,
    /// Compute SHA1 (`DigestSHA1Enable`; default off).
    pub sha1: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            block_size: DEFAULT_BLOCK_SIZE,
            md5: false,
            sha1: false,
        }
    }
}

/// The only writer of one volume: holds its lock (`.lock`, `flock`) and its manifest, and
/// numbers its copies. Memory: at most five blocks of `block_size` while a copy runs, kept
/// for the next copy.
pub struct VolumeWriter {
    label: String,
    dir: PathBuf,
    reserve: u64,
    manifest: ManifestWriter,
    next_seq: u64,
    buffers: Vec<Vec<u8>>,
    swept: SweepReport,
    _lock: Flock<File>,
}

/// A complete copy opened for reading.
pub struct CopyReader {
    label: String,
    seq: u64,
    path: PathBuf,
    file: File,
    size: u64,
}

impl ArchiveFolder {
    /// Opens volume `label` for writing: takes its lock ([`ArchiveError::VolumeBusy`] if
    /// another writer has it), sweeps it (removes `.partial` files, cuts a torn manifest
    /// tail) and continues its sequence after the highest number its manifest or its files
    /// use.
    pub fn writer(&self, label: &str) -> Result<VolumeWriter, ArchiveError> {
        let dir = self.volume_path(label)?;
        let lock = lock_volume(label, &dir)?;
        let swept = sweep_locked(label, &dir)?;
        let manifest = ManifestWriter::open(label, &dir.join(MANIFEST_NAME))?;
        let on_disk = list_names(label, &dir)?
            .iter()
            .filter_map(|n| copy_seq_of_name(n))
            .max()
            .unwrap_or(0);
        let next_seq = manifest.max_seq().max(on_disk) + 1;
        Ok(VolumeWriter {
            label: label.to_owned(),
            dir,
            reserve: self.reserve(),
            manifest,
            next_seq,
            buffers: Vec::new(),
            swept,
            _lock: lock,
        })
    }

    /// Opens copy `seq` of volume `label` for reading.
    pub fn open_copy(&self, label: &str, seq: u64) -> Result<CopyReader, ArchiveError> {
        let dir = self.volume_path(label)?;
        volume_space(label, &dir)?;
        let path = dir.join(copy_name(seq));
        let missing = |source| ArchiveError::CopyMissing {
            volume: label.to_owned(),
            seq,
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(|e| {
            if is_missing(&e) {
                missing(e)
            } else {
                ArchiveError::volume(label, "open copy", path.clone(), e)
            }
        })?;
        let size = file
            .metadata()
            .map_err(|e| ArchiveError::volume(label, "stat copy", path.clone(), e))?
            .len();
        Ok(CopyReader {
            label: label.to_owned(),
            seq,
            path,
            file,
            size,
        })
    }
}

impl VolumeWriter {
    /// The volume's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The sequence number the next copy will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// What opening this writer swept up.
    pub fn swept(&self) -> &SweepReport {
        &self.swept
    }

    /// Copies `source` (read from offset 0 to its end) to the volume as its next copy and
    /// records it in the manifest with `meta`; returns the record.
    ///
    /// `cancel` is checked between blocks: once set, the copy stops, its partial file is
    /// removed and [`ArchiveError::Cancelled`] is returned. A volume with no more than its
    /// reserve free refuses the copy ([`ArchiveError::BelowReserve`]); one that fills up
    /// during it gives [`ArchiveError::VolumeFull`]. On every error the partial file and the
    /// block-sums sidecar are removed and the manifest is unchanged. `source` must be a file
    /// whose reads end (a regular file, or a pipe whose writer closes it). The sidecar
    /// (`<seq>.sums`, see [`CopyReader::block_sums`]) is written whenever the data went
    /// through user space, which is always the case with a digest.
    pub fn copy(
        &mut self,
        source: &File,
        meta: &FileMeta,
        opts: &CopyOptions,
        cancel: &AtomicBool,
    ) -> Result<CopyRecord, ArchiveError> {
        let (free, _) = volume_space(&self.label, &self.dir)?;
        if free <= self.reserve {
            return Err(ArchiveError::BelowReserve {
                volume: self.label.clone(),
                free,
                reserve: self.reserve,
            });
        }
        if meta.path.len() > super::manifest::MAX_PATH {
            return Err(ArchiveError::RecordTooLong {
                ino: meta.ino,
                len: meta.path.len(),
                max: super::manifest::MAX_PATH,
            });
        }
        let seq = self.next_seq;
        // Taken even if this copy fails: a number is never used for two different copies.
        self.next_seq += 1;
        let name = copy_name(seq);
        let partial = self.dir.join(format!("{name}{PARTIAL_SUFFIX}"));
        let target = self.dir.join(&name);

        let sums_partial = self.dir.join(format!("{name}{SUMS_PARTIAL_SUFFIX}"));
        let sums_target = self.dir.join(format!("{name}{SUMS_SUFFIX}"));

        let written = self
            .write_partial(seq, source, &partial, opts, cancel)
            .and_then(|(size, md5, sha1, block_sums)| {
                // The sidecar is complete and in place before the copy is: a copy under its
                // final name never has a half-written sidecar.
                if let Some(block_sums) = block_sums {
                    self.write_sums(seq, &block_sums, &sums_partial, &sums_target)?;
                }
                Ok((size, md5, sha1))
            });
        let (size, md5, sha1) = match written {
            Ok(v) => v,
            Err(e) => {
                remove_quietly(&partial);
                remove_quietly(&sums_partial);
                remove_quietly(&sums_target);
                return Err(e);
            }
        };
        if let Err(e) = fs::rename(&partial, &target) {
            remove_quietly(&partial);
            remove_quietly(&sums_target);
            return Err(ArchiveError::volume(&self.label, "rename copy", target, e));
        }
        let record = CopyRecord {
            seq,
            size,
            meta: meta.clone(),
            archived_ns: now_ns(),
            md5,
            sha1,
        };
        let recorded = sync_dir(&self.label, &self.dir).and_then(|()| {
            self.manifest
                .append(&self.label, &Record::Copy(record.clone()))
        });
        if let Err(e) = recorded {
            // Unrecorded, the copy is unknown to any catalog: take it back.
            remove_quietly(&target);
            remove_quietly(&sums_target);
            let _ = sync_dir(&self.label, &self.dir);
            return Err(match e {
                // No room for the record is the volume being full, as for the data.
                ArchiveError::VolumeIo {
                    volume,
                    path,
                    source,
                    ..
                } if is_full(&source) => ArchiveError::VolumeFull {
                    volume,
                    seq,
                    path,
                    source,
                },
                e => e,
            });
        }
        Ok(record)
    }

    /// Appends a mark saying copy `seq` (of inode `ino`) on this volume is superseded or
    /// deleted. The copy itself stays until clean-up removes it.
    pub fn mark(&mut self, kind: MarkKind, seq: u64, ino: u64) -> Result<(), ArchiveError> {
        let mark = Mark {
            kind,
            seq,
            ino,
            archived_ns: now_ns(),
        };
        self.manifest.append(&self.label, &Record::Mark(mark))
    }

    /// Writes, syncs and closes the partial file; returns (size, md5, sha1, block sums).
    fn write_partial(
        &mut self,
        seq: u64,
        source: &File,
        partial: &Path,
        opts: &CopyOptions,
        cancel: &AtomicBool,
    ) -> Result<Copied, ArchiveError> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(partial)
            .map_err(|e| self.dest_error(seq, "create copy", partial, e))?;
        let block = opts.block_size.clamp(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE);
        let mut done = None;
        if !opts.md5 && !opts.sha1 {
            done = kernel_copy(source, &file, block, cancel)?;
        }
        let out = match done {
            Some(r) => r,
            None => pipeline(source, &file, block, opts, cancel, &mut self.buffers)?,
        }
        .map_err(|f| match f {
            Failure::Cancelled => ArchiveError::Cancelled {
                volume: self.label.clone(),
                seq,
            },
            Failure::Source(source) => ArchiveError::Source {
                volume: self.label.clone(),
                seq,
                source,
            },
            Failure::Dest(op, e) => self.dest_error(seq, op, partial, e),
        })?;
        file.sync_all()
            .map_err(|e| self.dest_error(seq, "fsync copy", partial, e))?;
        Ok(out)
    }

    /// Writes `block_sums` as `partial`, fsyncs it and renames it to `target`.
    fn write_sums(
        &self,
        seq: u64,
        block_sums: &BlockSums,
        partial: &Path,
        target: &Path,
    ) -> Result<(), ArchiveError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(partial)
            .map_err(|e| self.dest_error(seq, "create block sums", partial, e))?;
        file.write_all(&block_sums.encode())
            .map_err(|e| self.dest_error(seq, "write block sums", partial, e))?;
        file.sync_all()
            .map_err(|e| self.dest_error(seq, "fsync block sums", partial, e))?;
        drop(file);
        fs::rename(partial, target)
            .map_err(|e| ArchiveError::volume(&self.label, "rename block sums", target.into(), e))
    }

    fn dest_error(&self, seq: u64, op: &'static str, path: &Path, e: io::Error) -> ArchiveError {
        if is_full(&e) {
            ArchiveError::VolumeFull {
                volume: self.label.clone(),
                seq,
                path: path.to_owned(),
                source: e,
            }
        } else {
            ArchiveError::volume(&self.label, op, path.to_owned(), e)
        }
    }
}

impl CopyReader {
    /// The copy's sequence number on its volume.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The copy's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The copy's per-block CRCs from its sidecar `<seq>.sums`, validated against the copy:
    /// `None` when it has none (copied without digests, or before sidecars existed). A
    /// sidecar that exists but is corrupt or describes another size is
    /// [`ArchiveError::SumsCorrupt`]; nothing is allocated for a header that does not fit
    /// the copy.
    pub fn block_sums(&self) -> Result<Option<BlockSums>, ArchiveError> {
        let mut path = self.path.clone().into_os_string();
        path.push(SUMS_SUFFIX);
        let path = PathBuf::from(path);
        let io_err = |op, e| ArchiveError::volume(&self.label, op, path.clone(), e);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(io_err("open block sums", e)),
        };
        let len = file
            .metadata()
            .map_err(|e| io_err("stat block sums", e))?
            .len();
        let corrupt = |reason: String| ArchiveError::SumsCorrupt {
            volume: self.label.clone(),
            seq: self.seq,
            path: path.clone(),
            reason,
        };
        let mut head = vec![0u8; sums::header_len()];
        let got = read_full(&mut file, &mut head).map_err(|e| io_err("read block sums", e))?;
        head.truncate(got);
        let header = sums::parse_header(&head, self.size, len).map_err(corrupt)?;
        // Bounded: parse_header checked the length against the copy's size.
        let mut bytes = Vec::with_capacity(header.file_len as usize);
        bytes.extend_from_slice(&head);
        (&mut file)
            .take(header.file_len - head.len() as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_err("read block sums", e))?;
        sums::decode(&bytes, &header, self.size)
            .map(Some)
            .map_err(corrupt)
    }

    /// Reads from `offset` into `buf` until `buf` is full or the copy ends; returns the bytes
    /// read (short only at the end of the copy, 0 at or past it).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(ArchiveError::volume(
                        &self.label,
                        "read copy",
                        self.path.clone(),
                        e,
                    ))
                }
            }
        }
        Ok(done)
    }

    /// Copies bytes `offset..offset + len` of the copy (cut at its end) to the same offsets of
    /// `dest`, as recall fills a cache file block by block; returns the bytes copied (fewer
    /// than asked only at the copy's end). The kernel copies where it can (`copy_file_range`,
    /// as `cp` does); otherwise, or after an error the kernel cannot attribute, the range is
    /// read and written through a buffer of at most 1 MiB, so a failure names its side: the
    /// volume's ([`ArchiveError::VolumeIo`]) or the target's ([`ArchiveError::Target`]).
    pub fn copy_range_to(&self, offset: u64, len: u64, dest: &File) -> Result<u64, ArchiveError> {
        let end = offset.saturating_add(len).min(self.size);
        let mut pos = offset;
        while pos < end {
            let want = (end - pos).min(MAX_BLOCK_SIZE as u64) as usize;
            let (Ok(mut off_in), Ok(mut off_out)) = (i64::try_from(pos), i64::try_from(pos)) else {
                break;
            };
            // SAFETY: both descriptors are open files borrowed for the call; the offset
            // pointers point to live local variables the kernel updates.
            let n = unsafe {
                libc::copy_file_range(
                    self.file.as_raw_fd(),
                    &mut off_in,
                    dest.as_raw_fd(),
                    &mut off_out,
                    want,
                    0,
                )
            };
            if n < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Ok(pos - offset + self.copy_range_by_reads(pos, end, dest)?);
            }
            if n == 0 {
                break;
            }
            pos += n as u64;
        }
        Ok(pos - offset)
    }

    fn copy_range_by_reads(&self, start: u64, end: u64, dest: &File) -> Result<u64, ArchiveError> {
        let mut buf = vec![0u8; (end - start).min(1 << 20) as usize];
        let mut pos = start;
        while pos < end {
            let want = (end - pos).min(buf.len() as u64) as usize;
            let n = self.read_at(pos, &mut buf[..want])?;
            if n == 0 {
                break;
            }
            dest.write_all_at(&buf[..n], pos)
                .map_err(|source| ArchiveError::Target {
                    volume: self.label.clone(),
                    seq: self.seq,
                    source,
                })?;
            pos += n as u64;
        }
        Ok(pos - start)
    }
}

/// The file name of copy `seq` on its volume.
pub fn copy_name(seq: u64) -> String {
    format!("{seq:012}")
}

/// Removes copy `seq` and its sidecar (`<seq>.sums`) from the volume directory `dir`, the
/// copy first (a crash in between leaves an orphan sidecar, which the sweep removes, rather
/// than an unverifiable copy). Either missing is fine. The caller fsyncs `dir` afterwards.
pub fn remove_copy_files(dir: &Path, seq: u64) -> io::Result<()> {
    for path in [dir.join(copy_name(seq)), dir.join(sums::sums_name(seq))] {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
    Ok(())
}

/// Why a transfer stopped early.
enum Failure {
    Cancelled,
    Source(io::Error),
    Dest(&'static str, io::Error),
}

/// What a finished transfer gives: bytes copied, MD5, SHA1, per-block CRCs.
type Copied = (u64, Option<[u8; 16]>, Option<[u8; 20]>, Option<BlockSums>);

type Transfer = Result<Copied, Failure>;

/// Copies with `copy_file_range` in blocks. `Ok(None)` when the kernel cannot copy between
/// these two files (other file systems, a pipe) and nothing was copied yet.
fn kernel_copy(
    source: &File,
    dest: &File,
    block: usize,
    cancel: &AtomicBool,
) -> Result<Option<Transfer>, ArchiveError> {
    let mut pos: i64 = 0;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Ok(Some(Err(Failure::Cancelled)));
        }
        let mut off_in = pos;
        let mut off_out = pos;
        // SAFETY: both descriptors are open files borrowed for the call; the offset pointers
        // point to live local variables the kernel updates; no buffer of ours is involved.
        let n = unsafe {
            libc::copy_file_range(
                source.as_raw_fd(),
                &mut off_in,
                dest.as_raw_fd(),
                &mut off_out,
                block,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(
                    libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EBADF,
                ) if pos == 0 => return Ok(None),
                // The call cannot say which side failed: a full volume is the volume's; other
                // errors are reported against the copy being written, whose volume is named.
                _ => return Ok(Some(Err(Failure::Dest("copy_file_range", e)))),
            }
        }
        if n == 0 {
            return Ok(Some(Ok((pos as u64, None, None, None))));
        }
        start_writeback(dest, pos as u64, n as usize);
        pos += n as i64;
    }
}

/// One message between pipeline stages.
enum Msg {
    Data(Vec<u8>, usize),
    End,
    Failed(io::Error),
}

/// Copies through threads: a reader, a hasher per digest, and this thread writing (and
/// computing the block CRCs: far cheaper than MD5, so it does not slow the slowest stage).
fn pipeline(
    source: &File,
    dest: &File,
    block: usize,
    opts: &CopyOptions,
    cancel: &AtomicBool,
    pool: &mut Vec<Vec<u8>>,
) -> Result<Transfer, ArchiveError> {
    let stages = 2 + opts.md5 as usize + opts.sha1 as usize;
    let nbuf = stages + 1;
    pool.retain(|b| b.len() == block);
    pool.resize_with(nbuf, || vec![0u8; block]);
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(nbuf);
    for b in pool.drain(..) {
        // Cannot fail: the channel holds exactly nbuf buffers and its receiver is alive.
        let _ = free_tx.send(b);
    }
    let result = thread::scope(|s| {
        let free_tx = free_tx;
        let (tx, mut rx) = sync_channel::<Msg>(1);
        let reader = s.spawn(move || read_stage(source, block, free_rx, tx, cancel));
        let md5 = opts.md5.then(|| {
            let (tx, next) = sync_channel::<Msg>(1);
            let input = std::mem::replace(&mut rx, next);
            s.spawn(move || hash_stage(Md5::new(), input, tx))
        });
        let sha1 = opts.sha1.then(|| {
            let (tx, next) = sync_channel::<Msg>(1);
            let input = std::mem::replace(&mut rx, next);
            s.spawn(move || hash_stage(Sha1::new(), input, tx))
        });
        let written = write_stage(dest, rx, &free_tx, Summer::new(SUM_BLOCK), cancel);
        // The stages see the closed channels and end; their digests are complete only when
        // every block went through them, i.e. when the write stage saw End.
        let md5 = md5.map(|h| h.join().ok().flatten());
        let sha1 = sha1.map(|h| h.join().ok().flatten());
        drop(free_tx);
        if let Ok(free) = reader.join() {
            pool.extend(free.try_iter());
        }
        written.map(|(n, block_sums)| {
            let md5 = md5.flatten().map(|d| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&d);
                a
            });
            let sha1 = sha1.flatten().map(|d| {
                let mut a = [0u8; 20];
                a.copy_from_slice(&d);
                a
            });
            (n, md5, sha1, Some(block_sums))
        })
    });
    Ok(result)
}

/// Reads blocks into free buffers and passes them on; gives the free list back at the end.
fn read_stage(
    source: &File,
    block: usize,
    free: Receiver<Vec<u8>>,
    out: SyncSender<Msg>,
    cancel: &AtomicBool,
) -> Receiver<Vec<u8>> {
    read_blocks(source, block, &free, &out, cancel);
    free
}

fn read_blocks(
    source: &File,
    block: usize,
    free: &Receiver<Vec<u8>>,
    out: &SyncSender<Msg>,
    cancel: &AtomicBool,
) {
    // Positioned reads from offset 0; a pipe (ESPIPE) is read as a stream.
    let mut pos = 0u64;
    let mut stream = false;
    while let Ok(mut buf) = free.recv() {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let mut n = 0;
        while n < block {
            let got = if stream {
                (&mut &*source).read(&mut buf[n..block])
            } else {
                source.read_at(&mut buf[n..block], pos + n as u64)
            };
            match got {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ESPIPE) && pos == 0 && n == 0 => {
                    stream = true;
                }
                Err(e) => {
                    let _ = out.send(Msg::Failed(e));
                    return;
                }
            }
        }
        pos += n as u64;
        let last = n < block;
        if out.send(Msg::Data(buf, n)).is_err() {
            return;
        }
        if last {
            let _ = out.send(Msg::End);
            return;
        }
    }
}

fn hash_stage<D: Digest>(
    mut hasher: D,
    input: Receiver<Msg>,
    out: SyncSender<Msg>,
) -> Option<Vec<u8>> {
    while let Ok(msg) = input.recv() {
        match msg {
            Msg::Data(buf, n) => {
                hasher.update(&buf[..n]);
                out.send(Msg::Data(buf, n)).ok()?;
            }
            Msg::End => {
                out.send(Msg::End).ok()?;
                return Some(hasher.finalize().to_vec());
            }
            Msg::Failed(e) => {
                let _ = out.send(Msg::Failed(e));
                return None;
            }
        }
    }
    None
}

fn write_stage(
    mut dest: &File,
    input: Receiver<Msg>,
    free: &SyncSender<Vec<u8>>,
    mut summer: Summer,
    cancel: &AtomicBool,
) -> Result<(u64, BlockSums), Failure> {
    let mut total = 0u64;
    loop {
        match input.recv() {
            Ok(Msg::Data(buf, n)) => {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Failure::Cancelled);
                }
                dest.write_all(&buf[..n])
                    .map_err(|e| Failure::Dest("write copy", e))?;
                start_writeback(dest, total, n);
                summer.update(&buf[..n]);
                total += n as u64;
                // Cannot block: at most nbuf buffers exist and the channel holds nbuf.
                let _ = free.try_send(buf);
            }
            Ok(Msg::End) => return Ok((total, summer.finish())),
            Ok(Msg::Failed(e)) => return Err(Failure::Source(e)),
            Err(_) => {
                return Err(if cancel.load(Ordering::Relaxed) {
                    Failure::Cancelled
                } else {
                    Failure::Source(io::Error::other("the copy's reader stopped unexpectedly"))
                })
            }
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` back to disk now, so
/// the copy's final fsync finds little left to do and the disk writes while the next blocks
/// are read. Only a hint: file systems without it (FUSE, as LTFS is) return an error, which
/// is ignored; the fsync before the record is what makes the copy durable. Recall writing
/// a cache file uses it the same way.
pub fn start_writeback(file: &File, offset: u64, len: usize) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is an open file borrowed for the call; no memory is passed.
    let _ = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if !is_missing(&e) {
            log::warn!("archive: could not remove {path:?}: {e}");
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
