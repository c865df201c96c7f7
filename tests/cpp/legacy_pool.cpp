// The legacy constructor ConnectionPool(int maxSize = 40) finds its config through VS_CONF and
// caps the pool at maxSize; ConnectionPool(const VsConfig *) borrows a loaded config.
// Environment: VS_CONF names a config for the test database with DatabaseMaxPoolSize 3.
// argv[1]: the same config's path.
#include <vs/ConnectionPool.h>

#include <memory>
#include <string>
#include <vector>

#include "check.hpp"

namespace {

// Takes connections until one times out (the wait leaves room for a connect under valgrind).
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
        vs::ConnectionPool legacy;  // maxSize 40: the config's 3 wins
        CHECK(connectionsAvailable(legacy) == 3);
    }
    {
        vs::ConnectionPool small(2);
        CHECK(connectionsAvailable(small) == 2);
        vs::Connection *con = small.GetConnection();
        std::unique_ptr<vs::Statement> stmt(con->createStatement());
        std::unique_ptr<vs::ResultSet> rs(stmt->executeQuery("SELECT DATABASE() AS db"));
        CHECK(rs->next() && !rs->getString("db").empty());
        small.ReleaseConnection(con);
    }
    EXPECT_THROW(vs::ConnectionPool zero(0), e, CHECK(e.status() == VS_ERR_INVALID_ARGUMENT));
    EXPECT_THROW(vs::ConnectionPool negative(-5), e,
                 CHECK(e.status() == VS_ERR_INVALID_ARGUMENT));

    // From a loaded config, which the caller may free once the pool is open.
    VsConfig *config = nullptr;
    CHECK(vs_config_load(argv[1], &config) == VS_OK);
    vs::ConnectionPool fromConfig(static_cast<const VsConfig *>(config));
    vs_config_free(config);
    CHECK(connectionsAvailable(fromConfig) == 3);
    EXPECT_THROW(vs::ConnectionPool none(static_cast<const VsConfig *>(nullptr)), e,
                 CHECK(e.status() == VS_ERR_INVALID_ARGUMENT));

    // A missing file named by VS_CONF is a config error naming it.
    CHECK(setenv("VS_CONF", "/nonexistent/legacy.xml", 1) == 0);
    EXPECT_THROW(vs::ConnectionPool missing(4), e,
                 CHECK(e.status() == VS_ERR_CONFIG &&
                       std::string(e.what()).find("/nonexistent/legacy.xml") != std::string::npos));
    std::printf("cpp legacy pool ok\n");
    return 0;
}
