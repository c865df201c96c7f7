#include "vs/ResultSet.h"

namespace vs {

ResultSet::~ResultSet() { vs_result_free(result_); }

bool ResultSet::next() {
    bool hasRow = false;
    detail::check(vs_result_next(result_, &hasRow));
    if (row_ <= rowsCount()) ++row_;
    return hasRow;
}

bool ResultSet::seek(size_t row) {
    bool hasRow = false;
    detail::check(vs_result_seek(result_, row, &hasRow));
    row_ = row > rowsCount() ? rowsCount() + 1 : row;
    return hasRow;
}

bool ResultSet::previous() { return seek(row_ == 0 ? 0 : row_ - 1); }

bool ResultSet::first() { return seek(1); }

bool ResultSet::last() { return rowsCount() > 0 ? seek(rowsCount()) : seek(1); }

bool ResultSet::absolute(int row) {
    size_t count = rowsCount();
    if (row >= 0) return seek(static_cast<size_t>(row));
    size_t fromEnd = static_cast<size_t>(-(static_cast<long long>(row)));
    return fromEnd > count ? seek(0) : seek(count + 1 - fromEnd);
}

void ResultSet::beforeFirst() { seek(0); }

void ResultSet::afterLast() { seek(rowsCount() + 1); }

size_t ResultSet::rowsCount() const noexcept { return static_cast<size_t>(vs_result_row_count(result_)); }

uint32_t ResultSet::getColumnCount() const { return vs_result_column_count(result_); }

uint32_t ResultSet::findColumn(const std::string &columnLabel) const {
    uint32_t index = 0;
    detail::check(vs_result_column_index(result_, columnLabel.c_str(), &index));
    return index + 1;
}

uint32_t ResultSet::column(uint32_t columnIndex) const {
    if (columnIndex == 0) {
        throw SQLException("column indexes start at 1", 0, "S1002", VS_ERR_INVALID_ARGUMENT);
    }
    return columnIndex - 1;
}

bool ResultSet::isNull(uint32_t columnIndex) const {
    bool null = false;
    detail::check(vs_result_is_null(result_, column(columnIndex), &null));
    wasNull_ = null;
    return null;
}

std::string ResultSet::getString(uint32_t columnIndex) const {
    if (isNull(columnIndex)) return std::string();
    const char *text = nullptr;
    size_t len = 0;
    detail::check(vs_result_get_text(result_, column(columnIndex), &text, &len));
    return std::string(text, len);
}

int64_t ResultSet::getInt64(uint32_t columnIndex) const {
    if (isNull(columnIndex)) return 0;
    int64_t value = 0;
    detail::check(vs_result_get_i64(result_, column(columnIndex), &value));
    return value;
}

uint64_t ResultSet::getUInt64(uint32_t columnIndex) const {
    if (isNull(columnIndex)) return 0;
    uint64_t value = 0;
    detail::check(vs_result_get_u64(result_, column(columnIndex), &value));
    return value;
}

int32_t ResultSet::getInt(uint32_t columnIndex) const {
    return static_cast<int32_t>(getInt64(columnIndex));
}

uint32_t ResultSet::getUInt(uint32_t columnIndex) const {
    return static_cast<uint32_t>(getUInt64(columnIndex));
}

bool ResultSet::getBoolean(uint32_t columnIndex) const { return getInt64(columnIndex) != 0; }

double ResultSet::getDouble(uint32_t columnIndex) const {
    if (isNull(columnIndex)) return 0.0;
    double value = 0;
    detail::check(vs_result_get_f64(result_, column(columnIndex), &value));
    return value;
}

}  // namespace vs
