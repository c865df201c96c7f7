//! The catalog on a 3-node MariaDB Galera cluster (tests/support/galera.rs).

mod support;

use mysql::prelude::Queryable;
use support::galera::Galera;

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
        .root(2)
        .query_first(format!("SELECT /*+ causal */ id FROM `{db}`.t"))
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
        .root(0)
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
        .root(2)
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.t"))
        .unwrap();
    assert_eq!(count, Some(2), "both rows survive a crash of every node");
}
