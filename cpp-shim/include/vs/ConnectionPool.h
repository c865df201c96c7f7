// vs::ConnectionPool: the legacy ConnectionPool API over the Rust pool.
// Including this header gives the whole shim.
#ifndef VS_CONNECTIONPOOL_H
#define VS_CONNECTIONPOOL_H

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
    /// The legacy constructor: opens a pool of at most `maxSize` connections (fewer when the
    /// config's DatabaseMaxPoolSize is lower) with the config from the file named by the
    /// environment variable VS_CONF, or /etc/vs/vs_conf.xml. Throws SQLException:
    /// VS_ERR_CONFIG if the file is missing or invalid, VS_ERR_INVALID_ARGUMENT if
    /// `maxSize` < 1. Unlike the legacy pool it never connects eagerly in a loop.
    explicit ConnectionPool(int maxSize = 40);
    /// Opens a pool from a vs_conf.xml file; throws SQLException (VS_ERR_CONFIG) if invalid.
    explicit ConnectionPool(const std::string &configPath);
    /// Opens a pool from a loaded config (which the caller still owns).
    explicit ConnectionPool(const VsConfig *config);
    ~ConnectionPool();
    ConnectionPool(const ConnectionPool &) = delete;
    ConnectionPool &operator=(const ConnectionPool &) = delete;

    /// Takes a connection, waiting at most DatabaseTimeout; throws SQLException on timeout
    /// (VS_ERR_TIMEOUT) or while the database is unreachable (VS_ERR_UNAVAILABLE). Never NULL.
    /// Give it back with ReleaseConnection (or delete it).
    Connection *GetConnection();
    /// Like GetConnection with an explicit timeout in milliseconds.
    Connection *GetConnection(uint32_t timeoutMs);
    /// Gives a connection back and deletes it; NULL is ignored.
    void ReleaseConnection(Connection *conn) noexcept;
    /// A connection that goes back to the pool at the end of the scope.
    PooledConnection Acquire(uint32_t timeoutMs = 0);
    /// The pool's counters and gauges.
    VsPoolStats stats() const;
    /// Wakes waiters with an error and refuses new gets.
    void close() noexcept;

private:
    VsPool *pool_ = nullptr;
};

}  // namespace vs

#endif
