#include "vs/PreparedStatement.h"

#include <cerrno>
#include <cstdlib>

namespace vs {

namespace {

/// Whether `text` is an optional '-' followed by 1 to 20 decimal digits.
bool isDecimalInteger(const std::string &text) {
    size_t start = (!text.empty() && text[0] == '-') ? 1 : 0;
    size_t digits = text.size() - start;
    if (digits == 0 || digits > 20) return false;
    for (size_t i = start; i < text.size(); ++i) {
        if (text[i] < '0' || text[i] > '9') return false;
    }
    return true;
}

}  // namespace

PreparedStatement::~PreparedStatement() { vs_stmt_free(stmt_); }

void PreparedStatement::setString(uint32_t i, const std::string &value) {
    detail::check(vs_stmt_bind_text(stmt_, i, value.data(), value.size()));
}
void PreparedStatement::setInt(uint32_t i, int32_t value) { detail::check(vs_stmt_bind_i64(stmt_, i, value)); }
void PreparedStatement::setUInt(uint32_t i, uint32_t value) { detail::check(vs_stmt_bind_u64(stmt_, i, value)); }
void PreparedStatement::setInt64(uint32_t i, int64_t value) { detail::check(vs_stmt_bind_i64(stmt_, i, value)); }
void PreparedStatement::setUInt64(uint32_t i, uint64_t value) { detail::check(vs_stmt_bind_u64(stmt_, i, value)); }
void PreparedStatement::setBoolean(uint32_t i, bool value) { detail::check(vs_stmt_bind_i64(stmt_, i, value ? 1 : 0)); }
void PreparedStatement::setDouble(uint32_t i, double value) { detail::check(vs_stmt_bind_f64(stmt_, i, value)); }
void PreparedStatement::setNull(uint32_t i, int) { detail::check(vs_stmt_bind_null(stmt_, i)); }

void PreparedStatement::setBigInt(uint32_t i, const std::string &value) {
    if (isDecimalInteger(value)) {
        errno = 0;
        if (value[0] == '-') {
            long long parsed = std::strtoll(value.c_str(), nullptr, 10);
            if (errno == 0) {
                detail::check(vs_stmt_bind_i64(stmt_, i, static_cast<int64_t>(parsed)));
                return;
            }
        } else {
            unsigned long long parsed = std::strtoull(value.c_str(), nullptr, 10);
            if (errno == 0) {
                detail::check(vs_stmt_bind_u64(stmt_, i, static_cast<uint64_t>(parsed)));
                return;
            }
        }
    }
    throw SQLException("setBigInt: \"" + value + "\" is not a 64-bit integer", 0, "S1009",
                       VS_ERR_INVALID_ARGUMENT);
}

void PreparedStatement::setDateTime(uint32_t i, const std::string &value) {
    detail::check(vs_stmt_bind_text(stmt_, i, value.data(), value.size()));
}

bool PreparedStatement::execute() {
    VsResult *result = nullptr;
    detail::check(vs_stmt_execute_query(stmt_, &result));
    bool hasResultSet = vs_result_column_count(result) > 0;
    setUpdateCount(hasResultSet ? UINT64_MAX : vs_result_affected_rows(result));
    vs_result_free(result);
    return hasResultSet;
}

ResultSet *PreparedStatement::executeQuery() {
    VsResult *result = nullptr;
    detail::check(vs_stmt_execute_query(stmt_, &result));
    setUpdateCount(UINT64_MAX);
    try {
        return new ResultSet(result);
    } catch (...) {
        vs_result_free(result);
        throw;
    }
}

int PreparedStatement::executeUpdate() {
    uint64_t affected = 0;
    detail::check(vs_stmt_execute_update(stmt_, &affected, &lastInsertId_));
    setUpdateCount(affected);
    return static_cast<int>(affected);
}

}  // namespace vs
