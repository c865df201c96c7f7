//! A private MariaDB Galera cluster for tests: `count` nodes on loopback, each a `mariadbd`
//! with its own data directory and free ports (client, group communication, incremental and
//! full state transfer), the `galera-4` provider and `rsync` state transfer.
//!
//! A test can kill (SIGKILL), freeze (SIGSTOP), resume, stop and start each node, and stop
//! and start the whole cluster (bootstrapping again from the most advanced node, recovering
//! its position first when every node crashed), as an operator would.
//!
//! Group communication timeouts are shortened (`evs.suspect_timeout` 2 s, `inactive_timeout`
//! 4 s) so that a frozen node leaves the primary component within seconds, as the README
//! recommends for sites that want quick failover.
//!
//! [`shared`] gives every test of a process a fresh database on one cluster started once
//! per process (for `VS_TEST_GALERA=1`, which runs the file system's own tests on a cluster).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use super::mariadb::{
    all_stopped, free_port, install_data_dir, mariadbd_binary, root_opts, run_as_root_args, signal,
    wait_or_kill, START_TIMEOUT, STOP_TIMEOUT, TEST_USER,
};

/// Where Debian's `galera-4` package installs the provider.
pub const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// `wsrep_local_state` of a node that is synced with the cluster.
pub const SYNCED: u32 = 4;

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A Galera cluster owned by one test.
pub struct Galera {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    cluster_name: String,
    password: String,
}

/// One node: where it lives, its ports and its process.
struct Node {
    dir: PathBuf,
    port: u16,
    gcomm: u16,
    ist: u16,
    sst: u16,
    child: Option<Child>,
    paused: bool,
}

/// Whether this machine can run a cluster (provider and rsync installed).
pub fn available() -> bool {
    Path::new(PROVIDER).exists()
        && Command::new("rsync")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

impl Galera {
    /// Starts a cluster of `count` nodes: node 0 bootstraps it, the others join by state
    /// transfer one after another. Returns when every node is synced.
    pub fn start(count: usize) -> Galera {
        assert!(
            available(),
            "Galera tests need {PROVIDER} (Debian's galera-4) and rsync: run .ci/install"
        );
        let dir = tempfile::Builder::new()
            .prefix("vs-test-galera-")
            .tempdir()
            .expect("create cluster directory");
        // rsync's state-transfer daemon runs as `nobody` when the server runs as root: the
        // joiners' data directories must be reachable and writable by it.
        set_mode(dir.path(), 0o755);
        let nodes = (0..count)
            .map(|n| {
                let node_dir = dir.path().join(format!("n{n}"));
                fs::create_dir(&node_dir).expect("create node directory");
                set_mode(&node_dir, 0o755);
                install_data_dir(&node_dir);
                open_to_state_transfer(&node_dir.join("data"));
                Node {
                    dir: node_dir,
                    port: free_port(),
                    gcomm: free_port(),
                    ist: free_port(),
                    sst: free_port(),
                    child: None,
                    paused: false,
                }
            })
            .collect();
        let mut cluster = Galera {
            dir,
            nodes,
            cluster_name: format!("vs-test-{}-{:08x}", std::process::id(), fastrand::u32(..)),
            password: format!("pw-{:016x}", fastrand::u64(..)),
        };
        cluster.spawn(0, true);
        for n in 1..count {
            cluster.spawn(n, false);
        }
        let mut root = cluster.root(0);
        // CREATE USER is replicated to every node (total order isolation).
        root.query_drop(format!(
            "CREATE USER '{TEST_USER}'@'%' IDENTIFIED BY '{}'",
            cluster.password
        ))
        .expect("create test user");
        root.query_drop(format!("GRANT ALL ON *.* TO '{TEST_USER}'@'%'"))
            .expect("grant test user");
        cluster
    }

    /// How many nodes the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The client port of node `n`.
    pub fn port(&self, n: usize) -> u16 {
        self.nodes[n].port
    }

    /// The `DatabaseHost` list naming every node, in node order.
    pub fn hosts(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The user tests connect as, and its password.
    pub fn user(&self) -> &str {
        TEST_USER
    }

    /// The test user's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Creates a fresh database for one test and returns its name.
    pub fn create_database(&self) -> String {
        let name = format!(
            "vs_galera_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let running = self.first_running().expect("a running node");
        self.root(running)
            .query_drop(format!("CREATE DATABASE `{name}`"))
            .expect("create test database");
        name
    }

    /// A root connection to node `n` (over TCP, no password: the template's root).
    pub fn root(&self, n: usize) -> mysql::Conn {
        mysql::Conn::new(root_opts(self.nodes[n].port))
            .unwrap_or_else(|e| panic!("connect to node {n} as root: {e}"))
    }

    /// A root connection to node `n` whose reads wait until the node has applied every
    /// change the cluster committed before them (`wsrep_sync_wait = 1`): what a test that
    /// wrote through one node and reads through another needs.
    pub fn causal(&self, n: usize) -> mysql::Conn {
        let mut conn = self.root(n);
        conn.query_drop("SET SESSION wsrep_sync_wait = 1")
            .expect("set wsrep_sync_wait");
        conn
    }

    /// A global status variable of node `n` (`None` when the node does not answer).
    pub fn status(&self, n: usize, name: &str) -> Option<String> {
        let mut conn = mysql::Conn::new(root_opts(self.nodes[n].port)).ok()?;
        conn.exec_first(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = ?",
            (name.to_ascii_uppercase(),),
        )
        .ok()?
    }

    /// Whether node `n` answers and reports itself synced, ready and in the primary component.
    pub fn is_synced(&self, n: usize) -> bool {
        self.status(n, "wsrep_local_state").as_deref() == Some("4")
            && self.status(n, "wsrep_ready").as_deref() == Some("ON")
            && self.status(n, "wsrep_cluster_status").as_deref() == Some("Primary")
    }

    /// Waits until node `n` is synced; panics with its log after `START_TIMEOUT`.
    pub fn await_synced(&mut self, n: usize) {
        if let Err(log) = self.try_await_synced(n) {
            panic!("Galera node {n} did not become synced:\n{log}");
        }
    }

    /// Waits until node `n` is synced; its log's tail when it exited or took too long.
    fn try_await_synced(&mut self, n: usize) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.is_synced(n) {
            if Instant::now() > deadline || !self.is_running(n) {
                return Err(self.log_tail(n));
            }
            // A node gives no notification when it becomes synced.
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Waits until node `n` sees a primary component of `size` nodes.
    pub fn await_cluster_size(&self, n: usize, size: usize) {
        let want = size.to_string();
        let deadline = Instant::now() + START_TIMEOUT;
        while self.status(n, "wsrep_cluster_size").as_deref() != Some(want.as_str())
            || self.status(n, "wsrep_cluster_status").as_deref() != Some("Primary")
        {
            assert!(
                Instant::now() < deadline,
                "node {n} did not see a primary component of {size} nodes (size {:?})",
                self.status(n, "wsrep_cluster_size")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills node `n` with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.paused = false;
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes node `n` with SIGSTOP: its connections stay open and nothing answers, and it
    /// stops taking part in group communication (the others evict it after the suspect
    /// timeout). Returns when every thread has stopped.
    pub fn pause(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        let child = node.child.as_ref().expect("pause needs a running node");
        signal(child, libc::SIGSTOP);
        node.paused = true;
        let tasks = PathBuf::from(format!("/proc/{}/task", child.id()));
        let deadline = Instant::now() + START_TIMEOUT;
        while !all_stopped(&tasks) {
            assert!(Instant::now() < deadline, "node {n} did not stop");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Lets node `n`, frozen by [`Galera::pause`], run again (SIGCONT).
    pub fn unpause(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.paused = false;
        if let Some(child) = &node.child {
            signal(child, libc::SIGCONT);
        }
    }

    /// Stops node `n` cleanly (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        if let Some(mut child) = node.child.take() {
            signal(&child, libc::SIGTERM);
            if std::mem::take(&mut node.paused) {
                signal(&child, libc::SIGCONT);
            }
            wait_or_kill(&mut child, STOP_TIMEOUT);
        }
    }

    /// Starts node `n` again after `stop` or `kill`: it rejoins the running cluster by state
    /// transfer. Returns when it is synced.
    pub fn rejoin(&mut self, n: usize) {
        assert!(self.nodes[n].child.is_none(), "node {n} is still running");
        open_to_state_transfer(&self.nodes[n].dir.join("data"));
        self.spawn(n, false);
    }

    /// Whether node `n`'s process is running (frozen counts as running).
    pub fn is_running(&mut self, n: usize) -> bool {
        match &mut self.nodes[n].child {
            None => false,
            Some(child) => matches!(child.try_wait(), Ok(None)),
        }
    }

    /// Stops every node cleanly, the last node first: node 0 leaves last and is marked
    /// safe to bootstrap.
    pub fn stop_all(&mut self) {
        for n in (0..self.nodes.len()).rev() {
            self.stop(n);
        }
    }

    /// Kills every node at once (a site-wide power cut).
    pub fn kill_all(&mut self) {
        for n in 0..self.nodes.len() {
            self.kill(n);
        }
    }

    /// Starts a cluster whose nodes are all down again, as an operator does: the node marked
    /// safe to bootstrap, or else (after a crash of all) the one whose recovered position is
    /// the most advanced, bootstraps; the others join. Returns when every node is synced.
    pub fn start_all(&mut self) {
        assert!(
            (0..self.nodes.len()).all(|n| self.nodes[n].child.is_none()),
            "start_all needs every node down"
        );
        let first = match (0..self.nodes.len()).find(|&n| self.safe_to_bootstrap(n)) {
            Some(n) => n,
            None => {
                let positions: Vec<i64> = (0..self.nodes.len()).map(|n| self.recover(n)).collect();
                let best = (0..positions.len())
                    .max_by_key(|&n| positions[n])
                    .expect("at least one node");
                self.mark_safe_to_bootstrap(best);
                best
            }
        };
        self.spawn(first, true);
        for n in 0..self.nodes.len() {
            if n != first {
                open_to_state_transfer(&self.nodes[n].dir.join("data"));
                self.spawn(n, false);
            }
        }
    }

    /// The last lines of node `n`'s error log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = fs::read_to_string(self.nodes[n].dir.join("err.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn first_running(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&n| self.nodes[n].child.is_some() && !self.nodes[n].paused)
    }

    fn grastate(&self, n: usize) -> String {
        fs::read_to_string(self.nodes[n].dir.join("data/grastate.dat")).unwrap_or_default()
    }

    fn safe_to_bootstrap(&self, n: usize) -> bool {
        self.grastate(n)
            .lines()
            .any(|line| line.trim() == "safe_to_bootstrap: 1")
    }

    fn mark_safe_to_bootstrap(&self, n: usize) {
        let text = self
            .grastate(n)
            .replace("safe_to_bootstrap: 0", "safe_to_bootstrap: 1");
        fs::write(self.nodes[n].dir.join("data/grastate.dat"), text).expect("write grastate.dat");
    }

    /// Runs `mariadbd --wsrep-recover` on node `n`'s data and returns the seqno it recovered
    /// (-1 when none).
    fn recover(&self, n: usize) -> i64 {
        let node = &self.nodes[n];
        let log = node.dir.join("recover.log");
        let status = Command::new(mariadbd_binary())
            .args(self.node_args(n))
            .arg("--wsrep-recover")
            .arg(format!("--log-error={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run mariadbd --wsrep-recover");
        assert!(status.success(), "wsrep recovery of node {n} failed");
        let text = fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .filter_map(|line| line.split("Recovered position: ").nth(1))
            .filter_map(|position| position.trim().rsplit(':').next()?.parse().ok())
            .next_back()
            .unwrap_or(-1)
    }

    /// Starts node `n`'s process (bootstrapping a new primary component or joining) and
    /// waits until it is synced.
    ///
    /// A joiner whose state transfer could not start (its rsync daemon's or its IST
    /// receiver's port was taken meanwhile by another test's server: ports are probed, then
    /// bound by another process) starts again on new transfer ports, up to three times; so
    /// does a node whose group communication failed to start for a reason of its own
    /// ([`gcomm_start_failed`]).
    fn spawn(&mut self, n: usize, bootstrap: bool) {
        for attempt in 0.. {
            self.start_process(n, bootstrap);
            match self.try_await_synced(n) {
                Ok(()) => return,
                Err(log)
                    if attempt < 3
                        && !self.is_running(n)
                        && (transfer_failed(&log) || gcomm_start_failed(&log)) =>
                {
                    self.kill(n);
                    open_to_state_transfer(&self.nodes[n].dir.join("data"));
                    self.nodes[n].ist = free_port();
                    self.nodes[n].sst = free_port();
                }
                Err(log) => panic!("Galera node {n} did not become synced:\n{log}"),
            }
        }
    }

    fn start_process(&mut self, n: usize, bootstrap: bool) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.nodes[n].dir.join("err.log"))
            .expect("open node log");
        let mut command = Command::new(mariadbd_binary());
        command.args(self.node_args(n));
        if bootstrap {
            command.arg("--wsrep-new-cluster");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn mariadbd");
        self.nodes[n].child = Some(child);
        self.nodes[n].paused = false;
    }

    fn node_args(&self, n: usize) -> Vec<String> {
        let node = &self.nodes[n];
        let members: Vec<String> = self
            .nodes
            .iter()
            .map(|other| format!("127.0.0.1:{}", other.gcomm))
            .collect();
        let provider_options = [
            format!("gmcast.listen_addr=tcp://127.0.0.1:{}", node.gcomm),
            format!("ist.recv_addr=127.0.0.1:{}", node.ist),
            "gcache.size=16M".into(),
            "evs.keepalive_period=PT0.5S".into(),
            "evs.inactive_check_period=PT0.5S".into(),
            "evs.suspect_timeout=PT2S".into(),
            "evs.inactive_timeout=PT4S".into(),
            "evs.install_timeout=PT4S".into(),
        ]
        .join(";");
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", node.dir.join("data").display()),
            format!("--port={}", node.port),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", node.dir.join("mysqld.sock").display()),
            format!("--pid-file={}", node.dir.join("mysqld.pid").display()),
            format!("--tmpdir={}", node.dir.display()),
            "--skip-name-resolve".into(),
            "--innodb-buffer-pool-size=32M".into(),
            "--innodb-log-file-size=8M".into(),
            "--innodb-flush-log-at-trx-commit=2".into(),
            "--max-connections=200".into(),
            "--binlog-format=ROW".into(),
            "--innodb-autoinc-lock-mode=2".into(),
            "--wsrep-on=ON".into(),
            format!("--wsrep-provider={PROVIDER}"),
            format!("--wsrep-cluster-name={}", self.cluster_name),
            format!("--wsrep-cluster-address=gcomm://{}", members.join(",")),
            format!("--wsrep-node-address=127.0.0.1:{}", node.gcomm),
            format!("--wsrep-node-name=n{n}"),
            "--wsrep-sst-method=rsync".into(),
            format!("--wsrep-sst-receive-address=127.0.0.1:{}", node.sst),
            format!("--wsrep-provider-options={provider_options}"),
        ];
        args.extend(run_as_root_args());
        args
    }
}

impl Drop for Galera {
    fn drop(&mut self) {
        // Runs when a test panics too: no node outlives its test.
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            // Keep the logs of a failed test for its author.
            let kept =
                std::mem::replace(&mut self.dir, tempfile::TempDir::new().expect("temp dir"));
            eprintln!("Galera cluster files kept at {}", kept.keep().display());
        }
    }
}

static SHARED: OnceLock<Mutex<Galera>> = OnceLock::new();

/// The cluster shared by every test of this process (`VS_TEST_GALERA=1`), started on first
/// use and killed when the process exits.
pub fn shared() -> &'static Mutex<Galera> {
    SHARED.get_or_init(|| {
        let cluster = Galera::start(3);
        // SAFETY: registers a plain `extern "C"` function without arguments; it only reads
        // a static.
        unsafe {
            libc::atexit(kill_shared_at_exit);
        }
        Mutex::new(cluster)
    })
}

/// Whether tests should put their catalog on the shared cluster (`VS_TEST_GALERA=1`).
pub fn wanted() -> bool {
    std::env::var("VS_TEST_GALERA").is_ok_and(|v| v == "1")
}

extern "C" fn kill_shared_at_exit() {
    // Statics are never dropped: kill the nodes and remove their files at exit.
    if let Some(lock) = SHARED.get() {
        let mut cluster = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = cluster.dir.path().to_path_buf();
        cluster.kill_all();
        let _ = fs::remove_dir_all(dir);
    }
}

/// Whether a node's log shows that its state transfer could not be set up or failed.
/// Whether a joiner's log shows Galera's group communication failing to start in a way
/// that says nothing about the cluster: reading its own thread's scheduling parameters
/// raced with the thread ("Failed to read thread schedparams: ... No such process"), seen
/// once in CI under load. Starting the node again is what an operator would do.
fn gcomm_start_failed(log: &str) -> bool {
    log.contains("failed to open gcomm backend connection")
        && log.contains("Failed to read thread schedparams")
}

fn transfer_failed(log: &str) -> bool {
    ["SST", "IST", "already in use", "state transfer"]
        .iter()
        .any(|sign| log.contains(sign))
        && log.contains("ERROR")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Lets rsync's state-transfer daemon, which runs as `nobody` when the server runs as root,
/// replace everything in the data directory `dir` (it sets owners' permissions, which only
/// the owner may): hands it to `nobody`. Test data only.
fn open_to_state_transfer(dir: &Path) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let status = Command::new("chown")
        .arg("-R")
        .arg("nobody:")
        .arg(dir)
        .status()
        .expect("run chown");
    assert!(
        status.success(),
        "chown -R nobody: {} failed",
        dir.display()
    );
}
