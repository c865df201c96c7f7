//! Fast tests of the core against in-memory fakes of both seams ([`MemoryMeta`],
//! [`MemoryStore`]): no root, no MariaDB, no mount.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{FsOptions, Vfs, VfsError};
use crate::data::memory::MemoryStore;
use crate::data::DataStore;
use crate::meta::memory::MemoryMeta;
use crate::meta::{
    Attr, AttrChange, DataState, Kind, MetaEngine, MetaError, NewNode, XattrMode, ROOT_INO,
};

/// Longest a test waits for something the core does on its own (a timer round).
const PATIENCE: Duration = Duration::from_secs(30);

struct Fixture {
    meta: Arc<MemoryMeta>,
    store: Arc<MemoryStore>,
    options: FsOptions,
    vfs: Option<Vfs>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A core over empty fakes whose timer does not run unless `tweak` says so.
    fn start(tweak: impl FnOnce(&mut FsOptions)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut options = FsOptions {
            save_interval: Duration::from_secs(3600),
            cache_free_least_size: 0,
            ..FsOptions::default()
        };
        tweak(&mut options);
        let meta = Arc::new(MemoryMeta::new(0, 0));
        let store = Arc::new(MemoryStore::new(dir.path()));
        let mut fixture = Fixture {
            meta,
            store,
            options,
            vfs: None,
            _dir: dir,
        };
        fixture.restart();
        fixture
    }

    /// Stops the core (as an unmount does) and starts a new one over the same fakes.
    fn restart(&mut self) {
        drop(self.vfs.take());
        let vfs = Vfs::start(
            Arc::clone(&self.meta) as Arc<dyn MetaEngine>,
            Arc::clone(&self.store) as Arc<dyn DataStore>,
            self.options.clone(),
        )
        .unwrap();
        self.vfs = Some(vfs);
    }

    fn vfs(&self) -> &Vfs {
        self.vfs.as_ref().unwrap()
    }

    fn core(&self) -> &super::Core {
        self.vfs().core()
    }

    /// Creates regular file `name` in the root, open for writing.
    fn create(&self, name: &str) -> (u64, Attr) {
        self.core()
            .create(ROOT_INO, name.as_bytes(), &file_node(), true)
            .unwrap()
    }

    /// The catalog's attributes of `ino`.
    fn stored(&self, ino: u64) -> Result<Attr, MetaError> {
        self.meta.get_attr(ino)
    }

    /// Sets `state` and `size` of `ino` in the catalog directly (as another tier would).
    fn set_stored(&self, ino: u64, size: u64, state: DataState) {
        let change = AttrChange {
            size: Some(size),
            data_state: Some(state),
            ..AttrChange::default()
        };
        self.meta.set_attr(ino, &change).unwrap();
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

/// Waits (bounded) until `done` holds; returns whether it did.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

#[test]
fn writes_reach_the_catalog_by_the_timer_without_a_close() {
    let fx = Fixture::start(|o| o.save_interval = Duration::from_millis(20));
    let (fh, attr) = fx.create("timed");
    assert_eq!(fx.core().write(fh, 0, b"hello").unwrap(), 5);
    assert_eq!(fx.stored(attr.ino).unwrap().size, 0, "not saved per write");
    let saved = eventually(|| fx.stored(attr.ino).is_ok_and(|a| a.size == 5));
    assert!(saved, "catalog still has {:?}", fx.stored(attr.ino));
    assert_eq!(fx.stored(attr.ino).unwrap().data_state, DataState::Dirty);
    assert_eq!(fx.core().stats().unsaved_inodes, 0);
}

#[test]
fn flush_saves_size_and_dirty_state_in_one_save() {
    let fx = Fixture::start(|_| {});
    let (fh, attr) = fx.create("flushed");
    fx.core().write(fh, 0, b"0123456789").unwrap();
    assert!(fx.core().needs_save(attr.ino));
    let reader = fx.core().open(attr.ino, false).unwrap();
    fx.core().flush(attr.ino, reader).unwrap(); // a reader's close: the writer goes on
    let stored = fx.stored(attr.ino).unwrap();
    assert_eq!(
        (stored.size, stored.data_state),
        (10, DataState::Dirty),
        "{stored:?}"
    );
    assert!(!fx.core().needs_save(attr.ino));
}

#[test]
fn handles_are_registered_by_inode_and_mode_until_released() {
    let fx = Fixture::start(|_| {});
    let (writer, attr) = fx.create("handles");
    let reader = fx.core().open(attr.ino, false).unwrap();
    let files = fx.core().open_files();
    assert!(files.is_open(attr.ino) && files.is_open_for_write(attr.ino));
    assert_eq!(fx.core().stats().open_handles, 2);
    fx.core().release(attr.ino, writer).unwrap();
    assert!(files.is_open(attr.ino) && !files.is_open_for_write(attr.ino));
    assert_eq!(
        fx.core().write(writer, 0, b"x"),
        Err(VfsError::EBADF),
        "a released handle is gone"
    );
    fx.core().release(attr.ino, reader).unwrap();
    assert!(!files.is_open(attr.ino));
    assert_eq!(fx.core().read(reader, 0, 10), Err(VfsError::EBADF));
}

#[test]
fn an_open_unlinked_file_is_purged_at_its_last_release_not_before() {
    let fx = Fixture::start(|_| {});
    let (fh, attr) = fx.create("doomed");
    fx.core().write(fh, 0, b"still here").unwrap();
    fx.core().unlink(ROOT_INO, b"doomed").unwrap();
    // The kernel forgets the entry it was handed at create; the handle still holds it.
    assert!(!fx.core().forget(attr.ino, 1), "open: not reclaimed");
    assert_eq!(fx.core().read(fh, 0, 100).unwrap(), b"still here");
    let kept = fx.stored(attr.ino).unwrap();
    assert_eq!(kept.nlink, 0, "unlinked but kept: {kept:?}");
    assert!(
        fx.store.contents(attr.ino).is_some(),
        "data kept while open"
    );
    fx.core().release(attr.ino, fh).unwrap();
    assert_eq!(
        fx.stored(attr.ino).err(),
        Some(MetaError::Errno(libc::ENOENT)),
        "purged at the last release"
    );
    assert_eq!(fx.store.contents(attr.ino), None, "and its data removed");
}

#[test]
fn missing_data_of_a_resident_file_is_eio_and_keeps_its_size() {
    let fx = Fixture::start(|_| {});
    let (fh, attr) = fx.create("lost");
    fx.core().write(fh, 0, b"precious").unwrap();
    fx.core().release(attr.ino, fh).unwrap();
    assert_eq!(fx.stored(attr.ino).unwrap().data_state, DataState::Resident);
    fx.store.remove(attr.ino).unwrap();
    let fh = fx.core().open(attr.ino, true).unwrap();
    assert_eq!(
        fx.core().read(fh, 0, 100),
        Err(VfsError::EIO),
        "never empty"
    );
    assert_eq!(fx.core().write(fh, 8, b"more"), Err(VfsError::EIO));
    fx.core().release(attr.ino, fh).unwrap();
    let stored = fx.stored(attr.ino).unwrap();
    assert_eq!(
        (stored.size, stored.data_state),
        (8, DataState::Resident),
        "size and state unchanged: {stored:?}"
    );
    assert_eq!(fx.store.contents(attr.ino), None, "no empty data made");
}

#[test]
fn an_empty_file_reads_as_zeros_up_to_its_size_without_data() {
    let fx = Fixture::start(|_| {});
    let (fh, attr) = fx.create("hole");
    fx.core().release(attr.ino, fh).unwrap();
    fx.set_stored(attr.ino, 100, DataState::Empty);
    let fh = fx.core().open(attr.ino, false).unwrap();
    assert_eq!(fx.core().read(fh, 0, 4096).unwrap(), vec![0u8; 100]);
    assert_eq!(fx.core().read(fh, 90, 4096).unwrap(), vec![0u8; 10]);
    assert_eq!(fx.core().read(fh, 100, 4096).unwrap(), b"", "at the end");
    assert_eq!(fx.store.contents(attr.ino), None, "reading makes no data");
    fx.core().release(attr.ino, fh).unwrap();
    // The first write into the hole keeps the rest of it zeros.
    let fh = fx.core().open(attr.ino, true).unwrap();
    fx.core().write(fh, 10, b"ab").unwrap();
    let mut expected = vec![0u8; 100];
    expected[10..12].copy_from_slice(b"ab");
    assert_eq!(fx.core().read(fh, 0, 4096).unwrap(), expected);
    fx.core().release(attr.ino, fh).unwrap();
}

#[test]
fn a_released_file_is_eio_until_the_archive_tier_exists() {
    let fx = Fixture::start(|_| {});
    let (fh, attr) = fx.create("archived");
    fx.core().write(fh, 0, b"data").unwrap();
    fx.core().release(attr.ino, fh).unwrap();
    fx.set_stored(attr.ino, 4, DataState::Released);
    fx.store.remove(attr.ino).unwrap();
    assert_eq!(fx.core().open(attr.ino, false), Err(VfsError::EIO));
    let size = fx.stored(attr.ino).unwrap().size;
    assert_eq!(size, 4, "the size stays");
}

#[test]
fn dirty_data_becomes_resident_when_the_last_writer_closes() {
    let fx = Fixture::start(|_| {});
    let (first, attr) = fx.create("settled");
    let second = fx.core().open(attr.ino, true).unwrap();
    fx.core().write(first, 0, b"abc").unwrap();
    fx.core().release(attr.ino, first).unwrap();
    assert_eq!(
        fx.stored(attr.ino).unwrap().data_state,
        DataState::Dirty,
        "another writer still has it"
    );
    assert!(
        fx.core()
            .release_without_catalog(attr.ino, second)
            .is_none(),
        "the last writer's close needs the catalog"
    );
    fx.core().release(attr.ino, second).unwrap();
    let stored = fx.stored(attr.ino).unwrap();
    assert_eq!((stored.size, stored.data_state), (3, DataState::Resident));
}

#[test]
fn the_last_writers_close_records_resident_in_its_flush_and_its_release_needs_no_catalog() {
    let fx = Fixture::start(|_| {});
    let (fh, attr) = fx.create("closed");
    fx.core().write(fh, 0, b"abc").unwrap();
    assert!(!fx.core().flush_without_catalog(attr.ino, fh));
    fx.core().flush(attr.ino, fh).unwrap();
    let stored = fx.stored(attr.ino).unwrap();
    assert_eq!((stored.size, stored.data_state), (3, DataState::Resident));
    assert_eq!(
        fx.core().release_without_catalog(attr.ino, fh),
        Some(false),
        "closed without a catalog round trip"
    );
    // A write after the flush (another descriptor of the same handle) is Dirty again.
    let (fh, attr) = fx.create("reopened");
    fx.core().flush(attr.ino, fh).unwrap();
    fx.core().write(fh, 0, b"late").unwrap();
    assert!(fx.core().release_without_catalog(attr.ino, fh).is_none());
    fx.core().release(attr.ino, fh).unwrap();
    assert_eq!(fx.stored(attr.ino).unwrap().data_state, DataState::Resident);
}

#[test]
fn dirty_state_left_by_a_crash_is_recorded_resident_at_the_next_close() {
    let fx = Fixture::start(|_| {});
    let (fh, attr) = fx.create("crashed");
    fx.core().write(fh, 0, b"abc").unwrap();
    fx.core().release(attr.ino, fh).unwrap();
    fx.set_stored(attr.ino, 3, DataState::Dirty); // as a crash before the close leaves it
    let fh = fx.core().open(attr.ino, false).unwrap();
    assert_eq!(fx.core().read(fh, 0, 10).unwrap(), b"abc");
    fx.core().release(attr.ino, fh).unwrap();
    assert_eq!(fx.stored(attr.ino).unwrap().data_state, DataState::Resident);
}

#[test]
fn unsaved_sizes_go_to_the_journal_and_are_replayed_resident_at_start() {
    let mut fx = Fixture::start(|_| {});
    let (fh, attr) = fx.create("journalled");
    fx.core().write(fh, 0, b"unsaved").unwrap();
    // The database is gone for the flush and for the stop's last save.
    fx.meta
        .fail_next(MetaError::Unavailable("test: down".into()));
    fx.core().flush_dirty();
    fx.meta
        .fail_next(MetaError::Unavailable("test: down".into()));
    let finished = fx.core().finish();
    assert!(finished.is_err(), "reported unsaved: {finished:?}");
    assert_eq!(fx.stored(attr.ino).unwrap().size, 0);
    // And for the last save of the stop itself (the file is still open: as a crash).
    fx.meta
        .fail_next(MetaError::Unavailable("test: down".into()));
    fx.restart();
    let stored = fx.stored(attr.ino).unwrap();
    assert_eq!(
        (stored.size, stored.data_state),
        (7, DataState::Resident),
        "replayed: {stored:?}"
    );
}

#[test]
fn a_panicking_operation_is_answered_eio_and_its_thread_keeps_serving() {
    let fx = Fixture::start(|o| o.catalog_threads = 1);
    let (answers, answered) = mpsc::channel();
    let first = answers.clone();
    fx.vfs().offload(
        |_| -> Result<u32, VfsError> { panic!("operation failed on purpose") },
        move |result| first.send(result).unwrap(),
    );
    fx.vfs()
        .offload(|_| Ok(7), move |result| answers.send(result).unwrap());
    let first = answered.recv_timeout(PATIENCE);
    assert_eq!(first, Ok(Err(VfsError::EIO)), "the panicking operation");
    let second = answered.recv_timeout(PATIENCE);
    assert_eq!(second, Ok(Ok(7)), "the next one, on the same single thread");
}

#[test]
fn a_revoked_fence_stops_every_change_with_eio_and_reads_go_on() {
    let fx = Fixture::start(|_| {});
    let (fh, attr) = fx.create("fenced");
    fx.core().write(fh, 0, b"before").unwrap();
    fx.core().fsync(fh, false).unwrap();
    fx.options.fence.revoke("test: the lease went to host b");
    let core = fx.core();
    let eio = Err(VfsError::EIO);
    assert_eq!(core.write(fh, 0, b"after").map(|_| ()), eio, "write");
    assert_eq!(core.fallocate(fh, 0, 100, 0), eio, "fallocate");
    let truncate = AttrChange {
        size: Some(0),
        ..AttrChange::default()
    };
    let setattr = core.setattr(attr.ino, Some(fh), truncate, 1, || unreachable!());
    assert_eq!(setattr.map(|_| ()), eio, "truncate");
    assert_eq!(
        core.create(ROOT_INO, b"new", &file_node(), true)
            .map(|_| ()),
        eio,
        "create"
    );
    assert_eq!(core.make(ROOT_INO, b"new", &file_node()).map(|_| ()), eio);
    assert_eq!(core.link(attr.ino, ROOT_INO, b"again").map(|_| ()), eio);
    assert_eq!(core.unlink(ROOT_INO, b"fenced"), eio, "unlink");
    let rename = core.rename(
        ROOT_INO,
        b"fenced",
        ROOT_INO,
        b"moved",
        crate::meta::RenameMode::Replace,
    );
    assert_eq!(rename, eio, "rename");
    assert_eq!(
        core.set_xattr(attr.ino, b"user.a", b"1", XattrMode::Any),
        eio
    );
    assert_eq!(core.remove_xattr(attr.ino, b"user.a"), eio);
    // Reads and lookups keep working; nothing changed.
    assert_eq!(core.read(fh, 0, 100).unwrap(), b"before");
    assert_eq!(core.lookup(ROOT_INO, b"fenced").unwrap().ino, attr.ino);
    assert_eq!(fx.stored(attr.ino).unwrap().size, 6);
    assert_eq!(
        fx.meta.lookup(ROOT_INO, b"new").err(),
        Some(MetaError::Errno(libc::ENOENT))
    );
}

#[test]
fn catalog_threads_follow_database_max_pool_size() {
    let mut config = crate::Config::default();
    config.database.max_pool_size = 7;
    assert_eq!(FsOptions::from_config(&config).catalog_threads, 7);
}

#[test]
fn as_many_operations_run_at_once_as_there_are_catalog_threads() {
    let fx = Fixture::start(|o| o.catalog_threads = 2);
    let (started, seen) = mpsc::channel();
    let (open_gate, gate) = mpsc::channel::<()>();
    let gate = Arc::new(parking_lot::Mutex::new(gate));
    for _ in 0..2 {
        let (started, gate) = (started.clone(), Arc::clone(&gate));
        fx.vfs().offload(
            move |_| {
                started.send(()).unwrap();
                // Held until both have started (or the test gave up).
                let _ = gate.lock().recv_timeout(PATIENCE);
                Ok(())
            },
            |_| {},
        );
    }
    let first = seen.recv_timeout(PATIENCE);
    let second = seen.recv_timeout(PATIENCE);
    drop(open_gate);
    assert_eq!(
        (first, second),
        (Ok(()), Ok(())),
        "two operations did not run at once on two catalog threads"
    );
}

#[test]
fn a_truncation_the_catalog_refuses_leaves_the_data_as_it_was() {
    let fx = Fixture::start(|_| {});
    let (fh, attr) = fx.create("kept");
    fx.core().write(fh, 0, b"0123456789").unwrap();
    fx.core().fsync(fh, false).unwrap();
    for size in [3, 100] {
        fx.meta
            .fail_next(MetaError::Unavailable("test: down".into()));
        let change = AttrChange {
            size: Some(size),
            ..AttrChange::default()
        };
        let result = fx
            .core()
            .setattr(attr.ino, Some(fh), change, 1, || unreachable!());
        assert_eq!(result.map(|a| a.size), Err(VfsError::EIO), "to {size}");
        assert_eq!(
            fx.store.contents(attr.ino).as_deref(),
            Some(&b"0123456789"[..]),
            "data after a refused truncation to {size}"
        );
    }
    assert_eq!(fx.stored(attr.ino).unwrap().size, 10);
}

#[test]
fn a_start_without_the_owner_lease_reclaims_nothing() {
    let mut fx = Fixture::start(|_| {});
    let (fh, attr) = fx.create("orphan");
    fx.core().unlink(ROOT_INO, b"orphan").unwrap();
    fx.options
        .fence
        .revoke("test: another server holds the lease");
    fx.core().release(attr.ino, fh).unwrap();
    assert_eq!(
        fx.stored(attr.ino).unwrap().nlink,
        0,
        "kept for the next start"
    );
    drop(fx.vfs.take());
    let started = Vfs::start(
        Arc::clone(&fx.meta) as Arc<dyn MetaEngine>,
        Arc::clone(&fx.store) as Arc<dyn DataStore>,
        fx.options.clone(),
    );
    let refused = started.err().map(|err| err.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|m| m.contains("not reclaiming unlinked inodes")),
        "{refused:?}"
    );
    assert!(fx.stored(attr.ino).is_ok(), "the orphan was not purged");
    // With the lease (a new fence) the next start purges it.
    fx.options.fence = crate::meta::OwnerFence::new();
    fx.restart();
    assert_eq!(
        fx.stored(attr.ino).err(),
        Some(MetaError::Errno(libc::ENOENT))
    );
}
