//! The owner lease over MySQL/MariaDB: the single row of `vs_owner_lease`, read with
//! `SELECT ... FOR UPDATE` and written in the same transaction, so two servers asking at
//! once are serialised (on Galera, where row locks are local to a node, the loser's commit
//! fails certification and is retried). Times are the database's clock
//! (`UTC_TIMESTAMP(6)`, free of the session's time zone), never a server's.

use std::ffi::OsString;
use std::ops::RangeInclusive;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use mysql::prelude::Queryable;

use super::attributes::column;
use super::MysqlMeta;
use crate::meta::lease::{
    decide, holder_is_gone, judge_renewal, ttl_ns, Acquired, Decision, LeaseHolder, LeaseRecord,
    OwnerLease, Renewal,
};
use crate::meta::MetaError;

/// The database's clock in ns since the epoch (UTC, microsecond resolution).
const NOW_NS: &str =
    "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) * 1000";

const LOCK_ROW: &str = "SELECT token, host, pid, mount_point, process, started_ns, renewed_ns, \
     expires_ns, beat FROM vs_owner_lease WHERE id = 1 FOR UPDATE";

impl OwnerLease for MysqlMeta {
    fn acquire(&self, me: &LeaseHolder, ttl: Duration) -> Result<Acquired, MetaError> {
        // The row exists from the migration on; a catalog that lost it (a partial restore)
        // gets a free one. Outside the transaction, so that taking the row lock below is the
        // transaction's first lock.
        self.read(|conn| {
            conn.exec_drop(
                "INSERT IGNORE INTO vs_owner_lease (id, token, host, pid, mount_point, process, \
                 started_ns, renewed_ns, expires_ns, beat) VALUES (1, '', '', 0, '', '', 0, 0, 0, 0)",
                (),
            )?;
            Ok(())
        })?;
        self.write_unrecorded(|tx| {
            let now = now_ns(tx)?;
            let record = lock_row(tx)?;
            match decide(record.as_ref(), now, me, |h| holder_is_gone(h, me)) {
                Decision::Refuse(state) => Ok(Acquired::HeldBy(state)),
                Decision::Take(previous) => {
                    let beat = record.as_ref().map_or(0, |r| r.beat).wrapping_add(1);
                    tx.exec_drop(
                        "UPDATE vs_owner_lease SET token = ?, host = ?, pid = ?, mount_point = ?, \
                         process = ?, started_ns = ?, renewed_ns = ?, expires_ns = ?, beat = ? \
                         WHERE id = 1",
                        (
                            &me.token,
                            &me.host,
                            me.pid,
                            me.mount_point.as_os_str().as_bytes(),
                            &me.process,
                            now,
                            now,
                            now.saturating_add(ttl_ns(ttl)),
                            beat,
                        ),
                    )?;
                    Ok(Acquired::Taken { beat, previous })
                }
            }
        })
    }

    fn renew(
        &self,
        me: &LeaseHolder,
        ttl: Duration,
        beats: RangeInclusive<u64>,
    ) -> Result<Renewal, MetaError> {
        self.write_unrecorded(|tx| {
            let now = now_ns(tx)?;
            let record = lock_row(tx)?;
            match judge_renewal(record.as_ref(), now, me, &beats) {
                Err(loss) => Ok(Renewal::Lost(loss)),
                Ok(found) => {
                    let beat = found.wrapping_add(1);
                    tx.exec_drop(
                        "UPDATE vs_owner_lease SET renewed_ns = ?, expires_ns = ?, beat = ? \
                         WHERE id = 1 AND token = ?",
                        (now, now.saturating_add(ttl_ns(ttl)), beat, &me.token),
                    )?;
                    Ok(Renewal::Renewed { beat })
                }
            }
        })
    }

    fn release(&self, me: &LeaseHolder) -> Result<bool, MetaError> {
        self.write_unrecorded(|tx| {
            let now = now_ns(tx)?;
            tx.exec_drop(
                "UPDATE vs_owner_lease SET token = '', expires_ns = ? WHERE id = 1 AND token = ?",
                (now, &me.token),
            )?;
            Ok(tx.affected_rows() > 0)
        })
    }
}

fn now_ns(conn: &mut impl Queryable) -> Result<i64, MetaError> {
    conn.query_first::<i64, _>(NOW_NS)?
        .ok_or_else(|| MetaError::Internal("the database did not tell its time".into()))
}

/// The lease row, locked until the transaction ends; `None` if it is missing.
fn lock_row(conn: &mut impl Queryable) -> Result<Option<LeaseRecord>, MetaError> {
    let Some(mut row) = conn.query_first::<mysql::Row, _>(LOCK_ROW)? else {
        return Ok(None);
    };
    let mount_point: Vec<u8> = column(&mut row, 3)?;
    Ok(Some(LeaseRecord {
        holder: LeaseHolder {
            token: column(&mut row, 0)?,
            host: column(&mut row, 1)?,
            pid: column(&mut row, 2)?,
            mount_point: PathBuf::from(OsString::from_vec(mount_point)),
            process: column(&mut row, 4)?,
        },
        since_ns: column(&mut row, 5)?,
        renewed_ns: column(&mut row, 6)?,
        expires_ns: column(&mut row, 7)?,
        beat: column(&mut row, 8)?,
    }))
}
