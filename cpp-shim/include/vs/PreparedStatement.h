// vs::PreparedStatement: a server-side prepared statement with 1-based binds.
#ifndef VS_PREPAREDSTATEMENT_H
#define VS_PREPAREDSTATEMENT_H

#include "vs/Cxx11.h"

#include <cstdint>
#include <memory>
#include <string>

#include "vs/ResultSet.h"
#include "vs/Statement.h"

namespace vs {

/// Like sql::PreparedStatement: set parameters (1-based), then execute. Binds persist
/// between executions. Owned by the caller (delete it).
///
/// As in Connector/C++ it is also a Statement: execute(sql), executeQuery(sql) and
/// executeUpdate(sql) with a text run that text on the same connection, and it can be
/// passed where a Statement is expected.
class PreparedStatement : public Statement {
public:
    /// Takes ownership of `stmt`, prepared on the connection `state` stands for.
    PreparedStatement(VsStmt *stmt, std::shared_ptr<detail::ConnState> state)
        : Statement(std::move(state)), stmt_(stmt) {}
    ~PreparedStatement() override;
    PreparedStatement(const PreparedStatement &) = delete;
    PreparedStatement &operator=(const PreparedStatement &) = delete;

    void setString(uint32_t parameterIndex, const std::string &value);
    void setInt(uint32_t parameterIndex, int32_t value);
    void setUInt(uint32_t parameterIndex, uint32_t value);
    void setInt64(uint32_t parameterIndex, int64_t value);
    void setUInt64(uint32_t parameterIndex, uint64_t value);
    void setBoolean(uint32_t parameterIndex, bool value);
    void setDouble(uint32_t parameterIndex, double value);
    /// Binds a decimal integer given as text (Connector/C++'s setBigInt); throws an
    /// SQLException (S1009) unless it is an optional '-' and 1 to 20 digits that fit in
    /// int64_t or, unsigned, in uint64_t.
    void setBigInt(uint32_t parameterIndex, const std::string &value);
    /// Binds a date and time given as text such as "2024-03-04 05:06:07"; the server converts
    /// it, as with Connector/C++ (an invalid value is the server's error or warning).
    void setDateTime(uint32_t parameterIndex, const std::string &value);
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

    // The Statement forms with SQL text, as in Connector/C++.
    using Statement::execute;
    using Statement::executeQuery;
    using Statement::executeUpdate;

    VS_NOT_PROVIDED(setBlob, "setString binds any bytes, copied (std::istream is not read)")
    VS_NOT_PROVIDED(clearParameters, "bind every parameter again; binds persist between executions")
    VS_NOT_PROVIDED(getMetaData, "column metadata is not kept; use ResultSet::findColumn")
    VS_NOT_PROVIDED(getParameterMetaData, "the statement's parameter count is fixed by its '?'")
    VS_NOT_PROVIDED(setDate, "use setDateTime with a 'YYYY-MM-DD' text")

private:
    VsStmt *stmt_;
    uint64_t lastInsertId_ = 0;
};

}  // namespace vs

#endif
