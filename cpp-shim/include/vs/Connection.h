// vs::Connection: a connection checked out of a vs::ConnectionPool.
#ifndef VS_CONNECTION_H
#define VS_CONNECTION_H

#include <memory>
#include <string>

#include "vs/PreparedStatement.h"
#include "vs/Statement.h"

namespace vs {

/// Like sql::Connection. Deleting it (or ConnectionPool::ReleaseConnection) gives the
/// connection back to the pool; an open transaction is then rolled back. Statements made
/// from it throw once it is gone. One thread at a time.
class Connection {
public:
    /// Takes ownership of `conn` (from vs_pool_get).
    explicit Connection(VsConn *conn);
    ~Connection();
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    /// A new Statement; the caller owns it.
    Statement *createStatement();
    /// Prepares `sql` (with ? placeholders); the caller owns the result.
    PreparedStatement *prepareStatement(const std::string &sql);
    /// Makes `schema` the default database (restored when the connection goes back).
    void setSchema(const std::string &schema);
    /// True after close().
    bool isClosed() const noexcept;
    /// Gives the connection back to the pool now; later calls throw.
    void close() noexcept;
    /// Sends SET autocommit = 0 (false) or 1 (true), like Connector/C++. With autocommit off,
    /// statements join a transaction until commit()/rollback(), and the next statement starts
    /// a new one; turning it on commits what is open. LOCK TABLES commits the open
    /// transaction and COMMIT/ROLLBACK keep table locks, as in MySQL. The pool turns
    /// autocommit back on (after a rollback) when the connection is released.
    void setAutoCommit(bool autoCommit);
    /// The mode last set with setAutoCommit (true for a fresh connection).
    bool getAutoCommit() const;
    /// COMMIT: ends the current transaction (table locks stay).
    void commit();
    /// ROLLBACK: undoes the current transaction (table locks stay).
    void rollback();
    /// The C handle, for calls the shim does not wrap (still owned by this Connection).
    VsConn *handle() const;

private:
    std::shared_ptr<detail::ConnState> state_;
};

}  // namespace vs

#endif
