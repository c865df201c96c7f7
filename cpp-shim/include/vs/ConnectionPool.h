// vs::ConnectionPool: the legacy ConnectionPool API over the Rust pool.
// Including this header gives the whole shim.
#ifndef VS_CONNECTIONPOOL_H
#define VS_CONNECTIONPOOL_H

#include "vs/Cxx11.h"

#include <cstdint>
#include <string>

#include "valuestor.h"
#include "vs/Connection.h"
#include "vs/PreparedStatement.h"
#include "vs/ResultSet.h"
#include "vs/SQLException.h"
#include "vs/Statement.h"

namespace vs {

class ConnectionPool;

/// A connection that goes back to the pool when this object is destroyed (move-only).
class PooledConnection {
public:
    explicit PooledConnection(Connection *conn) noexcept : conn_(conn) {}
    PooledConnection(PooledConnection &&other) noexcept : conn_(other.conn_) { other.conn_ = nullptr; }
    PooledConnection &operator=(PooledConnection &&other) noexcept;
    PooledConnection(const PooledConnection &) = delete;
    PooledConnection &operator=(const PooledConnection &) = delete;
    ~PooledConnection() { delete conn_; }

    Connection *operator->() const noexcept { return conn_; }
    Connection &operator*() const noexcept { return *conn_; }
    Connection *get() const noexcept { return conn_; }

private:
    Connection *conn_;
};

/// The pool, with the methods legacy callers use. Thread-safe.
class ConnectionPool {
public:
    /// The legacy constructor, with the legacy pool's semantics (vs_pool_open_legacy), for
    /// the config in the file named by the environment variable VS_CONF, or
    /// /etc/vs/vs_conf.xml:
    /// - at most `maxSize` connections (DatabaseMaxPoolSize is not used), opened lazily:
    ///   DatabaseInitialPoolSize at start, so a large maximum costs nothing until used; the
    ///   first is opened before the constructor returns, as the legacy constructor did (one
    ///   attempt: if the database is down it returns all the same and keeps trying);
    /// - never throws: a missing or invalid config (VS_ERR_CONFIG) or a `maxSize` < 1
    ///   (VS_ERR_INVALID_ARGUMENT) is thrown by every GetConnection instead, which legacy
    ///   callers already catch;
    /// - GetConnection waits at most VS_LEGACY_ACQUIRE_TIMEOUT_MS (5 s; DatabaseTimeout if
    ///   shorter) on an exhausted pool, where the legacy pool returned NULL at once;
    /// - no default schema, as Connector/C++ connected: CREATE DATABASE IF NOT EXISTS and
    ///   then setSchema work on a fresh server;
    /// - a thread that holds a connection and asks for another while all are in use (legacy
    ///   call chains nest three deep) gets one beyond `maxSize` instead of waiting for itself.
    explicit ConnectionPool(int maxSize = 40);
    /// Opens a pool from a vs_conf.xml file (DatabaseMaxPoolSize connections, DatabaseName as
    /// the default schema, DatabaseTimeout as the wait); throws SQLException (VS_ERR_CONFIG)
    /// if the file is missing or invalid.
    explicit ConnectionPool(const std::string &configPath);
    /// Opens a pool from a loaded config (which the caller still owns).
    explicit ConnectionPool(const VsConfig *config);
    ~ConnectionPool();
    ConnectionPool(const ConnectionPool &) = delete;
    ConnectionPool &operator=(const ConnectionPool &) = delete;

    /// Takes a connection, waiting at most DatabaseTimeout (legacy constructor: see there);
    /// throws SQLException on timeout (VS_ERR_TIMEOUT) or while the database is unreachable
    /// (VS_ERR_UNAVAILABLE), with the server's reason in getErrorCode()/getSQLState() (1045,
    /// 1049, 2003). Never NULL. Give it back with ReleaseConnection (or delete it).
    Connection *GetConnection();
    /// Like GetConnection with an explicit timeout in milliseconds.
    Connection *GetConnection(uint32_t timeoutMs);
    /// Gives a connection back and deletes it; NULL is ignored.
    void ReleaseConnection(Connection *conn) noexcept;
    /// A connection that goes back to the pool at the end of the scope.
    PooledConnection Acquire(uint32_t timeoutMs = 0);
    /// The pool's counters and gauges; throws the legacy constructor's error if it had one.
    VsPoolStats stats() const;
    /// Wakes waiters with an error and refuses new gets.
    void close() noexcept;

private:
    /// The pool handle, or the legacy constructor's error thrown.
    VsPool *pool() const;

    VsPool *pool_ = nullptr;
    /// Why the legacy constructor has no pool (thrown by GetConnection); status VS_OK if none.
    VsStatus openStatus_ = VS_OK;
    std::string openMessage_;
    int openCode_ = 0;
    std::string openState_;
};

}  // namespace vs

#endif
