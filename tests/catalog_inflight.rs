//! In-flight work across a lost connection: the catalog over a proxy that cuts the
//! connection at an exact point of a change (its reply lost after the commit, the command
//! never sent, or sent and then cut). Every change must answer as a clean run would and
//! leave the catalog as one run of it would: no `EEXIST` for a file a create made itself, no
//! `ENOENT` for an unlink or rename that happened, nothing made twice.

mod support;

use mysql::prelude::Queryable;
use support::proxy::{Command, Cut, Proxy};
use support::{consistency, pool_options, MariaDb};
use valuestor::meta::mysql::{MysqlMeta, TRIM_BATCH, TRIM_EVERY};
use valuestor::meta::{
    ArchiveCopy, Attr, AttrChange, Changed, DataState, Kind, MetaEngine, NewNode, RenameMode,
    XattrMode, ROOT_INO,
};
use valuestor::Pool;

/// A catalog whose pool connects through a proxy to a private server.
struct Setup {
    catalog: MysqlMeta,
    proxy: Proxy,
    db: MariaDb,
}

fn setup() -> Setup {
    setup_with(|_| {})
}

/// Like [`setup`], with the pool's options adjusted by `tweak`.
fn setup_with(tweak: impl FnOnce(&mut valuestor::PoolOptions)) -> Setup {
    let db = MariaDb::start();
    let proxy = Proxy::start(db.host(), db.port());
    let mut options = pool_options(&db);
    options.host = "127.0.0.1".into();
    options.port = proxy.port();
    tweak(&mut options);
    let catalog = MysqlMeta::new(Pool::new(options).unwrap());
    catalog.migrate(0, 0).unwrap();
    Setup { catalog, proxy, db }
}

impl Setup {
    /// Cuts the connection that next sends `command`, at `cut`.
    fn lose(&self, command: Command, cut: Cut) {
        self.proxy.arm(command, cut);
    }

    /// Asserts the trap cut exactly one connection.
    fn assert_cut_once(&self) {
        assert!(!self.proxy.armed(), "the trap never saw its command");
        assert_eq!(self.proxy.fired(), 1, "connections cut");
    }

    /// What is wrong with the catalog (none when consistent).
    fn problems(&self) -> Vec<String> {
        consistency::problems(&mut self.db.connect(), None)
    }

    fn count(&self, sql: &str) -> u64 {
        self.db
            .connect()
            .query_first::<u64, _>(sql)
            .unwrap()
            .unwrap()
    }

    fn file(&self, parent: u64, name: &[u8]) -> Attr {
        self.catalog
            .create(parent, name, &node(Kind::File))
            .unwrap()
    }

    fn dir(&self, parent: u64, name: &[u8]) -> Attr {
        self.catalog
            .create(parent, name, &node(Kind::Directory))
            .unwrap()
    }

    fn attr(&self, ino: u64) -> Attr {
        self.catalog.get_attr(ino).unwrap()
    }

    /// Asserts that every directory and the node `changed` names hold what it says (the
    /// answer is the committed state), a removed node excepted.
    fn assert_answer_is_stored(&self, changed: &Changed) {
        for dir in &changed.dirs {
            assert_eq!(&self.attr(dir.ino), dir, "directory in the answer");
        }
        if changed.node.nlink > 0 {
            assert_eq!(
                self.attr(changed.node.ino),
                changed.node,
                "node in the answer"
            );
        }
    }
}

fn node(kind: Kind) -> NewNode<'static> {
    NewNode {
        kind,
        perm: if kind == Kind::Directory {
            0o755
        } else {
            0o644
        },
        uid: 10,
        gid: 20,
        rdev: 0,
        target: None,
    }
}

fn commit() -> Command {
    Command::Query("COMMIT".into())
}

fn create_call() -> Command {
    Command::Execute("CALL vs_create_node_v6".into())
}

#[test]
fn create_whose_reply_is_lost_after_commit_returns_its_inode_not_eexist() {
    let s = setup();
    let inodes_before = s.count("SELECT COUNT(*) FROM vs_inodes");
    s.lose(create_call(), Cut::Answered);
    let created = s.catalog.create(ROOT_INO, b"f", &node(Kind::File));
    s.assert_cut_once();
    let created = created.expect("the create committed: its own file is no EEXIST");
    assert_eq!(s.catalog.lookup(ROOT_INO, b"f").unwrap(), created);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM vs_dentries WHERE name = 'f'"),
        1
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM vs_inodes"),
        inodes_before + 1,
        "one inode made, no orphan"
    );
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn a_change_gives_its_lost_connection_back_before_asking_for_another() {
    // One connection in the pool: holding the lost one while asking for a new one would wait
    // out the acquire timeout for a connection only this thread could return (what every
    // change in flight did at once when a Galera node left the primary component).
    let s = setup_with(|options| {
        options.max_size = 1;
        options.acquire_timeout = std::time::Duration::from_secs(30);
    });
    s.lose(create_call(), Cut::Answered);
    let started = std::time::Instant::now();
    let made = s.catalog.create(ROOT_INO, b"d", &node(Kind::Directory));
    s.assert_cut_once();
    let made = made.expect("the mkdir committed; its answer comes from its record");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "the change waited {:?} for a second connection",
        started.elapsed()
    );
    assert_eq!(s.catalog.lookup(ROOT_INO, b"d").unwrap(), made);
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn create_cut_before_the_server_got_it_is_made_once() {
    let s = setup();
    s.lose(create_call(), Cut::Unsent);
    let created = s.catalog.create(ROOT_INO, b"f", &node(Kind::Directory));
    s.assert_cut_once();
    let created = created.expect("run again on a new connection");
    assert_eq!(s.catalog.lookup(ROOT_INO, b"f").unwrap(), created);
    assert_eq!(s.attr(ROOT_INO).nlink, 3, "one subdirectory");
    assert_eq!(s.count("SELECT COUNT(*) FROM vs_inodes"), 2);
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn create_cut_right_after_it_was_sent_is_made_once() {
    let s = setup();
    s.lose(create_call(), Cut::Sent);
    let created = s.catalog.create(ROOT_INO, b"f", &node(Kind::File));
    s.assert_cut_once();
    let created = created.expect("decided on a new connection");
    assert_eq!(s.catalog.lookup(ROOT_INO, b"f").unwrap(), created);
    assert_eq!(s.count("SELECT COUNT(*) FROM vs_inodes"), 2);
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn unlink_whose_reply_is_lost_after_commit_answers_as_a_clean_run() {
    let s = setup();
    let f = s.file(ROOT_INO, b"f");
    s.lose(commit(), Cut::Answered);
    let changed = s.catalog.unlink(ROOT_INO, b"f");
    s.assert_cut_once();
    let changed = changed.expect("the unlink happened: no ENOENT");
    assert_eq!((changed.node.ino, changed.node.nlink), (f.ino, 0));
    assert_eq!(changed.dirs.len(), 1);
    s.assert_answer_is_stored(&changed);
    assert!(s.catalog.lookup(ROOT_INO, b"f").is_err());
    s.catalog.purge(f.ino).unwrap();
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn rmdir_whose_reply_is_lost_after_commit_answers_as_a_clean_run() {
    let s = setup();
    let d = s.dir(ROOT_INO, b"d");
    s.lose(commit(), Cut::Answered);
    let changed = s.catalog.rmdir(ROOT_INO, b"d");
    s.assert_cut_once();
    let changed = changed.expect("the rmdir happened: no ENOENT");
    assert_eq!((changed.node.ino, changed.node.nlink), (d.ino, 0));
    assert_eq!(changed.dirs[0].nlink, 2, "the root lost its subdirectory");
    s.assert_answer_is_stored(&changed);
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn rename_replacing_whose_reply_is_lost_after_commit_answers_as_a_clean_run() {
    let s = setup();
    let d = s.dir(ROOT_INO, b"d");
    let a = s.file(ROOT_INO, b"a");
    let b = s.file(d.ino, b"b");
    s.lose(commit(), Cut::Answered);
    let changed = s
        .catalog
        .rename(ROOT_INO, b"a", d.ino, b"b", RenameMode::Replace);
    s.assert_cut_once();
    let changed = changed.expect("the rename happened: no ENOENT");
    assert_eq!(changed.node.ino, a.ino);
    let other = changed.other.expect("the replaced target");
    assert_eq!((other.ino, other.nlink), (b.ino, 0));
    assert_eq!(changed.dirs.len(), 2);
    s.assert_answer_is_stored(&changed);
    assert_eq!(s.catalog.lookup(d.ino, b"b").unwrap().ino, a.ino);
    s.catalog.purge(b.ino).unwrap();
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn rename_exchange_whose_reply_is_lost_after_commit_is_not_undone() {
    let s = setup();
    let a = s.file(ROOT_INO, b"a");
    let b = s.dir(ROOT_INO, b"b");
    s.lose(commit(), Cut::Answered);
    let changed = s
        .catalog
        .rename(ROOT_INO, b"a", ROOT_INO, b"b", RenameMode::Exchange);
    s.assert_cut_once();
    let changed = changed.expect("the exchange happened");
    assert_eq!(
        (changed.node.ino, changed.other.map(|o| o.ino)),
        (a.ino, Some(b.ino))
    );
    s.assert_answer_is_stored(&changed);
    // Run a second time, the exchange would have swapped the names back.
    assert_eq!(s.catalog.lookup(ROOT_INO, b"b").unwrap().ino, a.ino);
    assert_eq!(s.catalog.lookup(ROOT_INO, b"a").unwrap().ino, b.ino);
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn rename_noreplace_whose_reply_is_lost_after_commit_answers_as_a_clean_run() {
    let s = setup();
    let a = s.file(ROOT_INO, b"a");
    s.lose(commit(), Cut::Answered);
    let changed = s
        .catalog
        .rename(ROOT_INO, b"a", ROOT_INO, b"c", RenameMode::NoReplace);
    s.assert_cut_once();
    let changed = changed.expect("the rename happened: no ENOENT");
    assert_eq!((changed.node.ino, changed.other), (a.ino, None));
    s.assert_answer_is_stored(&changed);
    assert_eq!(s.catalog.lookup(ROOT_INO, b"c").unwrap().ino, a.ino);
    assert!(s.catalog.lookup(ROOT_INO, b"a").is_err());
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn link_whose_reply_is_lost_after_commit_answers_as_a_clean_run() {
    let s = setup();
    let f = s.file(ROOT_INO, b"f");
    s.lose(commit(), Cut::Answered);
    let changed = s.catalog.link(f.ino, ROOT_INO, b"g");
    s.assert_cut_once();
    let changed = changed.expect("the link was made: no EEXIST");
    assert_eq!((changed.node.ino, changed.node.nlink), (f.ino, 2));
    s.assert_answer_is_stored(&changed);
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn create_only_set_xattr_whose_reply_is_lost_after_commit_is_no_eexist() {
    let s = setup();
    let f = s.file(ROOT_INO, b"f");
    s.lose(commit(), Cut::Answered);
    let attr = s
        .catalog
        .set_xattr(f.ino, b"user.a", b"one", XattrMode::Create, 4096);
    s.assert_cut_once();
    let attr = attr.expect("the attribute was set: no EEXIST");
    assert_eq!(attr, s.attr(f.ino));
    assert_eq!(s.catalog.get_xattr(f.ino, b"user.a").unwrap(), b"one");
}

#[test]
fn remove_xattr_whose_reply_is_lost_after_commit_is_no_enodata() {
    let s = setup();
    let f = s.file(ROOT_INO, b"f");
    s.catalog
        .set_xattr(f.ino, b"user.a", b"one", XattrMode::Any, 4096)
        .unwrap();
    s.lose(commit(), Cut::Answered);
    let attr = s.catalog.remove_xattr(f.ino, b"user.a");
    s.assert_cut_once();
    let attr = attr.expect("the attribute was removed: no ENODATA");
    assert_eq!(attr, s.attr(f.ino));
    assert!(s.catalog.list_xattrs(f.ino).unwrap().is_empty());
}

#[test]
fn undo_create_whose_reply_is_lost_after_commit_still_reports_the_parent() {
    let s = setup();
    let f = s.file(ROOT_INO, b"f");
    s.lose(commit(), Cut::Answered);
    let parent = s.catalog.undo_create(ROOT_INO, b"f", f.ino);
    s.assert_cut_once();
    let parent = parent.expect("decided").expect("it removed the entry");
    assert_eq!(parent, s.attr(ROOT_INO));
    assert_eq!(
        s.count("SELECT COUNT(*) FROM vs_inodes"),
        1,
        "only the root"
    );
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn set_attr_whose_reply_is_lost_after_commit_returns_the_stored_attributes() {
    let s = setup();
    let f = s.file(ROOT_INO, b"f");
    s.lose(commit(), Cut::Answered);
    let change = AttrChange {
        perm: Some(0o600),
        size: Some(42),
        ..AttrChange::default()
    };
    let attr = s.catalog.set_attr(f.ino, &change);
    s.assert_cut_once();
    let attr = attr.expect("decided");
    assert_eq!((attr.perm, attr.size), (0o600, 42));
    assert_eq!(attr, s.attr(f.ino));
}

#[test]
fn record_copy_whose_reply_is_lost_after_commit_is_answered_from_its_record_not_eagain() {
    let s = setup();
    let f = s.file(ROOT_INO, b"f");
    let saved = AttrChange {
        size: Some(10),
        mtime: Some(1_000),
        data_state: Some(DataState::Resident),
        ..AttrChange::default()
    };
    let f = s.catalog.set_attr(f.ino, &saved).unwrap();
    let copy = ArchiveCopy {
        ino: f.ino,
        volume: "v".into(),
        seq: 1,
        size: 10,
        mtime: 1_000,
        md5: None,
        sha1: Some([7; 20]),
        archived_ns: 5,
        superseded_ns: None,
    };
    s.lose(commit(), Cut::Answered);
    let archived = s.catalog.record_copy(&copy);
    s.assert_cut_once();
    // Run again, the condition (still Resident) would fail: the answer comes from the record.
    let archived = archived.expect("the copy was recorded: no EAGAIN for its own change");
    assert_eq!(archived.data_state, DataState::Archived);
    assert_eq!(archived, s.attr(f.ino));
    assert_eq!(s.catalog.live_copy(f.ino).unwrap(), Some(copy));
    assert_eq!(
        s.count("SELECT COUNT(*) FROM vs_copies"),
        1,
        "recorded once"
    );
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn change_whose_commit_never_reached_the_server_is_made_once() {
    let s = setup();
    let d = s.dir(ROOT_INO, b"d");
    let f = s.file(ROOT_INO, b"f");
    s.lose(commit(), Cut::Unsent);
    let changed = s
        .catalog
        .rename(ROOT_INO, b"f", d.ino, b"f", RenameMode::Replace);
    s.assert_cut_once();
    let changed = changed.expect("run again on a new connection");
    s.assert_answer_is_stored(&changed);
    assert_eq!(s.catalog.lookup(d.ino, b"f").unwrap().ino, f.ino);
    assert!(s.catalog.lookup(ROOT_INO, b"f").is_err());
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn change_cut_right_after_its_commit_was_sent_is_made_once() {
    let s = setup();
    let f = s.file(ROOT_INO, b"f");
    s.lose(commit(), Cut::Sent);
    let changed = s.catalog.link(f.ino, ROOT_INO, b"g");
    s.assert_cut_once();
    let changed = changed.expect("decided on a new connection");
    assert_eq!(changed.node.nlink, 2, "linked once");
    s.assert_answer_is_stored(&changed);
    assert_eq!(s.problems(), Vec::<String>::new());
}

#[test]
fn read_whose_reply_is_lost_runs_again_on_a_new_connection() {
    let s = setup();
    let f = s.file(ROOT_INO, b"f");
    s.lose(Command::Execute("SELECT ino, kind".into()), Cut::Answered);
    let attr = s.catalog.get_attr(f.ino);
    s.assert_cut_once();
    assert_eq!(attr.expect("read again"), f);
}

#[test]
fn every_change_records_its_operation_once() {
    let s = setup();
    let before = s.count("SELECT COUNT(*) FROM vs_operations");
    let f = s.file(ROOT_INO, b"f");
    s.catalog.link(f.ino, ROOT_INO, b"g").unwrap();
    s.catalog.unlink(ROOT_INO, b"g").unwrap();
    assert_eq!(
        s.count("SELECT COUNT(*) FROM vs_operations") - before,
        3,
        "one record per change"
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM vs_operations WHERE answer IS NULL"),
        0,
        "each with its answer"
    );
    // The check after a lost connection is a causal read on Galera; this server takes the
    // same statement (a server without the variable is asked plainly).
    let causal: Option<u8> =
        s.db.connect()
            .query_first("SET STATEMENT wsrep_sync_wait = 1 FOR SELECT 1")
            .unwrap();
    assert_eq!(causal, Some(1));
}

#[test]
fn old_operation_records_are_deleted_in_bounded_batches() {
    let s = setup();
    // Records left by a server long gone, older than the retention.
    let old = TRIM_BATCH + 100;
    let mut conn = s.db.connect();
    conn.exec_batch(
        "INSERT INTO vs_operations (owner, seq, done_ns, answer) VALUES (7, ?, 1, '')",
        (1..=old).map(|seq| (seq,)),
    )
    .unwrap();
    let f = s.file(ROOT_INO, b"f");
    let change = AttrChange {
        mtime: Some(1),
        ..AttrChange::default()
    };
    // This catalog made one change (the create); the trim comes with its TRIM_EVERY-th.
    for _ in 1..TRIM_EVERY {
        s.catalog.set_attr(f.ino, &change).unwrap();
    }
    let left = s.count("SELECT COUNT(*) FROM vs_operations WHERE owner = 7");
    assert_eq!(
        left,
        old - TRIM_BATCH,
        "one batch of {TRIM_BATCH} old records deleted after {TRIM_EVERY} changes"
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM vs_operations WHERE owner <> 7"),
        TRIM_EVERY,
        "recent records stay"
    );
}
