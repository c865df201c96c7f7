//! Reading result sets with a byte limit, so no result can grow memory without bound.

use mysql::prelude::Protocol;
use mysql::{QueryResult, Row, Value};

use super::PoolError;

/// Collects the rows of the first result set, failing once they exceed `limit` bytes.
///
/// The remaining rows are drained (and dropped) by the result's destructor so the
/// connection stays usable. Allocation failure is reported as `OutOfMemory`.
pub fn collect_bounded<P: Protocol>(
    mut result: QueryResult<'_, '_, '_, P>,
    limit: u64,
) -> Result<Vec<Row>, PoolError> {
    let mut rows = Vec::new();
    let mut total: u64 = 0;
    if let Some(set) = result.iter() {
        for row in set {
            let row = row?;
            total = total.saturating_add(row_bytes(&row));
            if total > limit {
                return Err(PoolError::ResultTooLarge { limit });
            }
            rows.try_reserve(1).map_err(|_| PoolError::OutOfMemory)?;
            rows.push(row);
        }
    }
    Ok(rows)
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
pub fn drain_checked<P: Protocol>(mut result: QueryResult<'_, '_, '_, P>) -> mysql::Result<()> {
    let mut failure = None;
    while let Some(set) = result.iter() {
        for row in set {
            if let Err(err) = row {
                failure.get_or_insert(err);
            }
        }
    }
    failure.map_or(Ok(()), Err)
}
