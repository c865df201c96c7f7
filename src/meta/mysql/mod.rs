//! The metadata engine over MySQL/MariaDB (and MariaDB Galera): inodes, directory entries,
//! symlink targets, extended attributes. Every change is one transaction; every statement
//! is parameterised. Changes return the attributes of every inode they touched
//! ([`Changed`]), so the file system can keep what it serves in step with the catalog.
//!
//! By concern: `namespace` (names, links, renames, listings), `attributes` (attributes,
//! symlink targets, rows to [`Attr`]), `xattrs`, `archive` (the archive tier: copies,
//! candidates, archive/release/recall states), `cleanup` (orphans, inventory, identity),
//! `transaction` (how statements run, the time bound, and the [`RetryPolicy`] for
//! conflicts), `schema` (tables, the stored procedure, migrations) and [`privileges`]. This
//! file holds the engine, its dispatch to those, and the conversion of database errors into
//! [`MetaError`].

mod archive;
mod attributes;
mod cleanup;
mod lease;
mod namespace;
mod operations;
pub mod privileges;
mod schema;
mod transaction;
mod xattrs;

use std::sync::Arc;
use std::time::Duration;

pub use archive::{
    EVICTION_CANDIDATES_AFTER_QUERY, EVICTION_CANDIDATES_QUERY, MIGRATION_CANDIDATES_QUERY,
};
pub use operations::{OPERATION_DONE, OPERATION_RETENTION, TRIM_BATCH, TRIM_EVERY};
pub use schema::{errno_signal, migrate, ERRNO_BASE, PROCEDURE_ERRNOS, SCHEMA_VERSION};
pub use transaction::RetryPolicy;

use super::{
    ArchiveCopy, Attr, AttrChange, CatalogLocation, Changed, DirEntry, Kind, MetaEngine, MetaError,
    NewNode, RenameMode, StateTotal, XattrMode,
};
use crate::pool::{is_connection_error, Pool, PoolError};

/// The catalog over a connection pool.
#[derive(Clone)]
pub struct MysqlMeta {
    pool: Pool,
    retry: RetryPolicy,
    operations: Arc<operations::Operations>,
}

impl MysqlMeta {
    /// A catalog using `pool`, retrying conflicts as [`RetryPolicy::default`] says; call
    /// [`MetaEngine::migrate`] once before use.
    pub fn new(pool: Pool) -> MysqlMeta {
        MysqlMeta {
            pool,
            retry: RetryPolicy::default(),
            operations: Arc::new(operations::Operations::new()),
        }
    }

    /// The same catalog, retrying conflicts as `retry` says.
    pub fn with_retry_policy(self, retry: RetryPolicy) -> MysqlMeta {
        MysqlMeta { retry, ..self }
    }

    /// The pool it uses.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// How conflicts and lost connections are retried.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The source of this catalog's operation ids (shared by its clones).
    fn operations(&self) -> &operations::Operations {
        &self.operations
    }
}

impl MetaEngine for MysqlMeta {
    fn location(&self) -> CatalogLocation {
        let options = self.pool.options();
        CatalogLocation {
            database: options.database.clone().unwrap_or_default(),
            server: match &options.socket {
                Some(socket) => socket.display().to_string(),
                None => format!("{}:{}", options.host, options.port),
            },
        }
    }

    fn migrate(&self, uid: u32, gid: u32) -> Result<u32, MetaError> {
        self.read(|conn| migrate(conn, uid, gid))
    }

    /// How long one operation waits for a connection and keeps retrying conflicts
    /// (`DatabaseTimeout`, the pool's acquire timeout).
    fn timeout(&self) -> Duration {
        self.pool.options().acquire_timeout
    }

    fn get_attr(&self, ino: u64) -> Result<Attr, MetaError> {
        attributes::get_attr(self, ino)
    }

    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr, MetaError> {
        namespace::lookup(self, parent, name)
    }

    fn create(&self, parent: u64, name: &[u8], node: &NewNode<'_>) -> Result<Attr, MetaError> {
        namespace::create(self, parent, name, node)
    }

    fn undo_create(&self, parent: u64, name: &[u8], ino: u64) -> Result<Option<Attr>, MetaError> {
        namespace::undo_create(self, parent, name, ino)
    }

    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> Result<Changed, MetaError> {
        namespace::link(self, ino, newparent, newname)
    }

    fn unlink(&self, parent: u64, name: &[u8]) -> Result<Changed, MetaError> {
        namespace::unlink(self, parent, name)
    }

    fn rmdir(&self, parent: u64, name: &[u8]) -> Result<Changed, MetaError> {
        namespace::rmdir(self, parent, name)
    }

    fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        mode: RenameMode,
    ) -> Result<Changed, MetaError> {
        namespace::rename(self, parent, name, newparent, newname, mode)
    }

    fn read_dir(&self, dir: u64, after: u64, limit: usize) -> Result<Vec<DirEntry>, MetaError> {
        namespace::read_dir(self, dir, after, limit)
    }

    fn read_dir_plus(
        &self,
        dir: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(DirEntry, Attr)>, MetaError> {
        namespace::read_dir_plus(self, dir, after, limit)
    }

    fn parent_of(&self, dir: u64) -> Result<u64, MetaError> {
        namespace::parent_of(self, dir)
    }

    fn set_attr(&self, ino: u64, change: &AttrChange) -> Result<Attr, MetaError> {
        attributes::set_attr(self, ino, change)
    }

    fn read_link(&self, ino: u64) -> Result<Vec<u8>, MetaError> {
        attributes::read_link(self, ino)
    }

    fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        max_total: usize,
    ) -> Result<Attr, MetaError> {
        xattrs::set_xattr(self, ino, name, value, mode, max_total)
    }

    fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, MetaError> {
        xattrs::get_xattr(self, ino, name)
    }

    fn list_xattrs(&self, ino: u64) -> Result<Vec<Vec<u8>>, MetaError> {
        xattrs::list_xattrs(self, ino)
    }

    fn xattr_in_use(&self, name: &[u8]) -> Result<bool, MetaError> {
        xattrs::xattr_in_use(self, name)
    }

    fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<Attr, MetaError> {
        xattrs::remove_xattr(self, ino, name)
    }

    fn orphans(&self) -> Result<Vec<u64>, MetaError> {
        cleanup::orphans(self)
    }

    fn existing(&self, inos: &[u64]) -> Result<Vec<u64>, MetaError> {
        cleanup::existing(self, inos)
    }

    fn sizes(&self, inos: &[u64]) -> Result<Vec<(u64, Kind, u64)>, MetaError> {
        cleanup::sizes(self, inos)
    }

    fn identity(&self) -> Result<String, MetaError> {
        cleanup::identity(self)
    }

    fn files_with_data(&self, limit: u64) -> Result<u64, MetaError> {
        cleanup::files_with_data(self, limit)
    }

    fn purge(&self, ino: u64) -> Result<(), MetaError> {
        cleanup::purge(self, ino)
    }

    fn path_of(&self, ino: u64) -> Result<Vec<u8>, MetaError> {
        archive::path_of(self, ino)
    }

    fn migration_candidates(&self, after: u64, limit: usize) -> Result<Vec<Attr>, MetaError> {
        archive::migration_candidates(self, after, limit)
    }

    fn eviction_candidates(
        &self,
        after: Option<(i64, u64)>,
        limit: usize,
    ) -> Result<Vec<Attr>, MetaError> {
        archive::eviction_candidates(self, after, limit)
    }

    fn record_copy(&self, copy: &ArchiveCopy) -> Result<Attr, MetaError> {
        archive::record_copy(self, copy)
    }

    fn release(&self, ino: u64, mtime: i64) -> Result<Attr, MetaError> {
        archive::release(self, ino, mtime)
    }

    fn recalled(&self, ino: u64) -> Result<Attr, MetaError> {
        archive::recalled(self, ino)
    }

    fn mark_damaged(&self, ino: u64) -> Result<Attr, MetaError> {
        archive::mark_damaged(self, ino)
    }

    fn live_copy(&self, ino: u64) -> Result<Option<ArchiveCopy>, MetaError> {
        archive::live_copy(self, ino)
    }

    fn released_after(
        &self,
        volume: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ArchiveCopy>, MetaError> {
        archive::released_after(self, volume, after, limit)
    }

    fn superseded_copies(
        &self,
        before_ns: i64,
        limit: usize,
    ) -> Result<Vec<ArchiveCopy>, MetaError> {
        archive::superseded_copies(self, before_ns, limit)
    }

    fn superseded_count(&self) -> Result<u64, MetaError> {
        archive::superseded_count(self)
    }

    fn forget_copy(&self, volume: &str, seq: u64) -> Result<(), MetaError> {
        archive::forget_copy(self, volume, seq)
    }

    fn state_totals(&self) -> Result<Vec<StateTotal>, MetaError> {
        archive::state_totals(self)
    }
}

impl From<PoolError> for MetaError {
    fn from(err: PoolError) -> MetaError {
        match &err {
            PoolError::Sql(sql) if !sql.connection_broken && node_cannot_serve(sql.code) => {
                MetaError::Unavailable(err.to_string())
            }
            PoolError::Sql(sql) if !sql.connection_broken && is_conflict(sql.code) => {
                MetaError::Conflict(err.to_string())
            }
            PoolError::Sql(sql) if !sql.connection_broken => MetaError::Internal(err.to_string()),
            PoolError::ResultTooLarge { .. }
            | PoolError::OutOfMemory
            | PoolError::InvalidOptions(_) => MetaError::Internal(err.to_string()),
            _ => MetaError::Unavailable(err.to_string()),
        }
    }
}

impl From<mysql::Error> for MetaError {
    fn from(err: mysql::Error) -> MetaError {
        if is_connection_error(&err) {
            return MetaError::Unavailable(err.to_string());
        }
        match &err {
            mysql::Error::MySqlError(e) if node_cannot_serve(e.code) => {
                MetaError::Unavailable(format!("{} ({})", e.message, e.code))
            }
            mysql::Error::MySqlError(e) if is_conflict(e.code) => {
                MetaError::Conflict(format!("{} ({})", e.message, e.code))
            }
            mysql::Error::MySqlError(e) => {
                MetaError::Internal(format!("{} ({})", e.message, e.code))
            }
            other => MetaError::Internal(other.to_string()),
        }
    }
}

/// Whether server error `code` means the node (or this connection to it) cannot serve now,
/// so that the statement's outcome is unknown and another connection, perhaps to another
/// node, should be asked: 1047 (Galera: "WSREP has not yet prepared node for application
/// use", a node outside the primary component or not synced), 1053 (server shutdown),
/// 1152 (connection aborted), 1158 to 1161 (network read/write errors on the server's
/// side), 1180 (an error during COMMIT: on Galera "Not connected to Primary Component"
/// while the node leaves it; whether the commit took effect is then for the operation's
/// record to say), 1927 (connection killed), 4031 (idle client disconnected) and the client's
/// 2006 (server gone) and 2013 (connection lost). The connection is then discarded.
fn node_cannot_serve(code: u16) -> bool {
    matches!(
        code,
        1047 | 1053 | 1152 | 1158..=1161 | 1180 | 1927 | 4031 | 2006 | 2013
    )
}

/// Whether server error `code` means the transaction was rolled back by a concurrent one
/// and may run again: a deadlock (1213, which is also how Galera reports a certification
/// failure) or a lock wait timeout (1205).
fn is_conflict(code: u16) -> bool {
    matches!(code, 1213 | 1205)
}

/// Maps what `vs_create_node_v6` signals back to `MetaError::Errno`: a taken name (duplicate
/// key) is `EEXIST`, and each errno the procedure signals comes back as itself (the numbers
/// are built from the same constants as the procedure's text, [`errno_signal`]).
fn procedure_error(err: mysql::Error) -> MetaError {
    match &err {
        mysql::Error::MySqlError(e) if e.code == 1062 => MetaError::Errno(libc::EEXIST),
        mysql::Error::MySqlError(e) => match schema::signalled_errno(e.code) {
            Some(errno) => MetaError::Errno(errno),
            None => err.into(),
        },
        _ => err.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::SqlError;
    use std::io;

    fn server_error(code: u16) -> mysql::Error {
        mysql::Error::MySqlError(mysql::MySqlError {
            state: "45000".into(),
            message: "signalled".into(),
            code,
        })
    }

    #[test]
    fn deadlocks_and_lock_wait_timeouts_are_conflicts() {
        for code in [1213, 1205] {
            let err = MetaError::from(server_error(code));
            assert!(matches!(err, MetaError::Conflict(_)), "{code}: {err:?}");
        }
        let duplicate = MetaError::from(server_error(1062));
        assert!(matches!(duplicate, MetaError::Internal(_)), "{duplicate:?}");
    }

    #[test]
    fn codes_of_a_node_that_cannot_serve_are_unavailable() {
        // 1047: Galera "WSREP has not yet prepared node for application use"; 1053 server
        // shutdown; 1927 connection killed; 2006/2013 gone / lost; 4031 idle disconnect.
        for code in [1047, 1053, 1152, 1158, 1161, 1180, 1927, 2006, 2013, 4031] {
            let direct = MetaError::from(server_error(code));
            assert!(
                matches!(direct, MetaError::Unavailable(_)),
                "{code}: {direct:?}"
            );
            let sql = PoolError::Sql(SqlError {
                code,
                state: "08S01".into(),
                message: format!("error {code}"),
                connection_broken: false,
            });
            let pooled = MetaError::from(sql);
            assert!(
                matches!(pooled, MetaError::Unavailable(_)),
                "{code}: {pooled:?}"
            );
        }
        // 1213 is also Galera's certification failure: a conflict to retry, not a lost node.
        for code in [1213, 1205] {
            let sql = PoolError::Sql(SqlError {
                code,
                state: "40001".into(),
                message: format!("error {code}"),
                connection_broken: false,
            });
            let pooled = MetaError::from(sql);
            assert!(
                matches!(pooled, MetaError::Conflict(_)),
                "{code}: {pooled:?}"
            );
        }
        let other = MetaError::from(server_error(1146));
        assert!(matches!(other, MetaError::Internal(_)), "{other:?}");
    }

    #[test]
    fn every_errno_the_procedure_signals_maps_back_to_itself() {
        for &errno in schema::PROCEDURE_ERRNOS {
            let code = schema::errno_signal(errno);
            assert_eq!(
                procedure_error(server_error(code)),
                MetaError::Errno(errno),
                "error number {code}"
            );
        }
        assert_eq!(
            procedure_error(server_error(1062)),
            MetaError::Errno(libc::EEXIST)
        );
        let unknown = procedure_error(server_error(ERRNO_BASE + 99));
        assert!(
            matches!(unknown, MetaError::Internal(_)),
            "a number the procedure does not signal is no errno: {unknown:?}"
        );
    }

    #[test]
    fn lost_connections_and_server_errors_are_told_apart() {
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "read timed out");
        assert!(matches!(
            MetaError::from(mysql::Error::IoError(timeout)),
            MetaError::Unavailable(_)
        ));
        let pool_timeout = PoolError::Timeout {
            waited: Duration::from_secs(1),
            in_use: 1,
            max_size: 1,
            last_error: None,
        };
        assert!(matches!(
            MetaError::from(pool_timeout),
            MetaError::Unavailable(_)
        ));
        let too_large = PoolError::ResultTooLarge { limit: 1 };
        assert!(matches!(MetaError::from(too_large), MetaError::Internal(_)));
    }
}
