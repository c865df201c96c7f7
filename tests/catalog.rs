//! The catalog directly over a pool, for what is MySQL-specific: migrations, errors the
//! stored procedure signals, the time bound when the database hangs. Engine semantics
//! (errnos, link counts, renames, attributes, listings) are in `tests/meta_conformance.rs`,
//! which runs them against MariaDB and the in-memory engine alike.

mod support;

use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use support::{pool_options, MariaDb};
use valuestor::meta::mysql::{
    errno_signal, MysqlMeta, RetryPolicy, ERRNO_BASE, EVICTION_CANDIDATES_AFTER_QUERY,
    EVICTION_CANDIDATES_QUERY, MIGRATION_CANDIDATES_QUERY, OPERATION_DONE, PROCEDURE_ERRNOS,
    SCHEMA_VERSION,
};
use valuestor::meta::{
    ArchiveCopy, Attr, AttrChange, DataState, Kind, MetaEngine, MetaError, NewNode, ROOT_INO,
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
fn create_maps_procedure_errors_through_errno_base_and_inherits_set_group_id() {
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
    // What the stored procedure signals, read raw, is ERRNO_BASE + the errno, and the
    // engine maps it back to that errno.
    let mut conn = db.connect();
    let call = |conn: &mut mysql::Conn, parent: u64| match conn.exec_drop(
        "CALL vs_create_node_v6(1, ?, ?, 'x', 1, 420, 0, 0, 0, NULL, 0)",
        (parent, parent),
    ) {
        Err(mysql::Error::MySqlError(e)) => e.code,
        other => panic!("the procedure did not signal: {other:?}"),
    };
    for (parent, errno) in [(file.ino, libc::ENOTDIR), (999_999, libc::ENOENT)] {
        assert!(PROCEDURE_ERRNOS.contains(&errno), "{errno}");
        let code = call(&mut conn, parent);
        assert_eq!(
            code,
            errno_signal(errno),
            "parent {parent}: signalled {code}, ERRNO_BASE {ERRNO_BASE} + errno {errno}"
        );
        let mapped = catalog.create(parent, b"x", &node(Kind::File, 0o644));
        assert_eq!(mapped, Err(MetaError::Errno(errno)), "parent {parent}");
    }
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

fn file(catalog: &MysqlMeta, parent: u64, name: &[u8]) -> Attr {
    catalog
        .create(parent, name, &node(Kind::File, 0o644))
        .unwrap()
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

/// How many times an InnoDB statement has waited for a row lock on this server.
fn row_lock_waits(conn: &mut mysql::Conn) -> u64 {
    let row: Option<(String, u64)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_waits'")
        .unwrap();
    row.expect("Innodb_row_lock_waits").1
}

#[test]
fn conflicts_are_retried_as_the_policy_says_then_reported() {
    let db = MariaDb::start();
    let Some(mut root) = db.root_connect() else {
        eprintln!("skipped: needs a private server to set the lock wait timeout");
        return;
    };
    // New sessions give up waiting for a row lock after 1 s (error 1205, a conflict).
    root.query_drop("SET GLOBAL innodb_lock_wait_timeout = 1")
        .unwrap();
    let mut options = pool_options(&db);
    options.acquire_timeout = Duration::from_secs(60); // the deadline never ends the retries
    let policy = RetryPolicy {
        attempts: 1,
        ..RetryPolicy::default()
    };
    let catalog = MysqlMeta::new(Pool::new(options).unwrap()).with_retry_policy(policy);
    catalog.migrate(0, 0).unwrap();
    let f = file(&catalog, ROOT_INO, b"f");
    let mut blocker = db.connect();
    blocker.query_drop("START TRANSACTION").unwrap();
    blocker
        .exec_drop(
            "SELECT ino FROM vs_inodes WHERE ino IN (?, ?) FOR UPDATE",
            (ROOT_INO, f.ino),
        )
        .unwrap();
    let chmod = AttrChange {
        perm: Some(0o600),
        ..AttrChange::default()
    };

    let before = row_lock_waits(&mut root);
    let result = catalog.set_attr(f.ino, &chmod);
    let waited = row_lock_waits(&mut root) - before;
    assert!(matches!(result, Err(MetaError::Conflict(_))), "{result:?}");
    assert_eq!(
        waited, 2,
        "a transaction: the first run and 1 retry each waited"
    );

    let before = row_lock_waits(&mut root);
    let result = catalog.create(ROOT_INO, b"g", &node(Kind::File, 0o644));
    let waited = row_lock_waits(&mut root) - before;
    assert!(matches!(result, Err(MetaError::Conflict(_))), "{result:?}");
    assert_eq!(
        waited, 2,
        "the create procedure: the first call and 1 retry each waited"
    );

    blocker.query_drop("ROLLBACK").unwrap();
    assert_eq!(catalog.set_attr(f.ino, &chmod).unwrap().perm, 0o600);
    catalog
        .create(ROOT_INO, b"g", &node(Kind::File, 0o644))
        .unwrap();
}

fn deadlocks(conn: &mut mysql::Conn) -> u64 {
    let row: Option<(String, u64)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
        .unwrap();
    row.expect("Innodb_deadlocks").1
}

#[test]
fn a_change_chosen_as_a_deadlock_victim_runs_again() {
    let db = MariaDb::start();
    let Some(mut root) = db.root_connect() else {
        eprintln!("skipped: needs a private server to watch lock waits");
        return;
    };
    let catalog = catalog(&db);
    let a = catalog
        .create(ROOT_INO, b"a", &node(Kind::Directory, 0o755))
        .unwrap();
    let b = catalog
        .create(ROOT_INO, b"b", &node(Kind::Directory, 0o755))
        .unwrap();
    let f = file(&catalog, a.ino, b"f");
    // The blocker holds b and has written many rows, so InnoDB picks the rename (which has
    // written nothing) as the victim of the deadlock below: error 1213.
    let mut blocker = db.connect();
    blocker
        .query_drop("CREATE TABLE scratch (id INT PRIMARY KEY) ENGINE=InnoDB")
        .unwrap();
    blocker.query_drop("START TRANSACTION").unwrap();
    blocker
        .exec_batch(
            "INSERT INTO scratch (id) VALUES (?)",
            (0..500).map(|i| (i,)),
        )
        .unwrap();
    blocker
        .exec_drop(
            "SELECT ino FROM vs_inodes WHERE ino = ? FOR UPDATE",
            (b.ino,),
        )
        .unwrap();
    let before = deadlocks(&mut root);

    // The rename locks a, then waits for b.
    let rename = {
        let catalog = catalog.clone();
        std::thread::spawn(move || {
            catalog.rename(
                a.ino,
                b"f",
                b.ino,
                b"f",
                valuestor::meta::RenameMode::Replace,
            )
        })
    };
    support::await_condition(Duration::from_secs(10), "the rename waits for b", || {
        let waits: Option<(String, u64)> = root
            .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_current_waits'")
            .unwrap();
        waits.expect("Innodb_row_lock_current_waits").1 == 1
    });
    // Asking for a closes the cycle: the rename is rolled back, the blocker gets a.
    blocker
        .exec_drop(
            "SELECT ino FROM vs_inodes WHERE ino = ? FOR UPDATE",
            (a.ino,),
        )
        .expect("the blocker is not the victim");
    assert_eq!(deadlocks(&mut root) - before, 1, "one deadlock");
    blocker.query_drop("ROLLBACK").unwrap();

    let renamed = rename.join().unwrap();
    let renamed = renamed.expect("the victim ran again and succeeded");
    assert_eq!(renamed.node.ino, f.ino);
    assert_eq!(catalog.lookup(b.ino, b"f").unwrap().ino, f.ino);
    assert!(catalog.lookup(a.ino, b"f").is_err());
}

#[test]
fn an_upgrade_from_version_5_adds_the_operation_records_and_the_new_procedure() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    let before = file(&catalog, ROOT_INO, b"before");
    // A catalog made by version 5: no records, the create procedure without an id.
    let mut conn = db.connect();
    conn.query_drop("DROP TABLE vs_operations").unwrap();
    conn.query_drop("DROP PROCEDURE vs_create_node_v6").unwrap();
    conn.query_drop("CREATE PROCEDURE vs_create_node() BEGIN END")
        .unwrap();
    conn.query_drop("UPDATE vs_schema_version SET version = 5 WHERE id = 1")
        .unwrap();
    assert_eq!(catalog.migrate(0, 0).unwrap(), SCHEMA_VERSION);
    let procedures: Vec<String> = conn
        .query("SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()")
        .unwrap();
    assert_eq!(procedures, ["vs_create_node_v6"], "the old one is gone");
    let after = file(&catalog, ROOT_INO, b"after");
    assert_eq!(catalog.lookup(ROOT_INO, b"before").unwrap(), before);
    let recorded: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM vs_operations")
        .unwrap();
    assert_eq!(recorded, Some(1), "the create of {after:?} is recorded");
}

#[test]
fn the_create_procedure_refuses_an_operation_id_it_recorded() {
    let db = MariaDb::start();
    let _catalog = catalog(&db);
    let mut conn = db.connect();
    let call = |conn: &mut mysql::Conn, seq: u64, name: &str| {
        conn.exec_first::<(u64, u16, u32), _, _>(
            "CALL vs_create_node_v6(42, ?, 1, ?, 1, 420, 0, 0, 0, NULL, 0)",
            (seq, name),
        )
    };
    let (ino, perm, gid) = call(&mut conn, 1, "x").unwrap().unwrap();
    let answer: Option<String> = conn
        .query_first("SELECT answer FROM vs_operations WHERE owner = 42 AND seq = 1")
        .unwrap();
    assert_eq!(
        answer,
        Some(format!("{ino} {perm} {gid}")),
        "the recorded answer"
    );
    // The same id again, even for another name: refused as done, nothing made.
    match call(&mut conn, 1, "y") {
        Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, OPERATION_DONE, "{e:?}"),
        other => panic!("a recorded operation ran again: {other:?}"),
    }
    let entries: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM vs_dentries")
        .unwrap();
    assert_eq!(entries, Some(1), "only x");
    // A new id runs.
    call(&mut conn, 2, "y").unwrap().unwrap();
}

#[test]
fn an_upgrade_from_version_6_adds_the_copies_and_the_candidate_indexes_keeping_the_data() {
    let db = MariaDb::start();
    let catalog = catalog(&db);
    let before = file(&catalog, ROOT_INO, b"before");
    let saved = AttrChange {
        size: Some(10),
        mtime: Some(1_000),
        data_state: Some(DataState::Resident),
        ..AttrChange::default()
    };
    let before = catalog.set_attr(before.ino, &saved).unwrap();
    // A catalog made by version 6: no copies, no candidate indexes.
    let mut conn = db.connect();
    conn.query_drop("DROP TABLE vs_copies").unwrap();
    conn.query_drop("ALTER TABLE vs_inodes DROP INDEX by_state_ino, DROP INDEX by_state_atime")
        .unwrap();
    conn.query_drop("UPDATE vs_schema_version SET version = 6 WHERE id = 1")
        .unwrap();
    assert_eq!(
        inode_indexes(&mut conn),
        ["PRIMARY", "by_nlink"],
        "as version 6 had them"
    );

    assert_eq!(catalog.migrate(0, 0).unwrap(), 7);
    let version: Option<u32> = conn
        .query_first("SELECT version FROM vs_schema_version WHERE id = 1")
        .unwrap();
    assert_eq!(version, Some(7), "recorded version");
    assert_eq!(
        inode_indexes(&mut conn),
        ["PRIMARY", "by_nlink", "by_state_atime", "by_state_ino"]
    );
    assert_eq!(catalog.lookup(ROOT_INO, b"before").unwrap(), before, "kept");
    assert_eq!(catalog.migration_candidates(0, 10).unwrap(), [before]);
    let copy = ArchiveCopy {
        ino: before.ino,
        volume: "v".into(),
        seq: 1,
        size: 10,
        mtime: 1_000,
        md5: Some([1; 16]),
        sha1: None,
        archived_ns: 5,
        superseded_ns: None,
    };
    catalog.record_copy(&copy).unwrap();
    assert_eq!(catalog.live_copy(before.ino).unwrap(), Some(copy));
    assert_eq!(
        catalog.migrate(0, 0).unwrap(),
        7,
        "a later start changes nothing"
    );
}

/// The names of the indexes on `vs_inodes`, sorted.
fn inode_indexes(conn: &mut mysql::Conn) -> Vec<String> {
    let mut names: Vec<String> = conn
        .query(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'vs_inodes'",
        )
        .unwrap();
    names.sort_unstable();
    names
}

/// What `EXPLAIN` says of `query` run with `params`: `(key, rows, Extra)` of its one row.
fn explain(
    conn: &mut mysql::Conn,
    query: &str,
    params: Vec<mysql::Value>,
) -> (Option<String>, u64, String) {
    let rows: Vec<mysql::Row> = conn.exec(format!("EXPLAIN {query}"), params).unwrap();
    assert_eq!(rows.len(), 1, "one table: {rows:?}");
    let row = &rows[0];
    let key: Option<String> = row.get("key").unwrap();
    let count: Option<u64> = row.get("rows").unwrap();
    let extra: Option<String> = row.get("Extra").unwrap();
    (key, count.unwrap_or(0), extra.unwrap_or_default())
}

#[test]
fn candidate_queries_read_their_index_not_every_inode() {
    let db = MariaDb::start();
    let _catalog = catalog(&db);
    let mut conn = db.connect();
    // 2,000 unrelated files (empty, resident or dirty) and 3 archived ones, made directly.
    conn.query_drop("SET SESSION max_recursive_iterations = 5000")
        .unwrap();
    conn.query_drop(
        "INSERT INTO vs_inodes (kind, perm, uid, gid, size, nlink, atime_ns, mtime_ns,
             ctime_ns, crtime_ns, data_state)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         SELECT 1, 420, 0, 0, i % 3, 1, i, i, i, i, i % 3 FROM n",
    )
    .unwrap();
    conn.query_drop(
        "INSERT INTO vs_inodes (kind, perm, uid, gid, size, nlink, atime_ns, mtime_ns,
             ctime_ns, crtime_ns, data_state)
         VALUES (1, 420, 0, 0, 1, 1, 5, 5, 5, 5, 3), (1, 420, 0, 0, 1, 1, 7, 7, 7, 7, 3),
                (1, 420, 0, 0, 1, 1, 9, 9, 9, 9, 3)",
    )
    .unwrap();
    conn.query_drop("ANALYZE TABLE vs_inodes").unwrap();
    let (file, archived, resident) = (
        mysql::Value::from(Kind::File as u8),
        mysql::Value::from(DataState::Archived as u8),
        mysql::Value::from(DataState::Resident as u8),
    );
    let limit = mysql::Value::from(100u64);
    // Migration resumes after a position: near the end of the resident files (inode
    // numbers are spaced on Galera, so the position is read, not assumed).
    let after: u64 = conn
        .query_first(
            "SELECT ino FROM vs_inodes WHERE data_state = 1 ORDER BY ino LIMIT 1 OFFSET 600",
        )
        .unwrap()
        .unwrap();
    let resident_after: u64 = conn
        .exec_first(
            "SELECT COUNT(*) FROM vs_inodes WHERE data_state = 1 AND ino > ?",
            (after,),
        )
        .unwrap()
        .unwrap();

    let cases = [
        (
            "eviction",
            EVICTION_CANDIDATES_QUERY,
            vec![archived.clone(), file.clone(), limit.clone()],
            "by_state_atime",
        ),
        (
            "eviction after a position",
            EVICTION_CANDIDATES_AFTER_QUERY,
            vec![
                archived,
                5i64.into(),
                5i64.into(),
                0u64.into(),
                file.clone(),
                limit.clone(),
            ],
            "by_state_atime",
        ),
        (
            "migration",
            MIGRATION_CANDIDATES_QUERY,
            vec![resident, after.into(), file, limit],
            "by_state_ino",
        ),
    ];
    for (what, query, params, index) in cases {
        let (key, rows, extra) = explain(&mut conn, query, params);
        println!("{what}: key {key:?}, rows {rows}, Extra {extra:?}");
        assert_eq!(key.as_deref(), Some(index), "{what}: {extra}");
        assert!(!extra.contains("filesort"), "{what} sorts: {extra}");
        // About 67 resident files follow `after`; the 3 archived ones are all of their
        // state. An estimate may be off by some, never near the table's 2,004 rows.
        let bound = if what == "migration" {
            3 * resident_after + 10
        } else {
            10
        };
        assert!(rows <= bound, "{what}: EXPLAIN rows {rows} over {bound}");
    }
}
