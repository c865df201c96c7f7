// vs::ResultSet: rows of a query, with Connector/C++-style getters.
#ifndef VS_RESULTSET_H
#define VS_RESULTSET_H

#include "vs/Cxx11.h"

#include <cstddef>
#include <cstdint>
#include <string>

#include "valuestor.h"
#include "vs/SQLException.h"

namespace vs {

/// A fully read result set. Column indexes are 1-based, as in Connector/C++; labels are
/// matched case-insensitively. Getters on SQL NULL return 0, "" or false (check isNull, or
/// wasNull after the getter). All rows are in memory, so the cursor moves freely (first,
/// last, absolute, previous, ...), as with Connector/C++'s default buffered results.
/// Owned by the caller (delete it, or hold it in a std::unique_ptr).
class ResultSet {
public:
    /// Takes ownership of `result`.
    explicit ResultSet(VsResult *result) noexcept : result_(result) {}
    ~ResultSet();
    ResultSet(const ResultSet &) = delete;
    ResultSet &operator=(const ResultSet &) = delete;

    /// Moves to the next row; false after the last.
    bool next();
    /// Moves to the previous row; false before the first.
    bool previous();
    /// Moves to the first row; false if there is none.
    bool first();
    /// Moves to the last row; false if there is none.
    bool last();
    /// Moves to row `row` (1-based; negative counts from the end, -1 is the last row);
    /// false if that is no row (the cursor is then before the first or after the last).
    bool absolute(int row);
    /// Moves before the first row (next() then gives the first).
    void beforeFirst();
    /// Moves after the last row.
    void afterLast();
    /// The current row number (1-based); 0 before the first or after the last row.
    size_t getRow() const noexcept { return (row_ >= 1 && row_ <= rowsCount()) ? row_ : 0; }
    bool isBeforeFirst() const noexcept { return row_ == 0 && rowsCount() > 0; }
    bool isAfterLast() const noexcept { return row_ > rowsCount() && rowsCount() > 0; }
    bool isFirst() const noexcept { return row_ == 1 && rowsCount() > 0; }
    bool isLast() const noexcept { return row_ == rowsCount() && row_ > 0; }
    /// Number of rows in the result.
    size_t rowsCount() const noexcept;
    /// Number of columns.
    uint32_t getColumnCount() const;
    /// The 1-based index of the column with this label; throws if there is none.
    uint32_t findColumn(const std::string &columnLabel) const;
    /// Whether the column last read by a getter was SQL NULL.
    bool wasNull() const noexcept { return wasNull_; }

    bool isNull(uint32_t columnIndex) const;
    bool isNull(const std::string &columnLabel) const { return isNull(findColumn(columnLabel)); }
    std::string getString(uint32_t columnIndex) const;
    std::string getString(const std::string &columnLabel) const { return getString(findColumn(columnLabel)); }
    int32_t getInt(uint32_t columnIndex) const;
    int32_t getInt(const std::string &columnLabel) const { return getInt(findColumn(columnLabel)); }
    uint32_t getUInt(uint32_t columnIndex) const;
    uint32_t getUInt(const std::string &columnLabel) const { return getUInt(findColumn(columnLabel)); }
    int64_t getInt64(uint32_t columnIndex) const;
    int64_t getInt64(const std::string &columnLabel) const { return getInt64(findColumn(columnLabel)); }
    uint64_t getUInt64(uint32_t columnIndex) const;
    uint64_t getUInt64(const std::string &columnLabel) const { return getUInt64(findColumn(columnLabel)); }
    bool getBoolean(uint32_t columnIndex) const;
    bool getBoolean(const std::string &columnLabel) const { return getBoolean(findColumn(columnLabel)); }
    double getDouble(uint32_t columnIndex) const;
    double getDouble(const std::string &columnLabel) const { return getDouble(findColumn(columnLabel)); }

    VS_NOT_PROVIDED(getMetaData, "column metadata is not kept; use findColumn and getColumnCount")
    VS_NOT_PROVIDED(getBlob, "getString returns the column's bytes (std::istream is not made)")
    VS_NOT_PROVIDED(relative, "use absolute(getRow() + n)")

private:
    uint32_t column(uint32_t columnIndex) const;
    /// Moves the cursor to `row` (0: before the first, rowsCount() + 1: after the last).
    bool seek(size_t row);
    VsResult *result_;
    size_t row_ = 0;
    mutable bool wasNull_ = false;
};

}  // namespace vs

#endif
