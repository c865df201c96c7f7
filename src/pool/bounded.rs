//! Reading results: every result set is read and its errors seen, and collected rows are
//! bounded, so no result can grow memory without bound or hide a failed statement.

use mysql::prelude::Protocol;
use mysql::{QueryResult, Row, Value};

use super::error::LimitExceeded;
use super::PoolError;

/// Collects the rows of the first result set, failing once they exceed `limit` bytes.
///
/// The remaining rows (and result sets) are read and dropped so the connection stays
/// usable; an error in any of them is returned. Allocation failure is `OutOfMemory`.
pub fn collect_bounded<P: Protocol>(
    result: QueryResult<'_, '_, '_, P>,
    limit: u64,
) -> Result<Vec<Row>, PoolError> {
    let mut rows = RowBudget::new(limit);
    let mut collected = Vec::new();
    consume(result, |row| rows.push(&mut collected, row, |row| row))?;
    Ok(collected)
}

/// An estimate of the memory a row occupies: payload bytes plus a word per value.
pub fn row_bytes(row: &Row) -> u64 {
    let mut bytes = 0u64;
    for index in 0..row.len() {
        bytes += 8;
        if let Some(Value::Bytes(b)) = row.as_ref(index) {
            bytes += b.len() as u64;
        }
    }
    bytes
}

/// Reads every remaining row of every result set of `result` and returns the first error
/// of any of them.
///
/// Dropping a `QueryResult` also reads the rest, but silently drops the errors of later
/// statements of a multi-statement query; this does not.
pub fn drain_checked<P: Protocol>(result: QueryResult<'_, '_, '_, P>) -> mysql::Result<()> {
    consume(result, |_| Ok(()))
}

/// Reads all of `result`: each row of the first result set goes to `each` until it returns
/// an error; everything after that, and every later result set, is read and dropped.
/// Returns the first error from `each` or from any result set.
pub(crate) fn consume<P: Protocol>(
    mut result: QueryResult<'_, '_, '_, P>,
    mut each: impl FnMut(Row) -> mysql::Result<()>,
) -> mysql::Result<()> {
    let mut failure = None;
    let mut first_set = true;
    while let Some(set) = result.iter() {
        for row in set {
            match row {
                Ok(row) if first_set && failure.is_none() => {
                    if let Err(err) = each(row) {
                        failure = Some(err);
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        first_set = false;
    }
    failure.map_or(Ok(()), Err)
}

/// Counts the bytes of collected rows against a limit.
pub(crate) struct RowBudget {
    limit: u64,
    used: u64,
}

impl RowBudget {
    pub(crate) fn new(limit: u64) -> RowBudget {
        RowBudget { limit, used: 0 }
    }

    /// Adds `convert(row)` to `out`, or fails when the rows so far exceed the limit or memory
    /// runs out (the caller then stops collecting).
    pub(crate) fn push<U>(
        &mut self,
        out: &mut Vec<U>,
        row: Row,
        convert: impl FnOnce(Row) -> U,
    ) -> mysql::Result<()> {
        self.used = self.used.saturating_add(row_bytes(&row));
        if self.used > self.limit {
            return Err(LimitExceeded::ResultBytes { limit: self.limit }.into_mysql());
        }
        out.try_reserve(1)
            .map_err(|_| LimitExceeded::OutOfMemory.into_mysql())?;
        out.push(convert(row));
        Ok(())
    }
}
