#include "vs/PreparedStatement.h"

namespace vs {

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

bool PreparedStatement::execute() {
    VsResult *result = nullptr;
    detail::check(vs_stmt_execute_query(stmt_, &result));
    bool hasResultSet = vs_result_column_count(result) > 0;
    vs_result_free(result);
    return hasResultSet;
}

ResultSet *PreparedStatement::executeQuery() {
    VsResult *result = nullptr;
    detail::check(vs_stmt_execute_query(stmt_, &result));
    return new ResultSet(result);
}

int PreparedStatement::executeUpdate() {
    uint64_t affected = 0;
    detail::check(vs_stmt_execute_update(stmt_, &affected, &lastInsertId_));
    return static_cast<int>(affected);
}

}  // namespace vs
