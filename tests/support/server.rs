//! Running `vfsserver` (the example binary, built for this test run) as a process against a
//! harness database, with a notify socket standing in for systemd; killed when dropped, and
//! its mount detached when the directory goes.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::MariaDb;

/// The `vfsserver` example binary, built from the sources under test.
///
/// The first call in each test process runs `cargo build --example vfsserver` (same
/// profile, same target directory), so `cargo test --test service` never runs a binary
/// left over from an older build; cargo's own lock serialises concurrent test processes.
pub fn vfsserver_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_vfsserver).clone()
}

fn build_vfsserver() -> PathBuf {
    let binary = super::cargo_build(&["--example", "vfsserver"])
        .join("examples")
        .join("vfsserver");
    assert!(binary.exists(), "cargo build left no {}", binary.display());
    binary
}

/// A directory with a config, mount point and cache folder for one server.
pub struct ServerDir {
    /// Holds everything below.
    pub root: tempfile::TempDir,
    mountpoint: PathBuf,
}

impl ServerDir {
    /// Writes a config pointing at `db` (plus `extra` keys), mounting at `<root>/mnt`.
    pub fn new(db: &MariaDb, extra: &str) -> ServerDir {
        ServerDir::with_mount_point(db, extra, |root| {
            (root.join("mnt").display().to_string(), root.join("mnt"))
        })
    }

    /// Like `new`, with MountPoint written as `layout(root).0` in the config, which names
    /// the real directory `layout(root).1` (e.g. through a symlink or with a trailing slash).
    pub fn with_mount_point(
        db: &MariaDb,
        extra: &str,
        layout: impl FnOnce(&Path) -> (String, PathBuf),
    ) -> ServerDir {
        let root = tempfile::Builder::new()
            .prefix("vs-test-server-")
            .tempdir()
            .unwrap();
        let real_root = std::fs::canonicalize(root.path()).unwrap();
        let (configured, mountpoint) = layout(&real_root);
        // The default reserve (2G) would make writes depend on the machine's free disk
        // space; tests that exercise the reserve set it themselves.
        let reserve = if extra.contains("<CacheFreeLeastSize>") {
            ""
        } else {
            "<CacheFreeLeastSize>0</CacheFreeLeastSize>"
        };
        let timeout = if extra.contains("<DatabaseTimeout>") {
            ""
        } else {
            "<DatabaseTimeout>5</DatabaseTimeout>"
        };
        // Each server its own admin socket (the default is one per host).
        let admin = if extra.contains("<AdminSocket>") {
            String::new()
        } else {
            let socket = real_root.join("admin.sock");
            format!("<AdminSocket>{}</AdminSocket>", socket.display())
        };
        let keys = format!(
            "<MountPoint>{}</MountPoint><CacheFolder>{}</CacheFolder>\
             {timeout}<DatabaseConnectTimeout>2</DatabaseConnectTimeout>{reserve}{admin}{extra}",
            xml_escape(&configured),
            real_root.join("cache").display()
        );
        std::fs::write(real_root.join("vs_conf.xml"), db.conf_xml(&keys)).unwrap();
        ServerDir { root, mountpoint }
    }

    /// The config file.
    pub fn config(&self) -> PathBuf {
        self.root.path().join("vs_conf.xml")
    }

    /// The mount point (created by the server), as the kernel names it.
    pub fn mountpoint(&self) -> PathBuf {
        self.mountpoint.clone()
    }

    /// How many mounts are stacked on the mount point (0: none).
    pub fn mount_count(&self) -> usize {
        mount_points()
            .iter()
            .filter(|p| **p == self.mountpoint)
            .count()
    }

    /// Whether something is mounted on the mount point.
    pub fn is_mounted(&self) -> bool {
        self.mount_count() > 0
    }
}

impl Drop for ServerDir {
    fn drop(&mut self) {
        for _ in 0..self.mount_count() {
            valuestor::fs::lazy_unmount(&self.mountpoint);
        }
    }
}

/// The mount points listed in /proc/self/mountinfo, with octal escapes undone.
pub fn mount_points() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(std::ffi::OsString::from_vec(unescape(field))))
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space and so on).
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4).unwrap_or_default();
        if bytes[i] == b'\\'
            && digits.len() == 3
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = digits.iter().fold(0u32, |n, d| n * 8 + u32::from(d - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text that arrives over time (a process's output, notify messages), with waiting.
#[derive(Default)]
struct Inbox {
    items: Mutex<Vec<String>>,
    changed: Condvar,
}

impl Inbox {
    fn push(&self, item: String) {
        self.items.lock().unwrap().push(item);
        self.changed.notify_all();
    }

    /// Waits up to `limit` for an item matching `wanted`; returns the first one.
    fn await_item(&self, limit: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut items = self.items.lock().unwrap();
        loop {
            if let Some(found) = items.iter().find(|i| wanted(i)) {
                return Some(found.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            items = self.changed.wait_timeout(items, left).unwrap().0;
        }
    }

    fn snapshot(&self) -> Vec<String> {
        self.items.lock().unwrap().clone()
    }
}

/// The end-of-test marker sent to the notify collector.
const NOTIFY_END: &str = "VS-TEST-END";

/// A running process (server or script) whose output and notify messages are collected.
pub struct Server {
    child: Child,
    pidfd: OwnedFd,
    reaped: Option<ExitStatus>,
    output: Arc<Inbox>,
    /// One message per output pipe that reached its end.
    readers_done: mpsc::Receiver<()>,
    readers_left: usize,
    notify: Arc<Inbox>,
    notify_socket: PathBuf,
    notify_thread: Option<JoinHandle<()>>,
    _notify_dir: tempfile::TempDir,
}

impl Server {
    /// Asks the server for its statistics (SIGUSR1) and returns the node it writes through.
    pub fn database_writer(&self) -> String {
        let before = self.output().matches("database writer ").count();
        self.signal(libc::SIGUSR1);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let output = self.output();
            if output.matches("database writer ").count() > before {
                let line = output
                    .lines()
                    .rev()
                    .find(|l| l.contains("database writer "))
                    .expect("the line just counted");
                let rest = line.split("database writer ").nth(1).unwrap_or_default();
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no statistics after SIGUSR1:\n{output}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the server writes through `want` (`host:port`), asking every 200 ms.
    pub fn await_database_writer(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let now = self.database_writer();
            if now == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "writer is {now}, expected {want}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts `vfsserver --config <dir>/vs_conf.xml` plus `args`, optionally under a wrapper
    /// command (e.g. prlimit).
    pub fn start(dir: &ServerDir, wrapper: &[&str], args: &[&str]) -> Server {
        Server::start_with_env(dir, wrapper, args, &[])
    }

    /// Like `start`, with extra environment variables.
    pub fn start_with_env(
        dir: &ServerDir,
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let binary = vfsserver_binary();
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        command
            .arg("--config")
            .arg(dir.config())
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        Server::spawn(command)
    }

    /// Runs `command` with `NOTIFY_SOCKET` set and its output collected.
    pub fn spawn(mut command: Command) -> Server {
        let notify_dir = tempfile::tempdir().unwrap();
        let notify_socket = notify_dir.path().join("notify");
        let socket = UnixDatagram::bind(&notify_socket).unwrap();
        let notify = Arc::new(Inbox::default());
        let notify_thread = {
            let notify = Arc::clone(&notify);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = socket.recv(&mut buf) {
                    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if message == NOTIFY_END {
                        break;
                    }
                    notify.push(message);
                }
            })
        };
        let mut child = command
            .env("NOTIFY_SOCKET", &notify_socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the process");
        let pidfd = pidfd_open(child.id());
        let output = Arc::new(Inbox::default());
        let (done, readers_done) = mpsc::channel();
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        let readers_left = pipes.len();
        for pipe in pipes {
            let (output, done) = (Arc::clone(&output), done.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("  | {line}");
                    output.push(line);
                }
                let _ = done.send(());
            });
        }
        Server {
            child,
            pidfd,
            reaped: None,
            output,
            readers_done,
            readers_left,
            notify,
            notify_socket,
            notify_thread: Some(notify_thread),
            _notify_dir: notify_dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for a notify message starting with `prefix` (received at any
    /// time since the start); returns it.
    pub fn await_notify(&self, prefix: &str, limit: Duration) -> Option<String> {
        self.notify.await_item(limit, |m| m.starts_with(prefix))
    }

    /// Waits up to `limit` until `count` notify messages start with `prefix`.
    pub fn await_notify_count(&self, prefix: &str, count: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut items = self.notify.items.lock().unwrap();
        loop {
            if items.iter().filter(|m| m.starts_with(prefix)).count() >= count {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            items = self.notify.changed.wait_timeout(items, left).unwrap().0;
        }
    }

    /// Every notify message received so far.
    pub fn notify_messages(&self) -> Vec<String> {
        self.notify.snapshot()
    }

    /// Waits up to `limit` for an output line containing `needle`; returns the line.
    pub fn await_output(&self, needle: &str, limit: Duration) -> Option<String> {
        self.output.await_item(limit, |l| l.contains(needle))
    }

    /// The output (stdout and stderr lines) so far.
    pub fn output(&self) -> String {
        self.output.snapshot().join("\n")
    }

    /// Sends `signal` to the process (through a pidfd: never to a recycled pid).
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: pidfd_send_signal on our own pidfd with no siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        assert!(
            rc == 0 || self.exited(),
            "pidfd_send_signal: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits up to `limit` for the process to exit; returns its status and output. Every
    /// notify message it sent is in [`Server::notify_messages`] afterwards.
    pub fn wait(&mut self, limit: Duration) -> (ExitStatus, String) {
        let status = self.try_wait_for(limit).unwrap_or_else(|| {
            panic!(
                "process did not exit within {limit:?}; output:\n{}",
                self.output()
            )
        });
        // The pipes end when the last process holding them exits; a child left running by
        // the process (a bug a test should report, not hang on) may still hold them.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.readers_left > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.readers_done.recv_timeout(left).is_err() {
                self.output
                    .push("(test harness: output still held open by a leftover process)".into());
                break;
            }
            self.readers_left -= 1;
        }
        self.stop_notify_collector();
        (status, self.output())
    }

    /// Ends the notify collector after everything queued before this call was read.
    fn stop_notify_collector(&mut self) {
        if let Some(thread) = self.notify_thread.take() {
            // Datagrams queue in order: the marker is read after every earlier message.
            if let Ok(socket) = UnixDatagram::unbound() {
                let _ = socket.send_to(NOTIFY_END.as_bytes(), &self.notify_socket);
            }
            let _ = thread.join();
        }
    }

    /// Waits up to `limit` for the process to exit (the pidfd becomes readable).
    pub fn try_wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.reaped {
            return Some(status);
        }
        let mut poll = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut poll, 1, ms) };
            if rc > 0 {
                let status = self.child.wait().expect("reap the process");
                self.reaped = Some(status);
                return Some(status);
            }
            if rc == 0 || Instant::now() >= deadline {
                return None;
            }
            // EINTR: poll again for the time left.
        }
    }

    fn exited(&self) -> bool {
        let mut poll = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        self.reaped.is_some() || unsafe { libc::poll(&mut poll, 1, 0) } > 0
    }

    /// User plus system CPU time the process has used.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 and 15 of stat(5); `after_name` starts at field 3.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_secs_f64(ticks as f64 / per_second as f64)
    }

    /// A numeric field of /proc/PID/status (`VmHWM` and `VmRSS` in kB, `Threads`).
    pub fn proc_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let prefix = format!("{field}:");
        status
            .lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }

    /// Peak resident memory so far (`VmHWM`, kB): the kernel's high-water mark, which no
    /// sampling interval can miss.
    pub fn peak_rss_kb(&self) -> u64 {
        self.proc_status("VmHWM")
    }

    /// Resident memory (kB) and thread count now.
    pub fn rss_kb_and_threads(&self) -> (u64, u64) {
        (self.proc_status("VmRSS"), self.proc_status("Threads"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stale mounts are detached by `ServerDir` at the end of the test, so a test can
        // observe what a killed server leaves behind.
        if self.reaped.is_none() {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
        self.stop_notify_collector();
    }
}

fn pidfd_open(pid: u32) -> OwnedFd {
    // SAFETY: pidfd_open on our own child's pid, which stays valid until we reap it.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    assert!(
        fd >= 0,
        "pidfd_open: {} (needs Linux 5.3)",
        std::io::Error::last_os_error()
    );
    // SAFETY: a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }
}
