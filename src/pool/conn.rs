//! A checked-out connection: runs statements, and goes back to the pool when dropped.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use mysql::prelude::{AsStatement, Queryable};
use mysql::{Binary, Params, QueryResult, Statement, Text};

use super::error::is_connection_error;
use super::{Managed, Shared};

/// A connection taken from a [`Pool`](super::Pool); dropping it gives it back.
///
/// It implements [`Queryable`], so every `mysql` query helper works on it. Statements that
/// may leave a transaction, a table lock or autocommit off behind (`BEGIN`, `LOCK TABLES`,
/// `SET autocommit`, ...) mark the session, and it is cleaned with one round trip on return;
/// a clean connection costs no round trip. An I/O error marks it broken: it is closed on
/// return and its idle siblings are pinged before their next use.
pub struct PooledConn {
    managed: Option<Managed>,
    shared: Arc<Shared>,
    checked_out: Instant,
    session_dirty: bool,
    broken: bool,
}

impl PooledConn {
    pub(crate) fn new(managed: Managed, shared: Arc<Shared>, checked_out: Instant) -> PooledConn {
        PooledConn {
            managed: Some(managed),
            shared,
            checked_out,
            session_dirty: false,
            broken: false,
        }
    }

    /// The pool's id of this connection (stable while it lives; not the server's thread id).
    pub fn id(&self) -> u64 {
        self.managed().id
    }

    /// The underlying connection for calls `Queryable` does not cover; the session is then
    /// assumed changed and is cleaned on return.
    pub fn as_conn_mut(&mut self) -> &mut mysql::Conn {
        self.session_dirty = true;
        &mut self.managed_mut().conn
    }

    /// Starts a transaction; it rolls back when dropped without `commit`.
    pub fn start_transaction(
        &mut self,
        options: mysql::TxOpts,
    ) -> Result<mysql::Transaction<'_>, mysql::Error> {
        let PooledConn {
            managed, broken, ..
        } = self;
        let conn = &mut managed
            .as_mut()
            .expect("connection present until drop")
            .conn;
        match conn.start_transaction(options) {
            Ok(tx) => Ok(tx),
            Err(err) => {
                *broken |= is_connection_error(&err);
                Err(err)
            }
        }
    }

    /// Selects the default schema; a no-op without a round trip when it is already selected.
    pub fn set_schema(&mut self, schema: &str) -> Result<(), mysql::Error> {
        let shared = Arc::clone(&self.shared);
        let default = shared.options.database.as_deref();
        let current = self.managed().schema.as_deref().or(default);
        if current == Some(schema) {
            return Ok(());
        }
        let result = self.managed_mut().conn.select_db(schema);
        self.note(&result);
        if result.is_ok() {
            let changed = (default != Some(schema)).then(|| schema.to_string());
            self.managed_mut().schema = changed;
        }
        result
    }

    /// Runs a statement that ends every transaction it starts (such as a stored procedure
    /// that commits or rolls back itself) and returns its first row; unlike `exec_first`
    /// for a `CALL`, the session is not assumed changed, so the return costs no round trip.
    pub fn exec_first_self_contained<T, S, P>(
        &mut self,
        stmt: S,
        params: P,
    ) -> Result<Option<T>, mysql::Error>
    where
        T: mysql::prelude::FromRow,
        S: AsStatement,
        P: Into<Params>,
    {
        let result = self.managed_mut().conn.exec_first(stmt, params);
        self.note(&result);
        result
    }

    /// Marks the connection unusable: it is closed instead of reused when given back.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Whether a statement on this connection failed with a connection error.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The byte limit that bounded result reads on this pool use.
    pub fn max_result_bytes(&self) -> u64 {
        self.shared.options.max_result_bytes
    }

    /// Checks that the server answers (COM_PING); a failure marks the connection broken.
    pub fn ping(&mut self) -> Result<(), mysql::Error> {
        let result = self.managed_mut().conn.ping();
        self.note(&result);
        result
    }

    /// Runs `query` and collects its rows, failing with `ResultTooLarge` past the pool's limit.
    pub fn query_bounded(&mut self, query: &str) -> Result<Vec<mysql::Row>, super::PoolError> {
        let limit = self.max_result_bytes();
        let result = self.query_iter(query)?;
        super::collect_bounded(result, limit)
    }

    /// Executes `stmt` and collects its rows, failing with `ResultTooLarge` past the limit.
    pub fn exec_bounded<S: AsStatement, P: Into<Params>>(
        &mut self,
        stmt: S,
        params: P,
    ) -> Result<Vec<mysql::Row>, super::PoolError> {
        let limit = self.max_result_bytes();
        let result = self.exec_iter(stmt, params)?;
        super::collect_bounded(result, limit)
    }

    fn managed(&self) -> &Managed {
        // Only `drop` takes it out.
        self.managed
            .as_ref()
            .expect("connection present until drop")
    }

    fn managed_mut(&mut self) -> &mut Managed {
        self.managed
            .as_mut()
            .expect("connection present until drop")
    }

    fn note<T>(&mut self, result: &Result<T, mysql::Error>) {
        if let Err(err) = result {
            self.broken |= is_connection_error(err);
        }
    }

    /// Restores a session that may hold a transaction, lock or changed schema; false if it failed.
    fn clean(managed: &mut Managed, dirty: bool, reset: bool, default: Option<&str>) -> bool {
        let conn = &mut managed.conn;
        if reset {
            if conn.reset().is_err() {
                return false;
            }
            // COM_RESET_CONNECTION keeps the schema; nothing else to undo.
        } else if dirty
            && conn
                .query_drop("ROLLBACK; UNLOCK TABLES; SET autocommit = 1")
                .is_err()
        {
            return false;
        }
        if managed.schema.is_some() {
            if let Some(schema) = default {
                if managed.conn.select_db(schema).is_err() {
                    return false;
                }
            }
            managed.schema = None;
        }
        true
    }
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn")
            .field("id", &self.managed.as_ref().map(|m| m.id))
            .field("session_dirty", &self.session_dirty)
            .field("broken", &self.broken)
            .finish()
    }
}

impl Deref for PooledConn {
    type Target = mysql::Conn;

    /// Read-only access (`affected_rows`, `last_insert_id`, ...).
    fn deref(&self) -> &mysql::Conn {
        &self.managed().conn
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(mut managed) = self.managed.take() else {
            return;
        };
        let options = &self.shared.options;
        let needs_cleaning =
            self.session_dirty || options.reset_on_return || managed.schema.is_some();
        let mut reusable = !self.broken;
        if reusable && needs_cleaning {
            reusable = Self::clean(
                &mut managed,
                self.session_dirty,
                options.reset_on_return,
                options.database.as_deref(),
            );
        }
        self.shared.give_back(managed, self.checked_out, reusable);
    }
}

impl Queryable for PooledConn {
    fn query_iter<Q: AsRef<str>>(
        &mut self,
        query: Q,
    ) -> mysql::Result<QueryResult<'_, '_, '_, Text>> {
        let query = query.as_ref();
        let PooledConn {
            managed,
            session_dirty,
            broken,
            ..
        } = self;
        *session_dirty |= may_leave_session_state(query);
        let conn = &mut managed
            .as_mut()
            .expect("connection present until drop")
            .conn;
        let result = conn.query_iter(query);
        if let Err(err) = &result {
            *broken |= is_connection_error(err);
        }
        result
    }

    fn prep<Q: AsRef<str>>(&mut self, query: Q) -> mysql::Result<Statement> {
        let query = query.as_ref();
        self.session_dirty |= may_leave_session_state(query);
        let result = self.managed_mut().conn.prep(query);
        self.note(&result);
        result
    }

    fn close(&mut self, stmt: Statement) -> mysql::Result<()> {
        let result = self.managed_mut().conn.close(stmt);
        self.note(&result);
        result
    }

    fn exec_iter<S, P>(
        &mut self,
        stmt: S,
        params: P,
    ) -> mysql::Result<QueryResult<'_, '_, '_, Binary>>
    where
        S: AsStatement,
        P: Into<Params>,
    {
        let PooledConn {
            managed, broken, ..
        } = self;
        let conn = &mut managed
            .as_mut()
            .expect("connection present until drop")
            .conn;
        let result = conn.exec_iter(stmt, params);
        if let Err(err) = &result {
            *broken |= is_connection_error(err);
        }
        result
    }

    fn exec_batch<S, P, I>(&mut self, stmt: S, params: I) -> mysql::Result<()>
    where
        Self: Sized,
        S: AsStatement,
        P: Into<Params>,
        I: IntoIterator<Item = P>,
    {
        let result = self.managed_mut().conn.exec_batch(stmt, params);
        self.note(&result);
        result
    }
}

/// Whether a statement may leave session state behind (transaction, lock, autocommit off).
///
/// Conservative and cheap: looks at the first keyword only (after blanks, comments and
/// parentheses). A false positive costs one round trip on return; statements run through a
/// [`mysql::Transaction`] need no marking because it commits or rolls back itself.
pub fn may_leave_session_state(sql: &str) -> bool {
    let keyword = first_keyword(sql);
    const MARKERS: [&str; 7] = [
        "BEGIN",
        "START",
        "LOCK",
        "XA",
        "SAVEPOINT",
        "HANDLER",
        "CALL",
    ];
    if MARKERS.iter().any(|m| keyword.eq_ignore_ascii_case(m)) {
        return true;
    }
    keyword.eq_ignore_ascii_case("SET") && sql.to_ascii_lowercase().contains("autocommit")
}

/// The first word of a statement, skipping blanks, `/* */`, `-- ` and `#` comments and `(`.
fn first_keyword(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(after) = trimmed.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, tail)| tail);
        } else if trimmed.starts_with("-- ") || trimmed.starts_with('#') {
            rest = trimmed.split_once('\n').map_or("", |(_, tail)| tail);
        } else {
            let end = trimmed
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(trimmed.len());
            return &trimmed[..end];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_and_lock_statements_mark_the_session() {
        for sql in [
            "BEGIN",
            "  start transaction",
            "/* tag */ LOCK TABLES t WRITE",
            "-- note\nSET autocommit=0",
            "set session AUTOCOMMIT = 0",
            "XA START 'x'",
            "savepoint a",
            "(BEGIN)",
        ] {
            assert!(may_leave_session_state(sql), "{sql}");
        }
    }

    #[test]
    fn plain_statements_do_not_mark_the_session() {
        for sql in [
            "SELECT 1",
            "INSERT INTO begin_log VALUES (1)",
            "SET @x = 1",
            "update t set v = 'BEGIN'",
            "",
            "/* unterminated",
            "# only a comment",
        ] {
            assert!(!may_leave_session_state(sql), "{sql}");
        }
    }
}
