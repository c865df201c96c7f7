//! Pool settings: where to connect, how many connections, and how long to wait for what.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::backoff::Backoff;
use crate::config::{DatabaseConfig, DbNode};

/// What `Pool::new` does when the database cannot be reached at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPolicy {
    /// Connect once, synchronously; return the connect error if it fails.
    FailFast,
    /// Keep trying (with backoff) for up to this long, then return the last connect error.
    Wait(Duration),
    /// Return at once; connections are opened in the background.
    Background,
    /// Connect once, synchronously, so the first `get()` finds a connection open instead of
    /// waiting for one within its timeout; if that connect fails, return all the same (the
    /// failure counted and backed off) and keep trying in the background. What the legacy
    /// C++ `ConnectionPool(int maxSize)` constructor did, without its endless retry loop.
    TryOnce,
}

/// How long a get waits on an exhausted legacy pool ([`PoolOptions::legacy`]) at most; the
/// legacy C++ `ConnectionPool` returned NULL at once.
pub const LEGACY_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a [`Pool`](super::Pool) needs; each field documents its default.
#[derive(Clone)]
pub struct PoolOptions {
    /// Host name or IP of the first (most preferred) node. Default `localhost`.
    pub host: String,
    /// TCP port of the first node. Default 3306.
    pub port: u16,
    /// Further nodes, in order of preference after `host:port` (see [`PoolOptions::nodes`]).
    /// With any, the pool writes through the first healthy node, checks every node's
    /// health, fails over and fails back. Default none: one node, no health checks.
    pub more_nodes: Vec<DbNode>,
    /// With several nodes: how often each node's health is checked (DatabaseHealthInterval).
    /// Default 1 s.
    pub health_interval: Duration,
    /// With several nodes: connect and read/write timeout of a health check
    /// (DatabaseHealthTimeout); it bounds how long a frozen node goes unnoticed. Default 2 s.
    pub health_timeout: Duration,
    /// With several nodes: how long a node earlier in the list than the writer must be
    /// healthy without a break before the pool writes through it again
    /// (DatabaseFailbackDelay; zero: never). Default 30 s.
    pub failback_delay: Duration,
    /// Unix socket path; when set it is used instead of TCP. Default none.
    pub socket: Option<PathBuf>,
    /// User name. Default `vsadmin`.
    pub user: String,
    /// Password (never logged, never shown by `Debug`). Default empty.
    pub password: String,
    /// Default schema of every connection. Default none.
    pub database: Option<String>,
    /// Most connections open at once (DatabaseMaxPoolSize). Default 4.
    pub max_size: usize,
    /// Connections opened at start and kept open (DatabaseInitialPoolSize). Default 1.
    pub initial_size: usize,
    /// Longest `get()` waits for a connection (DatabaseTimeout). Default 60 s.
    pub acquire_timeout: Duration,
    /// Most connects in flight at once; also the number of connector threads. Default 2.
    pub max_connecting: usize,
    /// TCP connect timeout. Default 5 s.
    pub connect_timeout: Duration,
    /// Socket read and write timeout, so a dead or hung server cannot block a statement
    /// (or a ping, or a connect's handshake) forever. Default 60 s; `from_config` sets it to
    /// DatabaseTimeout, so a hung server fails a statement within that time (the file
    /// system answers `EIO` then).
    pub io_timeout: Duration,
    /// Delay between failed connects. Default 100 ms doubling to 30 s, with jitter.
    pub backoff: Backoff,
    /// Consecutive connect failures after which `get()` fails fast. Default 3.
    pub max_attempts: u32,
    /// What `Pool::new` does when the database is unreachable. Default `Background`.
    pub start_policy: StartPolicy,
    /// A connection idle longer than this is pinged before hand-out. Default 500 ms.
    pub ping_bypass: Duration,
    /// Idle connections above `initial_size` are closed after this long (zero: never). Default 600 s.
    pub idle_timeout: Duration,
    /// Connections are replaced after this long, minus up to 10% jitter (zero: never). Default 1800 s.
    pub max_lifetime: Duration,
    /// A connection held longer than this is logged once with the caller that took it. Default 60 s.
    pub leak_threshold: Duration,
    /// Reset session state (COM_RESET_CONNECTION) on every return. Default off.
    pub reset_on_return: bool,
    /// Largest packet the client accepts. Default 16 MiB.
    pub max_allowed_packet: usize,
    /// Largest result set, in bytes, that bounded reads collect. Default 64 MiB.
    pub max_result_bytes: u64,
    /// Prepared statements cached per connection. Default 64.
    pub stmt_cache_size: usize,
    /// Connections that may be opened beyond `max_size` for a thread that already holds one
    /// and would otherwise wait on an exhausted pool for itself (a self-deadlock; nested
    /// acquisition). Each is closed when it comes back. Default 0: such a thread waits
    /// (logged and counted all the same). The C++ shim's legacy constructor sets
    /// `2 * max_size`, enough for call chains nested three deep on every connection.
    pub nested_overflow: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            host: "localhost".into(),
            port: 3306,
            more_nodes: Vec::new(),
            health_interval: Duration::from_secs(1),
            health_timeout: Duration::from_secs(2),
            failback_delay: Duration::from_secs(30),
            socket: None,
            user: "vsadmin".into(),
            password: String::new(),
            database: None,
            max_size: 4,
            initial_size: 1,
            acquire_timeout: Duration::from_secs(60),
            max_connecting: 2,
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(60),
            backoff: Backoff::default(),
            max_attempts: 3,
            start_policy: StartPolicy::Background,
            ping_bypass: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(1800),
            leak_threshold: Duration::from_secs(60),
            reset_on_return: false,
            max_allowed_packet: 16 << 20,
            max_result_bytes: 64 << 20,
            stmt_cache_size: 64,
            nested_overflow: 0,
        }
    }
}

impl PoolOptions {
    /// Options from the `Database*` keys of `vs_conf.xml`; the rest keep their defaults.
    ///
    /// DatabaseTimeout bounds both the wait for a connection (`acquire_timeout`) and each
    /// socket read or write (`io_timeout`).
    pub fn from_config(db: &DatabaseConfig) -> PoolOptions {
        let mut nodes = db.nodes().into_iter();
        // `nodes()` always yields at least one node.
        let first = nodes
            .next()
            .unwrap_or_else(|| DbNode::new(db.host.clone(), db.port));
        PoolOptions {
            host: first.host,
            port: first.port,
            more_nodes: nodes.collect(),
            health_interval: db.health_interval,
            health_timeout: db.health_timeout,
            failback_delay: db.failback_delay,
            socket: db.socket.clone(),
            user: db.user.clone(),
            password: db.password.expose().to_string(),
            database: Some(db.name.clone()),
            max_size: db.max_pool_size,
            initial_size: db.initial_pool_size,
            acquire_timeout: db.timeout,
            // No key of its own: a statement may block on a hung server as long as a caller
            // may wait for a connection, and no longer.
            io_timeout: db.timeout,
            connect_timeout: db.connect_timeout,
            idle_timeout: db.idle_timeout,
            max_lifetime: db.max_lifetime,
            max_allowed_packet: usize::try_from(db.max_allowed_packet).unwrap_or(usize::MAX),
            max_result_bytes: db.max_result_size,
            ..PoolOptions::default()
        }
    }

    /// Options with the semantics of the legacy C++ `ConnectionPool(int maxSize)`, from the
    /// `Database*` settings `db`.
    ///
    /// Unlike [`PoolOptions::from_config`]: at most `max_size` connections
    /// (DatabaseMaxPoolSize is not used; DatabaseInitialPoolSize open at start, lowered to fit
    /// under `max_size`); the first connection opened before `Pool::new` returns
    /// ([`StartPolicy::TryOnce`], as the legacy constructor connected), so the first get does
    /// not spend its wait on a connect; no default schema, as Connector/C++ connected; a get
    /// waits at most [`LEGACY_ACQUIRE_TIMEOUT`] (DatabaseTimeout when shorter); and up to
    /// `2 * max_size` connections beyond the maximum for threads that already hold one
    /// ([`PoolOptions::nested_overflow`]).
    pub fn legacy(db: &DatabaseConfig, max_size: usize) -> PoolOptions {
        PoolOptions {
            database: None,
            max_size,
            initial_size: db.initial_pool_size.min(max_size),
            acquire_timeout: db.timeout.min(LEGACY_ACQUIRE_TIMEOUT),
            nested_overflow: max_size.saturating_mul(2),
            start_policy: StartPolicy::TryOnce,
            ..PoolOptions::from_config(db)
        }
    }

    /// Checks that the options can work together.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_size == 0 {
            return Err("max_size must be at least 1".into());
        }
        if self.initial_size > self.max_size {
            return Err(format!(
                "initial_size ({}) is larger than max_size ({})",
                self.initial_size, self.max_size
            ));
        }
        if self.max_connecting == 0 {
            return Err("max_connecting must be at least 1".into());
        }
        if self.acquire_timeout.is_zero() {
            return Err("acquire_timeout must be positive".into());
        }
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if !self.more_nodes.is_empty() {
            if self.socket.is_some() {
                return Err(
                    "a Unix socket reaches one server: it cannot be used with more_nodes".into(),
                );
            }
            if self.health_interval.is_zero() || self.health_timeout.is_zero() {
                return Err("health_interval and health_timeout must be positive".into());
            }
        }
        if !(1024..=(1 << 30)).contains(&self.max_allowed_packet) {
            return Err(format!(
                "max_allowed_packet ({}) must be between 1 KiB and 1 GiB",
                self.max_allowed_packet
            ));
        }
        Ok(())
    }

    /// Every node in order of preference: `host:port` first, then `more_nodes`.
    pub fn nodes(&self) -> Vec<DbNode> {
        let mut nodes = Vec::with_capacity(1 + self.more_nodes.len());
        nodes.push(DbNode::new(self.host.clone(), self.port));
        nodes.extend(self.more_nodes.iter().cloned());
        nodes
    }

    /// Where the pool connects, for log lines: `user@host:port` (`user@h1:p1,h2:p2` with
    /// several nodes) or `user@socket`.
    pub fn endpoint(&self) -> String {
        match &self.socket {
            Some(socket) => format!("{}@{}", self.user, socket.display()),
            None => {
                let nodes: Vec<String> = self.nodes().iter().map(ToString::to_string).collect();
                format!("{}@{}", self.user, nodes.join(","))
            }
        }
    }

    /// The `mysql` crate's connection options for the first node.
    #[cfg(test)]
    pub(crate) fn mysql_opts(&self) -> mysql::Opts {
        self.node_opts(&DbNode::new(self.host.clone(), self.port))
    }

    /// The `mysql` crate's connection options for the pool's connections to `node`.
    pub(crate) fn node_opts(&self, node: &DbNode) -> mysql::Opts {
        let builder = mysql::OptsBuilder::new()
            .ip_or_hostname(Some(node.host.clone()))
            .tcp_port(node.port)
            .socket(self.socket.as_ref().map(|p| p.display().to_string()))
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .db_name(self.database.clone())
            .prefer_socket(false)
            .tcp_connect_timeout(Some(self.connect_timeout))
            .read_timeout(Some(self.io_timeout))
            .write_timeout(Some(self.io_timeout))
            .max_allowed_packet(Some(self.max_allowed_packet))
            .stmt_cache_size(Some(self.stmt_cache_size));
        builder.into()
    }

    /// The pool's options for `node` with `connect_timeout` (at most `io_timeout`) as the
    /// read and write timeout, so a node that accepts TCP but answers nothing (frozen) holds
    /// a connect no longer than that; the pool sets `io_timeout` on the socket afterwards.
    pub(crate) fn handshake_opts(&self, node: &DbNode) -> mysql::Opts {
        let handshake = self.connect_timeout.min(self.io_timeout);
        mysql::OptsBuilder::from_opts(self.node_opts(node))
            .read_timeout(Some(handshake))
            .write_timeout(Some(handshake))
            .into()
    }

    /// Options of a health check's connection to `node`: the pool's user, password and
    /// schema, with `health_timeout` as connect and read/write timeout.
    pub(crate) fn health_opts(&self, node: &DbNode) -> mysql::Opts {
        mysql::OptsBuilder::from_opts(self.node_opts(node))
            .tcp_connect_timeout(Some(self.health_timeout))
            .read_timeout(Some(self.health_timeout))
            .write_timeout(Some(self.health_timeout))
            .stmt_cache_size(Some(0))
            .into()
    }
}

impl fmt::Debug for PoolOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolOptions")
            .field("endpoint", &self.endpoint())
            .field("password", &"***")
            .field("database", &self.database)
            .field("max_size", &self.max_size)
            .field("initial_size", &self.initial_size)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("max_connecting", &self.max_connecting)
            .field("start_policy", &self.start_policy)
            .field("backoff", &self.backoff)
            .field("max_attempts", &self.max_attempts)
            .field("nested_overflow", &self.nested_overflow)
            .field("health_interval", &self.health_interval)
            .field("health_timeout", &self.health_timeout)
            .field("failback_delay", &self.failback_delay)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_timeout_bounds_waiting_and_socket_io() {
        let db = DatabaseConfig {
            timeout: Duration::from_secs(7),
            ..DatabaseConfig::default()
        };
        let options = PoolOptions::from_config(&db);
        assert_eq!(options.acquire_timeout, Duration::from_secs(7));
        assert_eq!(options.io_timeout, Duration::from_secs(7));
        let opts = options.mysql_opts();
        assert_eq!(opts.get_read_timeout(), Some(&Duration::from_secs(7)));
        assert_eq!(opts.get_write_timeout(), Some(&Duration::from_secs(7)));
    }

    #[test]
    fn a_host_list_becomes_the_first_node_plus_further_nodes() {
        let db = DatabaseConfig {
            host: "db1, db2:3307,[::1]".into(),
            port: 3310,
            failback_delay: Duration::from_secs(9),
            ..DatabaseConfig::default()
        };
        let options = PoolOptions::from_config(&db);
        assert_eq!((options.host.as_str(), options.port), ("db1", 3310));
        assert_eq!(
            options.more_nodes,
            [DbNode::new("db2", 3307), DbNode::new("::1", 3310)]
        );
        assert_eq!(options.failback_delay, Duration::from_secs(9));
        assert_eq!(options.endpoint(), "vsadmin@db1:3310,db2:3307,[::1]:3310");
    }

    #[test]
    fn a_single_host_has_no_further_nodes() {
        let options = PoolOptions::from_config(&DatabaseConfig::default());
        assert_eq!((options.host.as_str(), options.port), ("localhost", 3306));
        assert!(options.more_nodes.is_empty());
    }

    #[test]
    fn the_legacy_pool_honours_max_size_and_has_no_default_schema() {
        let db = DatabaseConfig {
            max_pool_size: 2,
            initial_pool_size: 1,
            timeout: Duration::from_secs(60),
            ..DatabaseConfig::default()
        };
        let options = PoolOptions::legacy(&db, 40);
        assert_eq!(options.max_size, 40);
        assert_eq!(options.initial_size, 1);
        assert_eq!(options.database, None);
        assert_eq!(options.acquire_timeout, LEGACY_ACQUIRE_TIMEOUT);
        assert_eq!(options.nested_overflow, 80);
        assert_eq!(options.start_policy, StartPolicy::TryOnce);
        assert!(options.validate().is_ok());
    }

    #[test]
    fn the_legacy_pool_waits_no_longer_than_database_timeout_and_fits_the_initial_size() {
        let db = DatabaseConfig {
            timeout: Duration::from_secs(1),
            initial_pool_size: 4,
            ..DatabaseConfig::default()
        };
        let options = PoolOptions::legacy(&db, 2);
        assert_eq!(options.acquire_timeout, Duration::from_secs(1));
        assert_eq!(options.initial_size, 2);
        assert!(options.validate().is_ok());
    }
}
