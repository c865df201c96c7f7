// vs::PreparedStatement: a server-side prepared statement with 1-based binds.
#ifndef VS_PREPAREDSTATEMENT_H
#define VS_PREPAREDSTATEMENT_H

#include <cstdint>
#include <string>

#include "vs/ResultSet.h"

namespace vs {

/// Like sql::PreparedStatement: set parameters (1-based), then execute. Binds persist
/// between executions. Owned by the caller (delete it).
class PreparedStatement {
public:
    /// Takes ownership of `stmt`.
    explicit PreparedStatement(VsStmt *stmt) noexcept : stmt_(stmt) {}
    ~PreparedStatement();
    PreparedStatement(const PreparedStatement &) = delete;
    PreparedStatement &operator=(const PreparedStatement &) = delete;

    void setString(uint32_t parameterIndex, const std::string &value);
    void setInt(uint32_t parameterIndex, int32_t value);
    void setUInt(uint32_t parameterIndex, uint32_t value);
    void setInt64(uint32_t parameterIndex, int64_t value);
    void setUInt64(uint32_t parameterIndex, uint64_t value);
    void setBoolean(uint32_t parameterIndex, bool value);
    void setDouble(uint32_t parameterIndex, double value);
    /// Binds SQL NULL; `sqlType` is accepted for Connector/C++ compatibility and ignored.
    void setNull(uint32_t parameterIndex, int sqlType = 0);

    /// Executes; true if the statement produced a result set (which is discarded).
    bool execute();
    /// Executes a query; the caller owns the returned ResultSet.
    ResultSet *executeQuery();
    /// Executes an update; returns the affected row count.
    int executeUpdate();
    /// The AUTO_INCREMENT id of the last executeUpdate (an extension).
    uint64_t lastInsertId() const noexcept { return lastInsertId_; }

private:
    VsStmt *stmt_;
    uint64_t lastInsertId_ = 0;
};

}  // namespace vs

#endif
