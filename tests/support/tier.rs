//! A `vfsserver` with an archive tier on small file systems: the cache folder and each
//! volume on a tmpfs of their own (so filling them is real and cheap), with the server's
//! statistics and the catalog's data states at hand. Needs root (tmpfs mounts). Everything
//! is unmounted and stopped when dropped, also when the test fails.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use super::server::{Server, ServerDir};
use super::MariaDb;

/// `vs_inodes.data_state` values.
pub const RESIDENT: u8 = 1;
/// Being written.
pub const DIRTY: u8 = 2;
/// Local and in the archive.
pub const ARCHIVED: u8 = 3;
/// Only in the archive.
pub const RELEASED: u8 = 4;
/// Its copy could not be recalled.
pub const DAMAGED: u8 = 5;

/// Keys every test starts from: copies as soon as a file is closed, no batching, small
/// recall blocks, digests on, an eviction check every second, no pre-read.
pub const FAST: &str = "<WriteToTapeWaitFile>0</WriteToTapeWaitFile>\
    <WriteToTapeWaitSize>0</WriteToTapeWaitSize>\
    <WriteToTapeWaitTime>0</WriteToTapeWaitTime>\
    <TapeReservedMinFreeSize>1M</TapeReservedMinFreeSize>\
    <CachePurgeWaitTime>1</CachePurgeWaitTime>\
    <CacheFileSizeBlock>1M</CacheFileSizeBlock>\
    <CacheFileSizeRead>0</CacheFileSizeRead>\
    <CacheFreeMinPercent>0</CacheFreeMinPercent>\
    <CacheFreeMaxPercent>0</CacheFreeMaxPercent>\
    <DigestMD5Enable>true</DigestMD5Enable>\
    <DigestSHA1Enable>true</DigestSHA1Enable>";

/// Keys that release every archived, closed file at once (the lower watermark is above the
/// whole cache), for tests of recall.
pub const RELEASE_ALL: &str = "<CacheFreeMinSize>100G</CacheFreeMinSize>\
    <CacheFreeMaxSize>100G</CacheFreeMaxSize>\
    <WriteCacheFreeSize>0</WriteCacheFreeSize>";

/// Keys that never evict.
pub const KEEP_ALL: &str = "<CacheFreeMinSize>0</CacheFreeMinSize>\
    <CacheFreeMaxSize>0</CacheFreeMaxSize>\
    <WriteCacheFreeSize>0</WriteCacheFreeSize>";

/// Longest a test waits for the tier's threads (migration rounds, eviction passes).
pub const PATIENCE: Duration = Duration::from_secs(60);
/// Longest start-up.
const START_LIMIT: Duration = Duration::from_secs(60);

/// A server with a tier, its tmpfs mounts and its database.
pub struct TierBed {
    server: Option<Server>,
    tmpfs: Vec<PathBuf>,
    /// The server's directory (config, mount point, cache, archive).
    pub dir: ServerDir,
    /// The database.
    pub db: MariaDb,
}

/// How a test bed is laid out.
pub struct Layout<'a> {
    /// Size of the cache's tmpfs (0: a plain directory on the disk of the server's
    /// directory, for benchmarks).
    pub cache: u64,
    /// Volumes: label and tmpfs size (0: a plain directory, as for the cache).
    pub volumes: &'a [(&'a str, u64)],
    /// More configuration keys (XML).
    pub keys: &'a str,
}

impl TierBed {
    /// Starts a database, mounts the tmpfs file systems and starts the server.
    pub fn start(layout: &Layout<'_>) -> TierBed {
        let db = MariaDb::start();
        // ServerDir puts everything under its root, CacheFolder at <root>/cache; the archive
        // goes to <root>/archive, named by the ARCHIVE placeholder until the root is known.
        let dir = ServerDir::new(
            &db,
            &format!("<ArchiveFolder>ARCHIVE</ArchiveFolder>{}", layout.keys),
        );
        let root = dir.root.path().to_path_buf();
        let config = std::fs::read_to_string(dir.config()).unwrap();
        let archive = root.join("archive");
        std::fs::write(
            dir.config(),
            config.replace("ARCHIVE", &archive.display().to_string()),
        )
        .unwrap();
        let mut bed = TierBed {
            server: None,
            tmpfs: Vec::new(),
            dir,
            db,
        };
        std::fs::create_dir_all(&archive).unwrap();
        bed.mount_tmpfs(&root.join("cache"), layout.cache);
        for (label, size) in layout.volumes {
            bed.mount_tmpfs(&root.join("archive").join(label), *size);
        }
        bed.start_server();
        bed
    }

    fn mount_tmpfs(&mut self, at: &Path, bytes: u64) {
        std::fs::create_dir_all(at).unwrap();
        if bytes == 0 {
            return;
        }
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes}"),
                "vs-test-tier",
            ])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        self.tmpfs.push(at.to_path_buf());
    }

    /// Starts the server and waits until it is mounted.
    pub fn start_server(&mut self) {
        assert!(self.server.is_none(), "already running");
        let server = Server::start(&self.dir, &[], &[]);
        assert!(
            server.await_notify("READY=1", START_LIMIT).is_some(),
            "no READY=1 from vfsserver; output:\n{}",
            server.output()
        );
        self.server = Some(server);
    }

    /// The running server.
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    /// Kills the server with SIGKILL (as a crash) and detaches its mount.
    pub fn kill(&mut self) -> String {
        let mut server = self.server.take().expect("server running");
        server.signal(libc::SIGKILL);
        let (_, output) = server.wait(Duration::from_secs(30));
        for _ in 0..self.dir.mount_count() {
            valuestor::fs::lazy_unmount(&self.dir.mountpoint());
        }
        output
    }

    /// Stops the server cleanly (SIGTERM) and returns its output.
    pub fn stop(&mut self) -> String {
        let mut server = self.server.take().expect("server running");
        server.signal(libc::SIGTERM);
        let (status, output) = server.wait(Duration::from_secs(60));
        assert!(status.success(), "exit {status}:\n{output}");
        output
    }

    /// A path in the mount.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.mountpoint().join(relative)
    }

    /// The cache folder.
    pub fn cache(&self) -> PathBuf {
        self.dir.root.path().join("cache")
    }

    /// Volume `label`'s directory.
    pub fn volume(&self, label: &str) -> PathBuf {
        self.dir.root.path().join("archive").join(label)
    }

    /// The data file of `ino` in the cache.
    pub fn cache_file(&self, ino: u64) -> PathBuf {
        self.cache()
            .join("data")
            .join(format!("{:02x}", ino % 256))
            .join(format!("{ino:016x}"))
    }

    /// Writes `data` to `relative` in the mount (making parent folders), fsyncs and closes
    /// it; returns its inode.
    pub fn write_file(&self, relative: &str, data: &[u8]) -> u64 {
        use std::io::Write;
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(data).unwrap();
        file.sync_all().unwrap();
        drop(file);
        self.ino(relative)
    }

    /// The inode of `relative` in the mount.
    pub fn ino(&self, relative: &str) -> u64 {
        std::fs::metadata(self.path(relative)).unwrap().ino()
    }

    /// The catalog's data state of `ino`.
    pub fn state(&self, ino: u64) -> u8 {
        let mut conn = self.db.connect();
        conn.exec_first("SELECT data_state FROM vs_inodes WHERE ino = ?", (ino,))
            .unwrap()
            .unwrap_or(0)
    }

    /// Waits until `ino` is in `state`.
    pub fn await_state(&self, ino: u64, state: u8) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.state(ino);
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "inode {ino} is in state {now}, expected {state}; server output:\n{}",
                self.output_tail()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the catalog, the cache and the volumes agree
    /// ([`super::consistency::problems`] and [`super::consistency::tier_problems`]): closes
    /// reach the server after `close` returns. Panics with the problems otherwise.
    pub fn await_consistent(&self) {
        let mut conn = self.db.connect();
        let archive = self.dir.root.path().join("archive");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut problems = super::consistency::problems(&mut conn, Some(&self.cache()));
            problems.extend(super::consistency::tier_problems(
                &mut conn,
                &self.cache(),
                &archive,
            ));
            if problems.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "catalog, cache and volumes disagree:\n{}",
                problems.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Rewrites the server's configuration: `from` becomes `to` (for a restart with other
    /// keys).
    pub fn edit_config(&self, from: &str, to: &str) {
        let config = std::fs::read_to_string(self.dir.config()).unwrap();
        assert!(config.contains(from), "{from} not in the configuration");
        std::fs::write(self.dir.config(), config.replace(from, to)).unwrap();
    }

    /// Regular files per data state, with their bytes (for failure messages).
    pub fn states(&self) -> Vec<(u8, u64, u64)> {
        let mut conn = self.db.connect();
        conn.query(
            "SELECT data_state, COUNT(*), CAST(SUM(size) AS UNSIGNED) FROM vs_inodes \
             WHERE kind = 1 GROUP BY data_state",
        )
        .unwrap()
    }

    /// The live copy of `ino`: (volume, seq, size).
    pub fn live_copy(&self, ino: u64) -> Option<(String, u64, u64)> {
        let mut conn = self.db.connect();
        conn.exec_first(
            "SELECT CAST(volume AS CHAR), seq, size FROM vs_copies \
             WHERE ino = ? AND superseded_ns IS NULL",
            (ino,),
        )
        .unwrap()
    }

    /// The archive tier's counters, from the statistics the server logs on SIGUSR1.
    pub fn counters(&self) -> HashMap<String, u64> {
        let server = self.server();
        let before = server.output().matches("archive tier: migrated").count();
        server.signal(libc::SIGUSR1);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let output = server.output();
            if output.matches("archive tier: migrated").count() > before {
                let line = output
                    .lines()
                    .rev()
                    .find(|l| l.contains("archive tier: migrated"))
                    .unwrap()
                    .to_owned();
                return parse_counters(&line);
            }
            assert!(Instant::now() < deadline, "no statistics:\n{output}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Bytes the tier saw waiting to migrate at its last scan (from the statistics).
    pub fn waiting_bytes(&self) -> u64 {
        self.counters();
        let output = self.server().output();
        let line = output
            .lines()
            .rev()
            .find(|l| l.contains("bytes waiting to migrate"))
            .expect("a statistics line");
        let before = line.split(" bytes waiting to migrate").next().unwrap();
        before.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// The last lines of the server's output (for failure messages).
    pub fn output_tail(&self) -> String {
        let output = self.server.as_ref().map(Server::output).unwrap_or_default();
        let lines: Vec<&str> = output.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// The counters of a statistics line ("archive tier: migrated 3 files (300 bytes, 0 copies
/// aborted), evicted ..."), by name: `migrated_files`, `migrated_bytes`, `copies_aborted`,
/// `evicted_files`, `evicted_bytes`, `recalled_files`, `recalled_bytes`, `pre_read_files`,
/// `recall_failures`, `volume_switches`, `copies_deleted`.
pub fn parse_counters(line: &str) -> HashMap<String, u64> {
    let pattern = regex::Regex::new(
        r"migrated (\d+) files \((\d+) bytes, (\d+) copies aborted\), evicted (\d+) files \((\d+) bytes\), recalled (\d+) files \((\d+) bytes, (\d+) pre-read, (\d+) failed, (\d+) volume switches\), (\d+) superseded copies deleted",
    )
    .unwrap();
    let names = [
        "migrated_files",
        "migrated_bytes",
        "copies_aborted",
        "evicted_files",
        "evicted_bytes",
        "recalled_files",
        "recalled_bytes",
        "pre_read_files",
        "recall_failures",
        "volume_switches",
        "copies_deleted",
    ];
    let captures = pattern
        .captures(line)
        .unwrap_or_else(|| panic!("not a statistics line: {line}"));
    names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), captures[i + 1].parse().unwrap()))
        .collect()
}

impl Drop for TierBed {
    fn drop(&mut self) {
        if let Some(server) = self.server.as_ref() {
            server.signal(libc::SIGKILL);
        }
        drop(self.server.take());
        for _ in 0..self.dir.mount_count() {
            valuestor::fs::lazy_unmount(&self.dir.mountpoint());
        }
        for at in self.tmpfs.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(at).status();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_parse() {
        let c = super::parse_counters(
            "x archive tier: migrated 3 files (300 bytes, 1 copies aborted), evicted 2 files \
             (200 bytes), recalled 1 files (100 bytes, 0 pre-read, 0 failed, 4 volume \
             switches), 5 superseded copies deleted",
        );
        assert_eq!(c["migrated_files"], 3);
        assert_eq!(c["migrated_bytes"], 300);
        assert_eq!(c["evicted_files"], 2);
        assert_eq!(c["recalled_files"], 1);
        assert_eq!(c["copies_aborted"], 1);
        assert_eq!(c["volume_switches"], 4);
        assert_eq!(c["copies_deleted"], 5);
    }
}
