//! Operation ids: every catalog change records, in its own transaction, which operation it
//! was and what it answered, so that a change whose connection died mid-flight (commit
//! outcome unknown) can be decided on a new connection and answered again.
//!
//! Design. `vs_operations` (schema version 6) has one row per committed change, primary
//! key `(owner, seq)`: `owner` is a random 64-bit number drawn once per [`MysqlMeta`]
//! (its clones share it), `seq` counts that catalog's changes from 1. `answer` is the
//! change's answer in a short text form ([`Answer`]: decimal numbers separated by single
//! spaces), and `done_ns` the client's clock when it ran, for the clean-up.
//!
//! - A first run does the change, then inserts its row with the answer, then commits: one
//!   more statement and one more row per change.
//! - After a lost connection the runner (`transaction.rs`) asks on a new connection whether
//!   the row exists (a causal read on Galera, [`recorded`]) and answers from it if so.
//!   Otherwise it runs the change again under the same id, this time inserting the row
//!   *first* ([`claim`]): if the lost run is still committing on the server, that insert
//!   waits for it and fails as a duplicate once it has committed (the answer is then read
//!   from its row), or goes ahead once it rolled back. The answer is written at the end
//!   ([`finish`]). A change that ends in an errno is rolled back, row and all, so running
//!   it again gives the errno again.
//! - `vs_create_node_v6` (the create procedure) always inserts the row first and signals
//!   [`OPERATION_DONE`] when it is a duplicate; it writes `ino perm gid` as its answer.
//!
//! Clean-up: a row is needed only while its operation may still be retried (until the
//! operation's deadline, `DatabaseTimeout`). Every [`TRIM_EVERY`] changes a catalog deletes at
//! most [`TRIM_BATCH`] rows older than [`OPERATION_RETENTION`] (any owner's: also those of
//! servers that are gone), so the table holds about one hour of changes plus one batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mysql::prelude::Queryable;

#[cfg(doc)]
use super::MysqlMeta;
use super::{attributes::kind_from, ERRNO_BASE};
use crate::meta::{now_ns, Attr, Changed, DataState, MetaError};
use crate::pool::PooledConn;

/// How long a change's record is kept: far longer than any operation may be retried.
pub const OPERATION_RETENTION: Duration = Duration::from_secs(3600);

/// A catalog deletes old records once per this many changes it made.
pub const TRIM_EVERY: u64 = 256;

/// At most this many old records are deleted at once (one bounded statement).
pub const TRIM_BATCH: u64 = 1024;

/// The server error number `vs_create_node_v6` signals when its operation id is already
/// recorded (that operation committed): [`ERRNO_BASE`] + 999, beyond every errno.
pub const OPERATION_DONE: u16 = ERRNO_BASE + 999;

/// Schema version 6: the record of committed changes.
pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS vs_operations (
        owner BIGINT UNSIGNED NOT NULL,
        seq BIGINT UNSIGNED NOT NULL,
        done_ns BIGINT NOT NULL,
        answer VARBINARY(2048) NULL,
        PRIMARY KEY (owner, seq),
        KEY by_done (done_ns)
    ) ENGINE=InnoDB";

/// One change's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OpId {
    /// The catalog instance that ran it.
    pub owner: u64,
    /// Its number among that instance's changes (from 1).
    pub seq: u64,
}

/// The id source of one catalog instance.
#[derive(Debug)]
pub(super) struct Operations {
    owner: u64,
    next: AtomicU64,
}

impl Operations {
    /// A new source with a random owner.
    pub fn new() -> Operations {
        Operations {
            owner: random_owner(),
            next: AtomicU64::new(1),
        }
    }

    /// The id of the next change.
    pub fn next(&self) -> OpId {
        OpId {
            owner: self.owner,
            seq: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// Whether the change `op` is the one after which old records are deleted.
pub(super) fn trim_due(op: OpId) -> bool {
    op.seq % TRIM_EVERY == 0
}

/// A change's answer as it is recorded: decimal numbers separated by single spaces, `-` for
/// an absent value.
pub(super) trait Answer: Sized {
    /// The recorded form.
    fn encode(&self, out: &mut Vec<String>);
    /// The answer back from its fields; `Internal` when they do not make one.
    fn decode(fields: &mut Fields<'_>) -> Result<Self, MetaError>;
}

/// The fields of a recorded answer, read in order.
pub(super) struct Fields<'a> {
    text: &'a str,
    rest: std::str::Split<'a, char>,
}

impl<'a> Fields<'a> {
    fn new(text: &'a str) -> Fields<'a> {
        Fields {
            text,
            rest: text.split(' '),
        }
    }

    /// The next field as a `T`.
    pub fn next<T: std::str::FromStr>(&mut self) -> Result<T, MetaError> {
        let field = self.rest.next().unwrap_or("");
        field.parse().map_err(|_| self.bad(field))
    }

    /// Whether the next field is `-` (absent; consumed) rather than a value.
    pub fn absent(&mut self) -> bool {
        let mut peek = self.rest.clone();
        if peek.next() == Some("-") {
            self.rest = peek;
            true
        } else {
            false
        }
    }

    fn bad(&self, field: &str) -> MetaError {
        MetaError::Internal(format!(
            "bad field {field:?} in the recorded answer {:?}",
            self.text
        ))
    }

    fn finish(mut self) -> Result<(), MetaError> {
        match self.rest.next() {
            None => Ok(()),
            Some(extra) => Err(self.bad(extra)),
        }
    }
}

/// The recorded form of `answer`.
pub(super) fn encode<T: Answer>(answer: &T) -> String {
    let mut fields = Vec::new();
    answer.encode(&mut fields);
    fields.join(" ")
}

/// The answer recorded as `text`.
pub(super) fn decode<T: Answer>(text: &str) -> Result<T, MetaError> {
    let mut fields = Fields::new(text);
    let answer = T::decode(&mut fields)?;
    fields.finish()?;
    Ok(answer)
}

impl Answer for () {
    fn encode(&self, _: &mut Vec<String>) {}
    fn decode(fields: &mut Fields<'_>) -> Result<(), MetaError> {
        // The empty text splits into one empty field.
        if fields.rest.clone().next() == Some("") {
            fields.rest.next();
        }
        Ok(())
    }
}

impl Answer for Attr {
    fn encode(&self, out: &mut Vec<String>) {
        out.extend([
            self.ino.to_string(),
            (self.kind as u8).to_string(),
            self.perm.to_string(),
            self.uid.to_string(),
            self.gid.to_string(),
            self.size.to_string(),
            self.nlink.to_string(),
            self.rdev.to_string(),
            self.atime.to_string(),
            self.mtime.to_string(),
            self.ctime.to_string(),
            self.crtime.to_string(),
            self.blocks.map_or("-".into(), |b| b.to_string()),
            (self.data_state as u8).to_string(),
        ]);
    }

    fn decode(fields: &mut Fields<'_>) -> Result<Attr, MetaError> {
        Ok(Attr {
            ino: fields.next()?,
            kind: kind_from(fields.next()?)?,
            perm: fields.next()?,
            uid: fields.next()?,
            gid: fields.next()?,
            size: fields.next()?,
            nlink: fields.next()?,
            rdev: fields.next()?,
            atime: fields.next()?,
            mtime: fields.next()?,
            ctime: fields.next()?,
            crtime: fields.next()?,
            blocks: if fields.absent() {
                None
            } else {
                Some(fields.next()?)
            },
            data_state: {
                let value: u8 = fields.next()?;
                DataState::from_u8(value)
                    .ok_or_else(|| MetaError::Internal(format!("unknown data_state {value}")))?
            },
        })
    }
}

impl Answer for Option<Attr> {
    fn encode(&self, out: &mut Vec<String>) {
        match self {
            Some(attr) => attr.encode(out),
            None => out.push("-".into()),
        }
    }

    fn decode(fields: &mut Fields<'_>) -> Result<Option<Attr>, MetaError> {
        if fields.absent() {
            Ok(None)
        } else {
            Attr::decode(fields).map(Some)
        }
    }
}

impl Answer for Changed {
    fn encode(&self, out: &mut Vec<String>) {
        self.node.encode(out);
        out.push(self.dirs.len().to_string());
        for dir in &self.dirs {
            dir.encode(out);
        }
        self.other.encode(out);
    }

    fn decode(fields: &mut Fields<'_>) -> Result<Changed, MetaError> {
        let node = Attr::decode(fields)?;
        let count: u8 = fields.next()?; // at most two directories
        let dirs = (0..count)
            .map(|_| Attr::decode(fields))
            .collect::<Result<_, _>>()?;
        let other = Option::<Attr>::decode(fields)?;
        Ok(Changed { node, dirs, other })
    }
}

/// What `vs_create_node_v6` answers: the new inode, and the permission bits and group it
/// got (set-group-id directories pass theirs on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Created {
    pub ino: u64,
    pub perm: u16,
    pub gid: u32,
}

impl Answer for Created {
    fn encode(&self, out: &mut Vec<String>) {
        out.extend([
            self.ino.to_string(),
            self.perm.to_string(),
            self.gid.to_string(),
        ]);
    }

    fn decode(fields: &mut Fields<'_>) -> Result<Created, MetaError> {
        Ok(Created {
            ino: fields.next()?,
            perm: fields.next()?,
            gid: fields.next()?,
        })
    }
}

/// Records the committed change `op` with `answer`, inside its transaction (a first run).
pub(super) fn record(conn: &mut impl Queryable, op: OpId, answer: &str) -> Result<(), MetaError> {
    conn.exec_drop(
        "INSERT INTO vs_operations (owner, seq, done_ns, answer) VALUES (?, ?, ?, ?)",
        (op.owner, op.seq, now_ns(), answer),
    )?;
    Ok(())
}

/// Inserts the row of `op` first in a run again; `false` when it exists (the lost run
/// committed, waiting for it if it was still committing).
pub(super) fn claim(conn: &mut impl Queryable, op: OpId) -> Result<bool, MetaError> {
    match conn.exec_drop(
        "INSERT INTO vs_operations (owner, seq, done_ns, answer) VALUES (?, ?, ?, NULL)",
        (op.owner, op.seq, now_ns()),
    ) {
        Ok(()) => Ok(true),
        Err(mysql::Error::MySqlError(e)) if e.code == 1062 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Writes the answer of `op` into the row [`claim`] inserted.
pub(super) fn finish(conn: &mut impl Queryable, op: OpId, answer: &str) -> Result<(), MetaError> {
    conn.exec_drop(
        "UPDATE vs_operations SET answer = ? WHERE owner = ? AND seq = ?",
        (answer, op.owner, op.seq),
    )?;
    Ok(())
}

/// The answer recorded for `op` if it committed. On Galera the read waits until this node
/// has applied everything committed cluster-wide before it (`wsrep_sync_wait = 1` for this
/// statement only), so a change committed through a node that died is seen; a server
/// without that variable (or without `SET STATEMENT`) is asked plainly.
pub(super) fn recorded<T: Answer>(conn: &mut PooledConn, op: OpId) -> Result<Option<T>, MetaError> {
    const SELECT: &str = "SELECT answer FROM vs_operations WHERE owner = ? AND seq = ?";
    let causal = conn.exec_first::<Option<String>, _, _>(
        format!("SET STATEMENT wsrep_sync_wait = 1 FOR {SELECT}"),
        (op.owner, op.seq),
    );
    let row = match causal {
        // 1193 unknown system variable, 1064 no SET STATEMENT (MySQL).
        Err(mysql::Error::MySqlError(e)) if matches!(e.code, 1193 | 1064) => {
            conn.exec_first(SELECT, (op.owner, op.seq))?
        }
        Err(mysql::Error::MySqlError(e)) if e.code == CAUSAL_READ_REFUSED => {
            return Err(causal_read_refused(&e.message))
        }
        other => other?,
    };
    match row {
        None => Ok(None),
        Some(Some(text)) => decode(&text).map(Some),
        Some(None) => Err(MetaError::Internal(format!(
            "operation {}/{} is recorded without its answer",
            op.owner, op.seq
        ))),
    }
}

/// What a Galera node answers a causal read it cannot serve (outside the primary component,
/// or not caught up within `repl.causal_read_timeout`): 1205, the lock wait timeout's code.
const CAUSAL_READ_REFUSED: u16 = 1205;

/// The error of a causal read the node refused: the node cannot serve now (`Unavailable`, so
/// the connection is discarded and the question asked again on a new one, from the node the
/// pool writes to next), not a conflict to run again on the same connection.
fn causal_read_refused(message: &str) -> MetaError {
    MetaError::Unavailable(format!(
        "the database node cannot answer a causal read now (not in the primary component?): \
         {message} ({CAUSAL_READ_REFUSED})"
    ))
}

/// Deletes at most [`TRIM_BATCH`] records older than [`OPERATION_RETENTION`]; how many.
pub(super) fn trim(conn: &mut impl Queryable) -> Result<u64, MetaError> {
    let retention = i64::try_from(OPERATION_RETENTION.as_nanos()).unwrap_or(i64::MAX);
    let result = conn.exec_iter(
        "DELETE FROM vs_operations WHERE done_ns < ? LIMIT ?",
        (now_ns().saturating_sub(retention), TRIM_BATCH),
    )?;
    Ok(result.affected_rows())
}

/// A random owner number (the kernel's random source; a clock-and-process mix without it).
fn random_owner() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => fastrand::u64(..) ^ u64::from(std::process::id()).rotate_left(32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_causal_read_is_unavailable_not_a_conflict() {
        let err = causal_read_refused("Lock wait timeout exceeded; try restarting transaction");
        assert!(matches!(err, MetaError::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains("1205"), "{err}");
    }
    use crate::meta::Kind;

    fn attr(ino: u64, blocks: Option<u64>) -> Attr {
        Attr {
            ino,
            kind: Kind::Directory,
            perm: 0o2755,
            uid: 1000,
            gid: 100,
            size: 4096,
            nlink: 3,
            rdev: 0,
            atime: -5,
            mtime: 1_700_000_000_123_456_789,
            ctime: 1_700_000_000_123_456_790,
            crtime: 0,
            blocks,
            data_state: DataState::Empty,
        }
    }

    #[test]
    fn answers_read_back_as_they_were() {
        let changed = Changed {
            node: attr(7, Some(8)),
            dirs: vec![attr(1, None), attr(2, Some(0))],
            other: Some(attr(9, None)),
        };
        let text = encode(&changed);
        assert_eq!(decode::<Changed>(&text), Ok(changed.clone()), "{text}");
        let plain = Changed {
            other: None,
            dirs: Vec::new(),
            ..changed
        };
        assert_eq!(decode::<Changed>(&encode(&plain)), Ok(plain));
        assert_eq!(decode::<Option<Attr>>("-"), Ok(None));
        let some = Some(attr(3, None));
        assert_eq!(decode::<Option<Attr>>(&encode(&some)), Ok(some));
        assert_eq!(encode(&()), "");
        assert_eq!(decode::<()>(""), Ok(()));
        let created = Created {
            ino: 42,
            perm: 0o644,
            gid: 7,
        };
        assert_eq!(encode(&created), "42 420 7", "what the procedure writes");
        assert_eq!(decode::<Created>("42 420 7"), Ok(created));
    }

    #[test]
    fn damaged_answers_are_internal_errors() {
        for text in ["42 420", "42 420 7 1", "x 420 7", "", "42  420 7"] {
            let result = decode::<Created>(text);
            assert!(
                matches!(result, Err(MetaError::Internal(_))),
                "{text:?}: {result:?}"
            );
        }
        assert!(decode::<()>("1").is_err());
    }

    #[test]
    fn ids_count_up_under_one_random_owner() {
        let (a, b) = (Operations::new(), Operations::new());
        let (first, second) = (a.next(), a.next());
        assert_eq!((first.seq, second.seq), (1, 2));
        assert_eq!(first.owner, second.owner);
        assert_ne!(a.owner, b.owner, "two catalogs, two owners");
        let due: Vec<u64> = (1..=3 * TRIM_EVERY)
            .filter(|&seq| trim_due(OpId { owner: 0, seq }))
            .collect();
        assert_eq!(due, [TRIM_EVERY, 2 * TRIM_EVERY, 3 * TRIM_EVERY]);
    }
}
