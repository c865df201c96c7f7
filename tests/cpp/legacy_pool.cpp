// The legacy constructor ConnectionPool(int maxSize = 40) finds its config through VS_CONF,
// honours maxSize (not DatabaseMaxPoolSize), opens connections without a default schema,
// serves a thread that holds connections beyond maxSize (bounded) and never throws: a
// config problem is thrown by GetConnection. ConnectionPool(const VsConfig *) borrows a
// loaded config and keeps DatabaseMaxPoolSize.
// Environment: VS_CONF names a config for the test database with DatabaseMaxPoolSize 3.
// argv[1]: the same config's path.
#include <vs/ConnectionPool.h>

#include <memory>
#include <string>
#include <vector>

#include "check.hpp"

namespace {

// Takes connections in this thread until one times out (the wait leaves room for a connect
// under valgrind).
size_t connectionsAvailable(vs::ConnectionPool &pool) {
    std::vector<vs::PooledConnection> held;
    for (;;) {
        try {
            held.push_back(pool.Acquire(2000));
        } catch (const vs::SQLException &e) {
            CHECK(e.status() == VS_ERR_TIMEOUT);
            return held.size();
        }
        CHECK(held.size() < 16);
    }
}

}  // namespace

int main(int argc, char **argv) {
    CHECK(argc == 2);
    {
        // maxSize 40 is honoured: more than DatabaseMaxPoolSize (3) open without a wait, and
        // none counts as nested on an exhausted pool.
        vs::ConnectionPool legacy;
        std::vector<vs::PooledConnection> held;
        for (int i = 0; i < 5; ++i) held.push_back(legacy.Acquire());
        VsPoolStats stats = legacy.stats();
        CHECK(stats.in_use == 5 && stats.self_deadlocks == 0 && stats.nested_grants == 0);
    }
    {
        // One thread holding every connection of a pool of 2 asks for more: served beyond the
        // maximum, up to 2 * maxSize extra, then it waits like anyone.
        vs::ConnectionPool small(2);
        CHECK(connectionsAvailable(small) == 6);
        VsPoolStats stats = small.stats();
        CHECK(stats.nested_grants == 4 && stats.self_deadlocks == 5 && stats.closed_overflow == 4);
        // No default schema, as Connector/C++ connected.
        vs::Connection *con = small.GetConnection();
        std::unique_ptr<vs::Statement> stmt(con->createStatement());
        std::unique_ptr<vs::ResultSet> rs(stmt->executeQuery("SELECT DATABASE() AS db"));
        CHECK(rs->next() && rs->isNull("db"));
        small.ReleaseConnection(con);
    }
    // Never throws; GetConnection says what is wrong.
    vs::ConnectionPool zero(0);
    EXPECT_THROW(zero.GetConnection(), e, CHECK(e.status() == VS_ERR_INVALID_ARGUMENT));
    vs::ConnectionPool negative(-5);
    EXPECT_THROW(negative.GetConnection(), e, CHECK(e.status() == VS_ERR_INVALID_ARGUMENT));

    // From a loaded config, which the caller may free once the pool is open: the config's
    // DatabaseMaxPoolSize, and no connection beyond it (nested_overflow is off).
    VsConfig *config = nullptr;
    CHECK(vs_config_load(argv[1], &config) == VS_OK);
    vs::ConnectionPool fromConfig(static_cast<const VsConfig *>(config));
    vs_config_free(config);
    CHECK(connectionsAvailable(fromConfig) == 3);
    CHECK(fromConfig.stats().nested_grants == 0 && fromConfig.stats().self_deadlocks == 1);
    EXPECT_THROW(vs::ConnectionPool none(static_cast<const VsConfig *>(nullptr)), e,
                 CHECK(e.status() == VS_ERR_INVALID_ARGUMENT));

    // A missing file named by VS_CONF: the constructor returns, every get throws a config
    // error naming the file.
    CHECK(setenv("VS_CONF", "/nonexistent/legacy.xml", 1) == 0);
    vs::ConnectionPool missing(4);
    for (int i = 0; i < 2; ++i) {
        EXPECT_THROW(missing.GetConnection(), e,
                     CHECK(e.status() == VS_ERR_CONFIG &&
                           std::string(e.what()).find("/nonexistent/legacy.xml") != std::string::npos));
    }
    EXPECT_THROW(missing.stats(), e, CHECK(e.status() == VS_ERR_CONFIG));
    missing.close();
    std::printf("cpp legacy pool ok\n");
    return 0;
}
