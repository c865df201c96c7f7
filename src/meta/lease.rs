//! The owner lease: one server at a time may serve (and change) a catalog.
//!
//! The file system trusts that it is the only writer of its catalog: the kernel caches
//! entries and attributes for long TTLs, the server keeps sizes and times in memory between
//! saves, and at start it purges inodes no entry names (which would be another server's
//! open-but-unlinked files). All of that is valid only while this server holds the lease.
//!
//! The lease is one row of a replicated InnoDB table (`vs_owner_lease`), not a `GET_LOCK`,
//! which is local to one node of a Galera cluster. The holder names itself ([`LeaseHolder`]:
//! a random token per server run, host, pid, mount point) and renews the row on a heartbeat;
//! expiry is judged by the database's clock, never by a server's, so hosts whose clocks
//! disagree still agree on who holds it. A server on the same host can also prove a holder
//! dead at once (its process is gone: [`holder_is_gone`]), so a restart after a crash does
//! not wait out the lease.
//!
//! [`OwnerFence`] is what the file system checks before every change: the lease keeper
//! revokes it, with the reason, when the lease is lost while mounted, and every change
//! fails (`EIO`) from then on rather than risk two writers. It also lapses on its own when
//! the lease was not renewed for its whole term (the database unreachable): changes are
//! refused until a renewal shows the lease is still this server's.

use std::fmt;
use std::io::Read;
use std::ops::RangeInclusive;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::MetaError;

/// Whether this server still holds the owner lease; cheap to clone and to check.
#[derive(Debug, Clone, Default)]
pub struct OwnerFence {
    state: Arc<RwLock<FenceState>>,
}

#[derive(Debug, Default)]
struct FenceState {
    /// Why changes stopped for good.
    revoked: Option<String>,
    /// Changes stop at this instant unless the lease is renewed before ([`OwnerFence::hold_until`]).
    lapses_at: Option<Instant>,
}

impl OwnerFence {
    /// A fence that lets changes through until [`OwnerFence::revoke`].
    pub fn new() -> OwnerFence {
        OwnerFence::default()
    }

    /// Stops every later change; `reason` says why (kept from the first call).
    pub fn revoke(&self, reason: impl Into<String>) {
        let mut state = self.state.write();
        if state.revoked.is_none() {
            state.revoked = Some(reason.into());
        }
    }

    /// Lets changes through until `deadline` (the end of the lease's term as this server
    /// can know it); called after every successful renewal.
    pub fn hold_until(&self, deadline: Instant) {
        self.state.write().lapses_at = Some(deadline);
    }

    /// Whether [`OwnerFence::revoke`] was called.
    pub fn is_revoked(&self) -> bool {
        self.state.read().revoked.is_some()
    }

    /// `Ok` while changes may go on; otherwise why they may not.
    pub fn check(&self) -> Result<(), String> {
        let state = self.state.read();
        if let Some(reason) = &state.revoked {
            return Err(reason.clone());
        }
        match state.lapses_at {
            Some(at) if Instant::now() >= at => Err(format!(
                "the owner lease was not renewed in time (its term ended {:.1} s ago): \
                 changes wait until a renewal shows it is still this server's",
                at.elapsed().as_secs_f64()
            )),
            _ => Ok(()),
        }
    }
}

/// Who holds (or asks for) the lease: one run of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// Random per server run (32 hex digits); empty in a released row.
    pub token: String,
    /// The host name the server runs on.
    pub host: String,
    /// Its process id (in its own pid namespace).
    pub pid: u32,
    /// Where it mounts the catalog.
    pub mount_point: PathBuf,
    /// `<boot id> <pid namespace> <process start in clock ticks>`: lets a server on the same
    /// host (and kernel, and pid namespace) tell whether the holder still runs. Empty when
    /// unknown, which proves nothing.
    pub process: String,
}

impl LeaseHolder {
    /// This process, serving at `mount_point`, with a fresh token.
    pub fn this_process(mount_point: &Path) -> std::io::Result<LeaseHolder> {
        Ok(LeaseHolder {
            token: new_token()?,
            host: host_name(),
            pid: std::process::id(),
            mount_point: mount_point.to_path_buf(),
            process: process_mark(std::process::id()).unwrap_or_default(),
        })
    }
}

impl fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vfsserver pid {} on host {} (mount point {})",
            self.pid,
            self.host,
            self.mount_point.display()
        )
    }
}

/// The lease row as stored; times are the database's clock, in ns since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Who holds it (token empty: released, the rest says who held it last).
    pub holder: LeaseHolder,
    /// When this holder took it.
    pub since_ns: i64,
    /// When it was last renewed.
    pub renewed_ns: i64,
    /// When it expires unless renewed.
    pub expires_ns: i64,
    /// Counts renewals: a holder that finds another count than it wrote knows the row was
    /// changed under it (a restored backup).
    pub beat: u64,
}

/// A lease someone else holds, as seen by the database's clock now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// The holder.
    pub holder: LeaseHolder,
    /// How long it has held the lease.
    pub held_for: Duration,
    /// How long ago it last renewed it.
    pub renewed_ago: Duration,
    /// How long until it expires unless renewed.
    pub expires_in: Duration,
}

impl LeaseState {
    fn of(record: &LeaseRecord, now_ns: i64) -> LeaseState {
        let span = |from: i64, to: i64| Duration::from_nanos(to.saturating_sub(from).max(0) as u64);
        LeaseState {
            holder: record.holder.clone(),
            held_for: span(record.since_ns, now_ns),
            renewed_ago: span(record.renewed_ns, now_ns),
            expires_in: span(now_ns, record.expires_ns),
        }
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, holding it for {} s, renewed {} s ago, expires in {} s unless renewed",
            self.holder,
            self.held_for.as_secs(),
            self.renewed_ago.as_secs(),
            self.expires_in.as_secs_f64().ceil() as u64
        )
    }
}

/// What [`OwnerLease::acquire`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The lease is now the caller's; `beat` is the renewal count it wrote.
    Taken {
        /// The renewal count written (pass it to the first [`OwnerLease::renew`]).
        beat: u64,
        /// Who held it before.
        previous: Previous,
    },
    /// Someone else holds it.
    HeldBy(LeaseState),
}

/// Who held the lease before it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// Nobody ever did.
    Nobody,
    /// A server that released it on a clean stop.
    Released(LeaseHolder),
    /// A server that stopped renewing it (killed, crashed, cut off): it expired that long ago.
    Expired(LeaseHolder, Duration),
    /// A server on this host whose process no longer runs (killed or crashed).
    Gone(LeaseHolder),
    /// The caller itself.
    Caller,
}

/// What [`OwnerLease::renew`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Still the caller's; `beat` is the renewal count it wrote.
    Renewed {
        /// Pass it (as `beat..=beat`) to the next renewal.
        beat: u64,
    },
    /// No longer the caller's; nothing was written.
    Lost(Loss),
}

/// Why the lease is no longer the caller's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loss {
    /// Another server holds it now.
    TakenBy(Box<LeaseState>),
    /// The row was released (by whom is not known): the catalog was changed under the server.
    Released,
    /// The row is gone (the catalog was replaced, e.g. by a backup without it).
    Missing,
    /// The row carries the caller's token but another renewal count: the catalog went back
    /// in time (a restored backup taken while this server ran).
    WentBack {
        /// The count found.
        found: u64,
        /// The counts this server may have written last.
        expected: RangeInclusive<u64>,
    },
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::TakenBy(state) => write!(
                f,
                "the lease row now carries another server run's token (another server took \
                 it, or a backup was restored); it names {state}"
            ),
            Loss::Released => f.write_str(
                "the lease row was released under this server (the catalog was restored or changed)",
            ),
            Loss::Missing => f.write_str(
                "the lease row is gone (the catalog was restored from a backup or replaced)",
            ),
            Loss::WentBack { found, expected } => write!(
                f,
                "the lease row went back in time (renewal count {found}, this server wrote \
                 {}..={}): the catalog was restored from a backup",
                expected.start(),
                expected.end()
            ),
        }
    }
}

/// The owner lease of a catalog. Every call is one transaction on the lease row.
pub trait OwnerLease: Send + Sync {
    /// Takes the lease for `ttl` if it is free, released, expired, held by a process on this
    /// host that no longer runs, or already the caller's; otherwise says who holds it.
    fn acquire(&self, me: &LeaseHolder, ttl: Duration) -> Result<Acquired, MetaError>;

    /// Extends the caller's lease to `ttl` from now if the row still carries its token and
    /// a renewal count in `beats` (what it wrote last; a range when an earlier renewal's
    /// outcome is unknown); otherwise changes nothing and says why it is lost.
    fn renew(
        &self,
        me: &LeaseHolder,
        ttl: Duration,
        beats: RangeInclusive<u64>,
    ) -> Result<Renewal, MetaError>;

    /// Gives the lease up (clean stop) so the next server need not wait; returns whether it
    /// was still the caller's (another holder's row is left alone).
    fn release(&self, me: &LeaseHolder) -> Result<bool, MetaError>;
}

/// What an acquisition decides, from the row and the database's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Take the lease.
    Take(Previous),
    /// Leave it to its holder.
    Refuse(LeaseState),
}

/// Whether `me` may take the lease stored as `record` at `now_ns` (database clock);
/// `gone` tells whether a holder's process provably no longer runs.
pub fn decide(
    record: Option<&LeaseRecord>,
    now_ns: i64,
    me: &LeaseHolder,
    gone: impl Fn(&LeaseHolder) -> bool,
) -> Decision {
    let Some(record) = record else {
        return Decision::Take(Previous::Nobody);
    };
    let holder = &record.holder;
    if holder.token.is_empty() {
        return Decision::Take(if holder.host.is_empty() {
            Previous::Nobody
        } else {
            Previous::Released(holder.clone())
        });
    }
    if holder.token == me.token {
        return Decision::Take(Previous::Caller);
    }
    if record.expires_ns <= now_ns {
        let ago = Duration::from_nanos(now_ns.saturating_sub(record.expires_ns) as u64);
        return Decision::Take(Previous::Expired(holder.clone(), ago));
    }
    if gone(holder) {
        return Decision::Take(Previous::Gone(holder.clone()));
    }
    Decision::Refuse(LeaseState::of(record, now_ns))
}

/// Whether the lease stored as `record` is still `me`'s with a renewal count in `beats`;
/// `Ok` holds the count found.
pub fn judge_renewal(
    record: Option<&LeaseRecord>,
    now_ns: i64,
    me: &LeaseHolder,
    beats: &RangeInclusive<u64>,
) -> Result<u64, Loss> {
    let record = record.ok_or(Loss::Missing)?;
    if record.holder.token.is_empty() {
        return Err(Loss::Released);
    }
    if record.holder.token != me.token {
        return Err(Loss::TakenBy(Box::new(LeaseState::of(record, now_ns))));
    }
    if !beats.contains(&record.beat) {
        return Err(Loss::WentBack {
            found: record.beat,
            expected: beats.clone(),
        });
    }
    Ok(record.beat)
}

/// `ttl` in nanoseconds, for the database's clock.
pub fn ttl_ns(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX)
}

/// Whether `holder` ran on this host, kernel and pid namespace (as `me` does) and its
/// process no longer runs: its pid is gone, a zombie, or another process since. Anything
/// that cannot be compared (another host, another container, an unreadable `/proc`) proves
/// nothing and gives false: that holder keeps the lease until it expires.
pub fn holder_is_gone(holder: &LeaseHolder, me: &LeaseHolder) -> bool {
    if holder.host != me.host {
        return false;
    }
    let (Some(theirs), Some(ours)) = (Mark::parse(&holder.process), Mark::parse(&me.process))
    else {
        return false;
    };
    if theirs.boot_id != ours.boot_id || theirs.pid_namespace != ours.pid_namespace {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{}/stat", holder.pid)) {
        Ok(stat) => gone_by_stat(theirs.start_ticks, Some(&stat)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => gone_by_stat(0, None),
        Err(_) => false,
    }
}

/// Whether the process recorded as started at `start_ticks` is gone, given the current
/// `/proc/<pid>/stat` of its pid (`None`: no such process).
fn gone_by_stat(start_ticks: u64, stat: Option<&str>) -> bool {
    let Some(stat) = stat else {
        return true;
    };
    match parse_stat(stat) {
        Some((state, start)) => matches!(state, 'Z' | 'X') || start != start_ticks,
        None => false,
    }
}

/// The state and start time (clock ticks after boot) of a `/proc/<pid>/stat` line.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // The name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); the start time is field 22.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// The parts of [`LeaseHolder::process`].
#[derive(Debug, PartialEq, Eq)]
struct Mark<'a> {
    boot_id: &'a str,
    pid_namespace: &'a str,
    start_ticks: u64,
}

impl<'a> Mark<'a> {
    fn parse(text: &'a str) -> Option<Mark<'a>> {
        let mut parts = text.split(' ');
        let mark = Mark {
            boot_id: parts.next().filter(|p| !p.is_empty())?,
            pid_namespace: parts.next().filter(|p| !p.is_empty())?,
            start_ticks: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(mark)
    }
}

/// `<boot id> <pid namespace> <start ticks>` of process `pid`, if `/proc` tells.
fn process_mark(pid: u32) -> Option<String> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, start) = parse_stat(&stat)?;
    let namespace = String::from_utf8_lossy(namespace.as_os_str().as_bytes()).into_owned();
    let mark = format!("{} {namespace} {start}", boot_id.trim());
    Mark::parse(&mark).is_some().then_some(mark)
}

/// This host's name (of this UTS namespace), or `unknown`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// A random 128-bit token as 32 lowercase hex digits (from the kernel's random source).
fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The lease kept in memory, with a clock the caller moves: for tests of what uses the
/// lease, and as the model the database engines follow.
#[derive(Debug)]
pub struct MemoryLease {
    inner: Mutex<MemoryState>,
}

#[derive(Debug)]
struct MemoryState {
    record: Option<LeaseRecord>,
    now_ns: i64,
    unavailable: bool,
}

impl Default for MemoryLease {
    fn default() -> Self {
        MemoryLease {
            inner: Mutex::new(MemoryState {
                record: None,
                now_ns: 1_000_000_000_000_000_000,
                unavailable: false,
            }),
        }
    }
}

impl MemoryLease {
    /// A free lease.
    pub fn new() -> MemoryLease {
        MemoryLease::default()
    }

    /// Moves the lease's clock forward.
    pub fn advance(&self, by: Duration) {
        self.inner.lock().now_ns += ttl_ns(by);
    }

    /// The row as stored.
    pub fn record(&self) -> Option<LeaseRecord> {
        self.inner.lock().record.clone()
    }

    /// Replaces the row (as a restore or another server would).
    pub fn set_record(&self, record: Option<LeaseRecord>) {
        self.inner.lock().record = record;
    }

    /// Makes every call fail as if the database could not be reached.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.inner.lock().unavailable = unavailable;
    }
}

impl MemoryState {
    fn reachable(&self) -> Result<(), MetaError> {
        if self.unavailable {
            return Err(MetaError::Unavailable(
                "memory lease set unavailable".into(),
            ));
        }
        Ok(())
    }
}

impl OwnerLease for MemoryLease {
    fn acquire(&self, me: &LeaseHolder, ttl: Duration) -> Result<Acquired, MetaError> {
        let mut state = self.inner.lock();
        state.reachable()?;
        let now = state.now_ns;
        match decide(state.record.as_ref(), now, me, |h| holder_is_gone(h, me)) {
            Decision::Refuse(held) => Ok(Acquired::HeldBy(held)),
            Decision::Take(previous) => {
                let beat = state.record.as_ref().map_or(0, |r| r.beat) + 1;
                state.record = Some(LeaseRecord {
                    holder: me.clone(),
                    since_ns: now,
                    renewed_ns: now,
                    expires_ns: now.saturating_add(ttl_ns(ttl)),
                    beat,
                });
                Ok(Acquired::Taken { beat, previous })
            }
        }
    }

    fn renew(
        &self,
        me: &LeaseHolder,
        ttl: Duration,
        beats: RangeInclusive<u64>,
    ) -> Result<Renewal, MetaError> {
        let mut state = self.inner.lock();
        state.reachable()?;
        let now = state.now_ns;
        match judge_renewal(state.record.as_ref(), now, me, &beats) {
            Err(loss) => Ok(Renewal::Lost(loss)),
            Ok(found) => {
                let record = state.record.as_mut().expect("judged present");
                record.beat = found + 1;
                record.renewed_ns = now;
                record.expires_ns = now.saturating_add(ttl_ns(ttl));
                Ok(Renewal::Renewed { beat: found + 1 })
            }
        }
    }

    fn release(&self, me: &LeaseHolder) -> Result<bool, MetaError> {
        let mut state = self.inner.lock();
        state.reachable()?;
        let now = state.now_ns;
        match state.record.as_mut() {
            Some(record) if record.holder.token == me.token => {
                record.holder.token.clear();
                record.expires_ns = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(15);

    fn holder(token: &str, host: &str) -> LeaseHolder {
        LeaseHolder {
            token: token.into(),
            host: host.into(),
            pid: 4242,
            mount_point: PathBuf::from("/mnt/vs"),
            process: String::new(),
        }
    }

    fn record(holder: LeaseHolder, expires_ns: i64) -> LeaseRecord {
        LeaseRecord {
            holder,
            since_ns: 0,
            renewed_ns: 0,
            expires_ns,
            beat: 7,
        }
    }

    #[test]
    fn a_revoked_fence_stops_changes_with_the_first_reason() {
        let fence = OwnerFence::new();
        let seen_by_fs = fence.clone();
        assert_eq!(seen_by_fs.check(), Ok(()));
        fence.revoke("lease taken by host b");
        fence.revoke("later reason");
        assert_eq!(seen_by_fs.check(), Err("lease taken by host b".to_string()));
        assert!(fence.is_revoked());
    }

    #[test]
    fn a_fence_lapses_at_the_end_of_its_term_until_renewed() {
        let fence = OwnerFence::new();
        fence.hold_until(Instant::now() + Duration::from_secs(3600));
        assert_eq!(fence.check(), Ok(()));
        fence.hold_until(Instant::now());
        let lapsed = fence.check();
        assert!(
            lapsed
                .as_ref()
                .is_err_and(|e| e.contains("not renewed in time")),
            "{lapsed:?}"
        );
        fence.hold_until(Instant::now() + Duration::from_secs(3600));
        assert_eq!(
            fence.check(),
            Ok(()),
            "a renewal lets changes through again"
        );
        assert!(!fence.is_revoked());
    }

    #[test]
    fn free_released_expired_and_own_leases_are_taken() {
        let me = holder("me", "a");
        let never = |_: &LeaseHolder| false;
        assert_eq!(
            decide(None, 100, &me, never),
            Decision::Take(Previous::Nobody)
        );
        let placeholder = record(holder("", ""), 0);
        assert_eq!(
            decide(Some(&placeholder), 100, &me, never),
            Decision::Take(Previous::Nobody)
        );
        let released = record(holder("", "b"), 0);
        assert_eq!(
            decide(Some(&released), 100, &me, never),
            Decision::Take(Previous::Released(holder("", "b")))
        );
        let expired = record(holder("other", "b"), 40);
        assert_eq!(
            decide(Some(&expired), 100, &me, never),
            Decision::Take(Previous::Expired(
                holder("other", "b"),
                Duration::from_nanos(60)
            ))
        );
        let mine = record(holder("me", "a"), 1000);
        assert_eq!(
            decide(Some(&mine), 100, &me, never),
            Decision::Take(Previous::Caller)
        );
    }

    #[test]
    fn a_live_holder_keeps_the_lease_and_is_named() {
        let me = holder("me", "a");
        let mut held = record(holder("other", "b"), 15_000_000_000);
        held.since_ns = 2_000_000_000;
        held.renewed_ns = 9_000_000_000;
        let decision = decide(Some(&held), 10_000_000_000, &me, |_| false);
        let Decision::Refuse(state) = decision else {
            panic!("taken from a live holder: {decision:?}");
        };
        assert_eq!(
            state.to_string(),
            "vfsserver pid 4242 on host b (mount point /mnt/vs), holding it for 8 s, \
             renewed 1 s ago, expires in 5 s unless renewed"
        );
    }

    #[test]
    fn a_holder_proven_gone_loses_the_lease_before_it_expires() {
        let me = holder("me", "a");
        let held = record(holder("other", "a"), 1000);
        assert_eq!(
            decide(Some(&held), 100, &me, |h| h.token == "other"),
            Decision::Take(Previous::Gone(holder("other", "a")))
        );
    }

    #[test]
    fn a_renewal_needs_the_token_and_a_count_this_server_wrote() {
        let me = holder("me", "a");
        let mine = record(holder("me", "a"), 1000);
        assert_eq!(judge_renewal(Some(&mine), 100, &me, &(7..=7)), Ok(7));
        assert_eq!(judge_renewal(Some(&mine), 100, &me, &(6..=7)), Ok(7));
        assert_eq!(
            judge_renewal(Some(&mine), 100, &me, &(8..=8)),
            Err(Loss::WentBack {
                found: 7,
                expected: 8..=8
            })
        );
        assert_eq!(judge_renewal(None, 100, &me, &(7..=7)), Err(Loss::Missing));
        let released = record(holder("", "a"), 0);
        assert_eq!(
            judge_renewal(Some(&released), 100, &me, &(7..=7)),
            Err(Loss::Released)
        );
        let theirs = record(holder("other", "b"), 1000);
        let lost = judge_renewal(Some(&theirs), 100, &me, &(7..=7));
        assert!(
            matches!(&lost, Err(Loss::TakenBy(s)) if s.holder.host == "b"),
            "{lost:?}"
        );
    }

    #[test]
    fn proc_stat_gives_state_and_start_even_with_odd_names() {
        let stat = "123 (a) b (c)) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    98765 1000 100 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(('S', 98765)));
        assert!(!gone_by_stat(98765, Some(stat)), "same process");
        assert!(
            gone_by_stat(11111, Some(stat)),
            "pid reused by another process"
        );
        assert!(gone_by_stat(98765, None), "no such pid");
        let zombie = stat.replace(") S ", ") Z ");
        assert!(gone_by_stat(98765, Some(&zombie)), "a zombie is dead");
        assert!(
            !gone_by_stat(98765, Some("garbage")),
            "unreadable proves nothing"
        );
    }

    #[test]
    fn this_process_is_alive_and_a_vanished_one_on_this_host_is_gone() {
        let me = LeaseHolder::this_process(Path::new("/mnt/a")).unwrap();
        assert_eq!(me.token.len(), 32, "{me:?}");
        assert!(Mark::parse(&me.process).is_some(), "{me:?}");
        let other = LeaseHolder::this_process(Path::new("/mnt/b")).unwrap();
        assert_ne!(me.token, other.token);
        assert!(!holder_is_gone(&other, &me), "this very process runs");

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let mut dead = other.clone();
        dead.pid = pid;
        dead.process = process_mark(pid).unwrap_or_else(|| {
            // Exited before it could be read: mark it as a process that started at tick 0.
            let mark = Mark::parse(&me.process).unwrap();
            format!("{} {} 0", mark.boot_id, mark.pid_namespace)
        });
        child.wait().unwrap();
        assert!(holder_is_gone(&dead, &me), "{dead:?}");

        let mut elsewhere = dead.clone();
        elsewhere.host = "another-host".into();
        assert!(
            !holder_is_gone(&elsewhere, &me),
            "another host proves nothing"
        );
        let mut unknown = dead;
        unknown.process = String::new();
        assert!(!holder_is_gone(&unknown, &me), "no mark proves nothing");
    }

    #[test]
    fn memory_lease_follows_acquire_renew_release() {
        let lease = MemoryLease::new();
        let a = holder("a-token", "a");
        let b = holder("b-token", "b");
        let Acquired::Taken { beat, previous } = lease.acquire(&a, TTL).unwrap() else {
            panic!("a free lease was refused");
        };
        assert_eq!(previous, Previous::Nobody);
        assert!(matches!(lease.acquire(&b, TTL).unwrap(), Acquired::HeldBy(s) if s.holder == a));
        lease.advance(TTL / 3);
        let renewed = lease.renew(&a, TTL, beat..=beat).unwrap();
        assert_eq!(renewed, Renewal::Renewed { beat: beat + 1 });
        lease.advance(TTL);
        let Acquired::Taken { previous, .. } = lease.acquire(&b, TTL).unwrap() else {
            panic!("an expired lease was refused");
        };
        assert_eq!(previous, Previous::Expired(a.clone(), Duration::ZERO));
        assert!(matches!(
            lease.renew(&a, TTL, beat + 1..=beat + 1).unwrap(),
            Renewal::Lost(Loss::TakenBy(_))
        ));
        assert!(!lease.release(&a).unwrap(), "a no longer holds it");
        assert!(lease.release(&b).unwrap());
        let Acquired::Taken { previous, .. } = lease.acquire(&a, TTL).unwrap() else {
            panic!("a released lease was refused");
        };
        assert_eq!(previous, Previous::Released(holder("", "b")));
    }
}
