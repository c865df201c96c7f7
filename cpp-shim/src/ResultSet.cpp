#include "vs/ResultSet.h"

namespace vs {

ResultSet::~ResultSet() { vs_result_free(result_); }

bool ResultSet::next() {
    bool hasRow = false;
    detail::check(vs_result_next(result_, &hasRow));
    return hasRow;
}

size_t ResultSet::rowsCount() const { return static_cast<size_t>(vs_result_row_count(result_)); }

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
    return null;
}

std::string ResultSet::getString(uint32_t columnIndex) const {
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
