// vs::Statement: plain SQL text on a connection.
#ifndef VS_STATEMENT_H
#define VS_STATEMENT_H

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

private:
    std::shared_ptr<detail::ConnState> state_;
};

}  // namespace vs

#endif
