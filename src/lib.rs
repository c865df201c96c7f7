//! ValueStor core: the `vs_conf.xml` configuration, a bounded MySQL connection pool,
//! the C ABI over it, and the FUSE file system whose catalog lives in MySQL.

// Every unsafe operation sits in its own block with a `// SAFETY:` comment saying why it is
// sound, also inside `unsafe fn`s (the C ABI's exports).
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod archive;
pub mod cache;
pub mod config;
pub mod data;
pub mod ffi;
pub mod fs;
pub mod log_limit;
pub mod meta;
pub mod notify;
pub mod vfs;

pub mod pool;
pub mod server;
pub mod tier;

pub use config::{Config, ConfigError, DatabaseConfig, Secret};

pub use pool::{Pool, PoolError, PoolOptions, PoolStats, PooledConn, StartPolicy};
