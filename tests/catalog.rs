//! The catalog directly over a pool: migrations, one-round-trip creation, errno mapping.

mod support;

use mysql::prelude::Queryable;
use support::{pool_options, MariaDb};
use valuestor::catalog::{Catalog, CatalogError, Kind, NewNode, ROOT_INO, SCHEMA_VERSION};
use valuestor::Pool;

fn catalog(db: &MariaDb) -> Catalog {
    let catalog = Catalog::new(Pool::new(pool_options(db)).unwrap());
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
        Err(CatalogError::Errno(libc::EEXIST))
    ));
    assert!(matches!(
        catalog.create(file.ino, b"x", &node(Kind::File, 0o644)),
        Err(CatalogError::Errno(libc::ENOTDIR))
    ));
    assert!(matches!(
        catalog.create(999_999, b"x", &node(Kind::File, 0o644)),
        Err(CatalogError::Errno(libc::ENOENT))
    ));
    assert!(matches!(
        catalog.create(ROOT_INO, &[b'n'; 256], &node(Kind::File, 0o644)),
        Err(CatalogError::Errno(libc::ENAMETOOLONG))
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
