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
    VsConfig *config = nullptr;
    detail::check(vs_config_load_default(&config));
    VsConfig *capped = nullptr;
    // Non-positive sizes map to 0, which the C ABI rejects with VS_ERR_INVALID_ARGUMENT.
    VsStatus status =
        vs_config_with_max_pool_size(config, maxSize < 1 ? 0u : static_cast<uint32_t>(maxSize), &capped);
    vs_config_free(config);
    detail::check(status);
    status = vs_pool_open(capped, &pool_);
    vs_config_free(capped);
    detail::check(status);
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

Connection *ConnectionPool::GetConnection(uint32_t timeoutMs) {
    VsConn *conn = nullptr;
    detail::check(vs_pool_get(pool_, timeoutMs, &conn));
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
    VsPoolStats stats{};
    detail::check(vs_pool_stats(pool_, &stats));
    return stats;
}

void ConnectionPool::close() noexcept { vs_pool_close(pool_); }

}  // namespace vs
