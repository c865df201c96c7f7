//! `vfsserver`: loads the config, waits for the database (backing off, using no CPU),
//! migrates the catalog, mounts, tells systemd it is ready, and unmounts cleanly on
//! SIGTERM/SIGINT. `examples/vfsserver.rs` is a thin wrapper around [`run`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cache::Cache;
use crate::catalog::Catalog;
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::fs::{lazy_unmount, mount_config, VsFs};
use crate::notify::Notifier;
use crate::pool::{Backoff, Pool, PoolOptions, StartPolicy};

/// Longest pause between connect attempts while waiting for the database, so the mount
/// appears within a few seconds of the database becoming reachable.
const STARTUP_BACKOFF_CAP: Duration = Duration::from_secs(1);
/// How often a still-unreachable database is reported in the log.
const REPORT_EVERY: Duration = Duration::from_secs(30);
/// How long a busy mount is retried before it is detached lazily on shutdown.
const UNMOUNT_RETRY: Duration = Duration::from_secs(3);
/// How long files still open after a lazy detach may keep the session alive.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Command-line options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `--config PATH` (default `/etc/vs/vs_conf.xml`).
    pub config: PathBuf,
    /// `--mountpoint DIR` overrides MountPoint.
    pub mountpoint: Option<PathBuf>,
    /// `--wait-db SECONDS`: give up if the database is not reachable by then.
    pub wait_db: Option<Duration>,
    /// `--check`: validate the config, connect once, exit.
    pub check: bool,
}

const USAGE: &str =
    "usage: vfsserver [--config PATH] [--mountpoint DIR] [--wait-db SECONDS] [--check]
       vfsserver --version | --help

  --config PATH        configuration file (default /etc/vs/vs_conf.xml)
  --mountpoint DIR     mount here instead of MountPoint
  --wait-db SECONDS    exit with an error if the database is not reachable in time
                       (default: wait forever, retrying with backoff)
  --check              validate the configuration, connect to the database once, exit
Signals: SIGTERM/SIGINT unmount and exit (a second one exits at once); SIGUSR1 logs statistics.";

enum Event {
    Stop,
    Report,
    SessionEnded(std::io::Result<()>),
}

/// Parses the arguments (without the program name); `Err` holds what to print and the exit code.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Args, (String, u8)> {
    let mut parsed = Args {
        config: PathBuf::from(DEFAULT_CONFIG_PATH),
        mountpoint: None,
        wait_db: None,
        check: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| (format!("{name} needs a value\n{USAGE}"), 2))
        };
        match arg.to_str() {
            Some("--config") => parsed.config = PathBuf::from(value("--config")?),
            Some("--mountpoint") => parsed.mountpoint = Some(PathBuf::from(value("--mountpoint")?)),
            Some("--wait-db") => {
                let text = value("--wait-db")?;
                let seconds: u64 = text.to_str().and_then(|t| t.parse().ok()).ok_or_else(|| {
                    (format!("--wait-db: {text:?} is not a number of seconds"), 2)
                })?;
                parsed.wait_db = Some(Duration::from_secs(seconds));
            }
            Some("--check") => parsed.check = true,
            Some("--version") => {
                return Err((
                    format!("vfsserver (valuestor) {}", env!("CARGO_PKG_VERSION")),
                    0,
                ))
            }
            Some("--help") | Some("-h") => return Err((USAGE.to_string(), 0)),
            _ => return Err((format!("unknown argument {arg:?}\n{USAGE}"), 2)),
        }
    }
    Ok(parsed)
}

/// Runs the server with `args` (without the program name) and returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    // Before any thread starts, so every thread inherits the mask and only the signal
    // thread receives these signals.
    let signals = block_signals();
    let args = match parse_args(args) {
        Ok(args) => args,
        Err((message, code)) => {
            if code == 0 {
                println!("{message}");
            } else {
                eprintln!("{message}");
            }
            return ExitCode::from(code);
        }
    };
    match serve(&args, signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log::error!("{message}");
            eprintln!("vfsserver: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &Args, signals: libc::sigset_t) -> Result<(), String> {
    let config =
        Config::load(&args.config).map_err(|e| format!("{}: {e}", args.config.display()))?;
    for warning in &config.warnings {
        log::warn!("{}: {warning}", args.config.display());
    }
    let notifier = Notifier::from_env();
    let mut options = PoolOptions::from_config(&config.database);
    options.backoff = Backoff {
        base: Duration::from_millis(100),
        cap: STARTUP_BACKOFF_CAP,
    };
    if args.check {
        return check(options, &args.config);
    }
    options.start_policy = StartPolicy::Background;
    let endpoint = format!("{} as {}", options.endpoint(), options.user);
    let pool = Pool::new(options).map_err(|e| format!("cannot start the connection pool: {e}"))?;

    let (events, inbox) = mpsc::channel();
    spawn_signal_thread(signals, events.clone())?;
    wait_for_database(&pool, &endpoint, args.wait_db, &notifier, &inbox)?;

    let mountpoint = args
        .mountpoint
        .clone()
        .unwrap_or_else(|| config.mount_point.clone());
    prepare_mountpoint(&mountpoint)?;
    let cache = Cache::open(&config.cache_folder)
        .map_err(|e| format!("cache folder {}: {e}", config.cache_folder.display()))?;
    let fs = VsFs::new(Catalog::new(pool.clone()), cache)
        .map_err(|e| format!("cannot open the catalog: {e}"))?;
    let stats = fs.stats_handle();
    let session = fuser::Session::new(fs, &mountpoint, &mount_config())
        .map_err(|e| format!("cannot mount {}: {e}", mountpoint.display()))?;
    {
        let events = events.clone();
        std::thread::Builder::new()
            .name("vs-fuse-session".into())
            .spawn(move || {
                let _ = events.send(Event::SessionEnded(session.run()));
            })
            .map_err(|e| format!("cannot start the session thread: {e}"))?;
    }
    log::info!("mounted {} (catalog on {endpoint})", mountpoint.display());
    let _ = notifier.ready();
    let _ = notifier.status(&format!("mounted {}", mountpoint.display()));

    let watchdog = notifier.watchdog_interval().map(|d| d / 2);
    let mut shutdown_deadline: Option<Instant> = None;
    loop {
        let wait = [
            watchdog,
            shutdown_deadline.map(|d| d.saturating_duration_since(Instant::now())),
        ]
        .into_iter()
        .flatten()
        .min();
        let event = match wait {
            Some(wait) => match inbox.recv_timeout(wait) {
                Ok(event) => Some(event),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => Some(Event::Stop),
            },
            None => Some(inbox.recv().unwrap_or(Event::Stop)),
        };
        match event {
            None => {
                if shutdown_deadline.is_some_and(|d| Instant::now() >= d) {
                    log::warn!(
                        "files on {} still open after {:?}; saving state and exiting",
                        mountpoint.display(),
                        SHUTDOWN_GRACE
                    );
                    stats.flush();
                    pool.close();
                    return Ok(());
                }
                let _ = notifier.watchdog();
            }
            Some(Event::Report) => log::info!(
                "statistics: mount {} {:?}; pool {:?}",
                mountpoint.display(),
                stats.snapshot(),
                pool.stats()
            ),
            Some(Event::Stop) => {
                if shutdown_deadline.is_some() {
                    continue;
                }
                log::info!("stopping: flushing and unmounting {}", mountpoint.display());
                let _ = notifier.stopping();
                stats.flush();
                unmount_gracefully(&mountpoint);
                shutdown_deadline = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            Some(Event::SessionEnded(result)) => {
                let _ = notifier.stopping();
                pool.close();
                return match result {
                    Ok(()) => {
                        log::info!("unmounted {}; bye", mountpoint.display());
                        Ok(())
                    }
                    Err(err) => Err(format!("file system session failed: {err}")),
                };
            }
        }
    }
}

/// Unmounts, retrying while the mount is busy, then detaches it lazily (open files keep
/// working until closed; new path lookups no longer reach it). The session then ends.
fn unmount_gracefully(mountpoint: &Path) {
    let Ok(path) = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes()) else {
        return;
    };
    let started = Instant::now();
    loop {
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::umount2(path.as_ptr(), 0) } == 0 {
            return;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EBUSY) && started.elapsed() < UNMOUNT_RETRY {
            // Busy: an operation or open file is in flight and finishes on its own.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        log::warn!("unmount {}: {err}; detaching it", mountpoint.display());
        lazy_unmount(mountpoint);
        return;
    }
}

/// `--check`: the config is valid (already loaded) and the database answers.
fn check(mut options: PoolOptions, path: &Path) -> Result<(), String> {
    options.start_policy = StartPolicy::FailFast;
    options.initial_size = 1;
    let endpoint = format!("{} as {}", options.endpoint(), options.user);
    let pool = Pool::new(options).map_err(|e| {
        format!(
            "{}: configuration valid, but database at {endpoint}: {e}",
            path.display()
        )
    })?;
    pool.close();
    println!(
        "{}: configuration valid; database at {endpoint} reachable",
        path.display()
    );
    Ok(())
}

/// Waits until the pool has a connection, reporting progress; honours `--wait-db` and stop
/// signals. Uses no CPU while waiting: the pool backs off and this thread sleeps in a wait.
fn wait_for_database(
    pool: &Pool,
    endpoint: &str,
    limit: Option<Duration>,
    notifier: &Notifier,
    inbox: &mpsc::Receiver<Event>,
) -> Result<(), String> {
    let started = Instant::now();
    let mut last_report: Option<Instant> = None;
    loop {
        let slice = limit
            .map(|l| l.saturating_sub(started.elapsed()))
            .unwrap_or(Duration::MAX)
            .min(Duration::from_millis(500));
        match pool.wait_until_connected(slice) {
            Ok(()) => {
                if last_report.is_some() {
                    log::info!(
                        "database at {endpoint} reachable after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(());
            }
            Err(err) => {
                if let Ok(Event::Stop) = inbox.try_recv() {
                    return Err("stopped while waiting for the database".into());
                }
                if last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
                    log::warn!("database at {endpoint} unreachable: {err}; retrying with backoff");
                    last_report = Some(Instant::now());
                }
                let _ = notifier.status(&format!("waiting for the database at {endpoint}: {err}"));
                if limit.is_some_and(|l| started.elapsed() >= l) {
                    return Err(format!(
                        "database at {endpoint} not reachable within {} s (--wait-db): {err}",
                        limit.unwrap_or_default().as_secs()
                    ));
                }
            }
        }
    }
}

/// Creates the mount point if missing and detaches a stale mount left by a killed server;
/// refuses a mount point where a live file system is mounted.
fn prepare_mountpoint(mountpoint: &Path) -> Result<(), String> {
    if is_mount_point(mountpoint) {
        // The kernel may answer stat from its cache; listing needs the server.
        match std::fs::read_dir(mountpoint) {
            Err(err) if err.raw_os_error() == Some(libc::ENOTCONN) => {
                log::warn!(
                    "{} is a stale mount (server gone); detaching it",
                    mountpoint.display()
                );
                lazy_unmount(mountpoint);
            }
            Err(err) => return Err(format!("mount point {}: {err}", mountpoint.display())),
            Ok(_) => {
                return Err(format!(
                    "{} is already mounted (is another vfsserver running?)",
                    mountpoint.display()
                ))
            }
        }
    }
    match std::fs::metadata(mountpoint) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(mountpoint)
                .map_err(|e| format!("cannot create mount point {}: {e}", mountpoint.display()))
        }
        Err(err) => Err(format!("mount point {}: {err}", mountpoint.display())),
        Ok(meta) if !meta.is_dir() => Err(format!(
            "mount point {} is not a directory",
            mountpoint.display()
        )),
        Ok(_) => Ok(()),
    }
}

/// Whether something is mounted exactly at `path` (per /proc/self/mountinfo).
fn is_mount_point(path: &Path) -> bool {
    let Ok(absolute) = std::path::absolute(path) else {
        return false;
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    // Field 5 is the mount point, with spaces and the like escaped as octal.
    let wanted = absolute.to_string_lossy().replace(' ', "\\040");
    mounts
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: plain signal-set manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1] {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Turns blocked signals into events; a second SIGTERM/SIGINT exits at once.
fn spawn_signal_thread(set: libc::sigset_t, events: mpsc::Sender<Event>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("vs-signals".into())
        .spawn(move || {
            let mut stopping = false;
            loop {
                let mut signal: libc::c_int = 0;
                // SAFETY: `set` holds the signals this process blocked for this thread.
                if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                    continue;
                }
                match signal {
                    libc::SIGUSR1 => {
                        let _ = events.send(Event::Report);
                    }
                    _ if stopping => {
                        log::warn!("second stop signal: exiting at once");
                        std::process::exit(1);
                    }
                    _ => {
                        stopping = true;
                        let _ = events.send(Event::Stop);
                    }
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}
