#include "vs/Statement.h"

namespace vs {

namespace detail {
VsConn *ConnState::get() const {
    if (conn == nullptr) {
        throw SQLException("the connection is closed", 0, "08003", VS_ERR_INVALID_ARGUMENT);
    }
    return conn;
}
}  // namespace detail

bool Statement::execute(const std::string &sql) {
    VsResult *result = nullptr;
    detail::check(vs_conn_query(conn(), sql.c_str(), &result));
    bool hasResultSet = vs_result_column_count(result) > 0;
    setUpdateCount(hasResultSet ? UINT64_MAX : vs_result_affected_rows(result));
    vs_result_free(result);
    return hasResultSet;
}

ResultSet *Statement::executeQuery(const std::string &sql) {
    VsResult *result = nullptr;
    detail::check(vs_conn_query(conn(), sql.c_str(), &result));
    setUpdateCount(UINT64_MAX);
    try {
        return new ResultSet(result);
    } catch (...) {
        vs_result_free(result);
        throw;
    }
}

int Statement::executeUpdate(const std::string &sql) {
    uint64_t affected = 0;
    detail::check(vs_conn_execute(conn(), sql.c_str(), &affected));
    setUpdateCount(affected);
    return static_cast<int>(affected);
}

}  // namespace vs
