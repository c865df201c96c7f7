//! `packaging/`: the systemd unit and its limits, the install script, and the README's run
//! command (`run-private.sh`), which must bring the service up and stop it cleanly.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::server::{mount_points, vfsserver_binary, Server};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `(section, key, value)` for every setting of a unit file.
fn unit_settings(path: &Path) -> Vec<(String, String, String)> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut section = String::new();
    let mut settings = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            settings.push((section.clone(), key.trim().into(), value.trim().into()));
        }
    }
    settings
}

fn assert_setting(settings: &[(String, String, String)], section: &str, key: &str, value: &str) {
    let found: Vec<_> = settings
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert_eq!(found, [value], "[{section}] {key}");
}

#[test]
fn unit_files_carry_the_required_settings() {
    let unit = unit_settings(&repo().join("packaging/vs.service"));
    assert_setting(&unit, "Service", "Type", "notify");
    assert_setting(
        &unit,
        "Service",
        "ExecStart",
        "/usr/sbin/vfsserver --config /etc/vs/vs_conf.xml",
    );
    assert_setting(&unit, "Service", "Restart", "on-failure");
    assert_setting(&unit, "Install", "WantedBy", "multi-user.target");
    assert!(
        !unit.iter().any(|(_, k, _)| k == "ExecStop"),
        "SIGTERM unmounts: no ExecStop"
    );

    let limits = unit_settings(&repo().join("packaging/vs.service.d/memory-limit.conf"));
    for (key, value) in [
        ("MemoryMax", "512M"),
        ("MemorySwapMax", "0"),
        ("OOMPolicy", "kill"),
        ("TasksMax", "256"),
        ("LimitAS", "1G"),
        ("LimitDATA", "1G"),
    ] {
        assert_setting(&limits, "Service", key, value);
    }
}

/// Runs packaging/install.sh into `dest` with the binary under test.
fn install_into(dest: &Path) -> String {
    let output = Command::new("bash")
        .arg(repo().join("packaging/install.sh"))
        .env("DESTDIR", dest)
        .env("VS_VFSSERVER", vfsserver_binary())
        .output()
        .expect("run install.sh");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "install.sh failed:\n{text}");
    text
}

#[test]
fn install_script_puts_every_file_where_the_unit_expects_it() {
    let dest = tempfile::tempdir().unwrap();
    let printed = install_into(dest.path());
    assert!(
        printed.contains("systemctl daemon-reload && systemctl enable --now vs"),
        "{printed}"
    );
    let root = dest.path();
    let unit = unit_settings(&root.join("etc/systemd/system/vs.service"));
    // ExecStart's program and every file:// Documentation= page are installed.
    let exec = unit
        .iter()
        .find(|(_, k, _)| k == "ExecStart")
        .map(|(_, _, v)| v.split_whitespace().next().unwrap().to_string())
        .unwrap();
    let program = root.join(exec.trim_start_matches('/'));
    assert!(
        program.metadata().unwrap().permissions().mode() & 0o111 != 0,
        "{exec} is not executable"
    );
    let docs: Vec<_> = unit
        .iter()
        .filter(|(_, k, _)| k == "Documentation")
        .flat_map(|(_, _, v)| v.split_whitespace().map(str::to_string))
        .collect();
    assert!(!docs.is_empty());
    for doc in docs {
        if let Some(path) = doc.strip_prefix("file://") {
            assert!(
                root.join(path.trim_start_matches('/')).is_file(),
                "Documentation={doc} is not installed"
            );
        }
    }
    assert!(root
        .join("etc/systemd/system/vs.service.d/memory-limit.conf")
        .is_file());
    let config = root.join("etc/vs/vs_conf.xml");
    assert_eq!(
        config.metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A second run keeps the operator's configuration.
    fs::write(
        &config,
        "<VSConf><MountPoint>/srv/vs</MountPoint></VSConf>\n",
    )
    .unwrap();
    install_into(root);
    assert!(fs::read_to_string(&config).unwrap().contains("/srv/vs"));
}

#[test]
fn systemd_analyze_accepts_the_installed_units() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    install_into(dest.path());
    let units = dest.path().join("etc/systemd/system");
    // verify checks that ExecStart's program exists on this host: point it at the copy.
    let unit = units.join("vs.service");
    let installed = dest.path().join("usr/sbin/vfsserver");
    let text = fs::read_to_string(&unit).unwrap().replace(
        "ExecStart=/usr/sbin/vfsserver",
        &format!("ExecStart={}", installed.display()),
    );
    fs::write(&unit, text).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify (drop-in included):\n{complaints}"
    );
}

/// Whether process `pid` exists.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// A running run-private.sh; if a test fails half-way, it is stopped the way a user would
/// (SIGTERM), and whatever it left running in its state directory (vfsserver, mariadbd) is
/// stopped too, so no process outlives the test.
struct Script {
    process: Server,
    state: PathBuf,
}

impl Drop for Script {
    fn drop(&mut self) {
        if self.process.try_wait_for(Duration::ZERO).is_none() {
            self.process.signal(libc::SIGTERM);
            let _ = self.process.try_wait_for(Duration::from_secs(60));
        }
        for pid in processes_mentioning(&self.state) {
            stop_process(pid);
        }
    }
}

/// Processes whose command line mentions `path`.
fn processes_mentioning(path: &Path) -> Vec<i32> {
    let needle = path.as_os_str().as_encoded_bytes();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

/// Sends SIGTERM to `pid` and waits up to 30 s for it to exit (its pidfd becomes readable).
fn stop_process(pid: i32) {
    // SAFETY: pidfd_open and pidfd_send_signal on a pid; a pidfd pins the process, so the
    // signal cannot reach a recycled pid.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as libc::c_int;
        if fd < 0 {
            return;
        }
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd,
            libc::SIGTERM,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        libc::poll(&mut poll, 1, 30_000);
        libc::close(fd);
    }
}

/// Detaches a mount left behind by a failed test before its directory is removed.
struct DetachOnDrop(PathBuf);

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        if mount_points().contains(&self.0) {
            valuestor::fs::lazy_unmount(&self.0);
        }
    }
}

/// The signal lines (`SigIgn:`, `SigCgt:`, ...) of `/proc/<pid>/status`: how a process
/// treats signals, for messages about one that did not stop.
fn signal_dispositions(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("Sig") || l.starts_with("ShdPnd"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `bash packaging/run-private.sh mnt` from `cwd`: waits for READY=1 from vfsserver,
/// runs `check` on the mount, stops the script with `signal`, and checks the aftermath.
fn run_private_once(
    cwd: &Path,
    state: &Path,
    signal: libc::c_int,
    check: impl FnOnce(&Path),
) -> String {
    run_private_with(Command::new("bash"), cwd, state, signal, check)
}

/// [`run_private_once`] with `command` (`bash`, perhaps with a `pre_exec`) running the
/// script; returns the script's output.
fn run_private_with(
    mut command: Command,
    cwd: &Path,
    state: &Path,
    signal: libc::c_int,
    check: impl FnOnce(&Path),
) -> String {
    command
        .arg(repo().join("packaging/run-private.sh"))
        .arg("mnt")
        .current_dir(cwd)
        .env("VS_PRIVATE_DIR", state)
        // Writes in these tests must not depend on the machine's free disk space.
        .env("VS_CACHE_FREE_LEAST_SIZE", "0")
        .env("VS_VFSSERVER", vfsserver_binary());
    let mountpoint = cwd.join("mnt");
    let _detach = DetachOnDrop(mountpoint.clone());
    let mut script = Script {
        process: Server::spawn(command),
        state: state.to_path_buf(),
    };
    let script = &mut script.process;
    assert!(
        script
            .await_notify("READY=1", Duration::from_secs(180))
            .is_some(),
        "run-private.sh did not bring the mount up:\n{}",
        script.output()
    );
    assert!(
        mount_points().contains(&mountpoint),
        "not mounted at {mountpoint:?}"
    );
    let db_pid: i32 = fs::read_to_string(state.join("mysqld.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    check(&mountpoint);

    let dispositions = signal_dispositions(script.pid());
    script.signal(signal);
    let Some(status) = script.try_wait_for(Duration::from_secs(60)) else {
        panic!(
            "run-private.sh did not exit within 60 s of signal {signal}; its signal \
             dispositions when signalled: {dispositions}\noutput:\n{}",
            script.output()
        );
    };
    let (_, output) = script.wait(Duration::ZERO);
    assert!(status.success(), "exit {status}:\n{output}");
    assert!(
        !mount_points().contains(&mountpoint),
        "still mounted after the script exited:\n{output}"
    );
    assert!(!alive(db_pid), "mariadbd {db_pid} outlived the script");
    assert!(
        !state.join("mysqld.pid").exists(),
        "mariadbd did not shut down cleanly (pid file left):\n{output}"
    );
    output
}

#[test]
fn run_private_script_serves_a_mount_and_stops_cleanly() {
    let dir = tempfile::Builder::new()
        .prefix("vs-test-private-")
        .tempdir()
        .unwrap();
    let cwd: PathBuf = fs::canonicalize(dir.path()).unwrap();
    let state = cwd.join("state");
    // kill -TERM, as the README says; a shell can cd into the mount and write.
    run_private_once(&cwd, &state, libc::SIGTERM, |mnt| {
        let shell = Command::new("sh")
            .args([
                "-c",
                "cd \"$1\" && echo written > from-shell && cat from-shell",
            ])
            .arg("sh")
            .arg(mnt)
            .output()
            .unwrap();
        assert!(shell.status.success(), "{shell:?}");
        assert_eq!(String::from_utf8_lossy(&shell.stdout), "written\n");
    });
    assert_eq!(
        fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Ctrl-C (SIGINT to the script alone): the data and the database user from the first
    // run still work.
    run_private_once(&cwd, &state, libc::SIGINT, |mnt| {
        assert_eq!(
            fs::read_to_string(mnt.join("from-shell")).unwrap(),
            "written\n"
        );
    });
}

#[test]
fn run_private_script_stops_on_sigint_when_started_with_sigint_ignored() {
    let dir = tempfile::Builder::new()
        .prefix("vs-test-private-")
        .tempdir()
        .unwrap();
    let cwd: PathBuf = fs::canonicalize(dir.path()).unwrap();
    // What `run-private.sh &` in a non-interactive shell (or a test run started that way)
    // hands the script: SIGINT ignored, which a shell cannot trap.
    let mut bash = Command::new("bash");
    // SAFETY: signal() is async-signal-safe, as pre_exec requires.
    unsafe {
        bash.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        });
    }
    run_private_with(bash, &cwd, &cwd.join("state"), libc::SIGINT, |mnt| {
        assert!(mnt.is_dir());
    });
}

/// The text of element `key` in the config `text`.
fn config_value<'a>(text: &'a str, key: &str) -> &'a str {
    let open = format!("<{key}>");
    let start = text.find(&open).map(|i| i + open.len());
    let end = text.find(&format!("</{key}>"));
    match (start, end) {
        (Some(start), Some(end)) => &text[start..end],
        _ => panic!("no {key} in:\n{text}"),
    }
}

/// What `sql` prints (one line per row, no column names), asked of the private MariaDB in
/// `state` over its socket as root (this test runs as root: unix_socket lets it in).
fn ask_as_root_over_socket(state: &Path, sql: &str) -> Vec<String> {
    let output = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", state.join("mysqld.sock").display()))
        .args(["-uroot", "-N", "-e", sql])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "root over the socket, {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// While run-private.sh serves: root gets in over the socket only (unix_socket), the catalog
/// user's password is in the 0600 config and on no command line, and the catalog user
/// reaches its own database with exactly the needed privileges and nothing else.
fn assert_database_locked_down(state: &Path) -> String {
    let config_path = state.join("vs_conf.xml");
    let mode = fs::metadata(&config_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode of {config_path:?}");
    let config = fs::read_to_string(&config_path).unwrap();
    let port: u16 = config_value(&config, "DatabasePort").parse().unwrap();
    let password = config_value(&config, "DatabasePassword").to_string();
    assert!(
        password.len() == 32 && password.bytes().all(|b| b.is_ascii_hexdigit()),
        "the catalog password is not 32 random hex digits: {} characters",
        password.len()
    );
    assert_eq!(
        processes_mentioning(Path::new(&password)),
        Vec::<i32>::new(),
        "processes with the catalog password on their command line"
    );

    let tcp = |user: &str, pass: Option<&str>| {
        mysql::Conn::new(
            mysql::OptsBuilder::new()
                .ip_or_hostname(Some("127.0.0.1"))
                .tcp_port(port)
                .user(Some(user))
                .pass(pass)
                .prefer_socket(false)
                .tcp_connect_timeout(Some(Duration::from_secs(5))),
        )
    };
    for pass in [None, Some(""), Some(password.as_str())] {
        let root = tcp("root", pass);
        assert!(
            root.as_ref()
                .is_err_and(|e| e.to_string().contains("Access denied")),
            "root over TCP with password {:?}: {:?}",
            pass.map(|p| if p.is_empty() {
                "(empty)"
            } else {
                "(the catalog's)"
            }),
            root.map(|_| "connected")
        );
    }
    assert_eq!(
        ask_as_root_over_socket(
            state,
            "SELECT CONCAT(User, '@', Host) FROM mysql.global_priv ORDER BY 1"
        ),
        [
            "mariadb.sys@localhost",
            "root@localhost",
            "vsadmin@127.0.0.1"
        ],
        "accounts of the private MariaDB"
    );
    assert_eq!(
        ask_as_root_over_socket(state, "SHOW CREATE USER 'root'@'localhost'"),
        ["CREATE USER `root`@`localhost` IDENTIFIED VIA unix_socket"],
        "how root logs in"
    );

    use mysql::prelude::Queryable;
    let mut catalog = tcp("vsadmin", Some(&password)).expect("the catalog user connects");
    let databases: Vec<String> = catalog.query("SHOW DATABASES").unwrap();
    assert_eq!(
        databases,
        ["CatalogDb", "information_schema"],
        "SHOW DATABASES"
    );
    let created = catalog.query_drop("CREATE DATABASE vs_other");
    assert!(
        created
            .as_ref()
            .is_err_and(|e| e.to_string().contains("1044")),
        "CREATE DATABASE as the catalog user: {created:?}"
    );
    let read = catalog.query_drop("SELECT User FROM mysql.user");
    assert!(
        read.as_ref().is_err_and(|e| e.to_string().contains("1142")),
        "reading mysql.user as the catalog user: {read:?}"
    );
    let grants: Vec<String> = catalog.query("SHOW GRANTS").unwrap();
    let excess = valuestor::meta::mysql::privileges::excess(&grants, "CatalogDb");
    assert_eq!(
        excess,
        Vec::<String>::new(),
        "beyond what the catalog needs"
    );
    let script = fs::read_to_string(repo().join("packaging/run-private.sh")).unwrap();
    assert!(
        script.contains(&format!(
            "catalog_privileges=\"{}\"",
            valuestor::meta::mysql::privileges::NEEDED.join(", ")
        )),
        "run-private.sh grants other privileges than {:?}",
        valuestor::meta::mysql::privileges::NEEDED
    );
    password
}

#[test]
fn run_private_database_admits_root_only_by_socket_and_the_catalog_user_to_its_database_only() {
    let dir = tempfile::Builder::new()
        .prefix("vs-test-private-")
        .tempdir()
        .unwrap();
    let cwd: PathBuf = fs::canonicalize(dir.path()).unwrap();
    let state = cwd.join("state");
    let mut password = String::new();
    let output = run_private_once(&cwd, &state, libc::SIGTERM, |mnt| {
        password = assert_database_locked_down(&state);
        fs::write(mnt.join("f"), "kept").unwrap();
    });
    assert!(
        !output.contains(&password),
        "the password is in the output:\n{output}"
    );
    assert!(!state.join("db.password").exists());
}

#[test]
fn run_private_script_locks_down_a_database_an_earlier_version_made() {
    let dir = tempfile::Builder::new()
        .prefix("vs-test-private-")
        .tempdir()
        .unwrap();
    let cwd: PathBuf = fs::canonicalize(dir.path()).unwrap();
    let state = cwd.join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    // What earlier versions made: root without a password, also over loopback TCP.
    let install = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", state.join("data").display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--user=root",
        ])
        .output()
        .unwrap();
    assert!(install.status.success(), "{install:?}");
    fs::write(state.join("db.password"), "0123456789abcdef").unwrap();
    run_private_once(&cwd, &state, libc::SIGTERM, |_| {
        assert_database_locked_down(&state);
    });
    assert!(!state.join("db.password").exists());
}

#[test]
fn run_private_script_refuses_a_state_directory_others_can_read_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let output = Command::new("bash")
        .arg(repo().join("packaging/run-private.sh"))
        .env("VS_PRIVATE_DIR", dir.path())
        .env("VS_VFSSERVER", vfsserver_binary())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("has mode 755"), "{stderr}");
    assert_eq!(
        fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777,
        0o755,
        "the script changed the mode of a directory it did not create"
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}
