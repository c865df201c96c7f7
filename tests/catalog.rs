//! The catalog directly over a pool: migrations, one-round-trip creation, errno mapping
//! (including the errors the kernel answers before a request reaches the file system),
//! name limits, the attributes changes return, and the time bound when the database hangs.

mod support;

use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use support::{pool_options, MariaDb};
use valuestor::meta::mysql::{MysqlMeta, SCHEMA_VERSION};
use valuestor::meta::{
    Attr, AttrChange, Kind, MetaEngine, MetaError, NewNode, RenameMode, XattrMode, ROOT_INO,
};
use valuestor::Pool;

fn catalog(db: &MariaDb) -> MysqlMeta {
    let catalog = MysqlMeta::new(Pool::new(pool_options(db)).unwrap());
    assert_eq!(catalog.migrate(0, 0).unwrap(), SCHEMA_VERSION);
    catalog
}

fn node(kind: Kind, perm: u16) -> NewNode<'static> {
    NewNode {
        kind,
        perm,
        uid: 10,
        gid: 20,
        rdev: 0,
        target: None,
    }
}

#[test]
fn migration_is_idempotent_and_records_the_version() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    assert_eq!(catalog.migrate(0, 0).unwrap(), SCHEMA_VERSION);
    let version: Option<u32> = db
        .connect()
        .query_first("SELECT version FROM vs_schema_version WHERE id = 1")
        .unwrap();
    assert_eq!(version, Some(SCHEMA_VERSION));
    assert_eq!(catalog.get_attr(ROOT_INO).unwrap().kind, Kind::Directory);
}

#[test]
fn identity_is_made_once_and_an_upgrade_from_version_2_makes_one() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    let identity = catalog.identity().unwrap();
    assert_eq!(identity.len(), 32, "{identity}");
    assert!(
        identity.bytes().all(|b| b.is_ascii_hexdigit()),
        "{identity}"
    );
    catalog.migrate(0, 0).unwrap();
    assert_eq!(
        catalog.identity().unwrap(),
        identity,
        "kept by a later start"
    );

    // A catalog made by version 2 has no identity table.
    let mut conn = db.connect();
    conn.query_drop("DROP TABLE vs_catalog_identity").unwrap();
    conn.query_drop("UPDATE vs_schema_version SET version = 2 WHERE id = 1")
        .unwrap();
    assert_eq!(catalog.migrate(0, 0).unwrap(), SCHEMA_VERSION);
    let upgraded = catalog.identity().unwrap();
    assert_eq!(upgraded.len(), 32, "{upgraded}");
    assert_ne!(upgraded, identity, "a new random identity");
}

#[test]
fn an_upgrade_from_version_3_adds_blocks_unknown_for_old_rows() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    let file = catalog
        .create(ROOT_INO, b"old", &node(Kind::File, 0o644))
        .unwrap();

    // A catalog made by version 3 has no blocks column.
    let mut conn = db.connect();
    conn.query_drop("ALTER TABLE vs_inodes DROP COLUMN blocks")
        .unwrap();
    conn.query_drop("UPDATE vs_schema_version SET version = 3 WHERE id = 1")
        .unwrap();
    assert_eq!(catalog.migrate(0, 0).unwrap(), SCHEMA_VERSION);
    let version: Option<u32> = conn
        .query_first("SELECT version FROM vs_schema_version WHERE id = 1")
        .unwrap();
    assert_eq!(version, Some(SCHEMA_VERSION), "recorded version");
    assert_eq!(
        catalog.get_attr(file.ino).unwrap().blocks,
        None,
        "a row from before the column has unknown blocks"
    );

    // Recorded blocks are kept by changes that do not measure them.
    let saved = AttrChange {
        size: Some(100 << 20),
        blocks: Some(8),
        ..AttrChange::default()
    };
    assert_eq!(catalog.set_attr(file.ino, &saved).unwrap().blocks, Some(8));
    let chmod = AttrChange {
        perm: Some(0o600),
        ..AttrChange::default()
    };
    assert_eq!(catalog.set_attr(file.ino, &chmod).unwrap().blocks, Some(8));
    catalog.migrate(0, 0).unwrap();
    assert_eq!(
        catalog.get_attr(file.ino).unwrap().blocks,
        Some(8),
        "kept by a later start"
    );
}

#[test]
fn create_maps_errors_and_inherits_set_group_id() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    let dir = catalog
        .create(ROOT_INO, b"shared", &node(Kind::Directory, 0o2775))
        .unwrap();
    let file = catalog
        .create(dir.ino, b"f", &node(Kind::File, 0o644))
        .unwrap();
    assert_eq!(
        file.gid, dir.gid,
        "set-group-ID directory passes its group on"
    );
    let sub = catalog
        .create(dir.ino, b"sub", &node(Kind::Directory, 0o755))
        .unwrap();
    assert_eq!(sub.perm & 0o2000, 0o2000, "and the bit to subdirectories");
    assert_eq!(
        catalog.get_attr(sub.ino).unwrap(),
        sub,
        "returned attributes are stored ones"
    );
    assert!(matches!(
        catalog.create(dir.ino, b"f", &node(Kind::File, 0o644)),
        Err(MetaError::Errno(libc::EEXIST))
    ));
    assert!(matches!(
        catalog.create(file.ino, b"x", &node(Kind::File, 0o644)),
        Err(MetaError::Errno(libc::ENOTDIR))
    ));
    assert!(matches!(
        catalog.create(999_999, b"x", &node(Kind::File, 0o644)),
        Err(MetaError::Errno(libc::ENOENT))
    ));
    assert!(matches!(
        catalog.create(ROOT_INO, &[b'n'; 256], &node(Kind::File, 0o644)),
        Err(MetaError::Errno(libc::ENAMETOOLONG))
    ));
    let evil = b"x'); DELETE FROM vs_inodes; --";
    let created = catalog
        .create(ROOT_INO, evil, &node(Kind::File, 0o600))
        .unwrap();
    assert_eq!(catalog.lookup(ROOT_INO, evil).unwrap().ino, created.ino);
    assert!(catalog.get_attr(file.ino).is_ok(), "nothing was deleted");
}

#[test]
fn directory_listing_pages_by_cookie_with_attributes() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    let dir = catalog
        .create(ROOT_INO, b"d", &node(Kind::Directory, 0o755))
        .unwrap();
    for i in 0..10 {
        catalog
            .create(
                dir.ino,
                format!("f{i}").as_bytes(),
                &node(Kind::File, 0o644),
            )
            .unwrap();
    }
    let first = catalog.read_dir_plus(dir.ino, 0, 4).unwrap();
    assert_eq!(first.len(), 4);
    let rest = catalog
        .read_dir_plus(dir.ino, first[3].0.cookie, 100)
        .unwrap();
    assert_eq!(rest.len(), 6);
    let plain = catalog.read_dir(dir.ino, 0, 100).unwrap();
    let plus: Vec<_> = first.iter().chain(&rest).collect();
    assert_eq!(plain.len(), plus.len());
    for (entry, (plus_entry, attr)) in plain.iter().zip(plus) {
        assert_eq!(entry, plus_entry);
        assert_eq!(*attr, catalog.get_attr(entry.ino).unwrap());
    }
}

fn file(catalog: &MysqlMeta, parent: u64, name: &[u8]) -> Attr {
    catalog
        .create(parent, name, &node(Kind::File, 0o644))
        .unwrap()
}

fn dir(catalog: &MysqlMeta, parent: u64, name: &[u8]) -> Attr {
    catalog
        .create(parent, name, &node(Kind::Directory, 0o755))
        .unwrap()
}

fn errno<T: std::fmt::Debug>(result: Result<T, MetaError>) -> i32 {
    match result {
        Err(MetaError::Errno(code)) => code,
        other => panic!("expected an errno, got {other:?}"),
    }
}

#[test]
fn namespace_errors_the_kernel_usually_answers_first() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    let a = dir(&catalog, ROOT_INO, b"a");
    let b = dir(&catalog, a.ino, b"b");
    let f = file(&catalog, ROOT_INO, b"f");
    let g = file(&catalog, ROOT_INO, b"g");
    dir(&catalog, ROOT_INO, b"full");
    let full = catalog.lookup(ROOT_INO, b"full").unwrap();
    file(&catalog, full.ino, b"x");
    dir(&catalog, ROOT_INO, b"empty");
    let link = |name: &[u8]| {
        catalog.create(
            ROOT_INO,
            name,
            &NewNode {
                target: Some(b"f"),
                ..node(Kind::Symlink, 0o777)
            },
        )
    };
    link(b"sym").unwrap();
    use RenameMode::{Exchange, NoReplace, Replace};

    // rename
    assert_eq!(
        errno(catalog.rename(ROOT_INO, b"a", b.ino, b"a", Replace)),
        libc::EINVAL
    );
    assert_eq!(
        errno(catalog.rename(ROOT_INO, b"a", a.ino, b"x", Replace)),
        libc::EINVAL
    );
    assert_eq!(
        errno(catalog.rename(ROOT_INO, b"f", ROOT_INO, b"g", NoReplace)),
        libc::EEXIST
    );
    assert_eq!(
        errno(catalog.rename(ROOT_INO, b"f", ROOT_INO, b"none", Exchange)),
        libc::ENOENT
    );
    assert_eq!(
        errno(catalog.rename(ROOT_INO, b"none", ROOT_INO, b"f", Replace)),
        libc::ENOENT
    );
    assert_eq!(
        errno(catalog.rename(ROOT_INO, b"a", ROOT_INO, b"f", Replace)),
        libc::ENOTDIR
    );
    assert_eq!(
        errno(catalog.rename(ROOT_INO, b"f", ROOT_INO, b"empty", Replace)),
        libc::EISDIR
    );
    assert_eq!(
        errno(catalog.rename(ROOT_INO, b"a", ROOT_INO, b"full", Replace)),
        libc::ENOTEMPTY
    );
    assert_eq!(
        errno(catalog.rename(f.ino, b"x", ROOT_INO, b"y", Replace)),
        libc::ENOTDIR
    );
    // exchanging a directory into its own subtree
    assert_eq!(
        errno(catalog.rename(ROOT_INO, b"a", a.ino, b"b", Exchange)),
        libc::EINVAL
    );
    // unlink, rmdir
    assert_eq!(errno(catalog.unlink(ROOT_INO, b"a")), libc::EISDIR);
    assert_eq!(errno(catalog.unlink(ROOT_INO, b"none")), libc::ENOENT);
    assert_eq!(errno(catalog.rmdir(ROOT_INO, b"f")), libc::ENOTDIR);
    assert_eq!(errno(catalog.rmdir(ROOT_INO, b"full")), libc::ENOTEMPTY);
    assert_eq!(errno(catalog.rmdir(ROOT_INO, b"none")), libc::ENOENT);
    // link, mkdir, symlink, mknod onto an existing name
    assert_eq!(errno(catalog.link(f.ino, ROOT_INO, b"g")), libc::EEXIST);
    assert_eq!(errno(catalog.link(a.ino, ROOT_INO, b"alink")), libc::EPERM);
    assert_eq!(errno(catalog.link(f.ino, g.ino, b"x")), libc::ENOTDIR);
    assert_eq!(
        errno(catalog.create(ROOT_INO, b"a", &node(Kind::Directory, 0o755))),
        libc::EEXIST
    );
    assert_eq!(errno(link(b"f")), libc::EEXIST);
    assert_eq!(
        errno(catalog.create(ROOT_INO, b"g", &node(Kind::Fifo, 0o644))),
        libc::EEXIST
    );
    // readlink of something that is not a symlink
    assert_eq!(errno(catalog.read_link(f.ino)), libc::EINVAL);
    assert_eq!(
        catalog
            .read_link(catalog.lookup(ROOT_INO, b"sym").unwrap().ino)
            .unwrap(),
        b"f"
    );
    // nothing above changed anything
    let mut conn = db.connect();
    let problems = support::consistency::problems(&mut conn, None);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(catalog.read_dir(ROOT_INO, 0, 100).unwrap().len(), 6);
}

#[test]
fn every_name_longer_than_255_bytes_is_refused() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    let long = [b'n'; 256];
    let ok = [b'n'; 255];
    let f = file(&catalog, ROOT_INO, &ok);
    assert_eq!(catalog.lookup(ROOT_INO, &ok).unwrap().ino, f.ino);
    let too_long = libc::ENAMETOOLONG;
    assert_eq!(errno(catalog.lookup(ROOT_INO, &long)), too_long);
    for kind in [Kind::File, Kind::Directory, Kind::Fifo, Kind::Socket] {
        assert_eq!(
            errno(catalog.create(ROOT_INO, &long, &node(kind, 0o644))),
            too_long
        );
    }
    let symlink = NewNode {
        target: Some(b"t"),
        ..node(Kind::Symlink, 0o777)
    };
    assert_eq!(errno(catalog.create(ROOT_INO, &long, &symlink)), too_long);
    let far = vec![b't'; 4096];
    let far_symlink = NewNode {
        target: Some(&far),
        ..node(Kind::Symlink, 0o777)
    };
    assert_eq!(
        errno(catalog.create(ROOT_INO, b"s", &far_symlink)),
        too_long
    );
    assert_eq!(errno(catalog.link(f.ino, ROOT_INO, &long)), too_long);
    assert_eq!(errno(catalog.unlink(ROOT_INO, &long)), too_long);
    assert_eq!(errno(catalog.rmdir(ROOT_INO, &long)), too_long);
    let replace = RenameMode::Replace;
    assert_eq!(
        errno(catalog.rename(ROOT_INO, &long, ROOT_INO, b"x", replace)),
        too_long
    );
    assert_eq!(
        errno(catalog.rename(ROOT_INO, &ok, ROOT_INO, &long, replace)),
        too_long
    );
    assert_eq!(errno(catalog.undo_create(ROOT_INO, &long, f.ino)), too_long);
    // Extended attribute names: Linux says ERANGE past 255 bytes.
    let any = XattrMode::Any;
    assert_eq!(
        errno(catalog.set_xattr(f.ino, &long, b"v", any, 4096)),
        libc::ERANGE
    );
    assert_eq!(errno(catalog.get_xattr(f.ino, &long)), libc::ERANGE);
    assert_eq!(errno(catalog.remove_xattr(f.ino, &long)), libc::ERANGE);
    catalog.set_xattr(f.ino, &ok, b"v", any, 4096).unwrap();
    assert_eq!(catalog.get_xattr(f.ino, &ok).unwrap(), b"v");
    assert_eq!(
        catalog.read_dir(ROOT_INO, 0, 10).unwrap().len(),
        1,
        "nothing else made"
    );
}

/// Waits out one nanosecond tick so the next change gets a later time.
fn later(than: i64) {
    while valuestor::meta::now_ns() <= than {
        std::hint::spin_loop();
    }
}

#[test]
fn changes_return_the_attributes_of_every_inode_they_touch() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    let d = dir(&catalog, ROOT_INO, b"d");
    let e = dir(&catalog, ROOT_INO, b"e");
    let f = file(&catalog, d.ino, b"f");
    later(f.ctime);

    let linked = catalog.link(f.ino, e.ino, b"f2").unwrap();
    assert_eq!(linked.node.nlink, 2);
    assert!(
        linked.node.ctime > f.ctime,
        "link changes the inode's ctime"
    );
    assert_eq!(linked.dirs, [catalog.get_attr(e.ino).unwrap()]);
    assert_eq!(linked.node, catalog.get_attr(f.ino).unwrap());
    later(linked.node.ctime);

    let unlinked = catalog.unlink(d.ino, b"f").unwrap();
    assert_eq!(unlinked.node.nlink, 1);
    assert!(
        unlinked.node.ctime > linked.node.ctime,
        "unlink of a linked file: ctime"
    );
    assert_eq!(unlinked.node, catalog.get_attr(f.ino).unwrap());
    assert_eq!(unlinked.dirs, [catalog.get_attr(d.ino).unwrap()]);
    later(unlinked.node.ctime);

    let moved = catalog
        .rename(e.ino, b"f2", d.ino, b"f3", RenameMode::Replace)
        .unwrap();
    assert!(
        moved.node.ctime > unlinked.node.ctime,
        "rename changes the source's ctime"
    );
    assert_eq!(moved.node, catalog.get_attr(f.ino).unwrap());
    assert_eq!(
        moved.dirs,
        [
            catalog.get_attr(e.ino).unwrap(),
            catalog.get_attr(d.ino).unwrap()
        ]
    );
    assert_eq!(moved.other, None);

    let victim = file(&catalog, d.ino, b"victim");
    let replaced = catalog
        .rename(d.ino, b"f3", d.ino, b"victim", RenameMode::Replace)
        .unwrap();
    let gone = replaced.other.unwrap();
    assert_eq!(
        (gone.ino, gone.nlink),
        (victim.ino, 0),
        "the replaced file has no links"
    );
    assert_eq!(replaced.dirs, [catalog.get_attr(d.ino).unwrap()]);

    let sub = dir(&catalog, d.ino, b"sub");
    let target = dir(&catalog, e.ino, b"target");
    let over = catalog
        .rename(d.ino, b"sub", e.ino, b"target", RenameMode::Replace)
        .unwrap();
    let purged = over.other.unwrap();
    assert_eq!((purged.ino, purged.nlink), (target.ino, 0));
    assert_eq!(errno(catalog.get_attr(target.ino)), libc::ENOENT, "purged");
    assert_eq!(over.node, catalog.get_attr(sub.ino).unwrap());
    let d_after = catalog.get_attr(d.ino).unwrap();
    let e_after = catalog.get_attr(e.ino).unwrap();
    assert_eq!((d_after.nlink, e_after.nlink), (2, 3));
    assert_eq!(over.dirs, [d_after, e_after]);

    let swapped = catalog
        .rename(d.ino, b"victim", e.ino, b"target", RenameMode::Exchange)
        .unwrap();
    assert_eq!(swapped.node, catalog.get_attr(f.ino).unwrap());
    assert_eq!(swapped.other, Some(catalog.get_attr(sub.ino).unwrap()));

    let removed = catalog.rmdir(d.ino, b"victim").unwrap();
    assert_eq!((removed.node.ino, removed.node.nlink), (sub.ino, 0));
    assert_eq!(removed.dirs, [catalog.get_attr(d.ino).unwrap()]);
    assert_eq!(removed.dirs[0].nlink, 2);

    let before = catalog.get_attr(f.ino).unwrap();
    later(before.ctime);
    let tagged = catalog
        .set_xattr(f.ino, b"user.t", b"1", XattrMode::Any, 4096)
        .unwrap();
    assert!(tagged.ctime > before.ctime);
    assert_eq!(tagged, catalog.get_attr(f.ino).unwrap());
    later(tagged.ctime);
    let untagged = catalog.remove_xattr(f.ino, b"user.t").unwrap();
    assert!(untagged.ctime > tagged.ctime);
    assert_eq!(untagged, catalog.get_attr(f.ino).unwrap());
}

#[test]
fn status_change_time_never_goes_back() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    let f = file(&catalog, ROOT_INO, b"f");
    let late_save = AttrChange {
        size: Some(5),
        ctime: Some(f.ctime - 1_000_000),
        ..AttrChange::default()
    };
    let saved = catalog.set_attr(f.ino, &late_save).unwrap();
    assert_eq!((saved.size, saved.ctime), (5, f.ctime));
}

#[test]
fn undo_create_removes_only_the_entry_it_made() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    let d = dir(&catalog, ROOT_INO, b"d");
    let f = file(&catalog, d.ino, b"f");
    let parent = catalog.undo_create(d.ino, b"f", f.ino).unwrap().unwrap();
    assert_eq!(parent, catalog.get_attr(d.ino).unwrap());
    assert_eq!(errno(catalog.lookup(d.ino, b"f")), libc::ENOENT);
    assert_eq!(
        errno(catalog.get_attr(f.ino)),
        libc::ENOENT,
        "the inode is gone too"
    );
    // A name that now names another inode is left alone.
    let other = file(&catalog, d.ino, b"f");
    assert_eq!(catalog.undo_create(d.ino, b"f", f.ino).unwrap(), None);
    assert_eq!(catalog.lookup(d.ino, b"f").unwrap().ino, other.ino);
    let mut conn = db.connect();
    let problems = support::consistency::problems(&mut conn, None);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        catalog.existing(&[other.ino, f.ino, 999_999]).unwrap(),
        [other.ino]
    );
}

#[test]
fn hung_database_fails_an_operation_within_one_socket_timeout() {
    let mut db = MariaDb::start();
    if !db.require_control() {
        return;
    }
    let io_timeout = Duration::from_secs(2);
    let mut options = pool_options(&db);
    options.max_size = 1;
    options.acquire_timeout = Duration::from_secs(1);
    options.io_timeout = io_timeout;
    options.ping_bypass = Duration::from_secs(600); // the pool hands out without pinging
    options.backoff = valuestor::pool::Backoff {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(200),
    };
    let catalog = MysqlMeta::new(Pool::new(options).unwrap());
    catalog.migrate(0, 0).unwrap();
    let f = file(&catalog, ROOT_INO, b"f");
    // One statement hangs until the socket timeout; then the connection is dropped: no
    // ping, no ROLLBACK over it (each would wait another socket timeout).
    let bound = io_timeout + Duration::from_secs(1);

    db.pause();
    let started = Instant::now();
    let change = AttrChange {
        perm: Some(0o600),
        ..AttrChange::default()
    };
    let result = catalog.set_attr(f.ino, &change);
    let took = started.elapsed();
    assert!(
        matches!(result, Err(MetaError::Unavailable(_))),
        "{result:?}"
    );
    assert!(took < bound, "a change took {took:?}");
    db.resume();
    support::await_condition(Duration::from_secs(20), "the catalog answers", || {
        catalog.get_attr(f.ino).is_ok()
    });

    db.pause();
    let started = Instant::now();
    let result = catalog.get_attr(f.ino);
    let took = started.elapsed();
    assert!(
        matches!(result, Err(MetaError::Unavailable(_))),
        "{result:?}"
    );
    assert!(took < bound, "a read took {took:?}");
    db.resume();
    support::await_condition(Duration::from_secs(20), "the catalog answers", || {
        catalog.get_attr(f.ino).is_ok()
    });
    assert_eq!(
        catalog.get_attr(f.ino).unwrap().perm,
        0o644,
        "the change did not happen"
    );

    // A statement inside the transaction that does not return (stuck behind a row lock
    // held elsewhere): after the socket timeout the connection is dropped, without a
    // ROLLBACK that would wait behind the same lock.
    let mut blocker = db.connect();
    blocker.query_drop("START TRANSACTION").unwrap();
    blocker
        .exec_drop(
            "SELECT ino FROM vs_inodes WHERE ino = ? FOR UPDATE",
            (f.ino,),
        )
        .unwrap();
    let started = Instant::now();
    let result = catalog.set_attr(f.ino, &change);
    let took = started.elapsed();
    assert!(
        matches!(result, Err(MetaError::Unavailable(_))),
        "{result:?}"
    );
    assert!(took < bound, "a change stuck behind a lock took {took:?}");
    blocker.query_drop("ROLLBACK").unwrap();
    support::await_condition(Duration::from_secs(20), "the catalog answers", || {
        catalog.get_attr(f.ino).is_ok()
    });
    assert_eq!(catalog.get_attr(f.ino).unwrap().perm, 0o644);
}
