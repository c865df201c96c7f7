// vs::ResultSet: rows of a query, with Connector/C++-style getters.
#ifndef VS_RESULTSET_H
#define VS_RESULTSET_H

#include <cstddef>
#include <cstdint>
#include <string>

#include "valuestor.h"
#include "vs/SQLException.h"

namespace vs {

/// A fully read result set. Column indexes are 1-based, as in Connector/C++; labels are
/// matched case-insensitively. Getters on SQL NULL return 0, "" or false (check isNull).
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
    /// Number of rows in the result.
    size_t rowsCount() const;
    /// Number of columns.
    uint32_t getColumnCount() const;
    /// The 1-based index of the column with this label; throws if there is none.
    uint32_t findColumn(const std::string &columnLabel) const;

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

private:
    uint32_t column(uint32_t columnIndex) const;
    VsResult *result_;
};

}  // namespace vs

#endif
