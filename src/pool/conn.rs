//! A checked-out connection: runs statements, and goes back to the pool when dropped.

use std::ops::Deref;
use std::result::Result as StdResult;
use std::sync::Arc;
use std::time::Instant;

use mysql::prelude::{AsStatement, FromRow, Queryable};
use mysql::{from_row, from_row_opt, Binary, FromRowError, Params, QueryResult, Statement, Text};

use super::bounded::{consume, drain_checked, RowBudget};
use super::error::{is_connection_error, with_packet_limit};
use super::session::{statement_effects, SessionEffect};
use super::stats::CloseReason;
use super::{Managed, PoolError, PoolOptions, Shared};

/// A connection taken from a [`Pool`](super::Pool); dropping it gives it back.
///
/// It implements [`Queryable`], so every `mysql` query helper works on it, with three
/// differences that make it safe to share:
///
/// - **Session hygiene.** Every statement text that goes through it (`query_*`, `prep`,
///   `exec_*` with a text or with a statement prepared on it) is judged for the session
///   state it may leave behind (from the first keyword of each statement), and
///   the connection is cleaned on return accordingly: `ROLLBACK; UNLOCK TABLES;
///   SET autocommit = 1` after a transaction, lock or autocommit change;
///   COM_RESET_CONNECTION after session variables, temporary tables, handlers, named locks
///   or a procedure call; closed after XA or backup locks. A clean connection costs no
///   round trip; a failed clean-up closes the connection.
/// - **Bounded results.** The collecting methods (`query`, `query_map`, `exec`, `exec_map`
///   and their `_opt` forms) stop at the pool's `max_result_bytes` with an error that
///   `PoolError::from` turns into `ResultTooLarge`; one packet is bounded by
///   `max_allowed_packet` (`ResultTooLarge` with that limit). `query_iter`/`exec_iter` hand
///   the rows to the caller one at a time, so only the packet bound applies to them.
/// - **Every result set is checked.** `query_drop`, `query_first`, `*_fold` and the
///   collecting methods read all result sets of a multi-statement text and fail if any
///   statement failed (the `mysql` defaults drop errors after the first result set).
///
/// A connection error marks it broken: it is closed on return and its idle siblings are
/// pinged before their next use. Errors met while iterating a `query_iter`/`exec_iter`
/// result yourself are not seen: call [`PooledConn::mark_broken`] if one is a connection
/// error. Not inspected for session state: statements run through
/// [`PooledConn::start_transaction`]'s `Transaction` (it commits or rolls back itself),
/// [`PooledConn::exec_first_self_contained`], and whatever is done through
/// [`PooledConn::as_conn_mut`] (which assumes the worst).
pub struct PooledConn {
    managed: Option<Managed>,
    shared: Arc<Shared>,
    checked_out: Instant,
    track: Track,
}

/// What this checkout has seen.
struct Track {
    /// The most the session may hold, from the statements run so far.
    session: SessionEffect,
    /// A connection error was seen: close instead of reuse.
    broken: bool,
    /// `max_allowed_packet`, to say which limit a too-large packet exceeded.
    packet_limit: u64,
}

impl Track {
    /// Notes a connection error (and names the packet limit) on the way out.
    fn note<T>(&mut self, result: mysql::Result<T>) -> mysql::Result<T> {
        result.map_err(|err| {
            self.broken |= is_connection_error(&err);
            with_packet_limit(err, self.packet_limit)
        })
    }

    fn mark(&mut self, effect: SessionEffect) {
        self.session = self.session.max(effect);
    }
}

impl PooledConn {
    pub(crate) fn new(managed: Managed, shared: Arc<Shared>, checked_out: Instant) -> PooledConn {
        let packet_limit = shared.options.max_allowed_packet as u64;
        PooledConn {
            managed: Some(managed),
            shared,
            checked_out,
            track: Track {
                session: SessionEffect::None,
                broken: false,
                packet_limit,
            },
        }
    }

    /// The pool's id of this connection (stable while it lives; not the server's thread id).
    pub fn id(&self) -> u64 {
        self.managed().id
    }

    /// The underlying connection for calls `Queryable` does not cover; the session is then
    /// assumed changed in any way a reset undoes, and is reset on return.
    pub fn as_conn_mut(&mut self) -> &mut mysql::Conn {
        self.track.mark(SessionEffect::Session);
        let managed = self.managed_mut();
        managed.schema_unknown();
        &mut managed.conn
    }

    /// Starts a transaction; it rolls back when dropped without `commit`.
    pub fn start_transaction(
        &mut self,
        options: mysql::TxOpts,
    ) -> Result<mysql::Transaction<'_>, mysql::Error> {
        let (managed, track) = self.parts();
        track.note(managed.conn.start_transaction(options))
    }

    /// Selects the default schema; a no-op without a round trip when it is already selected.
    pub fn set_schema(&mut self, schema: &str) -> Result<(), mysql::Error> {
        let shared = Arc::clone(&self.shared);
        let default = shared.options.database.as_deref();
        let current = self.managed().schema.as_deref().or(default);
        if current == Some(schema) {
            return Ok(());
        }
        let (managed, track) = self.parts();
        track.note(managed.conn.select_db(schema))?;
        managed.schema = (default != Some(schema)).then(|| schema.to_string());
        Ok(())
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
        T: FromRow,
        S: AsStatement,
        P: Into<Params>,
    {
        let (managed, track) = self.parts();
        track.note(managed.conn.exec_first(stmt, params))
    }

    /// Marks the connection unusable: it is closed instead of reused when given back.
    pub fn mark_broken(&mut self) {
        self.track.broken = true;
    }

    /// Whether a statement on this connection failed with a connection error.
    pub fn is_broken(&self) -> bool {
        self.track.broken
    }

    /// The byte limit of the rows a collecting method gathers (`max_result_bytes`).
    pub fn max_result_bytes(&self) -> u64 {
        self.shared.options.max_result_bytes
    }

    /// Checks that the server answers (COM_PING); a failure marks the connection broken.
    pub fn ping(&mut self) -> Result<(), mysql::Error> {
        let (managed, track) = self.parts();
        track.note(managed.conn.ping())
    }

    /// Runs `query` and collects its rows, failing with `ResultTooLarge` past the pool's
    /// limits; `Queryable::query` with the error already converted.
    pub fn query_bounded(&mut self, query: &str) -> Result<Vec<mysql::Row>, PoolError> {
        Ok(self.query(query)?)
    }

    /// Executes `stmt` and collects its rows, failing with `ResultTooLarge` past the pool's
    /// limits; `Queryable::exec` with the error already converted.
    pub fn exec_bounded<S: AsStatement, P: Into<Params>>(
        &mut self,
        stmt: S,
        params: P,
    ) -> Result<Vec<mysql::Row>, PoolError> {
        Ok(self.exec(stmt, params)?)
    }

    fn managed(&self) -> &Managed {
        // Only `drop` takes it out.
        self.managed
            .as_ref()
            .expect("connection present until drop")
    }

    fn managed_mut(&mut self) -> &mut Managed {
        self.parts().0
    }

    /// The connection and the tracking, borrowed apart.
    fn parts(&mut self) -> (&mut Managed, &mut Track) {
        // Only `drop` takes the connection out.
        let managed = self
            .managed
            .as_mut()
            .expect("connection present until drop");
        (managed, &mut self.track)
    }

    /// Records what `sql` may leave behind before it runs (it may fail half-way).
    fn judge(&mut self, sql: &str) -> SessionEffect {
        let effects = statement_effects(sql);
        self.track.mark(effects.session);
        if effects.schema {
            self.managed_mut().schema_unknown();
        }
        effects.session
    }

    /// The statement `stmt` stands for, prepared (and judged) through `Self::prep` if it is
    /// a text; a statement prepared earlier marks the session with what its text did.
    fn statement<'s, S: AsStatement>(
        &mut self,
        stmt: &'s S,
    ) -> mysql::Result<std::borrow::Cow<'s, Statement>> {
        let statement = stmt.as_statement(self)?;
        let effect = self.managed().statement_effect(statement.id());
        self.track.mark(effect);
        Ok(statement)
    }

    /// Collects the first result set of the text `query` within `max_result_bytes`.
    fn collect_query<U>(
        &mut self,
        query: &str,
        mut convert: impl FnMut(mysql::Row) -> U,
    ) -> mysql::Result<Vec<U>> {
        let mut budget = RowBudget::new(self.max_result_bytes());
        let mut out = Vec::new();
        let outcome = self
            .query_iter(query)
            .and_then(|result| consume(result, |row| budget.push(&mut out, row, &mut convert)));
        self.track.note(outcome).map(|_| out)
    }

    /// Collects the first result set of `stmt` within `max_result_bytes`.
    fn collect_exec<U>(
        &mut self,
        stmt: impl AsStatement,
        params: impl Into<Params>,
        mut convert: impl FnMut(mysql::Row) -> U,
    ) -> mysql::Result<Vec<U>> {
        let mut budget = RowBudget::new(self.max_result_bytes());
        let mut out = Vec::new();
        let outcome = self
            .exec_iter(stmt, params)
            .and_then(|result| consume(result, |row| budget.push(&mut out, row, &mut convert)));
        self.track.note(outcome).map(|_| out)
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
        // COM_RESET_CONNECTION keeps the schema: restore it separately. A pool without a
        // default schema (the C++ legacy constructor's, as Connector/C++ connected) has
        // none to go back to and MySQL cannot deselect one: the schema stays selected, as
        // in the legacy pool, and a caller's `set_schema` to it costs no round trip.
        if managed.schema.is_some() {
            if let Some(schema) = options.database.as_deref() {
                managed.conn.select_db(schema).map_err(failed)?;
                managed.schema = None;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn")
            .field("id", &self.managed.as_ref().map(|m| m.id))
            .field("session", &self.track.session)
            .field("broken", &self.track.broken)
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
        let close = if self.track.broken {
            Some(CloseReason::Broken)
        } else {
            Self::clean(&mut managed, self.track.session, &self.shared.options).err()
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
        self.judge(query);
        let (managed, track) = self.parts();
        track.note(managed.conn.query_iter(query))
    }

    fn query_first<T, Q>(&mut self, query: Q) -> mysql::Result<Option<T>>
    where
        Q: AsRef<str>,
        T: FromRow,
    {
        let first = first_row(self.query_iter(query), from_row);
        self.track.note(first)
    }

    fn query_first_opt<T, Q>(
        &mut self,
        query: Q,
    ) -> mysql::Result<Option<StdResult<T, FromRowError>>>
    where
        Q: AsRef<str>,
        T: FromRow,
    {
        let first = first_row(self.query_iter(query), from_row_opt);
        self.track.note(first)
    }

    fn query_map<T, F, Q, U>(&mut self, query: Q, mut f: F) -> mysql::Result<Vec<U>>
    where
        Q: AsRef<str>,
        T: FromRow,
        F: FnMut(T) -> U,
    {
        self.collect_query(query.as_ref(), |row| f(from_row(row)))
    }

    fn query_map_opt<T, F, Q, U>(&mut self, query: Q, mut f: F) -> mysql::Result<Vec<U>>
    where
        Q: AsRef<str>,
        T: FromRow,
        F: FnMut(StdResult<T, FromRowError>) -> U,
    {
        self.collect_query(query.as_ref(), |row| f(from_row_opt(row)))
    }

    fn query_fold<T, F, Q, U>(&mut self, query: Q, init: U, mut f: F) -> mysql::Result<U>
    where
        Q: AsRef<str>,
        T: FromRow,
        F: FnMut(U, T) -> U,
    {
        let folded = fold_rows(self.query_iter(query), init, |acc, row| {
            f(acc, from_row(row))
        });
        self.track.note(folded)
    }

    fn query_fold_opt<T, F, Q, U>(&mut self, query: Q, init: U, mut f: F) -> mysql::Result<U>
    where
        Q: AsRef<str>,
        T: FromRow,
        F: FnMut(U, StdResult<T, FromRowError>) -> U,
    {
        let folded = fold_rows(self.query_iter(query), init, |acc, row| {
            f(acc, from_row_opt(row))
        });
        self.track.note(folded)
    }

    fn query_drop<Q>(&mut self, query: Q) -> mysql::Result<()>
    where
        Q: AsRef<str>,
    {
        let outcome = self.query_iter(query).and_then(drain_checked);
        self.track.note(outcome).map(drop)
    }

    fn prep<Q: AsRef<str>>(&mut self, query: Q) -> mysql::Result<Statement> {
        let query = query.as_ref();
        let effect = self.judge(query);
        let (managed, track) = self.parts();
        let statement = track.note(managed.conn.prep(query))?;
        // Remembered by id: the statement may be executed again, in a later checkout.
        managed.remember_statement(statement.id(), effect);
        Ok(statement)
    }

    fn close(&mut self, stmt: Statement) -> mysql::Result<()> {
        let id = stmt.id();
        let (managed, track) = self.parts();
        managed.stmt_effects.retain(|(s, _)| *s != id);
        track.note(managed.conn.close(stmt))
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
        let statement = self.statement(&stmt)?;
        let (managed, track) = self.parts();
        track.note(managed.conn.exec_iter(&*statement, params))
    }

    fn exec_batch<S, P, I>(&mut self, stmt: S, params: I) -> mysql::Result<()>
    where
        Self: Sized,
        S: AsStatement,
        P: Into<Params>,
        I: IntoIterator<Item = P>,
    {
        let statement = self.statement(&stmt)?;
        let (managed, track) = self.parts();
        track.note(managed.conn.exec_batch(&*statement, params))
    }

    fn exec_first<T, S, P>(&mut self, stmt: S, params: P) -> mysql::Result<Option<T>>
    where
        S: AsStatement,
        P: Into<Params>,
        T: FromRow,
    {
        let first = first_row(self.exec_iter(stmt, params), from_row);
        self.track.note(first)
    }

    fn exec_first_opt<T, S, P>(
        &mut self,
        stmt: S,
        params: P,
    ) -> mysql::Result<Option<StdResult<T, FromRowError>>>
    where
        S: AsStatement,
        P: Into<Params>,
        T: FromRow,
    {
        let first = first_row(self.exec_iter(stmt, params), from_row_opt);
        self.track.note(first)
    }

    fn exec_map<T, S, P, F, U>(&mut self, stmt: S, params: P, mut f: F) -> mysql::Result<Vec<U>>
    where
        S: AsStatement,
        P: Into<Params>,
        T: FromRow,
        F: FnMut(T) -> U,
    {
        self.collect_exec(stmt, params, |row| f(from_row(row)))
    }

    fn exec_map_opt<T, S, P, F, U>(&mut self, stmt: S, params: P, mut f: F) -> mysql::Result<Vec<U>>
    where
        S: AsStatement,
        P: Into<Params>,
        T: FromRow,
        F: FnMut(StdResult<T, FromRowError>) -> U,
    {
        self.collect_exec(stmt, params, |row| f(from_row_opt(row)))
    }

    fn exec_fold<T, S, P, U, F>(
        &mut self,
        stmt: S,
        params: P,
        init: U,
        mut f: F,
    ) -> mysql::Result<U>
    where
        S: AsStatement,
        P: Into<Params>,
        T: FromRow,
        F: FnMut(U, T) -> U,
    {
        let folded = fold_rows(self.exec_iter(stmt, params), init, |acc, row| {
            f(acc, from_row(row))
        });
        self.track.note(folded)
    }

    fn exec_fold_opt<T, S, P, U, F>(
        &mut self,
        stmt: S,
        params: P,
        init: U,
        mut f: F,
    ) -> mysql::Result<U>
    where
        S: AsStatement,
        P: Into<Params>,
        T: FromRow,
        F: FnMut(U, StdResult<T, FromRowError>) -> U,
    {
        let folded = fold_rows(self.exec_iter(stmt, params), init, |acc, row| {
            f(acc, from_row_opt(row))
        });
        self.track.note(folded)
    }

    fn exec_drop<S, P>(&mut self, stmt: S, params: P) -> mysql::Result<()>
    where
        S: AsStatement,
        P: Into<Params>,
    {
        let outcome = self.exec_iter(stmt, params).and_then(drain_checked);
        self.track.note(outcome).map(drop)
    }
}

/// The first row of `result` converted by `convert`; the rest of every result set is read,
/// and the first error of any of them is returned (dropping a `QueryResult` would hide it).
fn first_row<P: mysql::prelude::Protocol, U>(
    result: mysql::Result<QueryResult<'_, '_, '_, P>>,
    convert: impl FnOnce(mysql::Row) -> U,
) -> mysql::Result<Option<U>> {
    let mut convert = Some(convert);
    let mut first = None;
    consume(result?, |row| {
        if let Some(convert) = convert.take() {
            first = Some(convert(row));
        }
        Ok(())
    })?;
    Ok(first)
}

/// Folds every row of the first result set of `result` into `init` with `f`; the rest of every
/// result set is read and the first error of any of them returned.
fn fold_rows<P: mysql::prelude::Protocol, U>(
    result: mysql::Result<QueryResult<'_, '_, '_, P>>,
    init: U,
    mut f: impl FnMut(U, mysql::Row) -> U,
) -> mysql::Result<U> {
    let mut acc = Some(init);
    consume(result?, |row| {
        acc = acc.take().map(|acc| f(acc, row));
        Ok(())
    })?;
    // `acc` is only ever taken to be put back at once.
    Ok(acc.expect("fold accumulator present"))
}
