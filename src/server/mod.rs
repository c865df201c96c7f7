//! `vfsserver`: loads the config, cleans a stale mount, waits for the database (backing off,
//! using no CPU), migrates the catalog, takes the catalog's owner lease ([`lease`]; refusing
//! to start while another server holds it, unless `--wait-lease`), runs the file system's
//! start-up recovery under it, mounts, tells systemd it is ready, renews the lease on a
//! heartbeat, and on SIGTERM/SIGINT saves open files, unmounts, releases the lease and exits
//! 0. `examples/vfsserver.rs` is a thin wrapper around [`run`].
//!
//! Shutdown, in order: `STOPPING=1`; unsaved sizes and times of open files are written to
//! the catalog; the mount is unmounted (retried while busy for [`UNMOUNT_RETRY`], then
//! detached so new path lookups no longer reach it while open files keep working for up to
//! [`SHUTDOWN_GRACE`]); files still open then are cut off (the FUSE connection is aborted),
//! after which nothing can change any more and the last sizes and times are saved; the pool
//! closes. A second SIGTERM/SIGINT exits at once (status 1) after detaching the mount.
//! Sizes and times the catalog cannot take at the end (the database is down) stay in the
//! cache's journal, and the stop exits 1 saying how many files and bytes are pending: it
//! never reports success then.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use nix::sys::signal::{SigSet, Signal};

use crate::cache::quarantine::Quarantine;
use crate::cache::Cache;
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::fs::{lazy_unmount, mount_config, FsOptions, FsStatsHandle, VsFs};
use crate::meta::lease::{LeaseHolder, OwnerLease};
use crate::meta::mysql::{privileges, MysqlMeta};
use crate::meta::MetaEngine;
use crate::notify::Notifier;
use crate::pool::{Backoff, Pool, PoolError, PoolOptions, PoolStats, StartPolicy};
use crate::tier::{Tier, TierOptions};

mod fusectl;
pub mod lease;
mod mountpoint;

use fusectl::abort_connection;
use lease::{Keeper, Took};
use mountpoint::{mount_entry, normalise_mountpoint, prepare_mountpoint};

/// Longest pause between connect attempts while waiting for the database, so the mount
/// appears within a few seconds of the database becoming reachable.
const STARTUP_BACKOFF_CAP: Duration = Duration::from_secs(1);
/// How often a still-unreachable database is reported in the log.
const REPORT_EVERY: Duration = Duration::from_secs(30);
/// How often the wait for the database looks for signals.
const WAIT_SLICE: Duration = Duration::from_millis(250);
/// How long a busy mount is retried before it is detached lazily on shutdown.
pub const UNMOUNT_RETRY: Duration = Duration::from_secs(3);
/// Longest a stop waits, before unmounting, for closes the kernel has sent to be answered.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// How long files still open after the mount was detached may keep working on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the session may take to end after its connection was aborted.
const ABORT_WAIT: Duration = Duration::from_secs(5);
/// Longest time the watchdog's health check waits for `statfs` of the mount.
const PROBE_TIMEOUT_MAX: Duration = Duration::from_secs(5);

/// Command-line options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `--config PATH` (default `/etc/vs/vs_conf.xml`).
    pub config: PathBuf,
    /// `--mountpoint DIR` overrides MountPoint.
    pub mountpoint: Option<PathBuf>,
    /// `--wait-db SECONDS`: give up if the database is not reachable by then (0: try once).
    pub wait_db: Option<Duration>,
    /// `--wait-lease SECONDS`: wait that long for another server's owner lease on the
    /// catalog to be released or to expire, instead of refusing to start at once.
    pub wait_lease: Option<Duration>,
    /// `--check`: validate the config, connect once, exit.
    pub check: bool,
    /// `--rebind-cache`: bind a cache folder of another catalog to this one (its data
    /// files go to the quarantine) instead of refusing to start.
    pub rebind_cache: bool,
    /// `--purge-quarantine`: remove the cache's quarantine, exit.
    pub purge_quarantine: bool,
}

const USAGE: &str = "usage: vfsserver [--config PATH] [--mountpoint DIR] [--wait-db SECONDS]
                 [--wait-lease SECONDS] [--check] [--rebind-cache]
       vfsserver [--config PATH] --purge-quarantine
       vfsserver --version | --help

  --config PATH        configuration file (default /etc/vs/vs_conf.xml)
  --mountpoint DIR     mount here instead of MountPoint
  --wait-db SECONDS    exit with an error if the database is not reachable in time
                       (0: try once; default: wait forever, retrying with backoff)
  --wait-lease SECONDS while another server holds the catalog's owner lease, wait up to
                       this long for it to be released or to expire, then take it
                       (default: refuse to start, naming the holder)
  --check              validate the configuration, connect to the database once, exit
  --rebind-cache       bind a CacheFolder that belongs to another catalog (or to none
                       that can be proven) to this one: every data file in it is moved
                       to CacheFolder/quarantine first (default: refuse to start)
  --purge-quarantine   remove CacheFolder/quarantine (data files a start found without
                       an inode), print what was removed, exit
Signals: SIGTERM/SIGINT save open files, unmount and exit 0 (1 if sizes could not be saved
to the catalog: they stay in CacheFolder/journal; a second signal exits at once);
SIGUSR1 logs pool, file system and owner lease statistics.";

enum Event {
    Stop(&'static str),
    Report,
    SessionEnded(io::Result<()>),
}

/// Parses the arguments (without the program name); `Err` holds what to print and the exit code.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Args, (String, u8)> {
    let mut parsed = Args {
        config: PathBuf::from(DEFAULT_CONFIG_PATH),
        mountpoint: None,
        wait_db: None,
        wait_lease: None,
        check: false,
        rebind_cache: false,
        purge_quarantine: false,
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
            Some("--wait-lease") => {
                let text = value("--wait-lease")?;
                let seconds: u64 = text.to_str().and_then(|t| t.parse().ok()).ok_or_else(|| {
                    (
                        format!("--wait-lease: {text:?} is not a number of seconds"),
                        2,
                    )
                })?;
                parsed.wait_lease = Some(Duration::from_secs(seconds));
            }
            Some("--check") => parsed.check = true,
            Some("--rebind-cache") => parsed.rebind_cache = true,
            Some("--purge-quarantine") => parsed.purge_quarantine = true,
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
    limit_malloc_arenas();
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
            if log::log_enabled!(log::Level::Error) {
                log::error!("{message}");
            } else {
                eprintln!("vfsserver: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Malloc arenas the server may use. glibc gives each thread that allocates its own arena,
/// up to 8 per core, each reserving 64 MiB of address space: with the service's
/// `LimitAS=1G` fifteen threads came within 60 MB of the limit without using the memory.
/// The server's threads mostly wait, so two arenas cost no measurable contention.
const MALLOC_ARENAS: libc::c_int = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`] (before any thread starts).
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator tuning; called before other threads exist.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) } != 1 {
        log::warn!("cannot limit malloc arenas; address space use grows with threads");
    }
}

fn serve(args: &Args, signals: SigSet) -> Result<(), String> {
    let config =
        Config::load(&args.config).map_err(|e| format!("{}: {e}", args.config.display()))?;
    for warning in &config.warnings {
        log::warn!("{}: {warning}", args.config.display());
    }
    // `--check` prints it below instead.
    let unused = config.unused_report();
    if let (Some(unused), false) = (&unused, args.check) {
        log::warn!("{}: {unused}", args.config.display());
    }
    let notifier = Arc::new(Notifier::from_env());
    let mut options = PoolOptions::from_config(&config.database);
    options.backoff = Backoff {
        base: Duration::from_millis(100),
        cap: STARTUP_BACKOFF_CAP,
    };
    let endpoint = describe_endpoint(&options);
    if args.check {
        if let Some(unused) = &unused {
            println!("{}: {unused}", args.config.display());
        }
        return check(options, &endpoint, &args.config);
    }
    if args.purge_quarantine {
        return purge_quarantine(&config.cache_folder);
    }

    let (events, inbox) = mpsc::channel();
    let mounted_at = Arc::new(OnceLock::new());
    spawn_signal_thread(signals, events.clone(), Arc::clone(&mounted_at))?;

    // Before waiting for the database: a stale mount left by a killed server is detached
    // (and a live one refused) at once, not only once the database answers.
    let configured = args
        .mountpoint
        .clone()
        .unwrap_or_else(|| config.mount_point.clone());
    let mountpoint = normalise_mountpoint(&configured)?;
    config
        .check_folders(&mountpoint)
        .map_err(|e| format!("{}: {e}", args.config.display()))?;
    prepare_mountpoint(&mountpoint)?;

    options.start_policy = StartPolicy::Background;
    let pool = Pool::new(options).map_err(|e| format!("cannot start the connection pool: {e}"))?;
    if let Waited::Stopped(signal) =
        wait_for_database(&pool, &endpoint, args.wait_db, &notifier, &inbox)?
    {
        let _ = notifier.stopping();
        log::info!(
            "{signal} while waiting for the database at {endpoint}: stopped, nothing was mounted"
        );
        pool.close();
        return Ok(());
    }

    let meta = Arc::new(MysqlMeta::new(pool.clone()));
    let lease_wait = LeaseWait {
        ttl: config.owner_lease_timeout,
        wait: args.wait_lease,
        notifier: &notifier,
        inbox: &inbox,
    };
    let Some(mut keeper) = take_lease(&meta, &mountpoint, lease_wait)? else {
        return Ok(());
    };
    // From here on a failed start gives the lease back.
    let abort = |keeper: &mut Keeper, message: String| {
        keeper.stop_and_release();
        pool.close();
        message
    };

    // Start-up recovery (journal replay, orphan purge, cache sweep) runs under the lease.
    let cache = match Cache::open(&config.cache_folder) {
        Ok(cache) => cache,
        Err(e) => {
            let message = format!("cache folder {}: {e}", config.cache_folder.display());
            return Err(abort(&mut keeper, message));
        }
    };
    let tier = TierOptions::from_config(&config).map(|options| {
        log::info!(
            "archive tier: volumes in {}, {} drive(s)",
            options.archive_folder.display(),
            options.drives
        );
        Arc::new(Tier::new(
            options,
            Arc::clone(&meta) as Arc<dyn MetaEngine>,
            cache.clone(),
        ))
    });
    let fs_options = FsOptions {
        rebind_cache: args.rebind_cache,
        fence: keeper.fence(),
        tier,
        ..FsOptions::from_config(&config)
    };
    let fs = match VsFs::with_options(meta, cache, fs_options) {
        Ok(fs) => fs,
        Err(e) => {
            let message = format!("cannot start the file system: {e}");
            return Err(abort(&mut keeper, message));
        }
    };
    let stats = fs.stats_handle();
    // Again: another server may have mounted here while this one waited.
    if let Err(message) = prepare_mountpoint(&mountpoint) {
        drop(fs);
        return Err(abort(&mut keeper, message));
    }
    if config.mount_allow_suid_dev {
        log::warn!(
            "MountAllowSuidDev is set: setuid bits and device files in {} are honoured, so \
             every catalog writer can become root on this host",
            mountpoint.display()
        );
    }
    let mut session =
        match fuser::Session::new(fs, &mountpoint, &mount_config(config.mount_allow_suid_dev)) {
            Ok(session) => session,
            Err(e) => {
                let message = format!("cannot mount {}: {e}", mountpoint.display());
                return Err(abort(&mut keeper, message));
            }
        };
    stats.set_notifier(session.notifier());
    let _ = mounted_at.set(mountpoint.clone());
    let unmounter = session.unmount_callable();
    let connection = mount_entry(&mountpoint).map(|entry| entry.connection_id());
    let session = {
        let events = events.clone();
        std::thread::Builder::new()
            .name("vs-fuse-session".into())
            .spawn(move || {
                let _ = events.send(Event::SessionEnded(session.run()));
            })
            .map_err(|e| abort(&mut keeper, format!("cannot start the session thread: {e}")))?
    };
    log::info!("mounted {}; catalog at {endpoint}", mountpoint.display());
    let _ = notifier.ready();
    let _ = notifier.status(&format!(
        "serving {}; catalog at {endpoint}",
        mountpoint.display()
    ));

    let mut server = Server {
        mountpoint,
        pool,
        stats,
        notifier,
        unmounter: Some(unmounter),
        connection,
        session,
        prober: Prober::default(),
        keeper,
    };
    server.serve_until_stopped(&inbox)
}

/// A mounted file system being served.
struct Server {
    mountpoint: PathBuf,
    pool: Pool,
    stats: FsStatsHandle,
    notifier: Arc<Notifier>,
    /// fuser's own unmount, used for the first attempt so fuser does not unmount again.
    unmounter: Option<fuser::SessionUnmounter>,
    /// The FUSE connection's number under /sys/fs/fuse/connections.
    connection: Option<u64>,
    session: JoinHandle<()>,
    prober: Prober,
    /// Renews the owner lease; released at the end.
    keeper: Keeper,
}

/// How often STATUS is checked against the database writer when there are several nodes.
const STATUS_REFRESH: Duration = Duration::from_secs(2);

/// What STATUS last showed of the database nodes: the writer and how often it changed.
struct NodeStatus {
    next: Instant,
    shown: (String, u64),
}

/// Where the shutdown is.
#[derive(Clone, Copy)]
enum Phase {
    Serving,
    /// Unmounted or detached; open files may finish until the deadline.
    Draining(Instant),
    /// The connection was aborted; the session ends by the deadline.
    CutOff(Instant),
}

impl Server {
    fn serve_until_stopped(&mut self, inbox: &mpsc::Receiver<Event>) -> Result<(), String> {
        let watchdog = self.notifier.watchdog_interval().map(|d| d / 2);
        // With several database nodes, STATUS follows the writer (checked every few seconds).
        let mut status = (self.pool.options().nodes().len() > 1).then(|| NodeStatus {
            next: Instant::now() + STATUS_REFRESH,
            shown: (String::new(), 0),
        });
        let mut next_watchdog = watchdog.map(|period| Instant::now() + period);
        let mut phase = Phase::Serving;
        loop {
            let timeout = match phase {
                Phase::Serving => [next_watchdog, status.as_ref().map(|s| s.next)]
                    .into_iter()
                    .flatten()
                    .min()
                    .map(|at| at.saturating_duration_since(Instant::now())),
                Phase::Draining(deadline) | Phase::CutOff(deadline) => {
                    Some(deadline.saturating_duration_since(Instant::now()))
                }
            };
            let event = match timeout {
                Some(timeout) => match inbox.recv_timeout(timeout) {
                    Ok(event) => Some(event),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Some(Event::Stop("end of events")),
                },
                None => Some(inbox.recv().unwrap_or(Event::Stop("end of events"))),
            };
            phase = match (event, phase) {
                (None, Phase::Serving) => {
                    let now = Instant::now();
                    if let (Some(period), Some(at)) = (watchdog, next_watchdog) {
                        if now >= at {
                            self.feed_watchdog(period);
                            next_watchdog = Some(now + period);
                        }
                    }
                    if let Some(status) = status.as_mut().filter(|s| now >= s.next) {
                        self.show_writer(status);
                        status.next = now + STATUS_REFRESH;
                    }
                    phase
                }
                (None, Phase::Draining(_)) => self.cut_off(),
                (None, Phase::CutOff(_)) => {
                    log::warn!(
                        "the file system session did not end within {ABORT_WAIT:?}; saving and exiting"
                    );
                    let saved = self.stats.finish();
                    self.close();
                    return saved.map_err(|unsaved| format!("stopped, but {unsaved}"));
                }
                (Some(Event::Report), phase) => {
                    self.report();
                    phase
                }
                (Some(Event::Stop(signal)), Phase::Serving) => self.begin_stop(signal),
                // A second signal is handled by the signal thread itself.
                (Some(Event::Stop(_)), phase) => phase,
                (Some(Event::SessionEnded(result)), phase) => {
                    let _ = self.notifier.stopping();
                    // The file system was dropped with the session: nothing changes any more.
                    let saved = self.stats.finish();
                    self.close();
                    if let Err(unsaved) = saved {
                        return Err(format!(
                            "unmounted {}, but {unsaved}",
                            self.mountpoint.display()
                        ));
                    }
                    return match (result, phase) {
                        (Ok(()), Phase::Serving) => Err(format!(
                            "the mount at {} went away without a stop signal (unmounted from outside?)",
                            self.mountpoint.display()
                        )),
                        (Err(err), Phase::Serving) => {
                            Err(format!("file system session failed: {err}"))
                        }
                        (result, _) => {
                            if let Err(err) = result {
                                log::warn!("file system session ended with: {err}");
                            }
                            log::info!("unmounted {}; bye", self.mountpoint.display());
                            Ok(())
                        }
                    };
                }
            };
        }
    }

    /// First stop signal: save, unmount (or detach), and let open files finish.
    fn begin_stop(&mut self, signal: &str) -> Phase {
        let _ = self.notifier.stopping();
        let _ = self.notifier.status(&format!(
            "stopping: unmounting {}",
            self.mountpoint.display()
        ));
        log::info!(
            "{signal}: stopping; saving open files and unmounting {}",
            self.mountpoint.display()
        );
        // Sizes and times of files still open reach the catalog before the unmount.
        self.stats.flush();
        // A file closed just before the signal may not have had its close answered yet;
        // unmounting first would make the kernel refuse that answer. Files held open by
        // processes are never closed: for them the wait ends at CLOSE_WAIT.
        self.stats.await_closed(Instant::now() + CLOSE_WAIT);
        if !unmount_gracefully(&mut self.unmounter, &self.mountpoint) {
            let open = self.stats.snapshot().open_handles;
            log::warn!(
                "{} is busy ({open} open files): detached it; open files may finish for up to {SHUTDOWN_GRACE:?}",
                self.mountpoint.display()
            );
            let _ = self.notifier.status(&format!(
                "stopping: {open} files still open on the detached {}; waiting up to {} s",
                self.mountpoint.display(),
                SHUTDOWN_GRACE.as_secs()
            ));
        }
        Phase::Draining(Instant::now() + SHUTDOWN_GRACE)
    }

    /// Files still open after the grace period: abort the FUSE connection so no request can
    /// change anything any more; the session then ends and saves what is left.
    fn cut_off(&mut self) -> Phase {
        let open = self.stats.snapshot().open_handles;
        log::warn!(
            "{open} files on {} still open after {SHUTDOWN_GRACE:?}; cutting them off",
            self.mountpoint.display()
        );
        let aborted = match self.connection {
            Some(id) => abort_connection(id),
            None => Err("the FUSE connection number is unknown".to_string()),
        };
        match aborted {
            Ok(()) => Phase::CutOff(Instant::now() + ABORT_WAIT),
            Err(err) => {
                // Exiting closes the FUSE device, which aborts the connection too; a write
                // answered between this save and the exit keeps its data but not its size.
                log::warn!("cannot abort the FUSE connection ({err}); saving and exiting");
                self.stats.flush();
                Phase::CutOff(Instant::now())
            }
        }
    }

    /// Feeds the watchdog only while the session runs and the mount answers `statfs`.
    fn feed_watchdog(&self, period: Duration) {
        if self.session.is_finished() {
            log::warn!("watchdog not fed: the file system session has ended");
            return;
        }
        let timeout = (period / 2).min(PROBE_TIMEOUT_MAX);
        match self.prober.probe(&self.mountpoint, timeout) {
            Ok(()) => {
                let _ = self.notifier.watchdog();
            }
            Err(err) => log::warn!("watchdog not fed: {err}"),
        }
    }

    /// Updates systemd's STATUS when the database writer changed (several nodes only).
    fn show_writer(&self, status: &mut NodeStatus) {
        let stats = self.pool.stats();
        let now = (stats.writer.clone(), stats.failovers + stats.failbacks);
        if now == status.shown {
            return;
        }
        let _ = self.notifier.status(&format!(
            "serving {}; {}",
            self.mountpoint.display(),
            stats.nodes_summary()
        ));
        status.shown = now;
    }

    fn report(&self) {
        let fs = self.stats.snapshot();
        let tier = self
            .stats
            .tier_summary()
            .unwrap_or_else(|| "none".to_owned());
        log::info!(
            "statistics: serving {}: {} open files, {} inodes with unsaved sizes or times; pool: {}; \
             owner lease: {}; archive tier: {tier}",
            self.mountpoint.display(),
            fs.open_handles,
            fs.unsaved_inodes,
            pool_summary(&self.pool.stats()),
            self.keeper.describe()
        );
    }

    /// Nothing changes any more: gives the owner lease back and closes the pool.
    fn close(&mut self) {
        self.keeper.stop_and_release();
        self.pool.close();
    }
}

/// How [`take_lease`] waits for a lease another server holds.
struct LeaseWait<'a> {
    /// OwnerLeaseTimeout.
    ttl: Duration,
    /// `--wait-lease`.
    wait: Option<Duration>,
    notifier: &'a Arc<Notifier>,
    inbox: &'a mpsc::Receiver<Event>,
}

/// Migrates the catalog (the lease table is part of its schema; the file system's own
/// migration is then a no-op) and takes its owner lease, waiting for it as `how` says, then
/// keeps it on a heartbeat. `None`: a stop signal came while waiting (the pool is closed).
fn take_lease(
    meta: &Arc<MysqlMeta>,
    mountpoint: &Path,
    how: LeaseWait<'_>,
) -> Result<Option<Keeper>, String> {
    let pool = meta.pool();
    let fail = |message: String| {
        pool.close();
        message
    };
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    meta.migrate(uid, gid)
        .map_err(|e| fail(format!("cannot migrate the catalog: {e}")))?;
    let location = meta.location();
    let catalog = format!("catalog {} at {}", location.database, location.server);
    let me = LeaseHolder::this_process(mountpoint)
        .map_err(|e| fail(format!("cannot make an owner lease token: {e}")))?;
    let took = lease::take(
        &**meta,
        &me,
        how.ttl,
        how.wait,
        &catalog,
        |pause, status| {
            let _ = how.notifier.status(status);
            pause_for_lease(how.inbox, pause, pool)
        },
    )
    .map_err(fail)?;
    let (beat, taken_at) = match took {
        Took::Taken { beat, at } => (beat, at),
        Took::Stopped(signal) => {
            let _ = how.notifier.stopping();
            log::info!("{signal} while waiting for the owner lease: stopped, nothing was mounted");
            pool.close();
            return Ok(None);
        }
    };
    let notifier = Arc::clone(how.notifier);
    let on_lost = Box::new(move |reason: &str| {
        let _ = notifier.status(&format!("serving reads only, every change fails: {reason}"));
    });
    let lease: Arc<dyn OwnerLease> = Arc::clone(meta) as Arc<dyn OwnerLease>;
    Keeper::start(lease, me, how.ttl, beat, taken_at, on_lost)
        .map(Some)
        .map_err(|e| fail(format!("cannot start the owner lease's heartbeat: {e}")))
}

/// Waits up to `pause` while waiting for the owner lease, answering SIGUSR1; returns the
/// stop signal that came, if one did.
fn pause_for_lease(
    inbox: &mpsc::Receiver<Event>,
    pause: Duration,
    pool: &Pool,
) -> Option<&'static str> {
    let deadline = Instant::now() + pause;
    loop {
        match inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::Stop(signal)) => return Some(signal),
            Ok(Event::Report) => log::info!(
                "statistics: waiting for the owner lease; pool: {}",
                pool_summary(&pool.stats())
            ),
            Ok(Event::SessionEnded(_)) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => return None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Some("end of events"),
        }
    }
}

/// `host:port as user U` (`h1:p1,h2:p2 as user U` with several nodes) or `SOCKET as user
/// U`: where the catalog lives, without the password.
fn describe_endpoint(options: &PoolOptions) -> String {
    match &options.socket {
        Some(socket) => format!("{} as user {}", socket.display(), options.user),
        None => {
            // Every node, in order of preference, when DatabaseHost lists several.
            let nodes: Vec<String> = options.nodes().iter().map(ToString::to_string).collect();
            format!("{} as user {}", nodes.join(","), options.user)
        }
    }
}

fn pool_summary(stats: &PoolStats) -> String {
    // With several database nodes: the writer, failovers and each node's health.
    let nodes = if stats.nodes.len() > 1 {
        format!("; {}", stats.nodes_summary())
    } else {
        String::new()
    };
    format!(
        "{} connections ({} in use, {} idle), {} opened, {} connect failures, {} checkouts, \
         {} timeouts, {} callers waiting{nodes}",
        stats.in_use + stats.idle,
        stats.in_use,
        stats.idle,
        stats.created,
        stats.connect_failures,
        stats.checkouts,
        stats.timeouts,
        stats.waiters
    )
}

/// Unmounts: first through fuser (so its session does not unmount a second time when it
/// ends), then retrying while the mount is busy, then detaching it lazily (open files keep
/// working until closed; new path lookups no longer reach it). Returns whether it was
/// unmounted rather than detached.
fn unmount_gracefully(unmounter: &mut Option<fuser::SessionUnmounter>, mountpoint: &Path) -> bool {
    let mut last = match unmounter.take().map(|mut u| u.unmount()) {
        Some(Ok(())) => return true,
        Some(Err(err)) => err,
        None => io::Error::from_raw_os_error(libc::EINVAL),
    };
    let started = Instant::now();
    while last.raw_os_error() == Some(libc::EBUSY) && started.elapsed() < UNMOUNT_RETRY {
        // Busy: an operation or open file is in flight. The kernel gives no notice when
        // the last one goes, so look again shortly.
        std::thread::sleep(Duration::from_millis(50));
        match nix::mount::umount2(mountpoint, nix::mount::MntFlags::empty()) {
            Ok(()) => return true,
            Err(errno) => last = io::Error::from(errno),
        }
    }
    if last.raw_os_error() != Some(libc::EBUSY) {
        log::warn!("unmount {}: {last}", mountpoint.display());
    }
    lazy_unmount(mountpoint);
    false
}

/// Checks that a mount answers `statfs` in time, on a helper thread so a hung mount cannot
/// hang the caller. At most one check is in flight: while an earlier one has not returned,
/// a new call waits for that one instead of starting another (a hung mount costs one thread).
#[derive(Default)]
struct Prober {
    pending: parking_lot::Mutex<Option<mpsc::Receiver<io::Result<()>>>>,
}

impl Prober {
    fn probe(&self, path: &Path, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut pending = self.pending.lock();
        if let Some(earlier) = pending.as_ref() {
            if earlier.recv_timeout(timeout).is_err() {
                return Err(format!(
                    "statfs {} has still not answered an earlier check",
                    path.display()
                ));
            }
            *pending = None;
        }
        let (sender, receiver) = mpsc::channel();
        let target = path.to_path_buf();
        std::thread::Builder::new()
            .name("vs-health".into())
            .spawn(move || {
                let _ = sender.send(statfs(&target));
            })
            .map_err(|e| format!("cannot start the health check: {e}"))?;
        match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(format!("statfs {}: {err}", path.display())),
            Err(_) => {
                *pending = Some(receiver);
                Err(format!(
                    "statfs {} did not answer within {timeout:?}",
                    path.display()
                ))
            }
        }
    }
}

fn statfs(path: &Path) -> io::Result<()> {
    nix::sys::statvfs::statvfs(path)
        .map(|_| ())
        .map_err(io::Error::from)
}

/// `--check`: the config is valid (already loaded) and the database answers; warns when
/// the catalog user can do more than the catalog needs.
fn check(mut options: PoolOptions, endpoint: &str, path: &Path) -> Result<(), String> {
    options.start_policy = StartPolicy::FailFast;
    options.initial_size = 1;
    let database = options.database.clone().unwrap_or_default();
    let pool = Pool::new(options).map_err(|e| {
        format!(
            "{}: configuration valid, but database at {endpoint}: {e}",
            path.display()
        )
    })?;
    let grants = pool.get().map_err(|e| e.to_string()).and_then(|mut conn| {
        conn.query::<String, _>("SHOW GRANTS")
            .map_err(|e| e.to_string())
    });
    pool.close();
    println!(
        "{}: configuration valid; database at {endpoint} reachable",
        path.display()
    );
    match grants {
        Ok(grants) => {
            let excess = privileges::excess(&grants, &database);
            if !excess.is_empty() {
                println!(
                    "warning: the catalog user at {endpoint} can do more than the catalog \
                     needs ({} on `{database}`.*), and anyone with its password can make \
                     files in the mount owned by anyone:",
                    privileges::NEEDED.join(", ")
                );
                for finding in excess {
                    println!("warning:   {finding}");
                }
            }
        }
        Err(err) => println!("warning: cannot list the catalog user's privileges: {err}"),
    }
    Ok(())
}

/// `--purge-quarantine`: removes every sweep folder of the cache's quarantine.
fn purge_quarantine(cache_folder: &Path) -> Result<(), String> {
    let quarantine = Quarantine::new(cache_folder);
    let purged = quarantine
        .purge_all()
        .map_err(|e| format!("cannot purge {}: {e}", quarantine.dir().display()))?;
    println!(
        "{}: removed {} quarantine folders ({} bytes)",
        quarantine.dir().display(),
        purged.folders,
        purged.bytes
    );
    Ok(())
}

/// How the wait for the database ended.
enum Waited {
    Connected,
    Stopped(&'static str),
}

/// Waits until the pool has a connection, reporting progress; honours `--wait-db` (after at
/// least one connect attempt, so 0 means "try once"), SIGUSR1 and stop signals. Uses no
/// CPU while waiting: the pool backs off and this thread sleeps in a wait.
fn wait_for_database(
    pool: &Pool,
    endpoint: &str,
    limit: Option<Duration>,
    notifier: &Notifier,
    inbox: &mpsc::Receiver<Event>,
) -> Result<Waited, String> {
    let started = Instant::now();
    let mut last_report: Option<Instant> = None;
    loop {
        while let Ok(event) = inbox.try_recv() {
            match event {
                Event::Stop(signal) => return Ok(Waited::Stopped(signal)),
                Event::Report => log::info!(
                    "statistics: waiting {:.0} s for the database at {endpoint}; pool: {}",
                    started.elapsed().as_secs_f64(),
                    pool_summary(&pool.stats())
                ),
                Event::SessionEnded(_) => {}
            }
        }
        let left = limit.map(|l| l.saturating_sub(started.elapsed()));
        let slice = match left {
            Some(left) if !left.is_zero() => left.min(WAIT_SLICE),
            _ => WAIT_SLICE,
        };
        let err = match pool.wait_until_connected(slice) {
            Ok(()) => {
                if last_report.is_some() {
                    log::info!(
                        "database at {endpoint} reachable after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(Waited::Connected);
            }
            Err(PoolError::Connect(message)) => readable_error(&message),
            Err(other) => readable_error(&other.to_string()),
        };
        // Until the first attempt has failed there is nothing to report.
        if pool.stats().connect_failures == 0 {
            continue;
        }
        if last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            log::warn!(
                "database at {endpoint} unreachable: {err}; retrying with backoff (at most {} s apart)",
                STARTUP_BACKOFF_CAP.as_secs()
            );
            last_report = Some(Instant::now());
        }
        let _ = notifier.status(&format!("waiting for the database at {endpoint}: {err}"));
        if let Some(limit) = limit.filter(|&l| started.elapsed() >= l) {
            return Err(format!(
                "database at {endpoint} not reachable within {} s (--wait-db): {err}",
                limit.as_secs()
            ));
        }
    }
}

/// The mysql crate's message without its `DriverError { ... }` wrapper, for the log and
/// `systemctl status`.
fn readable_error(message: &str) -> String {
    message
        .strip_prefix("DriverError { ")
        .and_then(|m| m.strip_suffix(" }"))
        .unwrap_or(message)
        .to_string()
}

/// Blocks the stop signals and SIGUSR1 in this thread (and the threads it starts), so only
/// the signal thread receives them, by `sigwait`.
fn block_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGUSR1] {
        set.add(signal);
    }
    if let Err(err) = set.thread_block() {
        log::warn!("cannot block SIGTERM, SIGINT and SIGUSR1 for the signal thread: {err}");
    }
    set
}

/// Turns blocked signals into events; a second SIGTERM/SIGINT detaches the mount (if one
/// was made) and exits at once with status 1.
fn spawn_signal_thread(
    set: SigSet,
    events: mpsc::Sender<Event>,
    mounted_at: Arc<OnceLock<PathBuf>>,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name("vs-signals".into())
        .spawn(move || {
            let mut stopping = false;
            loop {
                let Ok(signal) = set.wait() else {
                    continue;
                };
                let name = if signal == Signal::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                match signal {
                    Signal::SIGUSR1 => {
                        let _ = events.send(Event::Report);
                    }
                    _ if stopping => {
                        log::warn!("second stop signal ({name}): exiting at once");
                        if let Some(mountpoint) = mounted_at.get() {
                            if mount_entry(mountpoint).is_some_and(|e| e.is_ours()) {
                                lazy_unmount(mountpoint);
                            }
                        }
                        std::process::exit(1);
                    }
                    _ => {
                        stopping = true;
                        let _ = events.send(Event::Stop(name));
                    }
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_lease_takes_whole_seconds() {
        let parse = |args: &[&str]| parse_args(args.iter().map(OsString::from));
        let args = parse(&["--wait-lease", "90"]).unwrap();
        assert_eq!(args.wait_lease, Some(Duration::from_secs(90)));
        assert_eq!(parse(&[]).unwrap().wait_lease, None);
        let err = parse(&["--wait-lease", "soon"]).unwrap_err();
        assert_eq!(
            err,
            (
                "--wait-lease: \"soon\" is not a number of seconds".to_string(),
                2
            )
        );
    }

    #[test]
    fn connect_errors_lose_the_driver_wrapper() {
        assert_eq!(
            readable_error(
                "DriverError { Could not connect to address `h:1': Connection refused }"
            ),
            "Could not connect to address `h:1': Connection refused"
        );
        assert_eq!(
            readable_error("Access denied for user 'x'"),
            "Access denied for user 'x'"
        );
    }

    /// A file system whose `statfs` blocks until the test lets it answer.
    struct SlowStatfs {
        release: parking_lot::Mutex<mpsc::Receiver<()>>,
    }

    impl fuser::Filesystem for SlowStatfs {
        fn statfs(&self, _req: &fuser::Request, _ino: fuser::INodeNo, reply: fuser::ReplyStatfs) {
            let _ = self.release.lock().recv();
            reply.statfs(0, 0, 0, 0, 0, 512, 255, 0);
        }
    }

    #[test]
    fn health_check_fails_on_a_mount_that_does_not_answer() {
        let dir = tempfile::tempdir().unwrap();
        let (release, receiver) = mpsc::channel();
        let fs = SlowStatfs {
            release: parking_lot::Mutex::new(receiver),
        };
        let mut config = fuser::Config::default();
        config.n_threads = Some(2);
        let session = fuser::spawn_mount(fs, dir.path(), &config).expect("mount (needs root)");
        let prober = Prober::default();
        let hung = prober.probe(dir.path(), Duration::from_millis(200));
        assert!(
            hung.as_ref()
                .is_err_and(|e| e.contains("did not answer within")),
            "{hung:?}"
        );
        // Still hung: no second thread is started.
        let again = prober.probe(dir.path(), Duration::from_millis(200));
        assert!(
            again
                .as_ref()
                .is_err_and(|e| e.contains("still not answered")),
            "{again:?}"
        );
        // Let the hung check and one more answer: the next call waits for the earlier
        // check, then checks again.
        release.send(()).unwrap();
        release.send(()).unwrap();
        assert_eq!(prober.probe(dir.path(), Duration::from_secs(30)), Ok(()));
        drop(release);
        session.umount_and_join().unwrap();
    }
}
