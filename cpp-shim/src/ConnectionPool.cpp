#include "vs/ConnectionPool.h"

namespace vs {

PooledConnection &PooledConnection::operator=(PooledConnection &&other) noexcept {
    if (this != &other) {
        delete conn_;
        conn_ = other.conn_;
        other.conn_ = nullptr;
    }
    return *this;
}

ConnectionPool::ConnectionPool(int maxSize) {
    // Never throws: what fails here is kept and thrown by GetConnection, which legacy callers
    // wrap in try/catch (their singletons' Instance() does not expect a throw).
    VsConfig *config = nullptr;
    VsStatus status = vs_config_load_default(&config);
    if (status == VS_OK) {
        // Non-positive sizes map to 0, which the C ABI rejects with VS_ERR_INVALID_ARGUMENT.
        uint32_t size = maxSize < 1 ? 0u : static_cast<uint32_t>(maxSize);
        status = vs_pool_open_legacy(config, size, &pool_);
        vs_config_free(config);
    }
    if (status != VS_OK) {
        pool_ = nullptr;
        openStatus_ = status;
        try {
            openMessage_ = vs_last_error();
            openCode_ = vs_last_sql_error_code();
            openState_ = vs_last_sqlstate();
        } catch (...) {
            // Out of memory for the message: the status alone still tells what failed.
        }
    }
}

ConnectionPool::ConnectionPool(const std::string &configPath) {
    VsConfig *config = nullptr;
    detail::check(vs_config_load(configPath.c_str(), &config));
    VsStatus status = vs_pool_open(config, &pool_);
    vs_config_free(config);
    detail::check(status);
}

ConnectionPool::ConnectionPool(const VsConfig *config) { detail::check(vs_pool_open(config, &pool_)); }

ConnectionPool::~ConnectionPool() { vs_pool_free(pool_); }

Connection *ConnectionPool::GetConnection() { return GetConnection(0); }

VsPool *ConnectionPool::pool() const {
    if (pool_ == nullptr) {
        throw SQLException("connection pool not opened: " + openMessage_, openCode_, openState_,
                           openStatus_);
    }
    return pool_;
}

Connection *ConnectionPool::GetConnection(uint32_t timeoutMs) {
    VsConn *conn = nullptr;
    detail::check(vs_pool_get(pool(), timeoutMs, &conn));
    try {
        return new Connection(conn);
    } catch (...) {
        vs_conn_release(conn);
        throw;
    }
}

void ConnectionPool::ReleaseConnection(Connection *conn) noexcept { delete conn; }

PooledConnection ConnectionPool::Acquire(uint32_t timeoutMs) { return PooledConnection(GetConnection(timeoutMs)); }

VsPoolStats ConnectionPool::stats() const {
    VsPoolStats stats = VsPoolStats();
    detail::check(vs_pool_stats(pool(), &stats));
    return stats;
}

void ConnectionPool::close() noexcept { vs_pool_close(pool_); }

}  // namespace vs
