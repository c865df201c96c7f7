//! What a statement may leave behind in its session, judged from its text, and so what
//! giving the connection back must do before the next caller gets it.
//!
//! The judgement is conservative and cheap (the first keyword of each statement, no parser):
//! a false positive costs one round trip on return, a false negative would leak state to
//! the next caller, so every doubtful case errs towards cleaning.

/// Session state a statement may leave behind, in increasing order of the work to undo it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SessionEffect {
    /// Nothing that outlives the statement. User variables (`SET @x`) count as nothing:
    /// they are harmless to the next caller and `reset_on_return` clears them.
    #[default]
    None,
    /// An open transaction, a table lock or autocommit off: undone on return by
    /// `ROLLBACK; UNLOCK TABLES; SET autocommit = 1`.
    Transaction,
    /// State only COM_RESET_CONNECTION undoes: session variables, temporary tables, open
    /// `HANDLER`s, named locks (`GET_LOCK`), SQL-level prepared statements, whatever a
    /// stored procedure did.
    Session,
    /// State a reset is not trusted to undo (XA transactions, backup locks): the connection
    /// is closed instead of reused.
    Discard,
}

/// What one statement text (possibly several statements separated by `;`) may change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StatementEffects {
    /// The session state it may leave behind.
    pub(crate) session: SessionEffect,
    /// Whether it may change the default schema (`USE`), which a reset keeps.
    pub(crate) schema: bool,
}

/// Judges what `sql` may leave behind in the session.
///
/// Looks at the first keyword of the whole text and of every piece after a `;` (so a
/// multi-statement query cannot hide a `START TRANSACTION` behind a `SELECT`; a `;` inside a
/// literal only adds pieces, never hides one), skipping blanks, comments and `(`.
pub(crate) fn statement_effects(sql: &str) -> StatementEffects {
    let mut effects = StatementEffects::default();
    for piece in std::iter::once(sql).chain(sql.split(';').skip(1)) {
        let (session, schema) = one_statement(piece);
        effects.session = effects.session.max(session);
        effects.schema |= schema;
    }
    // A named lock outlives the statement that took it, whatever that statement is.
    if contains_ignore_case(sql, "get_lock") {
        effects.session = effects.session.max(SessionEffect::Session);
    }
    effects
}

/// The effect of one statement, from its first keyword; the flag is a schema change.
fn one_statement(sql: &str) -> (SessionEffect, bool) {
    let (keyword, rest) = first_keyword(sql);
    let is = |k: &str| keyword.eq_ignore_ascii_case(k);
    let effect = if is("USE") {
        return (SessionEffect::None, true);
    } else if is("BEGIN") || is("START") || is("SAVEPOINT") || is("LOCK") {
        SessionEffect::Transaction
    } else if is("COMMIT") || is("ROLLBACK") {
        // `... AND CHAIN` opens the next transaction at once.
        if contains_ignore_case(rest, "chain") {
            SessionEffect::Transaction
        } else {
            SessionEffect::None
        }
    } else if is("FLUSH") {
        // FLUSH TABLES WITH READ LOCK: released by UNLOCK TABLES.
        if contains_ignore_case(rest, "lock") {
            SessionEffect::Transaction
        } else {
            SessionEffect::None
        }
    } else if is("SET") {
        set_effect(rest)
    } else if is("HANDLER")
        || is("CALL")
        || is("PREPARE")
        || (is("CREATE") && contains_ignore_case(rest, "temporary"))
    {
        SessionEffect::Session
    } else if is("XA") || is("BACKUP") {
        SessionEffect::Discard
    } else {
        SessionEffect::None
    };
    (effect, false)
}

/// The effect of `SET <assignments>`: autocommit is a transaction matter, user variables are
/// nothing, anything else (session variables, `NAMES`, `TRANSACTION`, ...) needs a reset.
fn set_effect(assignments: &str) -> SessionEffect {
    // Splitting on ',' also splits function arguments: the extra pieces then do not start
    // with '@' and count as session changes, which is the safe direction.
    assignments
        .split(',')
        .map(|assignment| {
            let target = assignment.trim_start();
            let target = strip_prefix_ignore_case(target, "@@session.")
                .or_else(|| strip_prefix_ignore_case(target, "@@local."))
                .or_else(|| strip_prefix_ignore_case(target, "@@"))
                .or_else(|| strip_prefix_ignore_case(target, "session "))
                .or_else(|| strip_prefix_ignore_case(target, "local "))
                .map_or(target, str::trim_start);
            if strip_prefix_ignore_case(target, "autocommit").is_some() {
                SessionEffect::Transaction
            } else if target.starts_with('@') && !target.starts_with("@@") {
                SessionEffect::None
            } else {
                SessionEffect::Session
            }
        })
        .max()
        .unwrap_or(SessionEffect::None)
}

/// The first word of a statement and the text after it, skipping blanks, `/* */`, `-- ` and
/// `#` comments and `(`.
fn first_keyword(sql: &str) -> (&str, &str) {
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
            return trimmed.split_at(end);
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// ASCII case-insensitive substring search without allocating.
fn contains_ignore_case(text: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    text.as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sql: &str) -> SessionEffect {
        statement_effects(sql).session
    }

    #[test]
    fn transaction_and_lock_statements_need_a_rollback() {
        for sql in [
            "BEGIN",
            "  start transaction",
            "/* tag */ LOCK TABLES t WRITE",
            "-- note\nSET autocommit=0",
            "set session AUTOCOMMIT = 0",
            "SET @@autocommit = 0",
            "SET @@session.autocommit=0",
            "savepoint a",
            "(BEGIN)",
            "COMMIT AND CHAIN",
            "FLUSH TABLES WITH READ LOCK",
        ] {
            assert_eq!(session(sql), SessionEffect::Transaction, "{sql}");
        }
    }

    #[test]
    fn session_changes_need_a_reset() {
        for sql in [
            "SET NAMES latin1",
            "SET sql_mode = ''",
            "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET @@time_zone = '+02:00'",
            "SET @a = 1, sql_mode = ''",
            "CREATE TEMPORARY TABLE t (v INT)",
            "create or replace temporary table t (v int)",
            "HANDLER t OPEN",
            "CALL p()",
            "PREPARE s FROM 'SELECT 1'",
            "SELECT GET_LOCK('x', 1)",
            "DO get_lock('x', 0)",
        ] {
            assert_eq!(session(sql), SessionEffect::Session, "{sql}");
        }
    }

    #[test]
    fn xa_and_backup_locks_discard_the_connection() {
        for sql in ["XA START 'x'", "BACKUP STAGE START", "backup lock t"] {
            assert_eq!(session(sql), SessionEffect::Discard, "{sql}");
        }
    }

    #[test]
    fn a_later_statement_of_a_multi_statement_query_counts() {
        assert_eq!(
            session("SELECT 1; START TRANSACTION"),
            SessionEffect::Transaction
        );
        assert_eq!(
            session("SELECT 'a;b'; SET NAMES utf8"),
            SessionEffect::Session
        );
        assert_eq!(
            session("/* ; */ START TRANSACTION"),
            SessionEffect::Transaction
        );
        assert_eq!(session("SELECT 1; XA START 'x'"), SessionEffect::Discard);
    }

    #[test]
    fn use_changes_the_schema_only() {
        let effects = statement_effects("USE other");
        assert_eq!(effects.session, SessionEffect::None);
        assert!(effects.schema);
        assert!(statement_effects("SELECT 1; use other").schema);
        assert!(!statement_effects("SELECT used FROM t").schema);
    }

    #[test]
    fn plain_statements_leave_nothing() {
        for sql in [
            "SELECT 1",
            "INSERT INTO begin_log VALUES (1)",
            "SET @x = 1",
            "SET @x = 1, @y = 2",
            "update t set v = 'BEGIN'",
            "COMMIT",
            "ROLLBACK",
            "CREATE TABLE t (v INT)",
            "",
            "/* unterminated",
            "# only a comment",
        ] {
            assert_eq!(statement_effects(sql), StatementEffects::default(), "{sql}");
        }
    }
}
