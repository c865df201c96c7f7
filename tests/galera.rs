//! The catalog on a 3-node MariaDB Galera cluster (tests/support/galera.rs): `vfsserver`
//! names every node in `DatabaseHost`, and a mixed workload runs through its mount while
//! nodes are killed, frozen, partitioned away and the whole cluster goes down and up.
//! After each: every acknowledged create (with write and fsync), rename, unlink and mkdir
//! is there, nothing else is, and the catalog passes the consistency checker.

mod support;

use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use support::galera::Galera;
use support::server::{Server, ServerDir};
use support::workload::Workload;
use support::MariaDb;

/// Health checks every second with a one-second timeout, failback after three healthy
/// seconds, and operations that wait up to 30 s (far more than a failover takes).
const CLUSTER_KEYS: &str = "<DatabaseTimeout>30</DatabaseTimeout>\
     <DatabaseHealthInterval>1</DatabaseHealthInterval>\
     <DatabaseHealthTimeout>1</DatabaseHealthTimeout>\
     <DatabaseFailbackDelay>3</DatabaseFailbackDelay>";

/// Generous bound for anything the cluster or the server does in the background.
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn the_harness_starts_a_cluster_whose_nodes_replicate_and_recover_from_a_crash_of_all() {
    let mut cluster = Galera::start(3);
    cluster.await_cluster_size(0, 3);
    let db = cluster.create_database();
    let mut n0 = cluster.root(0);
    n0.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"))
        .unwrap();
    n0.query_drop(format!("INSERT INTO `{db}`.t VALUES (1)"))
        .unwrap();
    let on_n2: Option<i32> = cluster
        .causal(2)
        .query_first(format!("SELECT id FROM `{db}`.t"))
        .unwrap();
    assert_eq!(on_n2, Some(1), "a row written on node 0 is read on node 2");

    cluster.kill(0);
    cluster.await_cluster_size(1, 2);
    cluster
        .root(1)
        .query_drop(format!("INSERT INTO `{db}`.t VALUES (2)"))
        .unwrap();
    cluster.rejoin(0);
    let count: Option<i64> = cluster
        .causal(0)
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.t"))
        .unwrap();
    assert_eq!(
        count,
        Some(2),
        "the rejoined node has the row written while it was down"
    );

    cluster.kill_all();
    cluster.start_all();
    let count: Option<i64> = cluster
        .causal(2)
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.t"))
        .unwrap();
    assert_eq!(count, Some(2), "both rows survive a crash of every node");
}

/// A running server on `cluster` with its directory and database.
struct Setup {
    server: Server,
    dir: ServerDir,
    db: MariaDb,
}

fn serve(cluster: &Galera) -> Setup {
    let db = MariaDb::on_cluster(cluster);
    let dir = ServerDir::new(&db, CLUSTER_KEYS);
    let server = Server::start(&dir, &[], &[]);
    assert!(
        server.await_notify("READY=1", LIMIT).is_some(),
        "server did not become ready:\n{}",
        server.output()
    );
    Setup { server, dir, db }
}

/// Waits until systemd's STATUS (the notify socket) shows `text`.
fn await_status(server: &Server, text: &str) {
    let deadline = Instant::now() + LIMIT;
    while !server
        .notify_messages()
        .iter()
        .any(|m| m.starts_with("STATUS=") && m.contains(text))
    {
        assert!(
            Instant::now() < deadline,
            "STATUS never showed {text:?}: {:?}",
            server.notify_messages()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn node(cluster: &Galera, n: usize) -> String {
    format!("127.0.0.1:{}", cluster.port(n))
}

/// Everything wrong with the tree (against the ledger) and the catalog (read through
/// node `n`).
fn check_nothing_lost(
    setup: &Setup,
    cluster: &Galera,
    n: usize,
    ledger: &support::workload::Ledger,
) {
    let problems = Workload::differences(ledger, &setup.dir.mountpoint());
    assert!(
        problems.is_empty(),
        "after the failover:\n{}",
        problems.join("\n")
    );
    let opts = mysql::OptsBuilder::from_opts(setup.db.opts()).tcp_port(cluster.port(n));
    let mut conn = mysql::Conn::new(opts).expect("connect to a running node");
    conn.query_drop("SET SESSION wsrep_sync_wait = 1").unwrap();
    let deadline = Instant::now() + LIMIT;
    loop {
        let problems =
            support::consistency::problems(&mut conn, Some(&setup.dir.root.path().join("cache")));
        if problems.is_empty() {
            break;
        }
        // Releases reach the catalog after close(2) returned: nothing to block on.
        assert!(
            Instant::now() < deadline,
            "catalog inconsistent:\n{}",
            problems.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_cleanly(mut setup: Setup) {
    setup.server.signal(libc::SIGTERM);
    let (status, output) = setup.server.wait(LIMIT);
    assert!(status.success(), "server exit {status:?}:\n{output}");
}

#[test]
fn a_desynced_writer_is_left_for_a_synced_node_and_written_to_again_after_the_failback_delay() {
    let cluster = Galera::start(3);
    let db = MariaDb::on_cluster(&cluster);
    let mut options = support::pool_options(&db);
    options.failback_delay = Duration::from_secs(2);
    let pool = valuestor::Pool::new(options).expect("pool on the cluster");
    let port_written = || -> u16 {
        let mut conn = pool.get().expect("a connection");
        conn.query_first("SELECT @@port").unwrap().expect("a port")
    };
    assert_eq!(port_written(), cluster.port(0));

    // A desynced node (what a donor is) reports wsrep_local_state 2: not a writer.
    cluster
        .root(0)
        .query_drop("SET GLOBAL wsrep_desync = ON")
        .unwrap();
    support::await_condition(LIMIT, "the pool to leave the desynced node", || {
        port_written() == cluster.port(1)
    });
    let stats = pool.stats();
    assert_eq!(stats.failovers, 1, "{}", stats.nodes_summary());
    assert!(
        stats.nodes[0].health.contains("wsrep_local_state 2"),
        "{}",
        stats.nodes_summary()
    );

    cluster
        .root(0)
        .query_drop("SET GLOBAL wsrep_desync = OFF")
        .unwrap();
    support::await_condition(LIMIT, "the pool to move back to node 0", || {
        port_written() == cluster.port(0)
    });
    assert_eq!(
        pool.stats().failbacks,
        1,
        "{}",
        pool.stats().nodes_summary()
    );
}

#[test]
fn a_node_outside_the_primary_component_is_unhealthy_and_refuses_causal_reads_with_1205() {
    let mut cluster = Galera::start(3);
    let db = MariaDb::on_cluster(&cluster);
    let pool = valuestor::Pool::new(support::pool_options(&db)).expect("pool on the cluster");
    drop(pool.get().expect("a connection"));
    // Node 0 alone cannot see a majority: it leaves the primary component.
    cluster.pause(1);
    cluster.pause(2);
    support::await_condition(LIMIT, "node 0 outside the primary component", || {
        cluster.status(0, "wsrep_cluster_status").as_deref() == Some("non-Primary")
    });
    // What the catalog's check of a change in flight meets there (operations.rs maps it
    // to Unavailable: ask again elsewhere), and what every other statement meets (1047).
    let mut conn = cluster.root(0);
    let causal = conn.query_drop("SET STATEMENT wsrep_sync_wait = 1 FOR SELECT 1");
    assert!(
        matches!(&causal, Err(mysql::Error::MySqlError(e)) if e.code == 1205),
        "{causal:?}"
    );
    let plain = conn.query_drop("SELECT COUNT(*) FROM mysql.user");
    assert!(
        matches!(&plain, Err(mysql::Error::MySqlError(e)) if e.code == 1047),
        "{plain:?}"
    );
    support::await_condition(LIMIT, "the pool to judge node 0 unhealthy", || {
        !pool.stats().nodes[0].healthy
    });
    let health = pool.stats().nodes[0].health.clone();
    assert!(
        health.contains("non-Primary") || health.contains("wsrep_ready OFF"),
        "{health}"
    );
    cluster.unpause(1);
    cluster.unpause(2);
}

#[test]
fn the_owner_lease_holds_across_nodes_a_second_server_writing_through_another_node_is_refused() {
    let cluster = Galera::start(3);
    let setup = serve(&cluster);
    std::fs::write(setup.dir.mountpoint().join("mine"), b"first").unwrap();

    // Same catalog, reached through node 2 first (GET_LOCK would be local to that node).
    let other = setup
        .db
        .through_hosts(&format!("{},{}", node(&cluster, 2), node(&cluster, 1)));
    let second_dir = ServerDir::new(&other, CLUSTER_KEYS);
    let (status, output) = Server::start(&second_dir, &[], &[]).wait(LIMIT);
    assert!(!status.success(), "the second server ran:\n{output}");
    assert!(!second_dir.is_mounted(), "refused, yet mounted:\n{output}");
    assert!(
        output.contains("its owner lease is held by"),
        "expected the holder in:\n{output}"
    );
    std::fs::write(setup.dir.mountpoint().join("after"), b"still mine").unwrap();
    assert_eq!(
        std::fs::read(setup.dir.mountpoint().join("mine")).unwrap(),
        b"first"
    );
    stop_cleanly(setup);
}

#[test]
fn killing_the_writing_node_under_load_loses_nothing_acknowledged_and_the_pool_moves_back() {
    let mut cluster = Galera::start(3);
    let setup = serve(&cluster);
    assert_eq!(setup.server.database_writer(), node(&cluster, 0));
    let workload = Workload::start(&setup.dir.mountpoint(), 2);
    workload.await_acknowledged(0, 30, LIMIT);

    let before = workload.acknowledged();
    let killed = Instant::now();
    cluster.kill(0);
    workload.await_acknowledged(before, 60, LIMIT);
    let resumed = workload
        .ledger
        .lock()
        .unwrap()
        .first_completion_after(killed)
        .expect("operations completed after the kill");
    eprintln!(
        "first acknowledged operation {:?} after SIGKILL of the writer",
        resumed - killed
    );
    let moved_to = setup.server.database_writer();
    assert_ne!(
        moved_to,
        node(&cluster, 0),
        "the writer moved off the killed node"
    );
    await_status(
        &setup.server,
        &format!("database writer {moved_to} (1 failovers"),
    );

    cluster.rejoin(0);
    let before = workload.acknowledged();
    setup.server.await_database_writer(&node(&cluster, 0));
    workload.await_acknowledged(before, 30, LIMIT);
    let ledger = workload.stop();
    assert!(
        ledger.errors.is_empty(),
        "operations failed instead of waiting for the failover and failback: {:?}",
        ledger.errors
    );
    assert!(
        setup.server.output().contains("failover"),
        "the failover is logged:\n{}",
        setup.server.output()
    );
    check_nothing_lost(&setup, &cluster, 0, &ledger);
    stop_cleanly(setup);
}

#[test]
fn freezing_the_writing_node_under_load_moves_the_writer_and_fails_nothing() {
    let mut cluster = Galera::start(3);
    let setup = serve(&cluster);
    let workload = Workload::start(&setup.dir.mountpoint(), 2);
    workload.await_acknowledged(0, 30, LIMIT);

    let before = workload.acknowledged();
    let frozen = Instant::now();
    cluster.pause(0);
    workload.await_acknowledged(before, 60, LIMIT);
    let resumed = workload
        .ledger
        .lock()
        .unwrap()
        .first_completion_after(frozen)
        .expect("operations completed after the freeze");
    eprintln!(
        "first acknowledged operation {:?} after SIGSTOP of the writer",
        resumed - frozen
    );
    assert_ne!(setup.server.database_writer(), node(&cluster, 0));

    // Thawed, the node finds itself outside the primary component and rejoins.
    cluster.unpause(0);
    cluster.await_synced(0);
    cluster.await_cluster_size(0, 3);
    let ledger = workload.stop();
    assert!(
        ledger.errors.is_empty(),
        "operations failed instead of waiting: {:?}",
        ledger.errors
    );
    check_nothing_lost(&setup, &cluster, 1, &ledger);
    stop_cleanly(setup);
}

#[test]
fn a_partitioned_node_leaves_two_serving_and_the_whole_cluster_comes_back_after_a_stop() {
    let mut cluster = Galera::start(3);
    let setup = serve(&cluster);
    let workload = Workload::start(&setup.dir.mountpoint(), 2);
    workload.await_acknowledged(0, 20, LIMIT);

    // Node 2 stops taking part in group communication: the others evict it and go on.
    cluster.pause(2);
    cluster.await_cluster_size(0, 2);
    let before = workload.acknowledged();
    workload.await_acknowledged(before, 40, LIMIT);
    assert_eq!(setup.server.database_writer(), node(&cluster, 0));
    cluster.unpause(2);
    cluster.await_synced(2);
    cluster.await_cluster_size(0, 3);
    let ledger = workload.stop();
    assert!(ledger.errors.is_empty(), "{:?}", ledger.errors);
    check_nothing_lost(&setup, &cluster, 2, &ledger);

    // The whole cluster down: changes fail (EIO within DatabaseTimeout), data stays.
    cluster.stop_all();
    let refused = std::fs::create_dir(setup.dir.mountpoint().join("while-down"));
    assert_eq!(
        refused.as_ref().map_err(|e| e.raw_os_error()),
        Err(Some(libc::EIO)),
        "a change with every node down"
    );
    cluster.start_all();
    let deadline = Instant::now() + LIMIT;
    while let Err(e) = std::fs::create_dir(setup.dir.mountpoint().join("after-restart")) {
        assert!(
            Instant::now() < deadline,
            "no change succeeded after the restart: {e}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !setup.dir.mountpoint().join("while-down").exists(),
        "the refused mkdir did not happen"
    );
    check_nothing_lost(&setup, &cluster, 1, &ledger);
    stop_cleanly(setup);
}
