//! One set of scenarios, written once against `&dyn MetaEngine`, run against both engines:
//! [`MemoryMeta`] (one test per scenario, in `memory::`) and [`MysqlMeta`] on the harness's
//! private MariaDB (one server and catalog, emptied before each scenario). The fake the
//! core's fast tests use therefore cannot drift from the real engine: a scenario that passes
//! on one and fails on the other is a bug in the fake or in the engine.
//!
//! After every scenario the catalog must be consistent, checked through the trait alone
//! (link counts against the names that reach each inode, no orphans once purged) and, on
//! MariaDB, also table by table (`support::consistency`).

mod support;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mysql::prelude::Queryable;
use support::{pool_options, MariaDb};
use valuestor::meta::mysql::{MysqlMeta, SCHEMA_VERSION};
use valuestor::meta::{
    now_ns, ArchiveCopy, Attr, AttrChange, DataState, Kind, MemoryMeta, MetaEngine, MetaError,
    NewNode, RenameMode, XattrMode, ROOT_INO, VOLUME_MAX,
};
use valuestor::Pool;

use RenameMode::{Exchange, NoReplace, Replace};

/// A scenario: arranges, acts and asserts on an engine whose root is owned by 0:0.
type Scenario = fn(&dyn MetaEngine);

/// Lists every scenario once: a `memory::` test each, and the table the MariaDB run walks.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        const SCENARIOS: &[(&str, Scenario)] = &[$((stringify!($name), $name)),*];

        mod memory {
            $(
                #[test]
                fn $name() {
                    super::run_on_memory(super::$name);
                }
            )*
        }
    };
}

scenarios!(
    create_returns_the_stored_attributes_and_touches_the_parent,
    create_inherits_a_set_group_id_directory_group,
    create_refuses_taken_names_missing_parents_and_non_directories,
    namespace_errors_the_kernel_usually_answers_first,
    every_name_longer_than_255_bytes_is_refused,
    changes_return_the_attributes_of_every_inode_they_touch,
    directory_link_counts_follow_subdirectories,
    rename_exchange_swaps_two_entries_across_directories,
    rename_over_a_file_with_other_links_keeps_it,
    rename_onto_another_name_of_the_same_inode_does_nothing,
    rename_moves_a_directory_and_its_parent_follows,
    status_change_time_never_goes_back,
    set_attr_changes_only_the_given_fields_including_data_state,
    undo_create_removes_only_the_entry_it_made,
    directory_listing_pages_by_cookie_with_attributes,
    cookies_increase_and_are_never_reused,
    extended_attributes_follow_the_create_and_replace_modes,
    extended_attributes_are_bounded_in_total,
    unlinked_inodes_stay_as_orphans_until_purged,
    inventory_queries_report_only_existing_inodes,
    lookups_of_missing_things_are_enoent,
    migration_candidates_are_named_resident_files_in_inode_order,
    eviction_candidates_are_archived_files_by_access_time_then_inode,
    record_copy_archives_a_resident_file_and_supersedes_its_earlier_copy,
    record_copy_refuses_a_file_that_changed_with_eagain,
    release_needs_archived_the_same_mtime_and_a_live_copy,
    recall_and_damage_move_between_released_damaged_and_archived,
    released_after_lists_live_copies_of_released_files_on_one_volume,
    superseded_copies_are_listed_oldest_first_before_a_time,
    forget_copy_deletes_only_superseded_copies,
    purging_an_inode_supersedes_its_live_copy,
    path_of_names_nested_files_by_their_oldest_link,
    state_totals_count_regular_files_and_bytes_per_state,
);

/// Runs `scenario` on a fresh [`MemoryMeta`], then checks the catalog is consistent.
fn run_on_memory(scenario: Scenario) {
    let meta = MemoryMeta::new(0, 0);
    assert_eq!(meta.migrate(0, 0).unwrap(), SCHEMA_VERSION);
    scenario(&meta);
    let problems = problems(&meta);
    assert!(problems.is_empty(), "after the scenario: {problems:?}");
}

#[test]
fn mysql_engine_passes_every_scenario() {
    let db = MariaDb::start();
    let meta = MysqlMeta::new(Pool::new(pool_options(&db)).unwrap());
    assert_eq!(meta.migrate(0, 0).unwrap(), SCHEMA_VERSION);
    let mut conn = db.connect();
    let mut failed = Vec::new();
    for (name, scenario) in SCENARIOS {
        // A fresh catalog costs a dozen DDL statements: emptying the tables is much faster.
        empty_catalog(&mut conn);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            scenario(&meta);
            let mut problems = problems(&meta);
            problems.extend(support::consistency::problems(&mut conn, None));
            assert!(problems.is_empty(), "after the scenario: {problems:?}");
        }));
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    assert!(
        failed.is_empty(),
        "scenarios failing on MariaDB (their panics are printed above): {failed:?}"
    );
}

/// Leaves only the root directory in the catalog, as a fresh one has it (mode 0755, 0:0).
fn empty_catalog(conn: &mut mysql::Conn) {
    for statement in [
        "DELETE FROM vs_xattrs",
        "DELETE FROM vs_copies",
        "DELETE FROM vs_symlinks",
        "DELETE FROM vs_dentries",
        "DELETE FROM vs_inodes WHERE ino <> 1",
        "UPDATE vs_inodes SET perm = 493, uid = 0, gid = 0, size = 0, nlink = 2, rdev = 0,
            blocks = NULL, data_state = 0 WHERE ino = 1",
    ] {
        conn.query_drop(statement).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

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

fn file(meta: &dyn MetaEngine, parent: u64, name: &[u8]) -> Attr {
    meta.create(parent, name, &node(Kind::File, 0o644)).unwrap()
}

fn dir(meta: &dyn MetaEngine, parent: u64, name: &[u8]) -> Attr {
    meta.create(parent, name, &node(Kind::Directory, 0o755))
        .unwrap()
}

fn symlink(meta: &dyn MetaEngine, parent: u64, name: &[u8], target: &[u8]) -> Attr {
    let node = NewNode {
        target: Some(target),
        ..node(Kind::Symlink, 0o777)
    };
    meta.create(parent, name, &node).unwrap()
}

fn errno<T: std::fmt::Debug>(result: Result<T, MetaError>) -> i32 {
    match result {
        Err(MetaError::Errno(code)) => code,
        other => panic!("expected an errno, got {other:?}"),
    }
}

fn attr(meta: &dyn MetaEngine, ino: u64) -> Attr {
    meta.get_attr(ino).unwrap()
}

/// Waits out one nanosecond tick so the next change gets a later time.
fn later(than: i64) {
    while now_ns() <= than {
        std::hint::spin_loop();
    }
}

/// Everything wrong with the catalog as seen through the trait, one line each, after
/// purging its orphans (what a caller does once no handle has them open): every inode
/// reachable from the root has as many links as names (directories 2 + subdirectories,
/// named once), each directory's listing has increasing cookies, and no orphan is left.
fn problems(meta: &dyn MetaEngine) -> Vec<String> {
    for ino in meta.orphans().unwrap() {
        meta.purge(ino).unwrap();
    }
    let mut problems = Vec::new();
    let mut names = HashMap::<u64, u32>::new();
    let mut subdirs = HashMap::<u64, u32>::new();
    let mut seen = HashMap::<u64, Attr>::new();
    let mut pending = vec![ROOT_INO];
    seen.insert(ROOT_INO, attr(meta, ROOT_INO));
    while let Some(dir) = pending.pop() {
        let entries = meta.read_dir_plus(dir, 0, 100_000).unwrap();
        let mut last = 0;
        for (entry, child) in entries {
            if entry.cookie <= last {
                problems.push(format!(
                    "directory {dir}: cookie {} after {last}",
                    entry.cookie
                ));
            }
            last = entry.cookie;
            *names.entry(child.ino).or_default() += 1;
            if child.kind == Kind::Directory {
                *subdirs.entry(dir).or_default() += 1;
                if meta.parent_of(child.ino).unwrap() != dir {
                    problems.push(format!("parent_of({}) is not {dir}", child.ino));
                }
                if !seen.contains_key(&child.ino) {
                    pending.push(child.ino);
                }
            }
            seen.insert(child.ino, child);
        }
    }
    for (ino, attr) in &seen {
        let named = names.get(ino).copied().unwrap_or(0);
        if attr.kind == Kind::Directory {
            let expected_names = u32::from(*ino != ROOT_INO);
            if named != expected_names {
                problems.push(format!("directory {ino} is named {named} times"));
            }
            let expected = 2 + subdirs.get(ino).copied().unwrap_or(0);
            if attr.nlink != expected {
                problems.push(format!(
                    "directory {ino} has {} links, expected {expected}",
                    attr.nlink
                ));
            }
        } else if attr.nlink != named {
            problems.push(format!(
                "inode {ino} has {} links but {named} names",
                attr.nlink
            ));
        }
    }
    let orphans = meta.orphans().unwrap();
    if !orphans.is_empty() {
        problems.push(format!("orphans left after purging: {orphans:?}"));
    }
    problems
}

// ---------------------------------------------------------------------------------------
// Scenarios: creating

fn create_returns_the_stored_attributes_and_touches_the_parent(meta: &dyn MetaEngine) {
    let root_before = attr(meta, ROOT_INO);
    later(root_before.ctime);
    let d = meta
        .create(ROOT_INO, b"d", &node(Kind::Directory, 0o750))
        .unwrap();
    assert_eq!(
        (d.kind, d.perm, d.uid, d.gid, d.nlink, d.size),
        (Kind::Directory, 0o750, 10, 20, 2, 0)
    );
    assert_eq!((d.blocks, d.data_state), (None, DataState::Empty));
    assert_eq!(
        attr(meta, d.ino),
        d,
        "returned attributes are the stored ones"
    );
    assert_eq!((d.atime, d.mtime, d.crtime), (d.ctime, d.ctime, d.ctime));
    let root = attr(meta, ROOT_INO);
    assert_eq!(
        (root.nlink, root.mtime, root.ctime),
        (root_before.nlink + 1, d.ctime, d.ctime),
        "the parent's times are the new inode's and it has one more subdirectory"
    );

    let f = file(meta, d.ino, b"f");
    assert_eq!((f.kind, f.nlink, f.size), (Kind::File, 1, 0));
    assert!(
        f.ino > d.ino,
        "inode numbers grow: {} after {}",
        f.ino,
        d.ino
    );
    assert_eq!(attr(meta, f.ino), f);
    assert_eq!(attr(meta, d.ino).nlink, 2, "a file is no subdirectory");

    let s = symlink(meta, d.ino, b"s", b"../target");
    assert_eq!(
        (s.kind, s.size),
        (Kind::Symlink, 9),
        "a symlink's size is its target's"
    );
    assert_eq!(meta.read_link(s.ino).unwrap(), b"../target");
    assert_eq!(attr(meta, s.ino), s);

    let device = NewNode {
        rdev: 0x0801,
        ..node(Kind::BlockDevice, 0o660)
    };
    let b = meta.create(d.ino, b"b", &device).unwrap();
    assert_eq!((b.kind, b.rdev), (Kind::BlockDevice, 0x0801));
    assert_eq!(attr(meta, b.ino), b);
    assert_eq!(meta.lookup(d.ino, b"b").unwrap(), b);
}

fn create_inherits_a_set_group_id_directory_group(meta: &dyn MetaEngine) {
    let shared = NewNode {
        gid: 77,
        ..node(Kind::Directory, 0o2775)
    };
    let shared = meta.create(ROOT_INO, b"shared", &shared).unwrap();
    let f = file(meta, shared.ino, b"f");
    assert_eq!(f.gid, 77, "a set-group-ID directory passes its group on");
    assert_eq!(f.perm, 0o644, "but not the bit to files");
    let sub = dir(meta, shared.ino, b"sub");
    assert_eq!(
        (sub.gid, sub.perm),
        (77, 0o2755),
        "and the bit to subdirectories"
    );
    assert_eq!(
        attr(meta, sub.ino),
        sub,
        "returned attributes are stored ones"
    );
    let plain = dir(meta, ROOT_INO, b"plain");
    assert_eq!(plain.gid, 20, "without the bit the caller's group stays");
}

fn create_refuses_taken_names_missing_parents_and_non_directories(meta: &dyn MetaEngine) {
    let f = file(meta, ROOT_INO, b"f");
    let d = dir(meta, ROOT_INO, b"d");
    for kind in [Kind::File, Kind::Directory, Kind::Fifo, Kind::Socket] {
        assert_eq!(
            errno(meta.create(ROOT_INO, b"f", &node(kind, 0o644))),
            libc::EEXIST,
            "{kind:?} over a file"
        );
    }
    assert_eq!(
        errno(meta.create(f.ino, b"x", &node(Kind::File, 0o644))),
        libc::ENOTDIR
    );
    assert_eq!(
        errno(meta.create(999_999, b"x", &node(Kind::File, 0o644))),
        libc::ENOENT
    );
    meta.rmdir(ROOT_INO, b"d").unwrap();
    assert_eq!(
        errno(meta.create(d.ino, b"x", &node(Kind::File, 0o644))),
        libc::ENOENT,
        "a removed directory"
    );
    for bad in [&b""[..], b"a/b", b"a\0b"] {
        assert_eq!(
            errno(meta.create(ROOT_INO, bad, &node(Kind::File, 0o644))),
            libc::EINVAL,
            "name {bad:?}"
        );
    }
    let empty_target = NewNode {
        target: Some(b""),
        ..node(Kind::Symlink, 0o777)
    };
    assert_eq!(
        errno(meta.create(ROOT_INO, b"s", &empty_target)),
        libc::ENAMETOOLONG
    );
    let evil = b"x'); DELETE FROM vs_inodes; --";
    let created = file(meta, ROOT_INO, evil);
    assert_eq!(meta.lookup(ROOT_INO, evil).unwrap().ino, created.ino);
    assert_eq!(attr(meta, f.ino), f, "the failed creations changed nothing");
    let names: Vec<Vec<u8>> = meta
        .read_dir(ROOT_INO, 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [b"f".to_vec(), evil.to_vec()]);
}

// ---------------------------------------------------------------------------------------
// Scenarios: the namespace

fn namespace_errors_the_kernel_usually_answers_first(meta: &dyn MetaEngine) {
    let a = dir(meta, ROOT_INO, b"a");
    let b = dir(meta, a.ino, b"b");
    let f = file(meta, ROOT_INO, b"f");
    let g = file(meta, ROOT_INO, b"g");
    let full = dir(meta, ROOT_INO, b"full");
    file(meta, full.ino, b"x");
    dir(meta, ROOT_INO, b"empty");
    let sym = symlink(meta, ROOT_INO, b"sym", b"f");

    // rename
    assert_eq!(
        errno(meta.rename(ROOT_INO, b"a", b.ino, b"a", Replace)),
        libc::EINVAL
    );
    assert_eq!(
        errno(meta.rename(ROOT_INO, b"a", a.ino, b"x", Replace)),
        libc::EINVAL
    );
    assert_eq!(
        errno(meta.rename(ROOT_INO, b"f", ROOT_INO, b"g", NoReplace)),
        libc::EEXIST
    );
    assert_eq!(
        errno(meta.rename(ROOT_INO, b"f", ROOT_INO, b"none", Exchange)),
        libc::ENOENT
    );
    assert_eq!(
        errno(meta.rename(ROOT_INO, b"none", ROOT_INO, b"f", Replace)),
        libc::ENOENT
    );
    assert_eq!(
        errno(meta.rename(ROOT_INO, b"a", ROOT_INO, b"f", Replace)),
        libc::ENOTDIR
    );
    assert_eq!(
        errno(meta.rename(ROOT_INO, b"f", ROOT_INO, b"empty", Replace)),
        libc::EISDIR
    );
    assert_eq!(
        errno(meta.rename(ROOT_INO, b"a", ROOT_INO, b"full", Replace)),
        libc::ENOTEMPTY
    );
    assert_eq!(
        errno(meta.rename(f.ino, b"x", ROOT_INO, b"y", Replace)),
        libc::ENOTDIR
    );
    // exchanging a directory into its own subtree
    assert_eq!(
        errno(meta.rename(ROOT_INO, b"a", a.ino, b"b", Exchange)),
        libc::EINVAL
    );
    // unlink, rmdir
    assert_eq!(errno(meta.unlink(ROOT_INO, b"a")), libc::EISDIR);
    assert_eq!(errno(meta.unlink(ROOT_INO, b"none")), libc::ENOENT);
    assert_eq!(errno(meta.rmdir(ROOT_INO, b"f")), libc::ENOTDIR);
    assert_eq!(errno(meta.rmdir(ROOT_INO, b"full")), libc::ENOTEMPTY);
    assert_eq!(errno(meta.rmdir(ROOT_INO, b"none")), libc::ENOENT);
    // link, mkdir, symlink, mknod onto an existing name
    assert_eq!(errno(meta.link(f.ino, ROOT_INO, b"g")), libc::EEXIST);
    assert_eq!(errno(meta.link(a.ino, ROOT_INO, b"alink")), libc::EPERM);
    assert_eq!(errno(meta.link(f.ino, g.ino, b"x")), libc::ENOTDIR);
    assert_eq!(errno(meta.link(999_999, ROOT_INO, b"x")), libc::ENOENT);
    assert_eq!(
        errno(meta.create(ROOT_INO, b"a", &node(Kind::Directory, 0o755))),
        libc::EEXIST
    );
    let over_f = NewNode {
        target: Some(b"f"),
        ..node(Kind::Symlink, 0o777)
    };
    assert_eq!(errno(meta.create(ROOT_INO, b"f", &over_f)), libc::EEXIST);
    assert_eq!(
        errno(meta.create(ROOT_INO, b"g", &node(Kind::Fifo, 0o644))),
        libc::EEXIST
    );
    // readlink of something that is not a symlink
    assert_eq!(errno(meta.read_link(f.ino)), libc::EINVAL);
    assert_eq!(meta.read_link(sym.ino).unwrap(), b"f");
    // nothing above changed anything
    assert_eq!(meta.read_dir(ROOT_INO, 0, 100).unwrap().len(), 6);
    assert_eq!(attr(meta, f.ino), f);
    assert_eq!(attr(meta, b.ino), b);
}

fn every_name_longer_than_255_bytes_is_refused(meta: &dyn MetaEngine) {
    let long = [b'n'; 256];
    let ok = [b'n'; 255];
    let f = file(meta, ROOT_INO, &ok);
    assert_eq!(meta.lookup(ROOT_INO, &ok).unwrap().ino, f.ino);
    let too_long = libc::ENAMETOOLONG;
    assert_eq!(errno(meta.lookup(ROOT_INO, &long)), too_long);
    for kind in [Kind::File, Kind::Directory, Kind::Fifo, Kind::Socket] {
        assert_eq!(
            errno(meta.create(ROOT_INO, &long, &node(kind, 0o644))),
            too_long
        );
    }
    let symlink = NewNode {
        target: Some(b"t"),
        ..node(Kind::Symlink, 0o777)
    };
    assert_eq!(errno(meta.create(ROOT_INO, &long, &symlink)), too_long);
    let far = vec![b't'; 4096];
    let far_symlink = NewNode {
        target: Some(&far),
        ..node(Kind::Symlink, 0o777)
    };
    assert_eq!(errno(meta.create(ROOT_INO, b"s", &far_symlink)), too_long);
    assert_eq!(errno(meta.link(f.ino, ROOT_INO, &long)), too_long);
    assert_eq!(errno(meta.unlink(ROOT_INO, &long)), too_long);
    assert_eq!(errno(meta.rmdir(ROOT_INO, &long)), too_long);
    assert_eq!(
        errno(meta.rename(ROOT_INO, &long, ROOT_INO, b"x", Replace)),
        too_long
    );
    assert_eq!(
        errno(meta.rename(ROOT_INO, &ok, ROOT_INO, &long, Replace)),
        too_long
    );
    assert_eq!(errno(meta.undo_create(ROOT_INO, &long, f.ino)), too_long);
    // Extended attribute names: Linux says ERANGE past 255 bytes.
    let any = XattrMode::Any;
    assert_eq!(
        errno(meta.set_xattr(f.ino, &long, b"v", any, 4096)),
        libc::ERANGE
    );
    assert_eq!(errno(meta.get_xattr(f.ino, &long)), libc::ERANGE);
    assert_eq!(errno(meta.remove_xattr(f.ino, &long)), libc::ERANGE);
    meta.set_xattr(f.ino, &ok, b"v", any, 4096).unwrap();
    assert_eq!(meta.get_xattr(f.ino, &ok).unwrap(), b"v");
    assert_eq!(
        meta.read_dir(ROOT_INO, 0, 10).unwrap().len(),
        1,
        "nothing else made"
    );
}

fn changes_return_the_attributes_of_every_inode_they_touch(meta: &dyn MetaEngine) {
    let d = dir(meta, ROOT_INO, b"d");
    let e = dir(meta, ROOT_INO, b"e");
    let f = file(meta, d.ino, b"f");
    later(f.ctime);

    let linked = meta.link(f.ino, e.ino, b"f2").unwrap();
    assert_eq!(linked.node.nlink, 2);
    assert!(
        linked.node.ctime > f.ctime,
        "link changes the inode's ctime"
    );
    assert_eq!(linked.dirs, [attr(meta, e.ino)]);
    assert_eq!(
        linked.dirs[0].mtime, linked.node.ctime,
        "and the directory's mtime"
    );
    assert_eq!(linked.node, attr(meta, f.ino));
    assert_eq!(linked.other, None);
    later(linked.node.ctime);

    let unlinked = meta.unlink(d.ino, b"f").unwrap();
    assert_eq!(unlinked.node.nlink, 1);
    assert!(
        unlinked.node.ctime > linked.node.ctime,
        "unlink of a linked file: ctime"
    );
    assert_eq!(unlinked.node, attr(meta, f.ino));
    assert_eq!(unlinked.dirs, [attr(meta, d.ino)]);
    assert_eq!(unlinked.dirs[0].mtime, unlinked.node.ctime);
    later(unlinked.node.ctime);

    let moved = meta.rename(e.ino, b"f2", d.ino, b"f3", Replace).unwrap();
    assert!(
        moved.node.ctime > unlinked.node.ctime,
        "rename changes the source's ctime"
    );
    assert_eq!(moved.node, attr(meta, f.ino));
    assert_eq!(moved.dirs, [attr(meta, e.ino), attr(meta, d.ino)]);
    assert_eq!(moved.other, None);
    for dir in &moved.dirs {
        assert_eq!(
            (dir.mtime, dir.ctime),
            (moved.node.ctime, moved.node.ctime),
            "both directories change when the entry moves: {dir:?}"
        );
    }

    let victim = file(meta, d.ino, b"victim");
    let replaced = meta
        .rename(d.ino, b"f3", d.ino, b"victim", Replace)
        .unwrap();
    let gone = replaced.other.unwrap();
    assert_eq!(
        (gone.ino, gone.nlink),
        (victim.ino, 0),
        "the replaced file has no links"
    );
    assert_eq!(gone, attr(meta, victim.ino), "and stays until purged");
    assert_eq!(replaced.dirs, [attr(meta, d.ino)]);
    assert_eq!(meta.orphans().unwrap(), [victim.ino]);

    let sub = dir(meta, d.ino, b"sub");
    let target = dir(meta, e.ino, b"target");
    let over = meta
        .rename(d.ino, b"sub", e.ino, b"target", Replace)
        .unwrap();
    let purged = over.other.unwrap();
    assert_eq!((purged.ino, purged.nlink), (target.ino, 0));
    assert_eq!(errno(meta.get_attr(target.ino)), libc::ENOENT, "purged");
    assert_eq!(over.node, attr(meta, sub.ino));
    let d_after = attr(meta, d.ino);
    let e_after = attr(meta, e.ino);
    assert_eq!((d_after.nlink, e_after.nlink), (2, 3));
    assert_eq!(over.dirs, [d_after, e_after]);

    let swapped = meta
        .rename(d.ino, b"victim", e.ino, b"target", Exchange)
        .unwrap();
    assert_eq!(swapped.node, attr(meta, f.ino));
    assert_eq!(swapped.other, Some(attr(meta, sub.ino)));

    let removed = meta.rmdir(d.ino, b"victim").unwrap();
    assert_eq!((removed.node.ino, removed.node.nlink), (sub.ino, 0));
    assert_eq!(removed.dirs, [attr(meta, d.ino)]);
    assert_eq!(removed.dirs[0].nlink, 2);
    assert_eq!(
        (removed.dirs[0].mtime, removed.node.ctime),
        (removed.node.ctime, removed.dirs[0].ctime),
        "the parent's times are the removal's"
    );
    assert_eq!(errno(meta.get_attr(sub.ino)), libc::ENOENT, "rmdir purges");

    let before = attr(meta, f.ino);
    later(before.ctime);
    let tagged = meta
        .set_xattr(f.ino, b"user.t", b"1", XattrMode::Any, 4096)
        .unwrap();
    assert!(tagged.ctime > before.ctime);
    assert_eq!(tagged, attr(meta, f.ino));
    later(tagged.ctime);
    let untagged = meta.remove_xattr(f.ino, b"user.t").unwrap();
    assert!(untagged.ctime > tagged.ctime);
    assert_eq!(untagged, attr(meta, f.ino));
}

fn directory_link_counts_follow_subdirectories(meta: &dyn MetaEngine) {
    let d = dir(meta, ROOT_INO, b"d");
    let e = dir(meta, ROOT_INO, b"e");
    dir(meta, d.ino, b"s1");
    dir(meta, d.ino, b"s2");
    file(meta, d.ino, b"f");
    let nlinks = |meta: &dyn MetaEngine| {
        (
            attr(meta, ROOT_INO).nlink,
            attr(meta, d.ino).nlink,
            attr(meta, e.ino).nlink,
        )
    };
    assert_eq!(nlinks(meta), (4, 4, 2));
    meta.rename(d.ino, b"s1", e.ino, b"s1", Replace).unwrap();
    assert_eq!(nlinks(meta), (4, 3, 3), "a moved directory");
    meta.rename(d.ino, b"f", e.ino, b"f", Replace).unwrap();
    assert_eq!(nlinks(meta), (4, 3, 3), "a moved file");
    meta.rename(d.ino, b"s2", e.ino, b"f", Exchange).unwrap();
    assert_eq!(nlinks(meta), (4, 2, 4), "a directory exchanged with a file");
    assert_eq!(meta.lookup(d.ino, b"s2").unwrap().kind, Kind::File);
    assert_eq!(meta.lookup(e.ino, b"f").unwrap().kind, Kind::Directory);
    meta.rename(e.ino, b"s1", d.ino, b"s2", Exchange).unwrap();
    assert_eq!(nlinks(meta), (4, 3, 3), "and back");
    meta.rename(d.ino, b"s2", ROOT_INO, b"up", NoReplace)
        .unwrap();
    assert_eq!(nlinks(meta), (5, 2, 3), "moved up");
    meta.rmdir(ROOT_INO, b"up").unwrap();
    assert_eq!(nlinks(meta), (4, 2, 3), "removed");
}

fn rename_exchange_swaps_two_entries_across_directories(meta: &dyn MetaEngine) {
    let d = dir(meta, ROOT_INO, b"d");
    let e = dir(meta, ROOT_INO, b"e");
    let f = file(meta, d.ino, b"a");
    let s = dir(meta, e.ino, b"b");
    file(meta, s.ino, b"inside");
    let (f_before, s_before) = (attr(meta, f.ino), attr(meta, s.ino));
    later(f_before.ctime.max(s_before.ctime));
    let swapped = meta.rename(d.ino, b"a", e.ino, b"b", Exchange).unwrap();
    assert_eq!(meta.lookup(d.ino, b"a").unwrap().ino, s.ino);
    assert_eq!(meta.lookup(e.ino, b"b").unwrap().ino, f.ino);
    assert_eq!(meta.parent_of(s.ino).unwrap(), d.ino, "the directory moved");
    assert_eq!(swapped.node, attr(meta, f.ino));
    assert_eq!(swapped.other, Some(attr(meta, s.ino)));
    assert!(
        swapped.node.ctime > f_before.ctime,
        "both status times change"
    );
    assert!(swapped.other.unwrap().ctime > s_before.ctime);
    assert_eq!(swapped.dirs, [attr(meta, d.ino), attr(meta, e.ino)]);
    assert_eq!(
        swapped.dirs[0].mtime, swapped.dirs[1].mtime,
        "both directories changed at once"
    );
    assert_eq!(meta.lookup(s.ino, b"inside").unwrap().kind, Kind::File);
    // Within one directory only that directory is returned.
    file(meta, d.ino, b"c");
    let within = meta.rename(d.ino, b"a", d.ino, b"c", Exchange).unwrap();
    assert_eq!(within.dirs, [attr(meta, d.ino)]);
    assert_eq!(meta.lookup(d.ino, b"c").unwrap().ino, s.ino);
}

fn rename_over_a_file_with_other_links_keeps_it(meta: &dyn MetaEngine) {
    let a = file(meta, ROOT_INO, b"a");
    let b = file(meta, ROOT_INO, b"b");
    meta.link(b.ino, ROOT_INO, b"b2").unwrap();
    let replaced = meta
        .rename(ROOT_INO, b"a", ROOT_INO, b"b", Replace)
        .unwrap();
    let other = replaced.other.unwrap();
    assert_eq!((other.ino, other.nlink), (b.ino, 1), "b2 still names it");
    assert_eq!(other, attr(meta, b.ino));
    assert_eq!(meta.lookup(ROOT_INO, b"b").unwrap().ino, a.ino);
    assert_eq!(errno(meta.lookup(ROOT_INO, b"a")), libc::ENOENT);
    assert!(meta.orphans().unwrap().is_empty());
}

fn rename_onto_another_name_of_the_same_inode_does_nothing(meta: &dyn MetaEngine) {
    let f = file(meta, ROOT_INO, b"f");
    meta.link(f.ino, ROOT_INO, b"g").unwrap();
    let root = attr(meta, ROOT_INO);
    let before = attr(meta, f.ino);
    let nothing = meta
        .rename(ROOT_INO, b"f", ROOT_INO, b"g", Replace)
        .unwrap();
    assert_eq!(nothing.node, before);
    assert_eq!((nothing.dirs.len(), nothing.other), (0, None));
    assert_eq!(attr(meta, ROOT_INO), root, "the directory is untouched");
    assert_eq!(
        meta.lookup(ROOT_INO, b"f").unwrap().ino,
        f.ino,
        "both names stay"
    );
    assert_eq!(meta.lookup(ROOT_INO, b"g").unwrap().ino, f.ino);
    let same = meta
        .rename(ROOT_INO, b"f", ROOT_INO, b"f", Replace)
        .unwrap();
    assert_eq!(same.node, before, "onto itself");
}

fn rename_moves_a_directory_and_its_parent_follows(meta: &dyn MetaEngine) {
    let a = dir(meta, ROOT_INO, b"a");
    let b = dir(meta, ROOT_INO, b"b");
    let s = dir(meta, a.ino, b"s");
    let deep = dir(meta, s.ino, b"deep");
    assert_eq!(meta.parent_of(s.ino).unwrap(), a.ino);
    meta.rename(a.ino, b"s", b.ino, b"t", NoReplace).unwrap();
    assert_eq!(meta.parent_of(s.ino).unwrap(), b.ino);
    assert_eq!(meta.parent_of(deep.ino).unwrap(), s.ino);
    assert_eq!(meta.parent_of(ROOT_INO).unwrap(), ROOT_INO);
    assert_eq!(errno(meta.lookup(a.ino, b"s")), libc::ENOENT);
    assert_eq!(meta.lookup(b.ino, b"t").unwrap().ino, s.ino);
    // Into its own subtree, however deep: refused, nothing changed.
    assert_eq!(
        errno(meta.rename(b.ino, b"t", deep.ino, b"x", Replace)),
        libc::EINVAL
    );
    assert_eq!(
        errno(meta.rename(ROOT_INO, b"b", deep.ino, b"x", NoReplace)),
        libc::EINVAL
    );
    assert_eq!(meta.parent_of(s.ino).unwrap(), b.ino);
}

// ---------------------------------------------------------------------------------------
// Scenarios: attributes

fn status_change_time_never_goes_back(meta: &dyn MetaEngine) {
    let f = file(meta, ROOT_INO, b"f");
    let late_save = AttrChange {
        size: Some(5),
        ctime: Some(f.ctime - 1_000_000),
        ..AttrChange::default()
    };
    let saved = meta.set_attr(f.ino, &late_save).unwrap();
    assert_eq!((saved.size, saved.ctime), (5, f.ctime));
    let newer = AttrChange {
        ctime: Some(f.ctime + 1_000),
        ..AttrChange::default()
    };
    assert_eq!(meta.set_attr(f.ino, &newer).unwrap().ctime, f.ctime + 1_000);
}

fn set_attr_changes_only_the_given_fields_including_data_state(meta: &dyn MetaEngine) {
    let f = file(meta, ROOT_INO, b"f");
    let change = AttrChange {
        perm: Some(0o4711),
        uid: Some(1),
        gid: Some(2),
        size: Some(100 << 20),
        atime: Some(-5),
        mtime: Some(7),
        blocks: Some(8),
        data_state: Some(DataState::Dirty),
        ..AttrChange::default()
    };
    let changed = meta.set_attr(f.ino, &change).unwrap();
    let expected = Attr {
        perm: 0o4711,
        uid: 1,
        gid: 2,
        size: 100 << 20,
        atime: -5,
        mtime: 7,
        blocks: Some(8),
        data_state: DataState::Dirty,
        ..f
    };
    assert_eq!(changed, expected);
    assert_eq!(attr(meta, f.ino), expected);
    // A change that names nothing keeps everything (recorded blocks included).
    let chmod = AttrChange {
        perm: Some(0o600),
        ..AttrChange::default()
    };
    let after = meta.set_attr(f.ino, &chmod).unwrap();
    assert_eq!(
        after,
        Attr {
            perm: 0o600,
            ..expected
        }
    );
    for state in [
        DataState::Resident,
        DataState::Archived,
        DataState::Released,
        DataState::Empty,
    ] {
        let change = AttrChange {
            data_state: Some(state),
            ..AttrChange::default()
        };
        assert_eq!(meta.set_attr(f.ino, &change).unwrap().data_state, state);
        assert_eq!(attr(meta, f.ino).data_state, state);
    }
    let resident = AttrChange {
        data_state: Some(DataState::Resident),
        ..AttrChange::default()
    };
    meta.set_attr(f.ino, &resident).unwrap();
    let listed = meta.read_dir_plus(ROOT_INO, 0, 10).unwrap();
    assert_eq!(
        listed[0].1.data_state,
        DataState::Resident,
        "listings carry it"
    );
    assert_eq!(
        meta.lookup(ROOT_INO, b"f").unwrap().data_state,
        DataState::Resident
    );
    assert_eq!(
        errno(meta.set_attr(999_999, &chmod)),
        libc::ENOENT,
        "a missing inode"
    );
}

fn undo_create_removes_only_the_entry_it_made(meta: &dyn MetaEngine) {
    let d = dir(meta, ROOT_INO, b"d");
    let f = file(meta, d.ino, b"f");
    let parent = meta.undo_create(d.ino, b"f", f.ino).unwrap().unwrap();
    assert_eq!(parent, attr(meta, d.ino));
    assert_eq!(errno(meta.lookup(d.ino, b"f")), libc::ENOENT);
    assert_eq!(
        errno(meta.get_attr(f.ino)),
        libc::ENOENT,
        "the inode is gone too"
    );
    // A name that now names another inode is left alone.
    let other = file(meta, d.ino, b"f");
    assert_eq!(meta.undo_create(d.ino, b"f", f.ino).unwrap(), None);
    assert_eq!(meta.lookup(d.ino, b"f").unwrap().ino, other.ino);
    assert_eq!(meta.undo_create(d.ino, b"gone", other.ino).unwrap(), None);
    // A directory is never taken back; a file with another name only loses this one.
    let sub = dir(meta, d.ino, b"sub");
    assert_eq!(meta.undo_create(d.ino, b"sub", sub.ino).unwrap(), None);
    meta.link(other.ino, ROOT_INO, b"kept").unwrap();
    assert!(meta.undo_create(d.ino, b"f", other.ino).unwrap().is_some());
    assert_eq!(attr(meta, other.ino).nlink, 1);
    assert_eq!(meta.lookup(ROOT_INO, b"kept").unwrap().ino, other.ino);
    assert_eq!(
        meta.existing(&[other.ino, f.ino, 999_999]).unwrap(),
        [other.ino]
    );
}

// ---------------------------------------------------------------------------------------
// Scenarios: listings

fn directory_listing_pages_by_cookie_with_attributes(meta: &dyn MetaEngine) {
    let d = dir(meta, ROOT_INO, b"d");
    for i in 0..10 {
        file(meta, d.ino, format!("f{i}").as_bytes());
    }
    let first = meta.read_dir_plus(d.ino, 0, 4).unwrap();
    assert_eq!(first.len(), 4);
    let rest = meta.read_dir_plus(d.ino, first[3].0.cookie, 100).unwrap();
    assert_eq!(rest.len(), 6);
    let plain = meta.read_dir(d.ino, 0, 100).unwrap();
    let plus: Vec<_> = first.iter().chain(&rest).collect();
    assert_eq!(plain.len(), plus.len());
    for (entry, (plus_entry, attr)) in plain.iter().zip(plus) {
        assert_eq!(entry, plus_entry);
        assert_eq!(*attr, meta.get_attr(entry.ino).unwrap());
        assert_eq!(entry.kind, attr.kind);
    }
    let names: Vec<_> = plain.iter().map(|e| e.name.clone()).collect();
    let expected: Vec<_> = (0..10).map(|i| format!("f{i}").into_bytes()).collect();
    assert_eq!(names, expected, "in creation order");
    assert!(meta
        .read_dir(d.ino, plain[9].cookie, 100)
        .unwrap()
        .is_empty());
    assert!(meta.read_dir(d.ino, 0, 0).unwrap().is_empty(), "limit 0");
}

fn cookies_increase_and_are_never_reused(meta: &dyn MetaEngine) {
    let d = dir(meta, ROOT_INO, b"d");
    for name in [b"a", b"b", b"c"] {
        file(meta, d.ino, name);
    }
    let listed = meta.read_dir(d.ino, 0, 10).unwrap();
    let highest = listed.last().unwrap().cookie;
    let b_cookie = listed[1].cookie;
    meta.unlink(d.ino, b"b").unwrap();
    meta.unlink(d.ino, b"c").unwrap();
    file(meta, d.ino, b"b");
    let again = meta.read_dir(d.ino, 0, 10).unwrap();
    let new_b = again.iter().find(|e| e.name == b"b").unwrap();
    assert!(
        new_b.cookie > highest,
        "a new entry {} comes after every earlier one (up to {highest}, b was {b_cookie})",
        new_b.cookie
    );
    // A reader that stopped after "a" sees the new entry, not a reused slot.
    let after_a = meta.read_dir(d.ino, listed[0].cookie, 10).unwrap();
    assert_eq!(after_a.len(), 1);
    assert_eq!(after_a[0].name, b"b");
    // Cookies are not shared across directories either.
    let other = dir(meta, ROOT_INO, b"e");
    let in_other = file(meta, other.ino, b"x");
    let x = meta.read_dir(other.ino, 0, 10).unwrap();
    assert_eq!(x[0].ino, in_other.ino);
    assert!(x[0].cookie > new_b.cookie);
    assert!(
        meta.read_dir(999_999, 0, 10).unwrap().is_empty(),
        "missing dir"
    );
}

// ---------------------------------------------------------------------------------------
// Scenarios: extended attributes

fn extended_attributes_follow_the_create_and_replace_modes(meta: &dyn MetaEngine) {
    let f = file(meta, ROOT_INO, b"f");
    let max = 4096;
    assert_eq!(
        errno(meta.set_xattr(f.ino, b"user.a", b"1", XattrMode::Replace, max)),
        libc::ENODATA
    );
    meta.set_xattr(f.ino, b"user.a", b"1", XattrMode::Create, max)
        .unwrap();
    assert_eq!(
        errno(meta.set_xattr(f.ino, b"user.a", b"2", XattrMode::Create, max)),
        libc::EEXIST
    );
    meta.set_xattr(f.ino, b"user.a", b"22", XattrMode::Replace, max)
        .unwrap();
    meta.set_xattr(f.ino, b"user.0", b"", XattrMode::Any, max)
        .unwrap();
    meta.set_xattr(f.ino, b"user.b", &[0, 255, 7], XattrMode::Any, max)
        .unwrap();
    assert_eq!(meta.get_xattr(f.ino, b"user.a").unwrap(), b"22");
    assert_eq!(
        meta.get_xattr(f.ino, b"user.0").unwrap(),
        b"",
        "empty values exist"
    );
    assert_eq!(meta.get_xattr(f.ino, b"user.b").unwrap(), [0, 255, 7]);
    assert_eq!(
        meta.list_xattrs(f.ino).unwrap(),
        [b"user.0".to_vec(), b"user.a".to_vec(), b"user.b".to_vec()],
        "names in byte order"
    );
    assert!(meta.xattr_in_use(b"user.b").unwrap());
    assert!(!meta.xattr_in_use(b"user.c").unwrap());
    assert_eq!(errno(meta.get_xattr(f.ino, b"user.c")), libc::ENODATA);
    meta.remove_xattr(f.ino, b"user.b").unwrap();
    assert_eq!(errno(meta.remove_xattr(f.ino, b"user.b")), libc::ENODATA);
    assert!(!meta.xattr_in_use(b"user.b").unwrap());
    assert_eq!(errno(meta.get_xattr(f.ino, b"")), libc::EINVAL);
    assert_eq!(
        errno(meta.set_xattr(999_999, b"user.a", b"1", XattrMode::Any, max)),
        libc::ENOENT
    );
    assert_eq!(errno(meta.remove_xattr(999_999, b"user.a")), libc::ENOENT);
    assert_eq!(errno(meta.get_xattr(999_999, b"user.a")), libc::ENODATA);
    assert!(meta.list_xattrs(999_999).unwrap().is_empty());
    // They go with the inode.
    meta.unlink(ROOT_INO, b"f").unwrap();
    meta.purge(f.ino).unwrap();
    assert!(meta.list_xattrs(f.ino).unwrap().is_empty());
    assert!(!meta.xattr_in_use(b"user.a").unwrap());
}

fn extended_attributes_are_bounded_in_total(meta: &dyn MetaEngine) {
    let f = file(meta, ROOT_INO, b"f");
    let max = 40;
    // name (6) + value (14) = 20 bytes each.
    meta.set_xattr(f.ino, b"user.a", &[1; 14], XattrMode::Any, max)
        .unwrap();
    meta.set_xattr(f.ino, b"user.b", &[2; 14], XattrMode::Any, max)
        .unwrap();
    assert_eq!(
        errno(meta.set_xattr(f.ino, b"user.c", b"", XattrMode::Any, max)),
        libc::ENOSPC,
        "a third would pass 40 bytes"
    );
    // Replacing counts the new value, not the old one.
    meta.set_xattr(f.ino, b"user.b", &[3; 14], XattrMode::Replace, max)
        .unwrap();
    assert_eq!(
        errno(meta.set_xattr(f.ino, b"user.b", &[3; 15], XattrMode::Any, max)),
        libc::ENOSPC
    );
    assert_eq!(
        errno(meta.set_xattr(f.ino, b"user.big", &[0; 40], XattrMode::Any, max)),
        libc::ENOSPC,
        "alone too large"
    );
    assert_eq!(
        errno(meta.set_xattr(
            f.ino,
            b"user.huge",
            &vec![0; 65537],
            XattrMode::Any,
            1 << 20
        )),
        libc::E2BIG
    );
    assert_eq!(meta.get_xattr(f.ino, b"user.b").unwrap(), [3; 14]);
    assert_eq!(
        meta.list_xattrs(f.ino).unwrap().len(),
        2,
        "nothing else stored"
    );
    // Each inode has its own budget.
    let g = file(meta, ROOT_INO, b"g");
    meta.set_xattr(g.ino, b"user.c", &[4; 30], XattrMode::Any, max)
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Scenarios: orphans and inventory

fn unlinked_inodes_stay_as_orphans_until_purged(meta: &dyn MetaEngine) {
    let f = file(meta, ROOT_INO, b"f");
    let s = symlink(meta, ROOT_INO, b"s", b"f");
    let linked = file(meta, ROOT_INO, b"linked");
    meta.set_xattr(f.ino, b"user.k", b"v", XattrMode::Any, 4096)
        .unwrap();
    let unlinked = meta.unlink(ROOT_INO, b"f").unwrap();
    assert_eq!(unlinked.node.nlink, 0);
    meta.unlink(ROOT_INO, b"s").unwrap();
    let mut orphans = meta.orphans().unwrap();
    orphans.sort_unstable();
    assert_eq!(orphans, [f.ino, s.ino]);
    assert_eq!(attr(meta, f.ino).nlink, 0, "still there for open handles");
    assert_eq!(meta.get_xattr(f.ino, b"user.k").unwrap(), b"v");
    assert_eq!(meta.read_link(s.ino).unwrap(), b"f");
    assert_eq!(
        errno(meta.link(f.ino, ROOT_INO, b"back")),
        libc::ENOENT,
        "an inode with no names cannot get one back"
    );
    meta.purge(linked.ino).unwrap();
    assert_eq!(attr(meta, linked.ino), linked, "purge keeps a linked inode");
    meta.purge(f.ino).unwrap();
    meta.purge(s.ino).unwrap();
    assert_eq!(errno(meta.get_attr(f.ino)), libc::ENOENT);
    assert_eq!(
        errno(meta.read_link(s.ino)),
        libc::EINVAL,
        "the target went with it"
    );
    assert_eq!(errno(meta.get_xattr(f.ino, b"user.k")), libc::ENODATA);
    assert_eq!(errno(meta.purge(f.ino)), libc::ENOENT, "purged twice");
    assert!(meta.orphans().unwrap().is_empty());
}

fn inventory_queries_report_only_existing_inodes(meta: &dyn MetaEngine) {
    let d = dir(meta, ROOT_INO, b"d");
    let f = file(meta, d.ino, b"f");
    let g = file(meta, d.ino, b"g");
    let h = file(meta, d.ino, b"h");
    let s = symlink(meta, d.ino, b"s", b"abc");
    assert!(meta.existing(&[]).unwrap().is_empty());
    let mut existing = meta.existing(&[999_999, g.ino, f.ino, g.ino]).unwrap();
    existing.sort_unstable();
    existing.dedup();
    assert_eq!(existing, [f.ino, g.ino]);
    assert_eq!(
        meta.files_with_data(10).unwrap(),
        0,
        "no file has a size yet"
    );
    for (ino, size) in [(f.ino, 5u64), (g.ino, 1), (h.ino, 7)] {
        let change = AttrChange {
            size: Some(size),
            ..AttrChange::default()
        };
        meta.set_attr(ino, &change).unwrap();
    }
    let mut sizes = meta.sizes(&[s.ino, f.ino, 999_999, d.ino]).unwrap();
    sizes.sort_unstable_by_key(|&(ino, _, _)| ino);
    assert_eq!(
        sizes,
        [
            (d.ino, Kind::Directory, 0),
            (f.ino, Kind::File, 5),
            (s.ino, Kind::Symlink, 3)
        ]
    );
    assert_eq!(
        meta.files_with_data(10).unwrap(),
        3,
        "symlinks do not count"
    );
    assert_eq!(
        meta.files_with_data(2).unwrap(),
        2,
        "counting stops at the limit"
    );
    let identity = meta.identity().unwrap();
    assert_eq!(identity.len(), 32, "{identity}");
    assert!(
        identity.bytes().all(|b| b.is_ascii_hexdigit()),
        "{identity}"
    );
    assert_eq!(meta.migrate(0, 0).unwrap(), SCHEMA_VERSION);
    assert_eq!(
        meta.identity().unwrap(),
        identity,
        "kept by a later migrate"
    );
}

fn lookups_of_missing_things_are_enoent(meta: &dyn MetaEngine) {
    let f = file(meta, ROOT_INO, b"f");
    assert_eq!(errno(meta.get_attr(999_999)), libc::ENOENT);
    assert_eq!(errno(meta.lookup(ROOT_INO, b"none")), libc::ENOENT);
    assert_eq!(errno(meta.lookup(999_999, b"f")), libc::ENOENT);
    assert_eq!(errno(meta.lookup(f.ino, b"f")), libc::ENOENT, "in a file");
    assert_eq!(errno(meta.parent_of(999_999)), libc::ENOENT);
    assert_eq!(errno(meta.read_link(999_999)), libc::EINVAL);
    assert_eq!(errno(meta.unlink(999_999, b"f")), libc::ENOENT);
    assert_eq!(errno(meta.unlink(f.ino, b"f")), libc::ENOTDIR);
    assert_eq!(errno(meta.lookup(ROOT_INO, b"")), libc::EINVAL);
    let root = attr(meta, ROOT_INO);
    assert_eq!(
        (root.kind, root.uid, root.gid, root.perm),
        (Kind::Directory, 0, 0, 0o755)
    );
}

// ---------------------------------------------------------------------------------------
// Scenarios: the archive tier

/// A file `name` in `parent` whose data is saved (`Resident`) with `size` bytes and
/// modification time `mtime`.
fn resident(meta: &dyn MetaEngine, parent: u64, name: &[u8], size: u64, mtime: i64) -> Attr {
    let f = file(meta, parent, name);
    set_data(meta, f.ino, DataState::Resident, size, mtime)
}

/// Sets the data state, size and modification time of `ino`.
fn set_data(meta: &dyn MetaEngine, ino: u64, state: DataState, size: u64, mtime: i64) -> Attr {
    let change = AttrChange {
        data_state: Some(state),
        size: Some(size),
        mtime: Some(mtime),
        ..AttrChange::default()
    };
    meta.set_attr(ino, &change).unwrap()
}

/// Sets only the data state of `ino`.
fn set_state(meta: &dyn MetaEngine, ino: u64, state: DataState) -> Attr {
    let change = AttrChange {
        data_state: Some(state),
        ..AttrChange::default()
    };
    meta.set_attr(ino, &change).unwrap()
}

/// A copy of `of`'s current data as copy `seq` on `volume`, with digests.
fn copy_of(of: &Attr, volume: &str, seq: u64) -> ArchiveCopy {
    ArchiveCopy {
        ino: of.ino,
        volume: volume.to_owned(),
        seq,
        size: of.size,
        mtime: of.mtime,
        md5: Some([seq as u8; 16]),
        sha1: Some([of.ino as u8; 20]),
        archived_ns: 1_000_000 + seq as i64,
        superseded_ns: None,
    }
}

/// Records a copy of `of` as copy `seq` on `volume`; returns the copy.
fn archive(meta: &dyn MetaEngine, of: &Attr, volume: &str, seq: u64) -> ArchiveCopy {
    let copy = copy_of(of, volume, seq);
    let archived = meta.record_copy(&copy).unwrap();
    assert_eq!(archived.data_state, DataState::Archived, "{archived:?}");
    copy
}

/// A file archived as copy `seq` on `volume` and then released.
fn released(meta: &dyn MetaEngine, name: &[u8], volume: &str, seq: u64) -> (Attr, ArchiveCopy) {
    let f = resident(meta, ROOT_INO, name, 10 + seq, 1_000 + seq as i64);
    let copy = archive(meta, &f, volume, seq);
    let released = meta.release(f.ino, f.mtime).unwrap();
    assert_eq!(released.data_state, DataState::Released, "{released:?}");
    (released, copy)
}

fn inos(attrs: &[Attr]) -> Vec<u64> {
    attrs.iter().map(|a| a.ino).collect()
}

fn seqs(copies: &[ArchiveCopy]) -> Vec<(String, u64)> {
    copies.iter().map(|c| (c.volume.clone(), c.seq)).collect()
}

fn migration_candidates_are_named_resident_files_in_inode_order(meta: &dyn MetaEngine) {
    let d = dir(meta, ROOT_INO, b"d");
    let a = resident(meta, ROOT_INO, b"a", 1, 10);
    let b = resident(meta, d.ino, b"b", 2, 20);
    let empty = file(meta, ROOT_INO, b"empty");
    let dirty = resident(meta, ROOT_INO, b"dirty", 3, 30);
    set_state(meta, dirty.ino, DataState::Dirty);
    let archived = resident(meta, ROOT_INO, b"archived", 4, 40);
    set_state(meta, archived.ino, DataState::Archived);
    let unlinked = resident(meta, ROOT_INO, b"unlinked", 5, 50);
    meta.unlink(ROOT_INO, b"unlinked").unwrap();
    let subdir = dir(meta, ROOT_INO, b"resident-dir");
    set_state(meta, subdir.ino, DataState::Resident);
    let c = resident(meta, ROOT_INO, b"c", 6, 60);

    let all = meta.migration_candidates(0, 100).unwrap();
    assert_eq!(
        inos(&all),
        [a.ino, b.ino, c.ino],
        "not empty {}, dirty {}, archived {}, unlinked {}, a directory {}",
        empty.ino,
        dirty.ino,
        archived.ino,
        unlinked.ino,
        subdir.ino
    );
    assert_eq!(
        all,
        [attr(meta, a.ino), attr(meta, b.ino), attr(meta, c.ino)]
    );
    assert_eq!(
        inos(&meta.migration_candidates(0, 2).unwrap()),
        [a.ino, b.ino]
    );
    assert_eq!(
        inos(&meta.migration_candidates(a.ino, 100).unwrap()),
        [b.ino, c.ino]
    );
    assert_eq!(inos(&meta.migration_candidates(b.ino, 1).unwrap()), [c.ino]);
    assert!(meta.migration_candidates(c.ino, 100).unwrap().is_empty());
    assert!(meta.migration_candidates(0, 0).unwrap().is_empty());
}

fn eviction_candidates_are_archived_files_by_access_time_then_inode(meta: &dyn MetaEngine) {
    let archived_at = |name: &[u8], atime: i64, state: DataState| {
        let f = file(meta, ROOT_INO, name);
        let change = AttrChange {
            data_state: Some(state),
            size: Some(1),
            atime: Some(atime),
            ..AttrChange::default()
        };
        meta.set_attr(f.ino, &change).unwrap()
    };
    let x = archived_at(b"x", 300, DataState::Archived);
    let y = archived_at(b"y", 100, DataState::Archived);
    let z = archived_at(b"z", 100, DataState::Archived);
    let w = archived_at(b"w", 200, DataState::Archived);
    archived_at(b"resident", 50, DataState::Resident);
    archived_at(b"released", 10, DataState::Released);
    archived_at(b"damaged", 10, DataState::Damaged);
    let d = dir(meta, ROOT_INO, b"d");
    let change = AttrChange {
        data_state: Some(DataState::Archived),
        atime: Some(1),
        ..AttrChange::default()
    };
    meta.set_attr(d.ino, &change).unwrap();

    let all = meta.eviction_candidates(None, 100).unwrap();
    assert_eq!(inos(&all), [y.ino, z.ino, w.ino, x.ino], "by (atime, ino)");
    assert_eq!(all, [y, z, w, x]);
    let after = |pos, limit| inos(&meta.eviction_candidates(Some(pos), limit).unwrap());
    assert_eq!(
        inos(&meta.eviction_candidates(None, 2).unwrap()),
        [y.ino, z.ino]
    );
    assert_eq!(
        after((100, y.ino), 100),
        [z.ino, w.ino, x.ino],
        "same atime, later inode"
    );
    assert_eq!(after((100, z.ino), 100), [w.ino, x.ino]);
    assert_eq!(after((150, 0), 1), [w.ino]);
    assert_eq!(after((100, 0), 100), [y.ino, z.ino, w.ino, x.ino]);
    assert!(after((300, x.ino), 100).is_empty(), "strictly after");
    assert!(meta.eviction_candidates(None, 0).unwrap().is_empty());
}

fn record_copy_archives_a_resident_file_and_supersedes_its_earlier_copy(meta: &dyn MetaEngine) {
    let f = resident(meta, ROOT_INO, b"f", 10, 1_000);
    assert_eq!(meta.live_copy(f.ino).unwrap(), None);
    let first = copy_of(&f, "vol-a", 1);
    let archived = meta.record_copy(&first).unwrap();
    assert_eq!(
        archived,
        Attr {
            data_state: DataState::Archived,
            ..f
        }
    );
    assert_eq!(archived, attr(meta, f.ino), "the answer is what is stored");
    assert_eq!(meta.live_copy(f.ino).unwrap(), Some(first.clone()));
    assert_eq!(meta.superseded_count().unwrap(), 0);

    // Rewritten and saved again: a new copy replaces the first.
    let rewritten = set_data(meta, f.ino, DataState::Resident, 20, 2_000);
    let second = copy_of(&rewritten, "vol-b", 7);
    let before = now_ns();
    meta.record_copy(&second).unwrap();
    let after = now_ns();
    assert_eq!(meta.live_copy(f.ino).unwrap(), Some(second));
    assert_eq!(meta.superseded_count().unwrap(), 1);
    let superseded = meta.superseded_copies(i64::MAX, 10).unwrap();
    assert_eq!(superseded.len(), 1, "{superseded:?}");
    let when = superseded[0].superseded_ns.expect("superseded");
    assert!(
        (before..=after).contains(&when),
        "{before} <= {when} <= {after}"
    );
    assert_eq!(
        superseded[0],
        ArchiveCopy {
            superseded_ns: Some(when),
            ..first
        }
    );
}

fn record_copy_refuses_a_file_that_changed_with_eagain(meta: &dyn MetaEngine) {
    let f = resident(meta, ROOT_INO, b"f", 10, 1_000);
    let copy = copy_of(&f, "v", 1);
    let other_size = ArchiveCopy {
        size: 11,
        ..copy.clone()
    };
    assert_eq!(errno(meta.record_copy(&other_size)), libc::EAGAIN, "size");
    let other_mtime = ArchiveCopy {
        mtime: 999,
        ..copy.clone()
    };
    assert_eq!(errno(meta.record_copy(&other_mtime)), libc::EAGAIN, "mtime");
    set_state(meta, f.ino, DataState::Dirty);
    assert_eq!(errno(meta.record_copy(&copy)), libc::EAGAIN, "dirty");
    let empty = file(meta, ROOT_INO, b"empty");
    assert_eq!(
        errno(meta.record_copy(&copy_of(&empty, "v", 2))),
        libc::EAGAIN,
        "empty"
    );
    let d = dir(meta, ROOT_INO, b"d");
    set_state(meta, d.ino, DataState::Resident);
    assert_eq!(
        errno(meta.record_copy(&copy_of(&attr(meta, d.ino), "v", 3))),
        libc::EAGAIN
    );
    let missing = ArchiveCopy {
        ino: 999_999,
        ..copy.clone()
    };
    assert_eq!(errno(meta.record_copy(&missing)), libc::ENOENT);
    assert_eq!(attr(meta, f.ino).data_state, DataState::Dirty, "unchanged");
    assert_eq!(meta.live_copy(f.ino).unwrap(), None, "nothing recorded");

    // Already archived: no second copy of the same data.
    set_state(meta, f.ino, DataState::Resident);
    archive(meta, &f, "v", 1);
    assert_eq!(
        errno(meta.record_copy(&copy_of(&f, "v", 4))),
        libc::EAGAIN,
        "archived"
    );
    assert_eq!(meta.live_copy(f.ino).unwrap().map(|c| c.seq), Some(1));

    // A copy number the volume has used: refused, nothing changes (the rewritten file's
    // earlier copy stays live).
    let g = resident(meta, ROOT_INO, b"g", 5, 500);
    let earlier = archive(meta, &g, "w", 1);
    let g = set_data(meta, g.ino, DataState::Resident, 6, 600);
    assert_eq!(errno(meta.record_copy(&copy_of(&g, "v", 1))), libc::EEXIST);
    assert_eq!(attr(meta, g.ino), g);
    assert_eq!(meta.live_copy(g.ino).unwrap(), Some(earlier));
    assert_eq!(meta.live_copy(f.ino).unwrap().map(|c| c.ino), Some(f.ino));
    assert_eq!(meta.superseded_count().unwrap(), 0);
    let long = "x".repeat(VOLUME_MAX + 1);
    assert_eq!(
        errno(meta.record_copy(&copy_of(&g, &long, 1))),
        libc::ENAMETOOLONG
    );
    archive(meta, &g, &"x".repeat(VOLUME_MAX), 1);
    assert_eq!(meta.superseded_count().unwrap(), 1, "the earlier copy");
}

fn release_needs_archived_the_same_mtime_and_a_live_copy(meta: &dyn MetaEngine) {
    let f = resident(meta, ROOT_INO, b"f", 10, 1_000);
    assert_eq!(
        errno(meta.release(f.ino, f.mtime)),
        libc::EAGAIN,
        "resident"
    );
    archive(meta, &f, "v", 1);
    assert_eq!(
        errno(meta.release(f.ino, 999)),
        libc::EAGAIN,
        "modified since"
    );
    assert_eq!(attr(meta, f.ino).data_state, DataState::Archived);
    let released = meta.release(f.ino, f.mtime).unwrap();
    assert_eq!(
        released,
        Attr {
            data_state: DataState::Released,
            ..f
        }
    );
    assert_eq!(released, attr(meta, f.ino));
    assert_eq!(
        errno(meta.release(f.ino, f.mtime)),
        libc::EAGAIN,
        "released"
    );

    let no_copy = resident(meta, ROOT_INO, b"no-copy", 5, 500);
    set_state(meta, no_copy.ino, DataState::Archived);
    assert_eq!(
        errno(meta.release(no_copy.ino, 500)),
        libc::EAGAIN,
        "no live copy"
    );
    assert_eq!(attr(meta, no_copy.ino).data_state, DataState::Archived);
    assert_eq!(errno(meta.release(999_999, 0)), libc::ENOENT);
}

fn recall_and_damage_move_between_released_damaged_and_archived(meta: &dyn MetaEngine) {
    let (f, _) = released(meta, b"f", "v", 1);
    let recalled = meta.recalled(f.ino).unwrap();
    assert_eq!(
        recalled,
        Attr {
            data_state: DataState::Archived,
            ..f
        }
    );
    assert_eq!(recalled, attr(meta, f.ino));
    assert_eq!(errno(meta.recalled(f.ino)), libc::EAGAIN, "archived");
    assert_eq!(errno(meta.mark_damaged(f.ino)), libc::EAGAIN, "archived");
    meta.release(f.ino, f.mtime).unwrap();
    let damaged = meta.mark_damaged(f.ino).unwrap();
    assert_eq!(
        damaged,
        Attr {
            data_state: DataState::Damaged,
            ..f
        }
    );
    assert_eq!(damaged, attr(meta, f.ino));
    assert_eq!(errno(meta.mark_damaged(f.ino)), libc::EAGAIN, "damaged");
    assert_eq!(errno(meta.release(f.ino, f.mtime)), libc::EAGAIN, "damaged");
    assert_eq!(
        meta.recalled(f.ino).unwrap().data_state,
        DataState::Archived
    );

    let r = resident(meta, ROOT_INO, b"r", 1, 1);
    assert_eq!(errno(meta.recalled(r.ino)), libc::EAGAIN, "resident");
    assert_eq!(errno(meta.mark_damaged(r.ino)), libc::EAGAIN, "resident");
    let d = dir(meta, ROOT_INO, b"d");
    set_state(meta, d.ino, DataState::Released);
    assert_eq!(errno(meta.recalled(d.ino)), libc::EAGAIN, "a directory");
    assert_eq!(errno(meta.mark_damaged(d.ino)), libc::EAGAIN, "a directory");
    assert_eq!(errno(meta.recalled(999_999)), libc::ENOENT);
    assert_eq!(errno(meta.mark_damaged(999_999)), libc::ENOENT);
    assert_eq!(attr(meta, r.ino).data_state, DataState::Resident);
}

fn released_after_lists_live_copies_of_released_files_on_one_volume(meta: &dyn MetaEngine) {
    let (_, b) = released(meta, b"b", "v1", 3);
    let (_, a) = released(meta, b"a", "v1", 5);
    let only_archived = resident(meta, ROOT_INO, b"archived", 1, 1);
    archive(meta, &only_archived, "v1", 8);
    released(meta, b"other-volume", "v2", 4);
    released(meta, b"longer-label", "v1x", 1);
    released(meta, b"earlier-label", "v0", 9);
    // A file whose old copy on v1 was superseded by a newer one on v1.
    let f = resident(meta, ROOT_INO, b"f", 7, 70);
    archive(meta, &f, "v1", 2);
    let f = set_data(meta, f.ino, DataState::Resident, 8, 80);
    let newer = archive(meta, &f, "v1", 10);
    meta.release(f.ino, f.mtime).unwrap();

    let all = meta.released_after("v1", 0, 100).unwrap();
    assert_eq!(all, [b.clone(), a.clone(), newer.clone()]);
    let v1 = |after, limit| seqs(&meta.released_after("v1", after, limit).unwrap());
    let on_v1 =
        |seq: &[u64]| -> Vec<(String, u64)> { seq.iter().map(|&s| ("v1".to_owned(), s)).collect() };
    assert_eq!(v1(3, 100), on_v1(&[5, 10]), "strictly after");
    assert_eq!(v1(0, 1), on_v1(&[3]));
    assert!(v1(10, 100).is_empty());
    assert_eq!(
        seqs(&meta.released_after("v2", 0, 100).unwrap()),
        [("v2".to_owned(), 4)]
    );
    assert!(meta.released_after("none", 0, 100).unwrap().is_empty());
    assert!(meta.released_after("v1", 0, 0).unwrap().is_empty());
}

fn superseded_copies_are_listed_oldest_first_before_a_time(meta: &dyn MetaEngine) {
    let f = resident(meta, ROOT_INO, b"f", 1, 1);
    let c1 = archive(meta, &f, "v", 1);
    let f = set_data(meta, f.ino, DataState::Resident, 2, 2);
    let c2 = archive(meta, &f, "v", 2);
    let t1 = meta.superseded_copies(i64::MAX, 10).unwrap()[0]
        .superseded_ns
        .unwrap();
    later(t1);
    let f = set_data(meta, f.ino, DataState::Resident, 3, 3);
    archive(meta, &f, "a", 9);
    let g = resident(meta, ROOT_INO, b"g", 4, 4);
    let cg = archive(meta, &g, "a", 1);
    later(now_ns());
    meta.unlink(ROOT_INO, b"g").unwrap();
    meta.purge(g.ino).unwrap();

    let all = meta.superseded_copies(i64::MAX, 100).unwrap();
    assert_eq!(
        seqs(&all),
        seqs(&[c1.clone(), c2.clone(), cg]),
        "oldest first: {all:?}"
    );
    let times: Vec<i64> = all.iter().map(|c| c.superseded_ns.unwrap()).collect();
    assert!(times[0] < times[1] && times[1] <= times[2], "{times:?}");
    assert_eq!(meta.superseded_count().unwrap(), 3);
    assert_eq!(
        seqs(&meta.superseded_copies(times[1], 100).unwrap()),
        seqs(std::slice::from_ref(&c1)),
        "strictly before"
    );
    assert_eq!(
        seqs(&meta.superseded_copies(i64::MAX, 2).unwrap()),
        seqs(&[c1, c2])
    );
    assert!(meta.superseded_copies(times[0], 100).unwrap().is_empty());
}

fn forget_copy_deletes_only_superseded_copies(meta: &dyn MetaEngine) {
    let f = resident(meta, ROOT_INO, b"f", 1, 1);
    let old = archive(meta, &f, "v", 1);
    let f = set_data(meta, f.ino, DataState::Resident, 2, 2);
    let live = archive(meta, &f, "v", 2);
    assert_eq!(errno(meta.forget_copy("v", live.seq)), libc::EBUSY);
    assert_eq!(meta.live_copy(f.ino).unwrap(), Some(live));
    meta.forget_copy("v", old.seq).unwrap();
    assert_eq!(meta.superseded_count().unwrap(), 0);
    assert!(meta.superseded_copies(i64::MAX, 10).unwrap().is_empty());
    meta.forget_copy("v", old.seq).unwrap();
    meta.forget_copy("nowhere", 99).unwrap();
}

fn purging_an_inode_supersedes_its_live_copy(meta: &dyn MetaEngine) {
    let f = resident(meta, ROOT_INO, b"f", 1, 1);
    let copy = archive(meta, &f, "v", 1);
    meta.unlink(ROOT_INO, b"f").unwrap();
    assert_eq!(
        meta.live_copy(f.ino).unwrap(),
        Some(copy.clone()),
        "open-unlinked"
    );
    assert_eq!(meta.superseded_count().unwrap(), 0);
    meta.purge(f.ino).unwrap();
    assert_eq!(meta.live_copy(f.ino).unwrap(), None);
    let superseded = meta.superseded_copies(i64::MAX, 10).unwrap();
    assert_eq!(seqs(&superseded), seqs(&[copy]), "{superseded:?}");
    assert_eq!(superseded[0].ino, f.ino);
}

fn path_of_names_nested_files_by_their_oldest_link(meta: &dyn MetaEngine) {
    let d = dir(meta, ROOT_INO, b"d");
    let e = dir(meta, d.ino, b"e");
    let g = file(meta, e.ino, b"g");
    assert_eq!(meta.path_of(ROOT_INO).unwrap(), b"/");
    assert_eq!(meta.path_of(d.ino).unwrap(), b"/d");
    assert_eq!(meta.path_of(g.ino).unwrap(), b"/d/e/g");
    // Newer links, one of them in a directory with a lower inode number.
    meta.link(g.ino, ROOT_INO, b"root-link").unwrap();
    meta.link(g.ino, d.ino, b"d-link").unwrap();
    assert_eq!(meta.path_of(g.ino).unwrap(), b"/d/e/g", "the oldest link");
    meta.unlink(e.ino, b"g").unwrap();
    assert_eq!(meta.path_of(g.ino).unwrap(), b"/root-link");
    meta.unlink(ROOT_INO, b"root-link").unwrap();
    assert_eq!(meta.path_of(g.ino).unwrap(), b"/d/d-link");
    meta.unlink(d.ino, b"d-link").unwrap();
    assert_eq!(errno(meta.path_of(g.ino)), libc::ENOENT, "unlinked");
    assert_eq!(errno(meta.path_of(999_999)), libc::ENOENT);
}

fn state_totals_count_regular_files_and_bytes_per_state(meta: &dyn MetaEngine) {
    file(meta, ROOT_INO, b"empty1");
    file(meta, ROOT_INO, b"empty2");
    resident(meta, ROOT_INO, b"r1", 10, 1);
    resident(meta, ROOT_INO, b"r2", 5, 1);
    let a = resident(meta, ROOT_INO, b"a", 7, 1);
    archive(meta, &a, "v", 1);
    released(meta, b"rel", "v", 90);
    let (dmg, _) = released(meta, b"dmg", "v", 2);
    meta.mark_damaged(dmg.ino).unwrap();
    let d = dir(meta, ROOT_INO, b"d");
    set_state(meta, d.ino, DataState::Resident);
    symlink(meta, ROOT_INO, b"s", b"target");

    let totals: Vec<(DataState, u64, u64)> = meta
        .state_totals()
        .unwrap()
        .into_iter()
        .map(|t| (t.state, t.files, t.bytes))
        .collect();
    assert_eq!(
        totals,
        [
            (DataState::Empty, 2, 0),
            (DataState::Resident, 2, 15),
            (DataState::Archived, 1, 7),
            (DataState::Released, 1, 100),
            (DataState::Damaged, 1, 12),
        ],
        "directories and symlinks do not count"
    );
}
