//! Errors the pool returns; messages name what failed and never carry the password.

use std::io;
use std::time::Duration;

use mysql_common::proto::codec::error::PacketCodecError;

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
        /// The last connect error (with the server's code and SQLSTATE), if connecting had
        /// been failing.
        last_error: Option<ConnectError>,
    },
    /// The database failed `max_attempts` connects in a row; calls fail fast until a probe succeeds.
    #[error("database unavailable: {last_error}")]
    Unavailable {
        /// The last connect error, with the server's code and SQLSTATE.
        last_error: ConnectError,
    },
    /// The pool was closed.
    #[error("connection pool is closed")]
    Closed,
    /// A connect made for the caller failed: the first one at start-up (fail-fast start, or
    /// none in time), or one opened beyond `max_size` for a nested request.
    #[error("cannot connect to the database: {0}")]
    Connect(ConnectError),
    /// Options that cannot work together (e.g. a zero maximum size).
    #[error("invalid pool options: {0}")]
    InvalidOptions(String),
    /// A statement failed on the server or the connection broke while running it.
    #[error("{0}")]
    Sql(#[from] SqlError),
    /// A result exceeded a configured byte limit: its rows together `max_result_bytes`, or
    /// one packet `max_allowed_packet` (the connection is then closed on return).
    #[error("result larger than the configured limit of {limit} bytes")]
    ResultTooLarge {
        /// The limit exceeded, in bytes.
        limit: u64,
    },
    /// Memory for a result could not be allocated.
    #[error("out of memory while reading a result")]
    OutOfMemory,
}

/// A read stopped at a configured bound.
///
/// [`PooledConn`](super::PooledConn)'s `Queryable` methods return it inside
/// `mysql::Error::IoError` (the one `mysql::Error` variant that can carry it);
/// `PoolError::from` turns it back into [`PoolError::ResultTooLarge`] or
/// [`PoolError::OutOfMemory`], and [`LimitExceeded::find`] digs it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The rows collected exceeded `max_result_bytes`; the rest were read and dropped, so
    /// the connection stays usable.
    #[error("result set larger than the configured limit of {limit} bytes")]
    ResultBytes {
        /// `max_result_bytes`.
        limit: u64,
    },
    /// A packet from the server exceeded `max_allowed_packet`; the connection is out of
    /// step and is closed on return.
    #[error("packet larger than max_allowed_packet ({limit} bytes)")]
    Packet {
        /// `max_allowed_packet`.
        limit: u64,
    },
    /// Memory for the rows could not be allocated.
    #[error("out of memory while reading a result")]
    OutOfMemory,
}

impl LimitExceeded {
    /// Wraps the limit in a `mysql::Error`, as `Queryable` methods must return one.
    pub fn into_mysql(self) -> mysql::Error {
        let kind = match self {
            LimitExceeded::OutOfMemory => io::ErrorKind::OutOfMemory,
            _ => io::ErrorKind::Other,
        };
        mysql::Error::IoError(io::Error::new(kind, self))
    }

    /// The limit carried by `err`, if it is one.
    pub fn find(err: &mysql::Error) -> Option<LimitExceeded> {
        match err {
            mysql::Error::IoError(e) => e.get_ref()?.downcast_ref::<LimitExceeded>().copied(),
            _ => None,
        }
    }
}

/// Replaces the driver's "packet too large" (which does not say the limit) by
/// [`LimitExceeded::Packet`] with the connection's `max_allowed_packet`.
pub(crate) fn with_packet_limit(err: mysql::Error, limit: u64) -> mysql::Error {
    match err {
        mysql::Error::CodecError(PacketCodecError::PacketTooLarge)
        | mysql::Error::DriverError(mysql::DriverError::PacketTooLarge) => {
            LimitExceeded::Packet { limit }.into_mysql()
        }
        other => other,
    }
}

/// Why a connect failed: the server's error code and SQLSTATE when the server refused
/// (1045 access denied, 1049 unknown database, ...), the client's code when it could not
/// reach the server (2003, as the MySQL client library says), and the message.
///
/// It dereferences to its message, so it reads like the string it replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    /// The server's error number (e.g. 1045), or the client's: 2003 when the server could
    /// not be reached, 2000 for another client-side failure, 0 when unknown.
    pub code: u16,
    /// The five-character SQLSTATE ("28000", "42000", "HY000" for client errors), or empty
    /// when unknown.
    pub state: String,
    /// What failed, as the driver said it (never the password).
    pub message: String,
}

/// MySQL client error: cannot connect to the server (CR_CONN_HOST_ERROR).
pub const CLIENT_CANNOT_CONNECT: u16 = 2003;
/// MySQL client error: unknown client-side failure (CR_UNKNOWN_ERROR).
pub const CLIENT_UNKNOWN_ERROR: u16 = 2000;

impl ConnectError {
    /// The cause of a failed connect, with the code and SQLSTATE the MySQL client library
    /// would give for it.
    pub fn from_mysql(err: &mysql::Error) -> ConnectError {
        let (code, state) = match err {
            mysql::Error::MySqlError(e) => (e.code, e.state.clone()),
            mysql::Error::IoError(_)
            | mysql::Error::DriverError(
                mysql::DriverError::CouldNotConnect(_) | mysql::DriverError::ConnectTimeout,
            ) => (CLIENT_CANNOT_CONNECT, "HY000".to_string()),
            _ => (CLIENT_UNKNOWN_ERROR, "HY000".to_string()),
        };
        ConnectError {
            code,
            state,
            message: err.to_string(),
        }
    }
}

impl From<&str> for ConnectError {
    /// A cause known only by its message (code 0, no SQLSTATE).
    fn from(message: &str) -> ConnectError {
        ConnectError {
            code: 0,
            state: String::new(),
            message: message.to_string(),
        }
    }
}

impl std::ops::Deref for ConnectError {
    type Target = str;

    fn deref(&self) -> &str {
        &self.message
    }
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
        match LimitExceeded::find(&err) {
            Some(LimitExceeded::ResultBytes { limit } | LimitExceeded::Packet { limit }) => {
                PoolError::ResultTooLarge { limit }
            }
            Some(LimitExceeded::OutOfMemory) => PoolError::OutOfMemory,
            // A packet error not seen by a `PooledConn` (so without its limit) stays an
            // SQL error that says what happened and that the connection broke.
            None => PoolError::Sql(err.into()),
        }
    }
}

/// Whether an error means the connection can no longer be used.
pub fn is_connection_error(err: &mysql::Error) -> bool {
    match err {
        mysql::Error::IoError(_) => match LimitExceeded::find(err) {
            Some(limit) => matches!(limit, LimitExceeded::Packet { .. }),
            None => true,
        },
        mysql::Error::CodecError(_) => true,
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

fn last_error_suffix(last_error: &Option<ConnectError>) -> String {
    match last_error {
        Some(e) => format!("; last connect error: {e}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_limit_becomes_result_too_large_and_keeps_the_connection() {
        let err = LimitExceeded::ResultBytes { limit: 4096 }.into_mysql();
        assert!(!is_connection_error(&err));
        assert!(matches!(
            PoolError::from(err),
            PoolError::ResultTooLarge { limit: 4096 }
        ));
    }

    #[test]
    fn packet_too_large_carries_max_allowed_packet_and_breaks_the_connection() {
        let raw = mysql::Error::CodecError(PacketCodecError::PacketTooLarge);
        let err = with_packet_limit(raw, 65536);
        assert!(is_connection_error(&err));
        assert!(matches!(
            PoolError::from(err),
            PoolError::ResultTooLarge { limit: 65536 }
        ));
    }

    #[test]
    fn out_of_memory_is_reported_as_such() {
        let err = LimitExceeded::OutOfMemory.into_mysql();
        assert!(matches!(PoolError::from(err), PoolError::OutOfMemory));
    }

    #[test]
    fn connect_errors_keep_the_server_code_and_sqlstate() {
        let refused = mysql::Error::IoError(io::Error::from(io::ErrorKind::ConnectionRefused));
        let cause = ConnectError::from_mysql(&refused);
        assert_eq!((cause.code, cause.state.as_str()), (2003, "HY000"));
        let err = PoolError::Unavailable { last_error: cause };
        assert!(err.to_string().contains("refused"), "{err}");
    }

    #[test]
    fn other_io_errors_still_break_the_connection() {
        let err = mysql::Error::IoError(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(is_connection_error(&err));
        assert!(matches!(PoolError::from(err), PoolError::Sql(_)));
    }
}
