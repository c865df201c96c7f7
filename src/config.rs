//! `vs_conf.xml`: every legacy key with its legacy default, plus the database and mount keys.
//!
//! `Config::load(path)` reads the file; `Config::from_xml(text)` (also `str::parse`) reads a
//! string. Values are typed: sizes (`128M`, `1G`, binary, optional `B`), seconds, percents,
//! booleans and regexes. Errors name the key, the value and the line; unknown keys are
//! collected in [`Config::warnings`], not rejected. Known keys the server does not act on
//! yet (everything not in [`USED_KEYS`]) are listed in [`Config::unused_keys`], which the
//! server reports at start and `--check` prints: no key is silently ignored.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use regex::Regex;

mod file;
mod folders;
mod hosts;
mod pool_size;
mod value;
mod xml;

pub use file::MAX_CONFIG_BYTES;
pub(crate) use folders::resolve_existing_prefix;
pub use hosts::{parse_host_list, DbNode, HostEntry, MAX_HOSTS};
pub use value::{parse_bool, parse_percent, parse_seconds, parse_size};
use xml::Entry;

/// Default location of the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/vs/vs_conf.xml";

/// A loaded, validated `vs_conf.xml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database connection and pool keys (`Database*`).
    pub database: DatabaseConfig,
    /// Where the file system is mounted (MountPoint). Default `/opt/VS/vsMounts`.
    pub mount_point: PathBuf,
    /// Local directory holding file data (CacheFolder). Default `/opt/VS/vsCache`.
    pub cache_folder: PathBuf,
    /// Archive tier directory (ArchiveFolder). Default none.
    pub archive_folder: Option<PathBuf>,
    /// Honour setuid/setgid bits and device files in the mount (MountAllowSuidDev): turns
    /// the default `nosuid,nodev` off, which makes everyone who can write the catalog
    /// (its database user, and whoever can create files with any owner and mode) able to
    /// become root on this host. Default false.
    pub mount_allow_suid_dev: bool,
    /// How long the server's owner lease on the catalog lasts unless renewed
    /// (OwnerLeaseTimeout): it is renewed every third of this, and a server that died stops
    /// holding the catalog after at most this long. At least 3 s. Default 15 s.
    pub owner_lease_timeout: Duration,
    /// Cache space and eviction keys.
    pub cache: CacheConfig,
    /// Archive (tape) tier keys.
    pub archive: ArchiveConfig,
    /// Digest keys.
    pub digest: DigestConfig,
    /// File and folder filters.
    pub filters: FilterConfig,
    /// Largest file size in bytes (FileMaxSize); 0 = no limit. Default 0.
    pub file_max_size: u64,
    /// Size of a metadata file (MetaFileSize). Default 1M.
    pub meta_file_size: u64,
    /// Most bytes of extended attributes (names plus values) one inode may hold
    /// (XattrMaxSize); more is `ENOSPC`. Default 4K, like ext4's one block.
    pub xattr_max_size: u64,
    /// Unknown keys and other non-fatal findings, one message each (with the line); at most
    /// [`MAX_WARNINGS`] and a count of the rest.
    pub warnings: Vec<String>,
    /// Keys set in the file that are recognised (and their values checked) but that the
    /// server does not act on yet, as `Key (line N)`, in file order. See [`USED_KEYS`].
    pub unused_keys: Vec<String>,
}

/// The keys the server acts on. Every other known key is accepted and checked, but reported
/// at start and by `--check` as recognised-but-not-used ([`Config::unused_report`]). Making
/// a key work means adding it here, in this one place.
pub const USED_KEYS: &[&str] = &[
    "DatabaseHost",
    "DatabasePort",
    "DatabaseSocket",
    "DatabaseUser",
    "DatabasePassword",
    "DatabasePasswordFile",
    "DatabaseName",
    "DatabaseMaxPoolSize",
    "DatabaseInitialPoolSize",
    "DatabaseTimeout",
    "DatabaseConnectTimeout",
    "DatabaseIdleTimeout",
    "DatabaseMaxLifetime",
    "DatabaseMaxResultSize",
    "DatabaseMaxAllowedPacket",
    "DatabaseHealthInterval",
    "DatabaseHealthTimeout",
    "DatabaseFailbackDelay",
    "MountPoint",
    "CacheFolder",
    "CacheFreeLeastSize",
    "FileMaxSize",
    "XattrMaxSize",
    "MountAllowSuidDev",
    "CacheQuarantineDays",
    "CacheQuarantineMaxSize",
    "OwnerLeaseTimeout",
    // The archive tier (crate::tier).
    "ArchiveFolder",
    "ArchiveDrives",
    "TapeReservedMinFreeSize",
    "DeleteTapeFileTriggerNum",
    "DeleteTapeFileTimeDiff",
    "WriteToTapeWaitSize",
    "WriteToTapeWaitTime",
    "WriteToTapeWaitFile",
    "WriteToTapeFilePattern",
    "WriteToTapeFolderPattern",
    "DigestMD5Enable",
    "DigestSHA1Enable",
    "CacheFreeMinSize",
    "CacheFreeMaxSize",
    "CacheFreeMinPercent",
    "CacheFreeMaxPercent",
    "CacheFileSizeRead",
    "CacheFileSizeBlock",
    "CachePurgeWaitTime",
    "WriteCacheFreeSize",
];

/// Most volumes read or written at once (ArchiveDrives).
pub const MAX_ARCHIVE_DRIVES: u64 = 64;

/// Most warnings kept in [`Config::warnings`]; further ones are counted in a last line.
pub const MAX_WARNINGS: usize = 100;

/// The `Database*` keys.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// DatabaseHost as written: one host, or a comma-separated `host[:port]` list in order
    /// of preference (IPv6 as `[::1]:3306`); see [`DatabaseConfig::nodes`]. Default
    /// `localhost`.
    pub host: String,
    /// DatabasePort: the port of DatabaseHost entries without one. Default 3306.
    pub port: u16,
    /// DatabaseSocket: Unix socket path used instead of TCP. Default none.
    pub socket: Option<PathBuf>,
    /// DatabaseUser. Default `vsadmin`.
    pub user: String,
    /// DatabasePassword, or the first line of DatabasePasswordFile. Default empty.
    pub password: Secret,
    /// DatabaseName: the catalog schema. Default `CatalogDb`.
    pub name: String,
    /// DatabaseMaxPoolSize. Default 4.
    pub max_pool_size: usize,
    /// DatabaseInitialPoolSize. Default 1.
    pub initial_pool_size: usize,
    /// DatabaseTimeout: longest wait for a connection. Default 60 s.
    pub timeout: Duration,
    /// DatabaseConnectTimeout. Default 5 s.
    pub connect_timeout: Duration,
    /// DatabaseIdleTimeout. Default 600 s.
    pub idle_timeout: Duration,
    /// DatabaseMaxLifetime. Default 1800 s.
    pub max_lifetime: Duration,
    /// DatabaseMaxResultSize: largest result set collected. Default 64M.
    pub max_result_size: u64,
    /// DatabaseMaxAllowedPacket. Default 16M.
    pub max_allowed_packet: u64,
    /// DatabaseHealthInterval: with several DatabaseHost entries, how often each node's
    /// health is checked. Default 1 s.
    pub health_interval: Duration,
    /// DatabaseHealthTimeout: connect and read timeout of one health check. Default 2 s.
    pub health_timeout: Duration,
    /// DatabaseFailbackDelay: how long a node earlier in the DatabaseHost list than the
    /// writer must have been healthy without a break before it is written to again
    /// (0: never fail back). Default 30 s.
    pub failback_delay: Duration,
}

impl DatabaseConfig {
    /// The DatabaseHost entries as nodes, in order of preference; entries without a port
    /// get DatabasePort. A text that is not a valid list (only possible when the struct
    /// was filled by code, [`Config::load`] refuses it) is taken as one host name.
    pub fn nodes(&self) -> Vec<DbNode> {
        match parse_host_list(&self.host) {
            Ok(entries) => hosts::nodes_of(&entries, self.port),
            Err(_) => vec![DbNode::new(self.host.clone(), self.port)],
        }
    }
}

/// Cache space keys (all sizes in bytes, percents 0-100, times in seconds).
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// CacheFreeMinSize: eviction starts below this much free space. Default 15G.
    pub free_min_size: u64,
    /// CacheFreeMaxSize: eviction stops above this much free space. Default 20G.
    pub free_max_size: u64,
    /// CacheFreeMinPercent. Default 10.
    pub free_min_percent: u8,
    /// CacheFreeMaxPercent. Default 20.
    pub free_max_percent: u8,
    /// CacheFileSizeRead: pre-read after a recall. Default 4G.
    pub file_size_read: u64,
    /// CacheFileSizeBlock: recall block size. Default 128M.
    pub file_size_block: u64,
    /// CachePurgeWaitTime: monitor interval. Default 5 s.
    pub purge_wait_time: Duration,
    /// CacheFreeLeastSize: writes fail with ENOSPC below this. Default 2G.
    pub free_least_size: u64,
    /// ReadCacheFreeSize. Default 10G.
    pub read_free_size: u64,
    /// WriteCacheFreeSize: writes slow down below this. Default 15G.
    pub write_free_size: u64,
    /// WriteCachePercent. Default 90.
    pub write_percent: u8,
    /// MetaFreeLeastSize. Default 1G.
    pub meta_free_least_size: u64,
    /// ThrottleInterval (milliseconds in the legacy file). Default 1000 ms.
    pub throttle_interval: Duration,
    /// ThrottleValve. Default 256M.
    pub throttle_valve: u64,
    /// IgnoreWriteByReadCheckTime. Default 300 s.
    pub ignore_write_by_read_check_time: Duration,
    /// IgnoreWriteByReadPercent. Default 80.
    pub ignore_write_by_read_percent: u8,
    /// CacheQuarantineDays: quarantined data files (found without an inode at start) are
    /// removed at start once older than this many days; 0 keeps them until an operator runs
    /// `vfsserver --purge-quarantine`. Default 30, at most 36500.
    pub quarantine_days: u64,
    /// CacheQuarantineMaxSize: the most the quarantine may hold; a start that would move
    /// more there refuses to start instead (nothing is deleted). Default 64G.
    pub quarantine_max_size: u64,
}

/// Archive (tape) tier keys.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// TapeIdleTime. Default 10 s.
    pub tape_idle_time: Duration,
    /// FileIdleTime. Default 3 s.
    pub file_idle_time: Duration,
    /// TapeReservedMinFreeSize: a volume takes new copies only while it has more than
    /// this free. Default 8G.
    pub tape_reserved_min_free_size: u64,
    /// ArchiveDrives: most volumes read or written at once (the drives of a tape library).
    /// 1 to 64. Default 1.
    pub drives: usize,
    /// DeleteTapeFileTriggerNum. Default 1000.
    pub delete_tape_file_trigger_num: u64,
    /// DeleteTapeFileTimeDiff. Default 86400 s.
    pub delete_tape_file_time_diff: Duration,
    /// WriteToTapeWaitSize. Default 1G.
    pub write_wait_size: u64,
    /// WriteToTapeWaitTime. Default 180 s.
    pub write_wait_time: Duration,
    /// WriteToTapeWaitFile: a file is archived this long after its last write. Default 60 s.
    pub write_wait_file: Duration,
    /// ThreadWriteToTapeSize. Default 4G.
    pub thread_write_size: u64,
    /// WriteToTapeMultipleWaitTime. Default 1800 s.
    pub write_multiple_wait_time: Duration,
    /// WriteToTapeFilePattern. Default `.*`.
    pub write_file_pattern: Option<Regex>,
    /// WriteToTapeFolderPattern. Default none.
    pub write_folder_pattern: Option<Regex>,
}

/// Digest keys.
#[derive(Debug, Clone)]
pub struct DigestConfig {
    /// DigestMD5Enable. Default true.
    pub md5: bool,
    /// DigestSHA1Enable. Default true.
    pub sha1: bool,
}

/// File and folder filter patterns (empty in the legacy defaults).
#[derive(Debug, Clone, Default)]
pub struct FilterConfig {
    /// FilterFilePattern. Default none.
    pub file_pattern: Option<Regex>,
    /// FilterFolderPattern. Default none.
    pub folder_pattern: Option<Regex>,
}

/// A password: `Debug` and `Display` print `***`; [`Secret::expose`] gives the text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is never read as a configuration: not a regular file, too large, not UTF-8.
    #[error("cannot use {path} as the configuration: it {reason}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why (e.g. "is a named pipe (FIFO), not a regular file").
        reason: String,
    },
    /// The XML is malformed.
    #[error("malformed XML at line {line}: {message}")]
    Xml {
        /// 1-based line.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// A value does not parse or is out of range.
    #[error("{key}: {value:?} {reason} (line {line})")]
    Value {
        /// The key.
        key: String,
        /// The value as written (never a password).
        value: String,
        /// 1-based line.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The values parse but contradict each other.
    #[error("invalid configuration: {message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
}

const MINUTE: u64 = 60;
const HOUR: Duration = Duration::from_secs(60 * MINUTE);
const DAY: Duration = Duration::from_secs(24 * 60 * MINUTE);
const WEEK: Duration = Duration::from_secs(7 * 24 * 60 * MINUTE);
const MONTH: Duration = Duration::from_secs(30 * 24 * 60 * MINUTE);
const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * MINUTE);

/// The longest value of every duration key. Longer values are refused when the file is
/// loaded (naming key, value, line and maximum), so no deadline computed from a configured
/// duration can overflow. A new duration key must be listed here: its parser looks its
/// maximum up in this table.
pub const DURATION_LIMITS: &[(&str, Duration)] = &[
    ("DatabaseTimeout", HOUR),
    ("DatabaseConnectTimeout", HOUR),
    ("DatabaseIdleTimeout", MONTH),
    ("DatabaseMaxLifetime", MONTH),
    ("DatabaseHealthInterval", HOUR),
    ("DatabaseHealthTimeout", HOUR),
    ("DatabaseFailbackDelay", DAY),
    ("OwnerLeaseTimeout", HOUR),
    ("CachePurgeWaitTime", DAY),
    ("ThrottleInterval", HOUR),
    ("IgnoreWriteByReadCheckTime", DAY),
    ("TapeIdleTime", DAY),
    ("FileIdleTime", DAY),
    ("DeleteTapeFileTimeDiff", YEAR),
    ("WriteToTapeWaitTime", WEEK),
    ("WriteToTapeWaitFile", WEEK),
    ("WriteToTapeMultipleWaitTime", WEEK),
];

/// The longest value duration key `key` accepts ([`DURATION_LIMITS`]).
pub fn duration_limit(key: &str) -> Option<Duration> {
    DURATION_LIMITS
        .iter()
        .find(|(name, _)| *name == key)
        .map(|&(_, max)| max)
}

/// The largest CacheQuarantineDays accepted (a hundred years).
pub const MAX_QUARANTINE_DAYS: u64 = 36_500;

/// The shortest OwnerLeaseTimeout accepted: renewed every third, at least once a second.
pub const MIN_OWNER_LEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest DatabaseMaxPoolSize accepted.
pub const MAX_POOL_SIZE: usize = 1000;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            host: "localhost".into(),
            port: 3306,
            socket: None,
            user: "vsadmin".into(),
            password: Secret::default(),
            name: "CatalogDb".into(),
            max_pool_size: 4,
            initial_pool_size: 1,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(1800),
            max_result_size: 64 * MIB,
            max_allowed_packet: 16 * MIB,
            health_interval: Duration::from_secs(1),
            health_timeout: Duration::from_secs(2),
            failback_delay: Duration::from_secs(30),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            free_min_size: 15 * GIB,
            free_max_size: 20 * GIB,
            free_min_percent: 10,
            free_max_percent: 20,
            file_size_read: 4 * GIB,
            file_size_block: 128 * MIB,
            purge_wait_time: Duration::from_secs(5),
            free_least_size: 2 * GIB,
            read_free_size: 10 * GIB,
            write_free_size: 15 * GIB,
            write_percent: 90,
            meta_free_least_size: GIB,
            throttle_interval: Duration::from_millis(1000),
            throttle_valve: 256 * MIB,
            ignore_write_by_read_check_time: Duration::from_secs(300),
            ignore_write_by_read_percent: 80,
            quarantine_days: 30,
            quarantine_max_size: 64 * GIB,
        }
    }
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            tape_idle_time: Duration::from_secs(10),
            file_idle_time: Duration::from_secs(3),
            tape_reserved_min_free_size: 8 * GIB,
            drives: 1,
            delete_tape_file_trigger_num: 1000,
            delete_tape_file_time_diff: Duration::from_secs(86400),
            write_wait_size: GIB,
            write_wait_time: Duration::from_secs(180),
            write_wait_file: Duration::from_secs(60),
            thread_write_size: 4 * GIB,
            write_multiple_wait_time: Duration::from_secs(1800),
            // Infallible: a constant, valid pattern.
            write_file_pattern: Some(Regex::new(".*").expect("valid constant regex")),
            write_folder_pattern: None,
        }
    }
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            md5: true,
            sha1: true,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database: DatabaseConfig::default(),
            mount_point: PathBuf::from("/opt/VS/vsMounts"),
            cache_folder: PathBuf::from("/opt/VS/vsCache"),
            archive_folder: None,
            mount_allow_suid_dev: false,
            owner_lease_timeout: Duration::from_secs(15),
            cache: CacheConfig::default(),
            archive: ArchiveConfig::default(),
            digest: DigestConfig::default(),
            filters: FilterConfig::default(),
            file_max_size: 0,
            meta_file_size: MIB,
            xattr_max_size: 4 * 1024,
            warnings: Vec::new(),
            unused_keys: Vec::new(),
        }
    }
}

impl Config {
    /// Reads and validates the file at `path`: a regular file of at most
    /// [`MAX_CONFIG_BYTES`] (anything else is refused without blocking).
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let refused = |reason: String| ConfigError::Refused {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = file::read_regular(path, MAX_CONFIG_BYTES).map_err(|err| match err {
            file::ReadError::Io(source) => ConfigError::Io {
                path: path.to_path_buf(),
                source,
            },
            file::ReadError::Refused(reason) => refused(reason),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            refused(format!(
                "is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        let config = Config::from_xml(&text)?;
        config.check_folders(&config.mount_point)?;
        Ok(config)
    }

    /// Parses and validates a `<VSConf>` document.
    pub fn from_xml(text: &str) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        let mut password: Option<usize> = None;
        let mut password_file: Option<(PathBuf, usize)> = None;
        for entry in xml::read_entries(text)? {
            let first = match first_line.insert(entry.key.clone(), entry.line) {
                Some(previous) => {
                    config.warnings.push(format!(
                        "{} is set twice (lines {previous} and {}); the last one is used",
                        entry.key, entry.line
                    ));
                    false
                }
                None => true,
            };
            let key = entry.key.as_str();
            if first && known_keys().contains(&key) && !USED_KEYS.contains(&key) {
                config
                    .unused_keys
                    .push(format!("{key} (line {})", entry.line));
            }
            match entry.key.as_str() {
                "DatabasePassword" => {
                    config.database.password = Secret::new(entry.value.clone());
                    password = Some(entry.line);
                }
                "DatabasePasswordFile" => {
                    password_file = (!entry.value.is_empty())
                        .then(|| (PathBuf::from(&entry.value), entry.line));
                }
                _ => {
                    if !config.apply(&entry)? {
                        config.warnings.push(format!(
                            "unknown key {} (line {}) is ignored",
                            entry.key, entry.line
                        ));
                    }
                }
            }
        }
        if let Some((path, line)) = password_file {
            if let Some(password_line) = password {
                return Err(ConfigError::Invalid {
                    message: format!(
                        "DatabasePassword (line {password_line}) and DatabasePasswordFile \
                         (line {line}) are both set; keep one"
                    ),
                });
            }
            config.database.password = read_password_file(&path, line)?;
        }
        if config.warnings.len() > MAX_WARNINGS {
            let more = config.warnings.len() - MAX_WARNINGS;
            config.warnings.truncate(MAX_WARNINGS);
            config
                .warnings
                .push(format!("... and {more} more warnings"));
        }
        config.validate()?;
        Ok(config)
    }

    /// One line naming the keys set in the file that the server does not act on yet, or
    /// `None` if every key set works.
    pub fn unused_report(&self) -> Option<String> {
        (!self.unused_keys.is_empty()).then(|| {
            format!(
                "recognised but not used yet (no effect): {}",
                self.unused_keys.join(", ")
            )
        })
    }

    /// Every duration of the configuration with the key that sets it.
    pub fn durations(&self) -> Vec<(&'static str, Duration)> {
        let (db, cache, archive) = (&self.database, &self.cache, &self.archive);
        vec![
            ("DatabaseTimeout", db.timeout),
            ("DatabaseConnectTimeout", db.connect_timeout),
            ("DatabaseIdleTimeout", db.idle_timeout),
            ("DatabaseMaxLifetime", db.max_lifetime),
            ("DatabaseHealthInterval", db.health_interval),
            ("DatabaseHealthTimeout", db.health_timeout),
            ("DatabaseFailbackDelay", db.failback_delay),
            ("OwnerLeaseTimeout", self.owner_lease_timeout),
            ("CachePurgeWaitTime", cache.purge_wait_time),
            ("ThrottleInterval", cache.throttle_interval),
            (
                "IgnoreWriteByReadCheckTime",
                cache.ignore_write_by_read_check_time,
            ),
            ("TapeIdleTime", archive.tape_idle_time),
            ("FileIdleTime", archive.file_idle_time),
            ("DeleteTapeFileTimeDiff", archive.delete_tape_file_time_diff),
            ("WriteToTapeWaitTime", archive.write_wait_time),
            ("WriteToTapeWaitFile", archive.write_wait_file),
            (
                "WriteToTapeMultipleWaitTime",
                archive.write_multiple_wait_time,
            ),
        ]
    }

    /// Checks values that parse on their own but contradict each other or the platform.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let db = &self.database;
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        if db.max_pool_size == 0 || db.max_pool_size > MAX_POOL_SIZE {
            return invalid(format!(
                "DatabaseMaxPoolSize is {}; it must be between 1 and {MAX_POOL_SIZE}",
                db.max_pool_size
            ));
        }
        if db.initial_pool_size > db.max_pool_size {
            return invalid(format!(
                "DatabaseInitialPoolSize ({}) is larger than DatabaseMaxPoolSize ({})",
                db.initial_pool_size, db.max_pool_size
            ));
        }
        if db.timeout.is_zero() {
            return invalid("DatabaseTimeout must be at least 1 second".into());
        }
        if db.connect_timeout.is_zero() {
            return invalid("DatabaseConnectTimeout must be at least 1 second".into());
        }
        if db.health_interval.is_zero() {
            return invalid("DatabaseHealthInterval must be at least 1 second".into());
        }
        if db.health_timeout.is_zero() {
            return invalid("DatabaseHealthTimeout must be at least 1 second".into());
        }
        if db.socket.is_some() && db.nodes().len() > 1 {
            return invalid(format!(
                "DatabaseSocket is set but DatabaseHost lists {} hosts (\"{}\"); a socket reaches \
                 one local server: name one host, or leave DatabaseSocket empty",
                db.nodes().len(),
                db.host
            ));
        }
        if self.owner_lease_timeout < MIN_OWNER_LEASE_TIMEOUT {
            return invalid(format!(
                "OwnerLeaseTimeout is {} s; it must be at least {} s (it is renewed every third)",
                self.owner_lease_timeout.as_secs(),
                MIN_OWNER_LEASE_TIMEOUT.as_secs()
            ));
        }
        if !(1024..=(1 << 30)).contains(&db.max_allowed_packet) {
            return invalid(format!(
                "DatabaseMaxAllowedPacket is {} bytes; it must be between 1K and 1G",
                db.max_allowed_packet
            ));
        }
        if db.max_result_size < 1024 {
            return invalid("DatabaseMaxResultSize must be at least 1K".into());
        }
        let cache = &self.cache;
        if cache.free_min_size > cache.free_max_size {
            return invalid(format!(
                "CacheFreeMinSize ({}) is larger than CacheFreeMaxSize ({})",
                cache.free_min_size, cache.free_max_size
            ));
        }
        if cache.free_min_percent > cache.free_max_percent {
            return invalid(format!(
                "CacheFreeMinPercent ({}) is larger than CacheFreeMaxPercent ({})",
                cache.free_min_percent, cache.free_max_percent
            ));
        }
        if cache.file_size_block == 0 {
            return invalid("CacheFileSizeBlock must be larger than 0".into());
        }
        let mount = folders::lexical(&self.mount_point);
        let cache = folders::lexical(&self.cache_folder);
        let archive = self.archive_folder.as_deref().map(folders::lexical);
        if let Some(message) = overlap(&mount, &cache, archive.as_deref()) {
            return invalid(message);
        }
        Ok(())
    }

    /// Checks that `mount_point` (MountPoint, or the one given on the command line),
    /// CacheFolder and ArchiveFolder are separate trees once symlinks are resolved (where
    /// the paths exist); [`Config::load`] does this for MountPoint. The last component of
    /// `mount_point` is taken as written (a mount there may be hung): pass the server's
    /// normalised mount point to have it resolved too.
    pub fn check_folders(&self, mount_point: &Path) -> Result<(), ConfigError> {
        let mount = folders::resolved_parent(mount_point);
        let cache = folders::resolved(&self.cache_folder);
        let archive = self.archive_folder.as_deref().map(folders::resolved);
        match overlap(&mount, &cache, archive.as_deref()) {
            Some(message) => Err(ConfigError::Invalid {
                message: format!("{message}, with symlinks resolved"),
            }),
            None => Ok(()),
        }
    }

    /// Sets the field named by `entry.key`; false if the key is unknown.
    fn apply(&mut self, entry: &Entry) -> Result<bool, ConfigError> {
        let text = entry.value.as_str();
        let bad = |reason: String| ConfigError::Value {
            key: entry.key.clone(),
            value: entry.value.clone(),
            line: entry.line,
            reason,
        };
        let size = || value::parse_size(text).map_err(bad);
        // Every duration has a maximum; a key missing from DURATION_LIMITS is refused
        // rather than left unbounded.
        let limit = || {
            duration_limit(&entry.key)
                .ok_or_else(|| bad("has no maximum in DURATION_LIMITS (a bug)".into()))
        };
        let seconds = || value::parse_seconds_at_most(text, limit()?).map_err(bad);
        let millis = || value::parse_millis_at_most(text, limit()?).map_err(bad);
        let percent = || value::parse_percent(text).map_err(bad);
        let boolean = || value::parse_bool(text).map_err(bad);
        let pattern = || value::parse_pattern(text).map_err(bad);
        let count = || value::parse_count(text).map_err(bad);
        let pool_size = || {
            value::parse_count(text)
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| bad("is not a number of connections".into()))
        };
        let path = || absolute_path(text).map_err(bad);
        let db = &mut self.database;
        let cache = &mut self.cache;
        let archive = &mut self.archive;
        match entry.key.as_str() {
            "DatabaseHost" if text.is_empty() => return Err(bad("is empty".into())),
            "DatabaseHost" => {
                parse_host_list(text).map_err(bad)?;
                db.host = text.to_string()
            }
            "DatabasePort" => {
                db.port = text
                    .parse::<u16>()
                    .ok()
                    .filter(|&port| port != 0)
                    .ok_or_else(|| bad("is not a TCP port (1 to 65535)".into()))?
            }
            "DatabaseSocket" => db.socket = if text.is_empty() { None } else { Some(path()?) },
            "DatabaseUser" if text.is_empty() => return Err(bad("is empty".into())),
            "DatabaseUser" => db.user = text.to_string(),
            "DatabaseName" => db.name = schema_name(text).map_err(bad)?,
            "DatabaseMaxPoolSize" => db.max_pool_size = pool_size()?,
            "DatabaseInitialPoolSize" => db.initial_pool_size = pool_size()?,
            "DatabaseTimeout" => db.timeout = seconds()?,
            "DatabaseConnectTimeout" => db.connect_timeout = seconds()?,
            "DatabaseIdleTimeout" => db.idle_timeout = seconds()?,
            "DatabaseMaxLifetime" => db.max_lifetime = seconds()?,
            "DatabaseHealthInterval" => db.health_interval = seconds()?,
            "DatabaseHealthTimeout" => db.health_timeout = seconds()?,
            "DatabaseFailbackDelay" => db.failback_delay = seconds()?,
            "DatabaseMaxResultSize" => db.max_result_size = size()?,
            "DatabaseMaxAllowedPacket" => db.max_allowed_packet = size()?,
            "MountPoint" => self.mount_point = path()?,
            "CacheFolder" => self.cache_folder = path()?,
            "ArchiveFolder" => {
                self.archive_folder = if text.is_empty() { None } else { Some(path()?) }
            }
            "MountAllowSuidDev" => self.mount_allow_suid_dev = boolean()?,
            "OwnerLeaseTimeout" => self.owner_lease_timeout = seconds()?,
            "CacheFreeMinSize" => cache.free_min_size = size()?,
            "CacheFreeMaxSize" => cache.free_max_size = size()?,
            "CacheFreeMinPercent" => cache.free_min_percent = percent()?,
            "CacheFreeMaxPercent" => cache.free_max_percent = percent()?,
            "CacheFileSizeRead" => cache.file_size_read = size()?,
            "CacheFileSizeBlock" => cache.file_size_block = size()?,
            "CachePurgeWaitTime" => cache.purge_wait_time = seconds()?,
            "CacheFreeLeastSize" => cache.free_least_size = size()?,
            "ReadCacheFreeSize" => cache.read_free_size = size()?,
            "WriteCacheFreeSize" => cache.write_free_size = size()?,
            "WriteCachePercent" => cache.write_percent = percent()?,
            "MetaFreeLeastSize" => cache.meta_free_least_size = size()?,
            "ThrottleInterval" => cache.throttle_interval = millis()?,
            "ThrottleValve" => cache.throttle_valve = size()?,
            "IgnoreWriteByReadCheckTime" => cache.ignore_write_by_read_check_time = seconds()?,
            "IgnoreWriteByReadPercent" => cache.ignore_write_by_read_percent = percent()?,
            "CacheQuarantineDays" => {
                cache.quarantine_days = count()
                    .ok()
                    .filter(|&days| days <= MAX_QUARANTINE_DAYS)
                    .ok_or_else(|| {
                        bad(format!(
                            "is not a number of days (0 to {MAX_QUARANTINE_DAYS})"
                        ))
                    })?
            }
            "CacheQuarantineMaxSize" => cache.quarantine_max_size = size()?,
            "FileMaxSize" => self.file_max_size = size()?,
            "MetaFileSize" => self.meta_file_size = size()?,
            "XattrMaxSize" => self.xattr_max_size = size()?,
            "TapeIdleTime" => archive.tape_idle_time = seconds()?,
            "FileIdleTime" => archive.file_idle_time = seconds()?,
            "TapeReservedMinFreeSize" => archive.tape_reserved_min_free_size = size()?,
            "ArchiveDrives" => {
                archive.drives = count()
                    .ok()
                    .filter(|&n| (1..=MAX_ARCHIVE_DRIVES).contains(&n))
                    .ok_or_else(|| {
                        bad(format!(
                            "is not a number of drives (1 to {MAX_ARCHIVE_DRIVES})"
                        ))
                    })? as usize
            }
            "DeleteTapeFileTriggerNum" => archive.delete_tape_file_trigger_num = count()?,
            "DeleteTapeFileTimeDiff" => archive.delete_tape_file_time_diff = seconds()?,
            "WriteToTapeWaitSize" => archive.write_wait_size = size()?,
            "WriteToTapeWaitTime" => archive.write_wait_time = seconds()?,
            "WriteToTapeWaitFile" => archive.write_wait_file = seconds()?,
            "ThreadWriteToTapeSize" => archive.thread_write_size = size()?,
            "WriteToTapeMultipleWaitTime" => archive.write_multiple_wait_time = seconds()?,
            "WriteToTapeFilePattern" => archive.write_file_pattern = pattern()?,
            "WriteToTapeFolderPattern" => archive.write_folder_pattern = pattern()?,
            "FilterFilePattern" => self.filters.file_pattern = pattern()?,
            "FilterFolderPattern" => self.filters.folder_pattern = pattern()?,
            "DigestMD5Enable" => self.digest.md5 = boolean()?,
            "DigestSHA1Enable" => self.digest.sha1 = boolean()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Every key `Config` understands, in the order of `packaging/vs_conf.xml`.
pub fn known_keys() -> &'static [&'static str] {
    &[
        "DatabaseHost",
        "DatabasePort",
        "DatabaseSocket",
        "DatabaseUser",
        "DatabasePassword",
        "DatabasePasswordFile",
        "DatabaseName",
        "DatabaseMaxPoolSize",
        "DatabaseInitialPoolSize",
        "DatabaseTimeout",
        "DatabaseConnectTimeout",
        "DatabaseIdleTimeout",
        "DatabaseMaxLifetime",
        "DatabaseMaxResultSize",
        "DatabaseMaxAllowedPacket",
        "DatabaseHealthInterval",
        "DatabaseHealthTimeout",
        "DatabaseFailbackDelay",
        "MountPoint",
        "CacheFolder",
        "ArchiveFolder",
        "MountAllowSuidDev",
        "OwnerLeaseTimeout",
        "CacheFreeMinSize",
        "CacheFreeMaxSize",
        "CacheFreeMinPercent",
        "CacheFreeMaxPercent",
        "CacheFileSizeRead",
        "CacheFileSizeBlock",
        "CachePurgeWaitTime",
        "CacheFreeLeastSize",
        "ReadCacheFreeSize",
        "WriteCacheFreeSize",
        "WriteCachePercent",
        "MetaFreeLeastSize",
        "ThrottleInterval",
        "ThrottleValve",
        "IgnoreWriteByReadCheckTime",
        "IgnoreWriteByReadPercent",
        "CacheQuarantineDays",
        "CacheQuarantineMaxSize",
        "FileMaxSize",
        "MetaFileSize",
        "XattrMaxSize",
        "TapeIdleTime",
        "FileIdleTime",
        "TapeReservedMinFreeSize",
        "ArchiveDrives",
        "DeleteTapeFileTriggerNum",
        "DeleteTapeFileTimeDiff",
        "WriteToTapeWaitSize",
        "WriteToTapeWaitTime",
        "WriteToTapeWaitFile",
        "ThreadWriteToTapeSize",
        "WriteToTapeMultipleWaitTime",
        "WriteToTapeFilePattern",
        "WriteToTapeFolderPattern",
        "FilterFilePattern",
        "FilterFolderPattern",
        "DigestMD5Enable",
        "DigestSHA1Enable",
    ]
}

impl FromStr for Config {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Config, ConfigError> {
        Config::from_xml(text)
    }
}

impl Secret {
    /// Wraps a password.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The password itself: pass it to the database driver, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How MountPoint, CacheFolder and ArchiveFolder overlap, if they do.
fn overlap(mount: &Path, cache: &Path, archive: Option<&Path>) -> Option<String> {
    let mut folders = vec![("MountPoint", mount), ("CacheFolder", cache)];
    folders.extend(archive.map(|path| ("ArchiveFolder", path)));
    folders::first_overlap(&folders)
}

/// An absolute path from a config value.
fn absolute_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err("is not an absolute path".into())
    }
}

/// A schema name: used as an identifier, so only letters, digits, `_` and `$`, at most 64.
fn schema_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$');
    if valid {
        Ok(text.to_string())
    } else {
        Err("is not a schema name (1 to 64 letters, digits, _ or $)".into())
    }
}

/// Largest DatabasePasswordFile accepted.
const MAX_PASSWORD_FILE_BYTES: u64 = 4096;

/// The first line of a password file; errors name the file, never its content.
fn read_password_file(path: &Path, line: usize) -> Result<Secret, ConfigError> {
    let bad = |reason: String| ConfigError::Value {
        key: "DatabasePasswordFile".into(),
        value: path.display().to_string(),
        line,
        reason,
    };
    let bytes = file::read_regular(path, MAX_PASSWORD_FILE_BYTES).map_err(|err| match err {
        file::ReadError::Io(e) => bad(format!("cannot be read: {e}")),
        file::ReadError::Refused(reason) => bad(format!(
            "{reason}; it should be a file holding one password"
        )),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| bad("is not UTF-8 text".into()))?;
    let first = text.lines().next().unwrap_or("");
    Ok(Secret::new(first.trim_end_matches('\r')))
}
