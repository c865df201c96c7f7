//! Fast tests of the tier over the in-memory catalog and a real cache folder and volumes in
//! a temporary directory (no root, no MariaDB, no mount). The mounted tier, with small file
//! systems for the cache and the volumes, is tested in `tests/archive_tier.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Tier, TierOptions};
use crate::cache::Cache;
use crate::data::DataStore;
use crate::meta::memory::MemoryMeta;
use crate::meta::{DataState, Kind, MetaEngine, NewNode, ROOT_INO};
use crate::vfs::{FsOptions, Vfs, VfsError};
use crate::Config;

/// Longest a test waits for the tier's threads.
const PATIENCE: Duration = Duration::from_secs(30);

struct Fixture {
    meta: Arc<MemoryMeta>,
    cache: Cache,
    vfs: Vfs,
    dir: tempfile::TempDir,
}

/// Tier options for fast tests over volumes in `dir/archive`: copies at once, no batching,
/// no eviction by the watermarks (the test disk's free space must not matter), small
/// recall blocks, digests on; `tweak` changes the rest.
pub(super) fn options(dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> TierOptions {
    let mut config = Config {
        archive_folder: Some(dir.join("archive")),
        ..Config::default()
    };
    config.archive.tape_reserved_min_free_size = 0;
    config.archive.write_wait_file = Duration::ZERO;
    config.archive.write_wait_size = 0;
    config.cache.purge_wait_time = Duration::from_secs(3600);
    // No eviction but asked for (the watermarks would depend on the disk's free space).
    (config.cache.free_min_size, config.cache.free_min_percent) = (0, 0);
    (config.cache.free_max_size, config.cache.free_max_percent) = (0, 0);
    config.cache.write_free_size = 0;
    config.cache.free_least_size = 0;
    config.cache.file_size_block = 4096;
    config.cache.file_size_read = 0;
    config.digest.md5 = true;
    config.digest.sha1 = true;
    tweak(&mut config);
    TierOptions::from_config(&config).unwrap()
}

impl Fixture {
    fn start(volumes: &[&str], tweak: impl FnOnce(&mut Config)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for volume in volumes {
            std::fs::create_dir_all(dir.path().join("archive").join(volume)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("cache")).unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let meta = Arc::new(MemoryMeta::new(0, 0));
        let tier = Tier::new(
            options(dir.path(), tweak),
            Arc::clone(&meta) as Arc<dyn MetaEngine>,
            cache.clone(),
        );
        let fs = FsOptions {
            cache_free_least_size: 0,
            tier: Some(Arc::new(tier)),
            ..FsOptions::default()
        };
        let vfs = Vfs::start(
            Arc::clone(&meta) as Arc<dyn MetaEngine>,
            Arc::new(cache.clone()) as Arc<dyn DataStore>,
            fs,
        )
        .unwrap();
        Fixture {
            meta,
            cache,
            vfs,
            dir,
        }
    }

    fn tier(&self) -> &Tier {
        self.vfs.core().tier().unwrap()
    }

    /// Creates `name` in the root with `data`, closed.
    fn file(&self, name: &str, data: &[u8]) -> u64 {
        let core = self.vfs.core();
        let (fh, attr) = core
            .create(ROOT_INO, name.as_bytes(), &file_node(), true)
            .unwrap();
        assert_eq!(core.write(fh, 0, data).unwrap(), data.len());
        core.flush(attr.ino, fh).unwrap();
        core.release(attr.ino, fh).unwrap();
        attr.ino
    }

    fn state(&self, ino: u64) -> DataState {
        self.meta.get_attr(ino).unwrap().data_state
    }

    fn await_state(&self, ino: u64, state: DataState) {
        let deadline = Instant::now() + PATIENCE;
        while self.state(ino) != state && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(self.state(ino), state, "inode {ino}");
    }

    /// Drops the local data of archived `ino` (the operator's release). The migration that
    /// archived it holds its claim for a moment after the catalog says archived: `Busy`
    /// until then.
    fn release(&self, ino: u64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.tier().release_now(ino) {
                Ok(()) => return,
                Err(super::TierError::Busy(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(err) => panic!("release of inode {ino}: {err}"),
            }
        }
    }

    fn read_all(&self, ino: u64) -> Result<Vec<u8>, VfsError> {
        let core = self.vfs.core();
        let fh = core.open(ino, false)?;
        let size = self.meta.get_attr(ino).unwrap().size;
        let mut out = Vec::new();
        while (out.len() as u64) < size {
            let chunk = core.read(fh, out.len() as u64, 1 << 16);
            match chunk {
                Ok(chunk) if chunk.is_empty() => break,
                Ok(chunk) => out.extend_from_slice(&chunk),
                Err(e) => {
                    core.release(ino, fh).unwrap();
                    return Err(e);
                }
            }
        }
        core.release(ino, fh).unwrap();
        Ok(out)
    }

    fn copy_path(&self, ino: u64) -> std::path::PathBuf {
        let copy = self.meta.live_copy(ino).unwrap().unwrap();
        self.dir
            .path()
            .join("archive")
            .join(&copy.volume)
            .join(crate::archive::copy::copy_name(copy.seq))
    }
}

fn file_node() -> NewNode<'static> {
    NewNode {
        kind: Kind::File,
        perm: 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
        target: None,
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn a_closed_file_is_copied_recorded_and_becomes_archived() {
    let fx = Fixture::start(&["V1"], |_| {});
    let data = pattern(100_000, 1);
    let ino = fx.file("a", &data);
    fx.await_state(ino, DataState::Archived);
    let copy = fx.meta.live_copy(ino).unwrap().unwrap();
    assert_eq!((copy.volume.as_str(), copy.size), ("V1", 100_000));
    assert!(copy.md5.is_some() && copy.sha1.is_some(), "{copy:?}");
    assert_eq!(std::fs::read(fx.copy_path(ino)).unwrap(), data);
    assert_eq!(fx.tier().counters().migrated_files, 1);
}

#[test]
fn files_matching_no_pattern_are_never_migrated() {
    let fx = Fixture::start(&["V1"], |c| {
        c.archive.write_file_pattern = Some(regex::Regex::new(r".*\.dat").unwrap());
    });
    let skipped = fx.file("notes.txt", b"keep me local");
    let taken = fx.file("x.dat", b"archive me");
    fx.await_state(taken, DataState::Archived);
    assert_eq!(fx.state(skipped), DataState::Resident);
}

#[test]
fn a_released_file_is_recalled_by_a_read_with_its_exact_bytes() {
    let fx = Fixture::start(&["V1"], |_| {});
    let data = pattern(50_000, 7);
    let ino = fx.file("r", &data);
    fx.await_state(ino, DataState::Archived);
    fx.release(ino);
    assert_eq!(fx.state(ino), DataState::Released);
    assert!(!fx.cache.path(ino).exists(), "local data dropped");
    assert!(fx.read_all(ino).unwrap() == data, "recalled bytes differ");
    fx.await_state(ino, DataState::Archived);
    assert_eq!(fx.tier().counters().recalled_files, 1);
}

#[test]
fn an_open_file_is_not_released() {
    let fx = Fixture::start(&["V1"], |_| {});
    let ino = fx.file("o", b"open");
    fx.await_state(ino, DataState::Archived);
    // The migration's claim on the file ends a moment after the catalog says archived.
    let files = fx.vfs.core().open_files();
    let deadline = Instant::now() + PATIENCE;
    while !files.claim_for_eviction(ino) {
        assert!(
            Instant::now() < deadline,
            "the migration never let go of inode {ino}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    files.end_claim(ino);
    let fh = fx.vfs.core().open(ino, false).unwrap();
    assert!(matches!(
        fx.tier().release_now(ino),
        Err(super::TierError::Busy(_))
    ));
    assert_eq!(fx.state(ino), DataState::Archived);
    fx.vfs.core().release(ino, fh).unwrap();
    fx.release(ino);
    assert_eq!(fx.state(ino), DataState::Released);
}

#[test]
fn a_corrupt_block_is_never_handed_to_a_reader_and_marks_the_file_damaged() {
    const MIB: usize = 1 << 20;
    let fx = Fixture::start(&["V1"], |_| {});
    let data = pattern(3 * MIB, 3);
    let ino = fx.file("d", &data);
    fx.await_state(ino, DataState::Archived);
    fx.release(ino);
    let path = fx.copy_path(ino);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[2 * MIB + MIB / 2] ^= 0xff; // in the third block
    std::fs::write(&path, bytes).unwrap();
    let core = fx.vfs.core();
    let fh = core.open(ino, false).unwrap();
    let first = core.read(fh, 0, 4096).unwrap();
    assert!(
        first == data[..4096],
        "a good block before the bad one is the file's"
    );
    assert_eq!(core.read(fh, (2 * MIB) as u64, 4096), Err(VfsError::EIO));
    core.release(ino, fh).unwrap();
    fx.await_state(ino, DataState::Damaged);
    assert!(!fx.cache.path(ino).exists(), "no partial data left");
    let errors = fx.tier().status().errors;
    let logged = errors
        .iter()
        .any(|(_, e)| e.contains("block 2") && e.contains("CRC") && e.contains("/d"));
    assert!(logged, "{errors:?}");
    assert_eq!(
        core.open(ino, false),
        Err(VfsError::EIO),
        "damaged stays EIO"
    );
}

#[test]
fn a_missing_copy_is_eio_never_zeros() {
    let fx = Fixture::start(&["V1"], |_| {});
    let ino = fx.file("m", &pattern(8_000, 9));
    fx.await_state(ino, DataState::Archived);
    fx.release(ino);
    std::fs::remove_file(fx.copy_path(ino)).unwrap();
    assert_eq!(fx.read_all(ino).err(), Some(VfsError::EIO));
    fx.await_state(ino, DataState::Damaged);
}

#[test]
fn a_rewritten_file_is_archived_again_and_its_old_copy_superseded() {
    let fx = Fixture::start(&["V1"], |_| {});
    let ino = fx.file("w", b"first version");
    fx.await_state(ino, DataState::Archived);
    let first = fx.meta.live_copy(ino).unwrap().unwrap();
    let core = fx.vfs.core();
    let fh = core.open(ino, true).unwrap();
    core.write(fh, 0, b"second").unwrap();
    core.flush(ino, fh).unwrap();
    core.release(ino, fh).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while fx.meta.live_copy(ino).unwrap().unwrap().seq == first.seq && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    fx.await_state(ino, DataState::Archived);
    let second = fx.meta.live_copy(ino).unwrap().unwrap();
    assert_ne!(second.seq, first.seq);
    assert_eq!(fx.meta.superseded_count().unwrap(), 1);
    assert_eq!(std::fs::read(fx.copy_path(ino)).unwrap(), b"secondversion");
}
