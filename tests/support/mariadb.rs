//! A private MariaDB server for tests: its own data directory, a free loopback port,
//! and `stop`, `kill` (SIGKILL), `pause` (SIGSTOP: a server that hangs) and `resume`/`restart`
//! on the same port and data.
//!
//! Set `VS_TEST_MYSQL_URL` (e.g. `mysql://user:pw@127.0.0.1:3306/`) to use an existing
//! server instead; such a server cannot be stopped or killed, so tests that need that
//! call [`MariaDb::require_control`] and are skipped.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

/// How long a server may take to start accepting connections before the test fails.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped server may take to exit after SIGTERM before it is killed.
pub(super) const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The user tests connect as; created on first start with a random password.
pub(super) const TEST_USER: &str = "vs_test";

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A MariaDB server owned by one test (or an external one from `VS_TEST_MYSQL_URL`).
pub struct MariaDb {
    host: String,
    port: u16,
    user: String,
    password: String,
    database: String,
    private: Option<PrivateServer>,
    /// The `DatabaseHost` list when the database lives on the shared Galera cluster
    /// (`VS_TEST_GALERA=1`); `host`/`port` are then its first node.
    cluster_hosts: Option<String>,
    /// A second handle on another handle's database ([`MariaDb::through_hosts`]): dropping
    /// it leaves the database alone.
    borrowed: bool,
}

/// The process and files of a server this harness started.
struct PrivateServer {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Stopped with SIGSTOP by `pause`.
    paused: bool,
}

impl MariaDb {
    /// Starts a private server (or attaches to `VS_TEST_MYSQL_URL`) with a fresh database.
    pub fn start() -> MariaDb {
        if super::galera::wanted() {
            return Self::on_shared_cluster();
        }
        match std::env::var("VS_TEST_MYSQL_URL") {
            Ok(url) if !url.is_empty() => Self::external(&url),
            _ => Self::private(),
        }
    }

    /// Whether this harness controls the server process (false for `VS_TEST_MYSQL_URL`).
    pub fn is_private(&self) -> bool {
        self.private.is_some()
    }

    /// Returns false (and says why on stderr) when the server cannot be stopped or killed.
    pub fn require_control(&self) -> bool {
        if self.cluster_hosts.is_some() {
            eprintln!("skipped: needs a private server, VS_TEST_GALERA is set");
        } else if !self.is_private() {
            eprintln!("skipped: needs a private server, VS_TEST_MYSQL_URL is set");
        }
        self.is_private()
    }

    /// The loopback host the server listens on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port the server listens on (stable across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `DatabaseHost` value naming this database's server: `host` alone, or every
    /// node of the shared Galera cluster (`VS_TEST_GALERA=1`).
    pub fn database_host(&self) -> String {
        self.cluster_hosts
            .clone()
            .unwrap_or_else(|| self.host.clone())
    }

    /// The same database named in configs by `hosts` (the cluster's nodes in another order,
    /// say); dropping the new handle leaves the database alone.
    pub fn through_hosts(&self, hosts: &str) -> MariaDb {
        MariaDb {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: self.password.clone(),
            database: self.database.clone(),
            private: None,
            cluster_hosts: Some(hosts.to_string()),
            borrowed: true,
        }
    }

    /// Whether the database lives on the shared Galera cluster (`VS_TEST_GALERA=1`).
    pub fn is_on_cluster(&self) -> bool {
        self.cluster_hosts.is_some()
    }

    /// The user tests connect as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password of [`MariaDb::user`].
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The database created for this test.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Connection options for the test user and database, with short timeouts.
    pub fn opts(&self) -> mysql::Opts {
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some(self.host.clone()))
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .db_name(Some(self.database.clone()))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(5)))
            .into()
    }

    /// A new raw connection to the test database.
    pub fn connect(&self) -> mysql::Conn {
        mysql::Conn::new(self.opts()).expect("connect to test database")
    }

    /// A connection as the server's administrator (`root`, which the harness's private
    /// server lets in over loopback without a password), for creating users and grants;
    /// `None` for an external server.
    pub fn root_connect(&self) -> Option<mysql::Conn> {
        // Not on a shared server (`VS_TEST_MYSQL_URL`, `VS_TEST_GALERA`): what a test does
        // as root there (global settings, server-wide counters) reaches the other tests.
        self.private.as_ref()?;
        Some(mysql::Conn::new(root_opts(self.port)).expect("connect as root"))
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        let server = self.private.as_mut().expect("stop needs a private server");
        if let Some(mut child) = server.child.take() {
            signal(&child, libc::SIGTERM);
            if std::mem::take(&mut server.paused) {
                signal(&child, libc::SIGCONT);
            }
            wait_or_kill(&mut child, STOP_TIMEOUT);
        }
    }

    /// Lets a server frozen by [`MariaDb::pause`] run again (SIGCONT).
    pub fn unpause(&mut self) {
        let server = self
            .private
            .as_mut()
            .expect("unpause needs a private server");
        server.paused = false;
        if let Some(child) = &server.child {
            signal(child, libc::SIGCONT);
        }
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let server = self.private.as_mut().expect("kill needs a private server");
        server.paused = false;
        if let Some(mut child) = server.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server with SIGSTOP: connections stay open and nothing answers, as when
    /// a database hangs. `resume` continues it.
    pub fn pause(&mut self) {
        let server = self.private.as_mut().expect("pause needs a private server");
        let child = server.child.as_ref().expect("pause needs a running server");
        signal(child, libc::SIGSTOP);
        server.paused = true;
        // SIGSTOP takes effect asynchronously: wait until every thread has stopped.
        let tasks = PathBuf::from(format!("/proc/{}/task", child.id()));
        let deadline = Instant::now() + START_TIMEOUT;
        while !all_stopped(&tasks) {
            assert!(Instant::now() < deadline, "mariadbd did not stop");
            // No notification exists for another process stopping.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Continues a server frozen by `pause` (SIGCONT), or starts it again on the same port
    /// and data directory after `stop` or `kill`.
    pub fn resume(&mut self) {
        let port = self.port;
        let server = self
            .private
            .as_mut()
            .expect("resume needs a private server");
        if server.paused {
            server.paused = false;
            if let Some(child) = &server.child {
                signal(child, libc::SIGCONT);
                return;
            }
        }
        assert!(server.child.is_none(), "server is still running");
        server.child = Some(spawn_server(server.dir.path(), port));
        wait_until_ready(server, port);
    }

    /// Stops the server (SIGTERM) if it runs and starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.resume();
    }

    /// The server's process id (none for an external server or a stopped one).
    pub fn pid(&self) -> Option<u32> {
        self.private.as_ref()?.child.as_ref().map(Child::id)
    }

    /// Whether the server process is running (always true for an external server).
    pub fn is_running(&mut self) -> bool {
        match &mut self.private {
            None => true,
            Some(server) => match &mut server.child {
                None => false,
                Some(child) => matches!(child.try_wait(), Ok(None)),
            },
        }
    }

    /// A config file body (`<VSConf>`) pointing at this server, plus extra elements.
    pub fn conf_xml(&self, extra: &str) -> String {
        format!(
            "<VSConf>\n  <DatabaseHost>{}</DatabaseHost>\n  <DatabasePort>{}</DatabasePort>\n  \
             <DatabaseUser>{}</DatabaseUser>\n  <DatabasePassword>{}</DatabasePassword>\n  \
             <DatabaseName>{}</DatabaseName>\n{}\n</VSConf>\n",
            self.database_host(),
            self.port,
            self.user,
            self.password,
            self.database,
            extra
        )
    }

    fn private() -> MariaDb {
        let dir = tempfile::Builder::new()
            .prefix("vs-test-mariadb-")
            .tempdir()
            .expect("create temporary data directory");
        install_data_dir(dir.path());
        let mut server = PrivateServer {
            dir,
            child: None,
            paused: false,
        };
        let mut attempts = 0;
        let port = loop {
            // The port can be taken between probing and binding: then try another.
            let port = free_port();
            server.child = Some(spawn_server(server.dir.path(), port));
            match try_wait_until_ready(&mut server, port) {
                Ok(()) => break port,
                Err(log) if log.contains("already in use") && attempts < 5 => {
                    attempts += 1;
                    if let Some(mut child) = server.child.take() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
                Err(log) => panic!("mariadbd did not start on port {port}:\n{log}"),
            }
        };
        let password = format!("pw-{:016x}", fastrand::u64(..));
        let database = format!("vs_test_{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        create_user_and_database(port, &password, &database);
        MariaDb {
            host: "127.0.0.1".into(),
            port,
            user: TEST_USER.into(),
            password,
            database,
            private: Some(server),
            cluster_hosts: None,
            borrowed: false,
        }
    }

    /// A fresh database on the Galera cluster shared by this process's tests.
    fn on_shared_cluster() -> MariaDb {
        let cluster = super::galera::shared()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        MariaDb::on_cluster(&cluster)
    }

    /// A fresh database on `cluster`, reached through its first node and named in configs
    /// by the list of all its nodes. The cluster's nodes are controlled through `cluster`,
    /// not through this handle ([`MariaDb::require_control`] is false).
    pub fn on_cluster(cluster: &super::galera::Galera) -> MariaDb {
        MariaDb {
            host: "127.0.0.1".into(),
            port: cluster.port(0),
            user: cluster.user().into(),
            password: cluster.password().into(),
            database: cluster.create_database(),
            private: None,
            cluster_hosts: Some(cluster.hosts()),
            borrowed: false,
        }
    }

    fn external(url: &str) -> MariaDb {
        let opts = mysql::Opts::from_url(url).expect("VS_TEST_MYSQL_URL is not a mysql:// URL");
        let database = format!(
            "vs_test_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = mysql::Conn::new(opts.clone()).expect("connect to VS_TEST_MYSQL_URL");
        conn.query_drop(format!("CREATE DATABASE `{database}`"))
            .expect("create test database");
        MariaDb {
            host: opts.get_ip_or_hostname().to_string(),
            port: opts.get_tcp_port(),
            user: opts.get_user().unwrap_or("root").to_string(),
            password: opts.get_pass().unwrap_or("").to_string(),
            database,
            private: None,
            cluster_hosts: None,
            borrowed: false,
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // A private server is reaped by PrivateServer's own Drop; an external one keeps
        // running, so only the test's database is dropped.
        if self.private.is_none() && !self.borrowed {
            if let Ok(mut conn) = mysql::Conn::new(self.opts()) {
                let _ = conn.query_drop(format!("DROP DATABASE `{}`", self.database));
            }
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        // Runs even when a test panics (also half-way through start-up), so no server outlives its test.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(super) fn mariadbd_binary() -> PathBuf {
    for candidate in [
        "/usr/sbin/mariadbd",
        "/usr/sbin/mysqld",
        "/usr/bin/mariadbd",
    ] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("mariadbd not found: install Debian's mariadb-server (see .ci/run)");
}

/// Fills `dir/data` with a fresh data directory, copied from a template.
///
/// Bootstrapping once and copying is faster than `mariadb-install-db` per server and avoids
/// running several bootstraps at once. The template is kept under cargo's target directory
/// for every test process to share, one per MariaDB version: a template per process in the
/// system's temporary directory was never removed (statics are not dropped at exit) and
/// left 26 MB behind for every test binary run.
pub(super) fn install_data_dir(dir: &Path) {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let template = match TEMPLATE.get_or_init(shared_template) {
        Ok(t) => t,
        Err(message) => panic!("{message}"),
    };
    let status = Command::new("cp")
        .arg("-a")
        .arg(template.join("data"))
        .arg(dir.join("data"))
        .status()
        .expect("run cp");
    assert!(
        status.success(),
        "copying the template data directory failed"
    );
}

/// The template for the installed MariaDB: made once (bootstrapped in a private directory
/// and renamed into place, so a reader never sees a partial one; of two processes making it
/// at once, the first rename wins and the other removes its copy).
fn shared_template() -> Result<PathBuf, String> {
    let version = Command::new(mariadbd_binary())
        .arg("--version")
        .output()
        .map_err(|e| format!("run mariadbd --version: {e}"))?;
    let version = String::from_utf8_lossy(&version.stdout);
    let key: String = version
        .split_whitespace()
        .nth(2)
        .unwrap_or("unknown")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = base.join(format!("vs-test-mariadb-template-{key}"));
    if path.join("data").is_dir() {
        return Ok(path);
    }
    let made = bootstrap_template(&base)?;
    match fs::rename(made.path(), &path) {
        Ok(()) => {
            // Renamed away: nothing is left for the TempDir to remove.
            let _ = made.keep();
        }
        Err(_) if path.join("data").is_dir() => {} // another process was first; ours goes
        Err(e) => return Err(format!("keep the template at {}: {e}", path.display())),
    }
    Ok(path)
}

fn bootstrap_template(base: &Path) -> Result<tempfile::TempDir, String> {
    let mut last = String::new();
    for _ in 0..3 {
        let dir = tempfile::Builder::new()
            .prefix("vs-test-template-")
            .tempdir_in(base)
            .map_err(|e| format!("create template directory in {}: {e}", base.display()))?;
        let output = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg("--innodb-log-file-size=8M")
            .arg(format!("--tmpdir={}", dir.path().display()))
            .args(run_as_root_args())
            .output()
            .map_err(|e| format!("run mariadb-install-db (install mariadb-server): {e}"))?;
        if output.status.success() {
            return Ok(dir);
        }
        last = format!(
            "mariadb-install-db failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Err(last)
}

pub(super) fn run_as_root_args() -> Vec<String> {
    // mariadbd refuses to run as root unless told to; as another user it runs as itself.
    if unsafe { libc::geteuid() } == 0 {
        vec!["--user=root".into()]
    } else {
        Vec::new()
    }
}

fn spawn_server(dir: &Path, port: u16) -> Child {
    let log = fs::File::create(dir.join("err.log")).expect("create server log");
    Command::new(mariadbd_binary())
        .arg("--no-defaults")
        .arg(format!("--datadir={}", dir.join("data").display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg("--skip-log-bin")
        .arg("--skip-name-resolve")
        .arg("--innodb-buffer-pool-size=32M")
        .arg("--innodb-log-file-size=8M")
        .arg("--innodb-flush-log-at-trx-commit=2")
        .arg("--max-connections=200")
        .arg(format!("--tmpdir={}", dir.display()))
        .args(run_as_root_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn mariadbd")
}

fn wait_until_ready(server: &mut PrivateServer, port: u16) {
    if let Err(log) = try_wait_until_ready(server, port) {
        panic!("mariadbd did not become ready on port {port}:\n{log}");
    }
}

/// Waits until the server completes a handshake; on failure returns its log.
fn try_wait_until_ready(server: &mut PrivateServer, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let root = root_opts(port);
    loop {
        if mysql::Conn::new(root.clone()).is_ok() {
            return Ok(());
        }
        let exited = match &mut server.child {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        };
        if exited || Instant::now() > deadline {
            let mut log = String::new();
            if let Ok(mut f) = fs::File::open(server.dir.path().join("err.log")) {
                let _ = f.read_to_string(&mut log);
            }
            return Err(log);
        }
        // Polling a server that gives no readiness signal: a short pause between handshakes.
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(super) fn root_opts(port: u16) -> mysql::Opts {
    mysql::OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(port)
        .user(Some("root"))
        .prefer_socket(false)
        .tcp_connect_timeout(Some(Duration::from_secs(2)))
        .into()
}

pub(super) fn create_user_and_database(port: u16, password: &str, database: &str) {
    let mut conn = mysql::Conn::new(root_opts(port)).expect("connect as root");
    // CREATE USER takes no placeholders; the password is our own hex string.
    conn.query_drop(format!(
        "CREATE USER '{TEST_USER}'@'%' IDENTIFIED BY '{password}'"
    ))
    .expect("create test user");
    conn.query_drop(format!("CREATE DATABASE `{database}`"))
        .expect("create test database");
    conn.query_drop(format!("GRANT ALL ON *.* TO '{TEST_USER}'@'%'"))
        .expect("grant test user");
}

pub(super) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Whether every thread listed under `/proc/<pid>/task` is stopped (state `T`).
pub(super) fn all_stopped(tasks: &Path) -> bool {
    let Ok(entries) = fs::read_dir(tasks) else {
        return false;
    };
    entries.filter_map(Result::ok).all(|task| {
        let stat = fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('T'))
    })
}

pub(super) fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: sending a signal to our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

pub(super) fn wait_or_kill(child: &mut Child, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            // The child gives no other exit notification we could block on with a deadline.
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
