//! Start-up custody of the cache folder, before anything is served: the cache must belong to
//! this catalog ([`bind_cache`]), and the sweep ([`sweep_cache`], after the core replayed
//! its journal) deletes nothing: data files without an inode go to the quarantine, and a
//! data file longer than its inode's recorded size (a crash after writes whose size never
//! reached the catalog) is cut to it after the bytes past that size were copied to the
//! quarantine.
//!
//! Binding rules (the cache's `identity` against the catalog's `vs_catalog_identity`):
//! - same token: bound, go on;
//! - another token: refuse, naming both (a typo in `DatabaseName`, a fresh database, another
//!   server's catalog);
//! - no identity, no data files, and the catalog has no file with data: a new cache, bind it;
//! - no identity, no data files, but the catalog has files with data: refuse (a second
//!   server or a lost cache would serve them as empty);
//! - no identity but data files (a cache of a version before identities): adopt it if most
//!   of a sample of its data files are regular files of this catalog, else refuse.
//!
//! `--rebind-cache` (`FsOptions::rebind_cache`) overrides a refusal: the cache is bound to
//! this catalog and every data file in it (and its journal) goes to the quarantine first,
//! since none can be proven to belong to this catalog's inodes of the same numbers. The
//! identity is written only after the sweep succeeded.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::cache::identity::CacheIdentity;
use crate::cache::quarantine::Quarantine;
use crate::cache::Cache;
use crate::meta::{now_ns, Kind, MetaEngine, MetaError};

/// Cache files checked against the catalog per round trip.
const SWEEP_BATCH: usize = 1000;
/// Inode numbers named per log line (the rest are counted).
const LOG_INODES: usize = 10;

/// Why the file system did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The catalog failed (unreachable, or an error).
    #[error("catalog: {0}")]
    Catalog(#[from] MetaError),
    /// The cache folder could not be read or written.
    #[error("cache folder {path}: {message}")]
    Cache {
        /// The file or folder.
        path: String,
        /// What failed.
        message: String,
    },
    /// Starting would risk data; the message says why and how to proceed.
    #[error("{0}")]
    Refused(String),
}

/// What start-up does about the binding once the sweep has succeeded.
#[derive(Debug, Default)]
pub struct Binding {
    /// Identity to record in the cache (none: already bound).
    record: Option<CacheIdentity>,
    /// The cache's data cannot be proven to be this catalog's: quarantine all of it.
    pub foreign: bool,
}

impl Binding {
    /// Records the binding in the cache folder (after a successful sweep).
    pub(super) fn commit(self, cache: &Cache) -> Result<(), StartError> {
        if let Some(identity) = self.record {
            identity
                .write(cache.root())
                .map_err(|e| cache_error(&cache.root().join("identity"), e))?;
            log::info!(
                "cache folder {} bound to catalog {} (database {} at {})",
                cache.root().display(),
                identity.catalog,
                identity.database,
                identity.host
            );
        }
        Ok(())
    }
}

/// Checks that `cache` belongs to `catalog` (see the module's rules).
pub(super) fn bind_cache(
    catalog: &dyn MetaEngine,
    cache: &Cache,
    rebind: bool,
) -> Result<Binding, StartError> {
    let token = catalog.identity()?;
    let (database, host) = location(catalog);
    let root = cache.root();
    let ours = CacheIdentity {
        catalog: token.clone(),
        database: database.clone(),
        host: host.clone(),
        bound_ns: now_ns(),
    };
    let bind = |foreign: bool| Binding {
        record: Some(ours.clone()),
        foreign,
    };
    let recorded = CacheIdentity::read(root).map_err(|e| cache_error(&root.join("identity"), e))?;
    let refusal = match recorded {
        Some(recorded) if recorded.catalog == token => {
            return Ok(Binding {
                record: None,
                foreign: false,
            })
        }
        Some(recorded) => format!(
            "cache folder {} belongs to catalog {} (found in database {} at {}), but database \
             {database} at {host} holds catalog {token}. Nothing was changed. If DatabaseName or \
             DatabaseHost is wrong, point it at the cache's catalog; if this cache is to serve \
             catalog {token} from now on, start once with --rebind-cache (every data file in \
             the cache is then moved to {}) or move the cache folder aside.",
            root.display(),
            recorded.catalog,
            recorded.database,
            recorded.host,
            Quarantine::new(root).dir().display()
        ),
        None => {
            let has_data = cache
                .has_data_files()
                .map_err(|e| cache_error(&root.join("data"), e))?;
            if has_data {
                let (known, sampled) = sample_known(catalog, cache)?;
                if known * 2 > sampled {
                    log::warn!(
                        "cache folder {} has no identity (made by an older version): adopted by \
                         catalog {token}, which has inodes for {known} of {sampled} sampled \
                         data files",
                        root.display()
                    );
                    return Ok(bind(false));
                }
                format!(
                    "cache folder {} holds data files but no identity, and catalog {token} \
                     (database {database} at {host}) knows only {known} of {sampled} sampled \
                     ones: it is not this catalog's cache. Nothing was changed. Point \
                     DatabaseName or DatabaseHost at the cache's catalog, or start once with \
                     --rebind-cache (every data file is then moved to {}), or move the cache \
                     folder aside.",
                    root.display(),
                    Quarantine::new(root).dir().display()
                )
            } else if catalog.files_with_data(1)? > 0 {
                format!(
                    "cache folder {} is empty and has no identity, but catalog {token} (database \
                     {database} at {host}) has files with data: their data is in another cache \
                     folder (another server's, or a previous CacheFolder). Nothing was changed. \
                     Set CacheFolder to the catalog's cache; if that cache is lost for good, \
                     start once with --rebind-cache (reads of those files then fail with EIO).",
                    root.display()
                )
            } else {
                return Ok(bind(false));
            }
        }
    };
    if rebind {
        log::warn!("--rebind-cache overrides this refusal: {refusal}");
        log::warn!(
            "--rebind-cache: binding cache folder {} to catalog {token}",
            root.display()
        );
        return Ok(bind(true));
    }
    Err(StartError::Refused(refusal))
}

/// Settings of the start-up sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepOptions {
    /// Quarantine folders older than this many days are removed (0: never).
    pub quarantine_days: u64,
    /// Largest quarantine in bytes; a sweep that would pass it refuses the start.
    pub quarantine_max_size: u64,
}

/// Moves the core's file at `path` (its journal) to the quarantine when the cache is bound
/// to another catalog: it holds that catalog's sizes and is not replayed.
pub(super) fn set_aside_foreign(cache: &Cache, path: &Path) -> Result<(), StartError> {
    if path.exists() {
        let quarantine = Quarantine::new(cache.root());
        let batch = quarantine.batch_dir(SystemTime::now());
        let moved = quarantine
            .take(&batch, None, path)
            .map_err(|e| cache_error(path, e))?;
        log::warn!(
            "journal of another catalog moved to {} (not replayed)",
            moved.display()
        );
    }
    Ok(())
}

/// Removes quarantine folders older than `days` (0: never).
pub(super) fn purge_old_quarantine(cache: &Cache, days: u64) {
    if days == 0 {
        return;
    }
    let quarantine = Quarantine::new(cache.root());
    let age = Duration::from_secs(days.saturating_mul(86_400));
    match quarantine.purge_older_than(age, SystemTime::now()) {
        Ok(purged) if purged.folders > 0 => log::info!(
            "quarantine {}: removed {} folders ({} bytes) older than {days} days \
             (CacheQuarantineDays)",
            quarantine.dir().display(),
            purged.folders,
            purged.bytes
        ),
        Ok(_) => {}
        Err(err) => log::warn!(
            "quarantine {}: cannot remove old folders: {err}",
            quarantine.dir().display()
        ),
    }
}

/// Moves data files without a regular-file inode (all of them when `foreign`) to the
/// quarantine, and cuts data files longer than their inode's recorded size. Runs before
/// mounting, so nothing is in flight; a catalog failure stops the sweep; a quarantine that
/// would grow past `quarantine_max` bytes refuses the start (nothing is deleted).
pub(super) fn sweep_cache(
    catalog: &dyn MetaEngine,
    cache: &Cache,
    quarantine_max: u64,
    foreign: bool,
) -> Result<(), StartError> {
    let quarantine = Quarantine::new(cache.root());
    let batch = quarantine.batch_dir(SystemTime::now());
    let mut held = quarantine
        .size()
        .map_err(|e| cache_error(quarantine.dir(), e))?;
    let mut moved = Tally::default();
    let mut cut = Tally::default();
    for bucket in 0..=255u8 {
        let inos = match cache.bucket_inodes(bucket) {
            Ok(inos) => inos,
            Err(err) => {
                log::warn!("cache sweep: cannot list bucket {bucket:02x}: {err}");
                continue;
            }
        };
        for inos in inos.chunks(SWEEP_BATCH) {
            let known: HashMap<u64, (Kind, u64)> = if foreign {
                HashMap::new()
            } else {
                catalog
                    .sizes(inos)?
                    .into_iter()
                    .map(|(ino, kind, size)| (ino, (kind, size)))
                    .collect()
            };
            for &ino in inos {
                let path = cache.path(ino);
                let len = match std::fs::symlink_metadata(&path) {
                    Ok(meta) => meta.len(),
                    Err(err) => {
                        log::warn!("cache sweep: cannot stat {}: {err}", path.display());
                        continue;
                    }
                };
                match known.get(&ino) {
                    Some(&(Kind::File, size)) => {
                        if len > size {
                            let tail = len - size;
                            if held.saturating_add(tail) > quarantine_max {
                                return Err(over_bound(&path, tail, quarantine_max, held, &batch));
                            }
                            quarantine
                                .keep_tail(&batch, bucket, &path, size)
                                .map_err(|e| cache_error(&path, e))?;
                            cut_to(&path, size).map_err(|e| cache_error(&path, e))?;
                            held += tail;
                            cut.add(ino, tail);
                        }
                    }
                    _ => {
                        if held.saturating_add(len) > quarantine_max {
                            return Err(over_bound(&path, len, quarantine_max, held, &batch));
                        }
                        quarantine
                            .take(&batch, Some(bucket), &path)
                            .map_err(|e| cache_error(&path, e))?;
                        held += len;
                        moved.add(ino, len);
                    }
                }
            }
        }
    }
    if moved.files > 0 {
        log::warn!(
            "cache sweep: moved {} data files without an inode ({} bytes; inodes {}) to {}; \
             removed after CacheQuarantineDays or by `vfsserver --purge-quarantine`",
            moved.files,
            moved.bytes,
            moved.named(),
            batch.display()
        );
    }
    if cut.files > 0 {
        log::warn!(
            "cache sweep: cut {} data files to the size their inode records ({} bytes past \
             the end, written before a crash whose sizes never reached the catalog, copied to \
             {} first; inodes {})",
            cut.files,
            cut.bytes,
            batch.display(),
            cut.named()
        );
    }
    Ok(())
}

/// Files and bytes handled by the sweep, with the first few inode numbers.
#[derive(Default)]
struct Tally {
    files: usize,
    bytes: u64,
    inodes: Vec<u64>,
}

impl Tally {
    fn add(&mut self, ino: u64, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
        if self.inodes.len() < LOG_INODES {
            self.inodes.push(ino);
        }
    }

    fn named(&self) -> String {
        let mut text = self
            .inodes
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if self.files > self.inodes.len() {
            text.push_str(&format!(" and {} more", self.files - self.inodes.len()));
        }
        text
    }
}

/// The refusal when quarantining `bytes` more of `path` would pass the bound.
fn over_bound(path: &Path, bytes: u64, bound: u64, held: u64, batch: &Path) -> StartError {
    StartError::Refused(format!(
        "cache sweep: {bytes} bytes of data file {} are not this catalog's (no inode, or past \
         the inode's recorded size), and moving them to the quarantine would take it past \
         CacheQuarantineMaxSize ({bound} bytes; it holds {held}, this start's files are in \
         {}). Nothing was deleted. Check the quarantine and remove it with `vfsserver \
         --purge-quarantine`, or raise CacheQuarantineMaxSize.",
        path.display(),
        batch.display()
    ))
}

/// Cuts the file at `path` to `size` bytes, durably.
fn cut_to(path: &Path, size: u64) -> io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(size)?;
    file.sync_all()
}

/// Of a sample of the cache's data files (at most one batch), how many are regular files
/// of `catalog`, and how many were sampled.
fn sample_known(catalog: &dyn MetaEngine, cache: &Cache) -> Result<(usize, usize), StartError> {
    let mut sample = Vec::new();
    for bucket in 0..=255u8 {
        let inos = cache
            .bucket_inodes(bucket)
            .map_err(|e| cache_error(&cache.root().join("data"), e))?;
        sample.extend(inos.into_iter().take(SWEEP_BATCH - sample.len()));
        if sample.len() == SWEEP_BATCH {
            break;
        }
    }
    let known = catalog
        .sizes(&sample)?
        .into_iter()
        .filter(|(_, kind, _)| *kind == Kind::File)
        .count();
    Ok((known, sample.len()))
}

/// The database name and server of `catalog`, for messages and the identity record.
fn location(catalog: &dyn MetaEngine) -> (String, String) {
    let location = catalog.location();
    (location.database, location.server)
}

/// The error for `path` of the cache folder failing with `err`.
pub fn cache_error(path: &Path, err: io::Error) -> StartError {
    StartError::Cache {
        path: path.display().to_string(),
        message: err.to_string(),
    }
}
