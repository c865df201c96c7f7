// vs::Connection: a connection checked out of a vs::ConnectionPool.
#ifndef VS_CONNECTION_H
#define VS_CONNECTION_H

#include "vs/Cxx11.h"

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
    /// Makes `schema` the default database (restored when the connection goes back; kept
    /// for the next caller in a legacy pool, which has no default).
    void setSchema(const std::string &schema);
    /// The default database now (SELECT DATABASE(): one round trip); "" when none.
    std::string getSchema();
    /// Whether the server answers a ping; false (never a throw) once closed or broken.
    bool isValid();
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

    VS_NOT_PROVIDED(getMetaData, "query information_schema through a Statement")
    VS_NOT_PROVIDED(setTransactionIsolation,
                    "run SET SESSION TRANSACTION ISOLATION LEVEL ... through a Statement (the pool "
                    "resets the session when the connection goes back)")
    VS_NOT_PROVIDED(setSavepoint, "run SAVEPOINT name through a Statement")
    VS_NOT_PROVIDED(releaseSavepoint, "run RELEASE SAVEPOINT name through a Statement")
    VS_NOT_PROVIDED(setClientOption, "connection options come from vs_conf.xml")
    VS_NOT_PROVIDED(getClientInfo, "connection options come from vs_conf.xml")
    VS_NOT_PROVIDED(getWarnings, "run SHOW WARNINGS through a Statement")
    VS_NOT_PROVIDED(nativeSQL, "SQL text is sent as it is")
    VS_NOT_PROVIDED(reconnect, "the pool replaces broken connections: release it and get another")

private:
    std::shared_ptr<detail::ConnState> state_;
};

}  // namespace vs

#endif
