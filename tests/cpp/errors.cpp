// Construction errors: a bad config and an unreachable database throw.
// argv[1]: malformed config; argv[2]: config pointing where nothing listens.
#include <vs/ConnectionPool.h>

#include <string>

#include "check.hpp"

int main(int argc, char **argv) {
    CHECK(argc == 3);
    EXPECT_THROW(vs::ConnectionPool bad(argv[1]), e,
                 CHECK(e.status() == VS_ERR_CONFIG &&
                       std::string(e.what()).find("line") != std::string::npos));
    EXPECT_THROW(vs::ConnectionPool missing("/nonexistent/vs_conf.xml"), e,
                 CHECK(e.status() == VS_ERR_CONFIG));
    vs::ConnectionPool down(argv[2]);
    EXPECT_THROW(down.GetConnection(20000), e, CHECK(e.status() == VS_ERR_UNAVAILABLE));
    EXPECT_THROW(down.Acquire(), e, CHECK(e.status() == VS_ERR_UNAVAILABLE));
    down.close();
    EXPECT_THROW(down.GetConnection(), e, CHECK(e.status() == VS_ERR_CLOSED));
    std::printf("cpp errors ok\n");
    return 0;
}
