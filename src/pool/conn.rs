//! A checked-out connection: runs statements, and goes back to the pool when dropped.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use mysql::prelude::{AsStatement, Queryable};
use mysql::{Binary, Params, QueryResult, Statement, Text};

use super::bounded::drain_checked;
use super::error::is_connection_error;
use super::session::{statement_effects, SessionEffect};
use super::stats::CloseReason;
use super::{Managed, PoolOptions, Shared};

/// A connection taken from a [`Pool`](super::Pool); dropping it gives it back.
///
/// It implements [`Queryable`], so every `mysql` query helper works on it. Every statement
/// text that goes through it (`query_*`, `prep`, `exec_*` with a text or a statement prepared
/// on it) is judged for the session state it may leave behind (see
/// [`statement_effects`](super::statement_effects)), and the connection is cleaned on return
/// accordingly: `ROLLBACK; UNLOCK TABLES; SET autocommit = 1` after a transaction, lock or
/// autocommit change; COM_RESET_CONNECTION after session variables, temporary tables,
/// handlers, named locks or a procedure call; closed after XA or backup locks. A clean
/// connection costs no round trip; a failed clean-up closes the connection. An I/O error
/// marks it broken: it is closed on return and its idle siblings are pinged before their
/// next use.
///
/// Not inspected: statements run through [`PooledConn::start_transaction`]'s
/// `Transaction` (it commits or rolls back itself), [`PooledConn::exec_first_self_contained`],
/// and whatever is done through [`PooledConn::as_conn_mut`] (which assumes the worst).
pub struct PooledConn {
    managed: Option<Managed>,
    shared: Arc<Shared>,
    checked_out: Instant,
    session: SessionEffect,
    broken: bool,
}

impl PooledConn {
    pub(crate) fn new(managed: Managed, shared: Arc<Shared>, checked_out: Instant) -> PooledConn {
        PooledConn {
            managed: Some(managed),
            shared,
            checked_out,
            session: SessionEffect::None,
            broken: false,
        }
    }

    /// The pool's id of this connection (stable while it lives; not the server's thread id).
    pub fn id(&self) -> u64 {
        self.managed().id
    }

    /// The underlying connection for calls `Queryable` does not cover; the session is then
    /// assumed changed in any way a reset undoes, and is reset on return.
    pub fn as_conn_mut(&mut self) -> &mut mysql::Conn {
        self.session = self.session.max(SessionEffect::Session);
        let managed = self.managed_mut();
        managed.schema_unknown();
        &mut managed.conn
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

    /// Undoes what the session may hold so the next caller starts clean; on failure says
    /// why the connection must be closed instead.
    fn clean(
        managed: &mut Managed,
        session: SessionEffect,
        options: &PoolOptions,
    ) -> Result<(), CloseReason> {
        let failed = |err: mysql::Error| {
            if is_connection_error(&err) {
                CloseReason::Broken
            } else {
                CloseReason::Error
            }
        };
        let conn = &mut managed.conn;
        match session {
            SessionEffect::Discard => return Err(CloseReason::Error),
            SessionEffect::Session => {
                conn.reset().map_err(failed)?;
                managed.stmt_effects.clear();
            }
            _ if options.reset_on_return => {
                conn.reset().map_err(failed)?;
                managed.stmt_effects.clear();
            }
            SessionEffect::Transaction => {
                // One round trip; every statement's result is checked, not only the first.
                let result = conn.query_iter("ROLLBACK; UNLOCK TABLES; SET autocommit = 1");
                result.and_then(drain_checked).map_err(failed)?;
            }
            SessionEffect::None => {}
        }
        // COM_RESET_CONNECTION keeps the schema: restore it separately.
        if managed.schema.is_some() {
            match options.database.as_deref() {
                Some(schema) => managed.conn.select_db(schema).map_err(failed)?,
                // No default schema to go back to.
                None => return Err(CloseReason::Error),
            }
            managed.schema = None;
        }
        Ok(())
    }

    /// Records what `sql` may leave behind before it runs (it may fail half-way).
    fn mark(&mut self, sql: &str) -> SessionEffect {
        let effects = statement_effects(sql);
        self.session = self.session.max(effects.session);
        if effects.schema {
            self.managed_mut().schema_unknown();
        }
        effects.session
    }
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn")
            .field("id", &self.managed.as_ref().map(|m| m.id))
            .field("session", &self.session)
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
        let close = if self.broken {
            Some(CloseReason::Broken)
        } else {
            Self::clean(&mut managed, self.session, &self.shared.options).err()
        };
        self.shared.give_back(managed, self.checked_out, close);
    }
}

impl Queryable for PooledConn {
    fn query_iter<Q: AsRef<str>>(
        &mut self,
        query: Q,
    ) -> mysql::Result<QueryResult<'_, '_, '_, Text>> {
        let query = query.as_ref();
        self.mark(query);
        let PooledConn {
            managed, broken, ..
        } = self;
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
        let effect = self.mark(query);
        let result = self.managed_mut().conn.prep(query);
        self.note(&result);
        if let Ok(statement) = &result {
            // Remembered by id: the statement may be executed again, in a later checkout.
            self.managed_mut()
                .remember_statement(statement.id(), effect);
        }
        result
    }

    fn close(&mut self, stmt: Statement) -> mysql::Result<()> {
        let id = stmt.id();
        let result = self.managed_mut().conn.close(stmt);
        self.note(&result);
        self.managed_mut().stmt_effects.retain(|(s, _)| *s != id);
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
        // A text is prepared through `Self::prep`, which judges it.
        let statement = stmt.as_statement(self)?;
        let effect = self.managed().statement_effect(statement.id());
        self.session = self.session.max(effect);
        let PooledConn {
            managed, broken, ..
        } = self;
        let conn = &mut managed
            .as_mut()
            .expect("connection present until drop")
            .conn;
        let result = conn.exec_iter(&*statement, params);
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
        let statement = stmt.as_statement(self)?;
        let effect = self.managed().statement_effect(statement.id());
        self.session = self.session.max(effect);
        let result = self.managed_mut().conn.exec_batch(&*statement, params);
        self.note(&result);
        result
    }
}
