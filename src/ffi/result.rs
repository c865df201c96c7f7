//! `VsResult`: a fully read, bounded result set with a row cursor and typed getters.

use std::cell::RefCell;
use std::ffi::c_char;

use mysql::consts::ColumnType;
use mysql::prelude::Protocol;
use mysql::{QueryResult, Value};

use super::guard::{arg_mut, arg_out, arg_ref, arg_str, ffi_guard, ffi_guard_value, FfiError};
use super::VsStatus;
use crate::pool::{collect_bounded, PoolError, Rows};

/// What a result keeps of a column: its label, and the type and fractional digits that
/// decide how a temporal value is written as text.
#[derive(Debug, Clone)]
struct ColumnInfo {
    name: String,
    kind: ColumnType,
    decimals: u8,
}

/// A result set (opaque), read completely when the query ran, so it stays valid after its
/// connection is released. One thread at a time.
///
/// Methods: `vs_result_next`, `vs_result_seek`, `vs_result_row_count`,
/// `vs_result_affected_rows`, `vs_result_column_count`, `vs_result_column_index`,
/// `vs_result_is_null`, `vs_result_get_i64`, `vs_result_get_u64`, `vs_result_get_f64`,
/// `vs_result_get_text`, `vs_result_free`.
pub struct VsResult {
    columns: Vec<ColumnInfo>,
    /// Rows the statement changed (for a statement without a result set).
    affected_rows: u64,
    /// The rows as the driver read them (no copy of their values).
    rows: Rows,
    /// Index of the current row; `None` before the first `vs_result_next`.
    cursor: Option<usize>,
    /// NUL-terminated text of the current row's columns, made on demand and kept until the
    /// row changes (so every pointer handed out for this row stays valid); allocated at the
    /// first `vs_result_get_text`.
    texts: RefCell<Vec<Option<Box<[u8]>>>>,
}

impl VsResult {
    /// Reads the first result set of `result` (failing past `limit` bytes), then every
    /// remaining one, so that an error from a later statement is reported, not dropped.
    pub(crate) fn collect<P: Protocol>(
        result: QueryResult<'_, '_, '_, P>,
        limit: u64,
    ) -> Result<VsResult, PoolError> {
        let columns: Vec<ColumnInfo> = result
            .columns()
            .as_ref()
            .iter()
            .map(|c| ColumnInfo {
                name: c.name_str().into_owned(),
                kind: c.column_type(),
                decimals: c.decimals(),
            })
            .collect();
        let (rows, totals) = collect_bounded(result, limit)?;
        Ok(VsResult {
            texts: RefCell::new(Vec::new()),
            affected_rows: totals.first_affected_rows,
            columns,
            rows,
            cursor: None,
        })
    }

    fn value(&self, column: u32) -> Result<&Value, FfiError> {
        let row = self
            .cursor
            .and_then(|i| self.rows.get(i))
            .ok_or_else(|| FfiError::invalid("no current row: call vs_result_next first"))?;
        row.as_ref(column as usize).ok_or_else(|| {
            FfiError::invalid(format!(
                "column {column} out of range (the result has {} columns)",
                self.columns.len()
            ))
        })
    }

    fn non_null(&self, column: u32) -> Result<&Value, FfiError> {
        match self.value(column)? {
            Value::NULL => Err(FfiError::new(
                VsStatus::VS_ERR_TYPE,
                format!("column {column} is NULL"),
            )),
            value => Ok(value),
        }
    }
}

/// Moves to the next row; `*has_row` is set to false after the last one.
///
/// Text returned by `vs_result_get_text` for the previous row becomes invalid.
///
/// # Safety
/// `result` is NULL or a live `VsResult`; `has_row` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_result_next(result: *mut VsResult, has_row: *mut bool) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `has_row` is NULL or writable, as this function's contract requires.
        let has_row = unsafe { arg_out(has_row, "has_row") }?;
        // SAFETY: `result` is NULL or live, used by no other thread (this function's contract).
        let result = unsafe { arg_mut(result, "result") }?;
        let next = result.cursor.map_or(0, |i| i.saturating_add(1));
        result.cursor = Some(next.min(result.rows.len()));
        result.texts.get_mut().clear();
        has_row.write(next < result.rows.len());
        Ok(())
    })
}

/// Moves to row `row`, counted from 1; 0 moves before the first row and a number past the
/// last after the last row. `*has_row` says whether the cursor is now on a row.
///
/// The rows are all in memory, so any order of `vs_result_seek` and `vs_result_next` works
/// (Connector/C++'s `first`, `last`, `absolute`, `beforeFirst`, `afterLast`). Text returned
/// by `vs_result_get_text` for the previous row becomes invalid.
///
/// # Safety
/// `result` is NULL or a live `VsResult`; `has_row` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_result_seek(
    result: *mut VsResult,
    row: u64,
    has_row: *mut bool,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `has_row` is NULL or writable, as this function's contract requires.
        let has_row = unsafe { arg_out(has_row, "has_row") }?;
        // SAFETY: `result` is NULL or live, used by no other thread (this function's contract).
        let result = unsafe { arg_mut(result, "result") }?;
        let count = result.rows.len();
        result.cursor = match usize::try_from(row) {
            Ok(0) => None,
            Ok(row) => Some((row - 1).min(count)),
            Err(_) => Some(count),
        };
        result.texts.get_mut().clear();
        has_row.write(result.cursor.is_some_and(|i| i < count));
        Ok(())
    })
}

/// The rows changed by the statement, when it returned no result set (`INSERT`, `UPDATE`,
/// DDL run through `vs_conn_query`); 0 for NULL or a result set.
///
/// # Safety
/// `result` is NULL or a live `VsResult`.
#[no_mangle]
pub unsafe extern "C" fn vs_result_affected_rows(result: *const VsResult) -> u64 {
    ffi_guard_value(0, || {
        // SAFETY: `result` is NULL or live, as this function's contract requires.
        unsafe { result.as_ref() }.map_or(0, |r| r.affected_rows)
    })
}

/// The number of columns; 0 for NULL or a statement without a result set.
///
/// # Safety
/// `result` is NULL or a live `VsResult`.
#[no_mangle]
pub unsafe extern "C" fn vs_result_column_count(result: *const VsResult) -> u32 {
    ffi_guard_value(0, || {
        // SAFETY: `result` is NULL or live, as this function's contract requires.
        unsafe { result.as_ref() }.map_or(0, |r| u32::try_from(r.columns.len()).unwrap_or(u32::MAX))
    })
}

/// The number of rows in the result; 0 for NULL.
///
/// # Safety
/// `result` is NULL or a live `VsResult`.
#[no_mangle]
pub unsafe extern "C" fn vs_result_row_count(result: *const VsResult) -> u64 {
    ffi_guard_value(0, || {
        // SAFETY: `result` is NULL or live, as this function's contract requires.
        unsafe { result.as_ref() }.map_or(0, |r| r.rows.len() as u64)
    })
}

/// Finds a column by name or label (ASCII case-insensitive); `*index` is 0-based.
///
/// Returns `VS_ERR_INVALID_ARGUMENT` if no column has that name.
///
/// # Safety
/// `result` is NULL or a live `VsResult`; `name` is NULL or NUL-terminated; `index` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_result_column_index(
    result: *const VsResult,
    name: *const c_char,
    index: *mut u32,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `index` is NULL or writable, as this function's contract requires.
        let index = unsafe { arg_out(index, "index") }?;
        // SAFETY: `result` is NULL or live, as this function's contract requires.
        let result = unsafe { arg_ref(result, "result") }?;
        // SAFETY: `name` is NULL or NUL-terminated, as this function's contract requires.
        let name = unsafe { arg_str(name, "name") }?;
        let found = result
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| FfiError::invalid(format!("no column named {name:?}")))?;
        index.write(u32::try_from(found).map_err(|_| FfiError::invalid("column index too large"))?);
        Ok(())
    })
}

/// Sets `*is_null` to whether column `column` (0-based) of the current row is SQL NULL.
///
/// # Safety
/// `result` is NULL or a live `VsResult`; `is_null` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_result_is_null(
    result: *const VsResult,
    column: u32,
    is_null: *mut bool,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `is_null` is NULL or writable, as this function's contract requires.
        let is_null = unsafe { arg_out(is_null, "is_null") }?;
        // SAFETY: `result` is NULL or live, as this function's contract requires.
        let result = unsafe { arg_ref(result, "result") }?;
        is_null.write(matches!(result.value(column)?, Value::NULL));
        Ok(())
    })
}

/// Reads column `column` (0-based) of the current row as a signed 64-bit integer.
///
/// `VS_ERR_TYPE` if the value is NULL or not an integer in range (text is parsed).
///
/// # Safety
/// `result` is NULL or a live `VsResult`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_result_get_i64(
    result: *const VsResult,
    column: u32,
    out: *mut i64,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `result` is NULL or live, as this function's contract requires.
        let value = unsafe { arg_ref(result, "result") }?.non_null(column)?;
        out.write(convert::<i64>(value, column, "a 64-bit integer")?);
        Ok(())
    })
}

/// Reads column `column` (0-based) of the current row as an unsigned 64-bit integer.
///
/// `VS_ERR_TYPE` if the value is NULL, negative or not an integer in range.
///
/// # Safety
/// `result` is NULL or a live `VsResult`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_result_get_u64(
    result: *const VsResult,
    column: u32,
    out: *mut u64,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `result` is NULL or live, as this function's contract requires.
        let value = unsafe { arg_ref(result, "result") }?.non_null(column)?;
        out.write(convert::<u64>(value, column, "an unsigned 64-bit integer")?);
        Ok(())
    })
}

/// Reads column `column` (0-based) of the current row as a double.
///
/// `VS_ERR_TYPE` if the value is NULL or not a number.
///
/// # Safety
/// `result` is NULL or a live `VsResult`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_result_get_f64(
    result: *const VsResult,
    column: u32,
    out: *mut f64,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `out` is NULL or writable, as this function's contract requires.
        let out = unsafe { arg_out(out, "out") }?;
        // SAFETY: `result` is NULL or live, as this function's contract requires.
        let value = unsafe { arg_ref(result, "result") }?.non_null(column)?;
        out.write(match value {
            Value::Int(i) => *i as f64,
            Value::UInt(u) => *u as f64,
            other => convert::<f64>(other, column, "a number")?,
        });
        Ok(())
    })
}

/// Reads column `column` (0-based) of the current row as text (numbers and dates formatted).
///
/// `*ptr` points to `*len` bytes followed by a NUL (the bytes may contain NULs for binary
/// data). Owned by the result: valid until the next `vs_result_next` or `vs_result_free`.
/// A SQL NULL gives an empty string; use `vs_result_is_null` to tell them apart.
///
/// # Safety
/// `result` is NULL or a live `VsResult`; `ptr` and `len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vs_result_get_text(
    result: *const VsResult,
    column: u32,
    ptr: *mut *const c_char,
    len: *mut usize,
) -> VsStatus {
    ffi_guard(|| {
        // SAFETY: `ptr` is NULL or writable, as this function's contract requires.
        let ptr = unsafe { arg_out(ptr, "ptr") }?;
        // SAFETY: `len` is NULL or writable, as this function's contract requires.
        let len = unsafe { arg_out(len, "len") }?;
        // SAFETY: `result` is NULL or live, as this function's contract requires.
        let result = unsafe { arg_ref(result, "result") }?;
        let value = result.value(column)?;
        let mut texts = result.texts.borrow_mut();
        if texts.is_empty() {
            texts.resize(result.columns.len(), None);
        }
        let slot = &mut texts[column as usize];
        if slot.is_none() {
            let mut text = text_of(value, &result.columns[column as usize]);
            text.try_reserve_exact(1)
                .map_err(|_| FfiError::from(PoolError::OutOfMemory))?;
            text.push(0);
            *slot = Some(text.into_boxed_slice());
        }
        let stored = slot.as_deref().unwrap_or(&[0]);
        let length = stored.len() - 1;
        ptr.write(stored.as_ptr().cast());
        len.write(length);
        Ok(())
    })
}

/// Frees a result; NULL is a no-op. Text pointers from it become invalid.
///
/// # Safety
/// `result` is NULL or a result not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vs_result_free(result: *mut VsResult) {
    ffi_guard_value((), || {
        if !result.is_null() {
            // SAFETY: a result from `vs_conn_query` or `vs_stmt_execute_query` (a
            // `Box::into_raw`) not yet freed, as this function's contract requires.
            drop(unsafe { Box::from_raw(result) });
        }
    })
}

/// Converts a value as `mysql::from_value_opt` does; text that plainly parses is read in
/// place, without the copy `from_value_opt` needs (text-protocol numbers are text).
fn convert<T: mysql::prelude::FromValue + std::str::FromStr>(
    value: &Value,
    column: u32,
    what: &str,
) -> Result<T, FfiError> {
    if let Value::Bytes(bytes) = value {
        if let Some(parsed) = std::str::from_utf8(bytes).ok().and_then(|t| t.parse().ok()) {
            return Ok(parsed);
        }
    }
    mysql::from_value_opt::<T>(value.clone()).map_err(|_| {
        FfiError::new(
            VsStatus::VS_ERR_TYPE,
            format!("column {column} does not convert to {what}"),
        )
    })
}

/// The text form of a non-NULL value, as the text protocol would send it.
///
/// Text-protocol results arrive as bytes already; this matters for prepared statements,
/// whose binary protocol sends dates and times as numbers: a DATE is written `YYYY-MM-DD`,
/// a DATETIME or TIMESTAMP `YYYY-MM-DD HH:MM:SS`, a TIME `[-]HH:MM:SS`, each followed by as
/// many fractional digits as the column declares (`DATETIME(3)`: `.123`), as MySQL does.
fn text_of(value: &Value, column: &ColumnInfo) -> Vec<u8> {
    match value {
        Value::Bytes(bytes) => bytes.clone(),
        Value::Int(i) => i.to_string().into_bytes(),
        Value::UInt(u) => u.to_string().into_bytes(),
        Value::Float(f) => f.to_string().into_bytes(),
        Value::Double(d) => d.to_string().into_bytes(),
        Value::Date(y, mo, d, h, mi, s, us) => {
            let mut text = format!("{y:04}-{mo:02}-{d:02}");
            if !matches!(
                column.kind,
                ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE
            ) {
                text.push_str(&format!(" {h:02}:{mi:02}:{s:02}"));
                push_fraction(&mut text, *us, column.decimals);
            }
            text.into_bytes()
        }
        Value::Time(negative, days, h, mi, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let sign = if *negative { "-" } else { "" };
            let mut text = format!("{sign}{hours:02}:{mi:02}:{s:02}");
            push_fraction(&mut text, *us, column.decimals);
            text.into_bytes()
        }
        Value::NULL => Vec::new(),
    }
}

/// Appends `.` and the first `decimals` digits of `micros` (zero-padded to six), as MySQL
/// writes a temporal column with that many fractional digits; none for 0 digits. A column
/// that declares no fixed precision (MySQL's 31) shows the microseconds only when non-zero.
fn push_fraction(text: &mut String, micros: u32, decimals: u8) {
    let digits = format!("{micros:06}");
    let shown = match usize::from(decimals) {
        0 => 0,
        n @ 1..=6 => n,
        _ if micros != 0 => 6,
        _ => 0,
    };
    if shown > 0 {
        text.push('.');
        text.push_str(&digits[..shown]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: ColumnType, decimals: u8) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            kind,
            decimals,
        }
    }

    fn text(value: Value, kind: ColumnType, decimals: u8) -> String {
        String::from_utf8(text_of(&value, &column(kind, decimals))).unwrap()
    }

    #[test]
    fn a_date_column_has_no_time_part() {
        let date = Value::Date(2024, 3, 4, 0, 0, 0, 0);
        assert_eq!(
            text(date.clone(), ColumnType::MYSQL_TYPE_DATE, 0),
            "2024-03-04"
        );
        assert_eq!(text(date, ColumnType::MYSQL_TYPE_NEWDATE, 0), "2024-03-04");
        let zero = Value::Date(0, 0, 0, 0, 0, 0, 0);
        assert_eq!(text(zero, ColumnType::MYSQL_TYPE_DATE, 0), "0000-00-00");
    }

    #[test]
    fn datetime_fractions_follow_the_column_precision() {
        let at = |us| Value::Date(2024, 3, 4, 5, 6, 7, us);
        let datetime = ColumnType::MYSQL_TYPE_DATETIME;
        assert_eq!(text(at(0), datetime, 0), "2024-03-04 05:06:07");
        assert_eq!(text(at(0), datetime, 6), "2024-03-04 05:06:07.000000");
        assert_eq!(text(at(120_000), datetime, 3), "2024-03-04 05:06:07.120");
        assert_eq!(text(at(5), datetime, 6), "2024-03-04 05:06:07.000005");
        assert_eq!(
            text(at(0), ColumnType::MYSQL_TYPE_TIMESTAMP, 0),
            "2024-03-04 05:06:07"
        );
        assert_eq!(text(at(5), datetime, 31), "2024-03-04 05:06:07.000005");
        assert_eq!(text(at(0), datetime, 31), "2024-03-04 05:06:07");
    }

    #[test]
    fn times_show_hours_past_a_day_and_their_sign() {
        let time = ColumnType::MYSQL_TYPE_TIME;
        assert_eq!(text(Value::Time(false, 0, 1, 2, 3, 0), time, 0), "01:02:03");
        assert_eq!(
            text(Value::Time(true, 34, 22, 59, 59, 0), time, 0),
            "-838:59:59"
        );
        assert_eq!(
            text(Value::Time(false, 0, 0, 0, 1, 250_000), time, 2),
            "00:00:01.25"
        );
    }
}
