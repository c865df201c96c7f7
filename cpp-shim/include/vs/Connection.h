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
    /// false: start a transaction that lasts until commit()/rollback(); true: autocommit.
    void setAutoCommit(bool autoCommit);
    bool getAutoCommit() const;
    void commit();
    void rollback();
    /// The C handle, for calls the shim does not wrap (still owned by this Connection).
    VsConn *handle() const;

private:
    std::shared_ptr<detail::ConnState> state_;
};

}  // namespace vs

#endif
