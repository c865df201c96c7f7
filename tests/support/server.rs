//! Running `vfsserver` (the example binary) as a process against a harness database, with a
//! notify socket standing in for systemd; killed and unmounted when dropped.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::MariaDb;

/// The `vfsserver` example binary that `cargo test` built next to this test.
pub fn vfsserver_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let examples = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("examples");
    let newest = std::fs::read_dir(&examples)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name == "vfsserver" || name.starts_with("vfsserver-")) && !name.contains('.')
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    newest.map(|e| e.path()).unwrap_or_else(|| {
        panic!(
            "no vfsserver in {}: run the whole suite (`cargo test`), which builds examples",
            examples.display()
        )
    })
}

/// A directory with a config, mount point and cache folder for one server.
pub struct ServerDir {
    /// Holds everything below.
    pub root: tempfile::TempDir,
}

impl ServerDir {
    /// Writes a config pointing at `db` (plus `extra` keys).
    pub fn new(db: &MariaDb, extra: &str) -> ServerDir {
        let root = tempfile::Builder::new()
            .prefix("vs-test-server-")
            .tempdir()
            .unwrap();
        let dir = ServerDir { root };
        let keys = format!(
            "<MountPoint>{}</MountPoint><CacheFolder>{}</CacheFolder>\
             <DatabaseTimeout>5</DatabaseTimeout><DatabaseConnectTimeout>2</DatabaseConnectTimeout>{extra}",
            dir.mountpoint().display(),
            dir.root.path().join("cache").display()
        );
        std::fs::write(dir.config(), db.conf_xml(&keys)).unwrap();
        dir
    }

    /// The config file.
    pub fn config(&self) -> PathBuf {
        self.root.path().join("vs_conf.xml")
    }

    /// The mount point (created by the server).
    pub fn mountpoint(&self) -> PathBuf {
        self.root.path().join("mnt")
    }

    /// Whether the mount point is a live mount.
    pub fn is_mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let target = format!(" {} ", self.mountpoint().display());
        mounts.lines().any(|l| l.contains(&target))
    }
}

/// A running server.
pub struct Server {
    /// The process.
    pub child: Child,
    notify: UnixDatagram,
    _notify_dir: tempfile::TempDir,
}

impl Server {
    /// Starts `vfsserver --config <dir>/vs_conf.xml` plus `args`, optionally under a wrapper
    /// command (e.g. prlimit).
    pub fn start(dir: &ServerDir, wrapper: &[&str], args: &[&str]) -> Server {
        let notify_dir = tempfile::tempdir().unwrap();
        let socket = notify_dir.path().join("notify");
        let notify = UnixDatagram::bind(&socket).unwrap();
        let binary = vfsserver_binary();
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        let child = command
            .arg("--config")
            .arg(dir.config())
            .args(args)
            .env("NOTIFY_SOCKET", &socket)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vfsserver");
        Server {
            child,
            notify,
            _notify_dir: notify_dir,
        }
    }

    /// Waits up to `limit` for a notify message starting with `prefix`; returns it.
    pub fn await_notify(&self, prefix: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.notify.set_read_timeout(Some(left)).unwrap();
            match self.notify.recv(&mut buf) {
                Ok(n) => {
                    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if message.starts_with(prefix) {
                        return Some(message);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Waits up to `limit` for the server to exit; returns its status and stderr.
    pub fn wait(mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return (status, stderr);
            }
            assert!(
                Instant::now() < deadline,
                "vfsserver did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// User plus system CPU time the server has used.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 and 15 of stat(5); `after_name` starts at field 3.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_secs_f64(ticks as f64 / per_second as f64)
    }

    /// Resident memory (kB) and thread count from /proc.
    pub fn rss_kb_and_threads(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("Threads:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stale mounts are detached by `ServerDir` at the end of the test, so a test can
        // observe what a killed server leaves behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerDir {
    fn drop(&mut self) {
        if self.is_mounted() {
            valuestor::fs::lazy_unmount(&self.mountpoint());
        }
    }
}
