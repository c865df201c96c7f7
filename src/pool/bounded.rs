//! Reading results: every result set is read and its errors seen, and collected rows are
//! bounded, so no result can grow memory without bound or hide a failed statement.

use mysql::prelude::Protocol;
use mysql::{QueryResult, Row, Value};

use super::error::LimitExceeded;
use super::PoolError;

/// What the statements of one request reported, over all their result sets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Rows changed by the first statement (the one whose rows are collected).
    pub(crate) first_affected_rows: u64,
    /// Affected rows summed over every statement.
    pub(crate) affected_rows: u64,
    /// The last non-zero AUTO_INCREMENT id any statement reported (0 if none did).
    pub(crate) last_insert_id: u64,
}

/// The rows of a result set in the order the server sent them, the first kept inline: a
/// one-row result (a lookup by key, `SELECT 1`) needs no list of its own.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    first: Option<Row>,
    rest: Vec<Row>,
}

impl Rows {
    /// Appends `row`; allocation failure is `OutOfMemory` (inside a `mysql::Error`).
    pub(crate) fn push(&mut self, row: Row) -> mysql::Result<()> {
        if self.first.is_none() {
            self.first = Some(row);
        } else {
            self.rest
                .try_reserve(1)
                .map_err(|_| LimitExceeded::OutOfMemory.into_mysql())?;
            self.rest.push(row);
        }
        Ok(())
    }

    /// How many rows there are.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// The row at 0-based `index`, if there is one.
    pub(crate) fn get(&self, index: usize) -> Option<&Row> {
        match index.checked_sub(1) {
            None => self.first.as_ref(),
            Some(index) => self.rest.get(index),
        }
    }
}

/// Collects the rows of the first result set of `result`, failing with `ResultTooLarge`
/// once they exceed `limit` bytes (see [`row_bytes`]), and returns them with the totals of
/// every result set.
///
/// The remaining rows (and result sets) are read and dropped, also after a failure, so the
/// connection stays usable; the first error of any of them is returned, so a failing later
/// statement of `"SELECT ...; INSERT ..."` is not taken for success. Allocation failure is
/// `OutOfMemory`.
pub(crate) fn collect_bounded<P: Protocol>(
    result: QueryResult<'_, '_, '_, P>,
    limit: u64,
) -> Result<(Rows, Totals), PoolError> {
    let mut budget = RowBudget::new(limit);
    let mut rows = Rows::default();
    let totals = consume(result, |row| {
        budget.charge(&row)?;
        rows.push(row)
    })?;
    Ok((rows, totals))
}

/// An estimate of the memory a row occupies: payload bytes plus a word per value.
pub(crate) fn row_bytes(row: &Row) -> u64 {
    let mut bytes = 0u64;
    for index in 0..row.len() {
        bytes = bytes.saturating_add(8);
        if let Some(Value::Bytes(b)) = row.as_ref(index) {
            bytes = bytes.saturating_add(b.len() as u64);
        }
    }
    bytes
}

/// Reads every remaining row of every result set of `result` and returns their totals, or
/// the first error of any of them.
///
/// Dropping a `QueryResult` also reads the rest, but silently drops the errors of later
/// statements of a multi-statement query; this does not.
pub(crate) fn drain_checked<P: Protocol>(
    result: QueryResult<'_, '_, '_, P>,
) -> mysql::Result<Totals> {
    consume(result, |_| Ok(()))
}

/// Reads all of `result`: each row of the first result set goes to `each` until it returns
/// an error; everything after that, and every later result set, is read and dropped.
/// Returns the totals of every result set, or the first error from `each` or from any
/// result set.
pub(crate) fn consume<P: Protocol>(
    mut result: QueryResult<'_, '_, '_, P>,
    mut each: impl FnMut(Row) -> mysql::Result<()>,
) -> mysql::Result<Totals> {
    let mut failure = None;
    let mut first_set = true;
    let mut totals = Totals::default();
    while let Some(mut set) = result.iter() {
        let affected = set.affected_rows();
        if first_set {
            totals.first_affected_rows = affected;
        }
        totals.affected_rows = totals.affected_rows.saturating_add(affected);
        if let Some(id) = set.last_insert_id().filter(|&id| id != 0) {
            totals.last_insert_id = id;
        }
        for row in set.by_ref() {
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
    failure.map_or(Ok(totals), Err)
}

/// Counts the bytes of collected rows against a limit.
pub(crate) struct RowBudget {
    limit: u64,
    used: u64,
}

impl RowBudget {
    /// A budget of `limit` bytes, none used.
    pub(crate) fn new(limit: u64) -> RowBudget {
        RowBudget { limit, used: 0 }
    }

    /// Counts `row`; fails with `ResultBytes` (inside a `mysql::Error`) once the rows
    /// counted so far exceed the limit (the caller then stops collecting).
    pub(crate) fn charge(&mut self, row: &Row) -> mysql::Result<()> {
        self.used = self.used.saturating_add(row_bytes(row));
        if self.used > self.limit {
            return Err(LimitExceeded::ResultBytes { limit: self.limit }.into_mysql());
        }
        Ok(())
    }

    /// Adds `convert(row)` to `out`, or fails when the rows so far exceed the limit or memory
    /// runs out (the caller then stops collecting).
    pub(crate) fn push<U>(
        &mut self,
        out: &mut Vec<U>,
        row: Row,
        convert: impl FnOnce(Row) -> U,
    ) -> mysql::Result<()> {
        self.charge(&row)?;
        out.try_reserve(1)
            .map_err(|_| LimitExceeded::OutOfMemory.into_mysql())?;
        out.push(convert(row));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mysql::consts::ColumnType;
    use mysql_common::packets::Column;
    use mysql_common::row::new_row;

    use super::*;

    /// A row of one text column holding `text`.
    fn text_row(text: &str) -> Row {
        let columns: Arc<[Column]> = Arc::from(vec![Column::new(ColumnType::MYSQL_TYPE_STRING)]);
        new_row(vec![Value::Bytes(text.as_bytes().to_vec())], columns)
    }

    fn text_of(row: &Row) -> String {
        match row.as_ref(0) {
            Some(Value::Bytes(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_row_costs_its_bytes_and_a_word_per_value() {
        assert_eq!(row_bytes(&text_row("")), 8);
        assert_eq!(row_bytes(&text_row("hello")), 13);
    }

    #[test]
    fn the_budget_allows_rows_up_to_the_limit_and_refuses_the_one_past_it() {
        // Two rows of 13 bytes each: 26 fits a limit of 26, a third row does not.
        let mut budget = RowBudget::new(26);
        budget.charge(&text_row("hello")).unwrap();
        budget.charge(&text_row("world")).unwrap();
        let err = budget.charge(&text_row("x")).expect_err("27 bytes > 26");
        let converted = PoolError::from(err);
        assert!(
            matches!(converted, PoolError::ResultTooLarge { limit: 26 }),
            "{converted:?}"
        );
    }

    #[test]
    fn the_budget_refuses_a_single_row_larger_than_the_limit() {
        let mut budget = RowBudget::new(12);
        let err = budget
            .charge(&text_row("hello"))
            .expect_err("13 bytes > 12");
        let converted = PoolError::from(err);
        assert!(
            matches!(converted, PoolError::ResultTooLarge { limit: 12 }),
            "{converted:?}"
        );
    }

    #[test]
    fn push_stores_nothing_past_the_limit() {
        let mut budget = RowBudget::new(13);
        let mut out = Vec::new();
        budget.push(&mut out, text_row("hello"), |r| r).unwrap();
        assert!(budget.push(&mut out, text_row("a"), |r| r).is_err());
        assert_eq!(out.len(), 1, "rows kept after the refusal");
    }

    #[test]
    fn rows_keep_their_order_with_the_first_inline() {
        let mut rows = Rows::default();
        assert_eq!(rows.len(), 0);
        assert!(rows.get(0).is_none());
        for text in ["a", "b", "c"] {
            rows.push(text_row(text)).unwrap();
        }
        assert_eq!(rows.len(), 3);
        let read: Vec<String> = (0..3).map(|i| text_of(rows.get(i).unwrap())).collect();
        assert_eq!(read, ["a", "b", "c"]);
        assert!(rows.get(3).is_none());
    }

    #[test]
    fn one_row_needs_no_list() {
        let mut rows = Rows::default();
        rows.push(text_row("only")).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows.rest.capacity(), 0, "a one-row result allocated a list");
        assert_eq!(text_of(rows.get(0).unwrap()), "only");
    }
}
