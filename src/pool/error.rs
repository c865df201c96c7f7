//! Errors the pool returns; messages name what failed and never carry the password.

use std::time::Duration;

/// Why a pool operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// No connection became free within the acquire timeout.
    #[error("no database connection within {:.1} s ({in_use} of {max_size} in use){}", waited.as_secs_f64(), last_error_suffix(last_error))]
    Timeout {
        /// How long the caller waited.
        waited: Duration,
        /// Connections checked out when the wait ended.
        in_use: usize,
        /// The pool's maximum size.
        max_size: usize,
        /// The last connect error, if connecting had been failing.
        last_error: Option<String>,
    },
    /// The database failed `max_attempts` connects in a row; calls fail fast until a probe succeeds.
    #[error("database unavailable: {last_error}")]
    Unavailable {
        /// The last connect error.
        last_error: String,
    },
    /// The pool was closed.
    #[error("connection pool is closed")]
    Closed,
    /// The first connect at start-up failed (fail-fast start) or did not succeed in time.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// Options that cannot work together (e.g. a zero maximum size).
    #[error("invalid pool options: {0}")]
    InvalidOptions(String),
    /// A statement failed on the server or the connection broke while running it.
    #[error("{0}")]
    Sql(#[from] SqlError),
    /// A result set exceeded the configured byte limit.
    #[error("result set larger than the configured limit of {limit} bytes")]
    ResultTooLarge {
        /// The configured limit in bytes.
        limit: u64,
    },
    /// Memory for a result could not be allocated.
    #[error("out of memory while reading a result")]
    OutOfMemory,
}

/// A failed statement: the server's error code and SQLSTATE when it came from the server.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// The server error number (e.g. 1146), or 0 when the error did not come from the server.
    pub code: u16,
    /// The five-character SQLSTATE, or "HY000" when unknown.
    pub state: String,
    /// Human-readable description.
    pub message: String,
    /// Whether the connection itself is broken (I/O error, server gone).
    pub connection_broken: bool,
}

impl From<mysql::Error> for SqlError {
    fn from(err: mysql::Error) -> SqlError {
        let connection_broken = is_connection_error(&err);
        match err {
            mysql::Error::MySqlError(e) => SqlError {
                code: e.code,
                state: e.state.clone(),
                message: format!("SQL error {} ({}): {}", e.code, e.state, e.message),
                connection_broken,
            },
            other => SqlError {
                code: 0,
                state: if connection_broken { "08S01" } else { "HY000" }.to_string(),
                message: other.to_string(),
                connection_broken,
            },
        }
    }
}

impl From<mysql::Error> for PoolError {
    fn from(err: mysql::Error) -> PoolError {
        match err {
            mysql::Error::DriverError(mysql::DriverError::PacketTooLarge) => {
                PoolError::ResultTooLarge { limit: 0 }
            }
            other => PoolError::Sql(other.into()),
        }
    }
}

/// Whether an error means the connection can no longer be used.
pub fn is_connection_error(err: &mysql::Error) -> bool {
    match err {
        mysql::Error::IoError(_) | mysql::Error::CodecError(_) => true,
        mysql::Error::DriverError(e) => matches!(
            e,
            mysql::DriverError::ConnectTimeout
                | mysql::DriverError::CouldNotConnect(_)
                | mysql::DriverError::PacketOutOfSync
                | mysql::DriverError::UnexpectedPacket
                | mysql::DriverError::Timeout
                | mysql::DriverError::PacketTooLarge
        ),
        // 1053 server shutdown, 1927 connection killed, 4031 idle client disconnected,
        // 2006/2013 server gone / lost connection.
        mysql::Error::MySqlError(e) => matches!(e.code, 1053 | 1927 | 4031 | 2006 | 2013),
        _ => false,
    }
}

fn last_error_suffix(last_error: &Option<String>) -> String {
    match last_error {
        Some(e) => format!("; last connect error: {e}"),
        None => String::new(),
    }
}
