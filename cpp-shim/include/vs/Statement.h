// vs::Statement: plain SQL text on a connection.
#ifndef VS_STATEMENT_H
#define VS_STATEMENT_H

#include "vs/Cxx11.h"

#include <cstdint>
#include <memory>
#include <string>

#include "vs/ResultSet.h"

namespace vs {

namespace detail {
/// The checked-out connection shared by a Connection and its statements; `conn` becomes
/// NULL when the Connection gives it back, so a late statement throws instead of crashing.
struct ConnState {
    VsConn *conn = nullptr;
    bool autoCommit = true;
    VsConn *get() const;
};
}  // namespace detail

/// Runs SQL text, like sql::Statement. Owned by the caller (delete it).
class Statement {
public:
    explicit Statement(std::shared_ptr<detail::ConnState> state) : state_(std::move(state)) {}
    virtual ~Statement() = default;
    Statement(const Statement &) = delete;
    Statement &operator=(const Statement &) = delete;

    /// Runs `sql`; true if it produced a result set (which is discarded).
    bool execute(const std::string &sql);
    /// Runs a query; the caller owns the returned ResultSet.
    ResultSet *executeQuery(const std::string &sql);
    /// Runs an INSERT/UPDATE/DELETE/DDL; returns the affected row count.
    int executeUpdate(const std::string &sql);
    /// The rows changed by the last execute/executeUpdate; UINT64_MAX (Connector/C++'s -1)
    /// when it produced a result set or nothing ran yet.
    uint64_t getUpdateCount() const noexcept { return updateCount_; }

    VS_NOT_PROVIDED(getResultSet, "executeQuery() returns the result set")
    VS_NOT_PROVIDED(getMoreResults,
                    "every call reads all result sets of its SQL text and reports an error in any "
                    "of them; run one statement per call to see each result")
    VS_NOT_PROVIDED(setQueryTimeout,
                    "DatabaseTimeout in vs_conf.xml bounds every socket read and write")
    VS_NOT_PROVIDED(setFetchSize, "results are read completely (bounded by DatabaseMaxResultSize)")
    VS_NOT_PROVIDED(setMaxRows, "put a LIMIT in the SQL text")
    VS_NOT_PROVIDED(cancel, "a statement ends when the server answers or DatabaseTimeout passes")
    VS_NOT_PROVIDED(getWarnings, "run SHOW WARNINGS through executeQuery")
    VS_NOT_PROVIDED(getConnection, "keep the Connection the statement was created from")

protected:
    /// The connection, or an SQLException (08003) once it was given back.
    VsConn *conn() const { return state_->get(); }
    /// Records what getUpdateCount() reports.
    void setUpdateCount(uint64_t count) noexcept { updateCount_ = count; }

private:
    std::shared_ptr<detail::ConnState> state_;
    uint64_t updateCount_ = UINT64_MAX;
};

}  // namespace vs

#endif
