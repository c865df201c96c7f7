// The server's reason for refusing connections reaches SQLException through timeout and
// unavailable errors: getErrorCode()/getSQLState() 1045/28000 after a wrong password,
// 1049/42000 for an unknown database, 2003/HY000 for a server that is down; the message says
// it and never holds the password. Checked for the config-path pool and the legacy one.
// argv: wrong-password config, unknown-database config, down-server config, the wrong
// password.
#include <vs/ConnectionPool.h>

#include <cstdlib>
#include <string>

#include "check.hpp"

namespace {

void expectCause(vs::ConnectionPool &pool, int code, const char *state, const char *words,
                 const std::string &password) {
    // Long enough for the pool to give up connecting (it then fails fast), even under valgrind.
    EXPECT_THROW(pool.GetConnection(30000), e, {
        std::string what = e.what();
        if (e.getErrorCode() != code || e.getSQLState() != state ||
            what.find(words) == std::string::npos) {
            std::fprintf(stderr, "expected %d %s \"%s\", got status %d: %d %s %s\n", code, state,
                         words, static_cast<int>(e.status()), e.getErrorCode(),
                         e.getSQLState().c_str(), what.c_str());
            std::exit(1);
        }
        CHECK(e.status() == VS_ERR_UNAVAILABLE || e.status() == VS_ERR_TIMEOUT);
        CHECK(what.find(password) == std::string::npos);
    });
}

}  // namespace

int main(int argc, char **argv) {
    CHECK(argc == 5);
    const std::string password = argv[4];
    {
        vs::ConnectionPool pool((std::string(argv[1])));
        expectCause(pool, 1045, "28000", "Access denied", password);
    }
    {
        vs::ConnectionPool pool((std::string(argv[2])));
        expectCause(pool, 1049, "42000", "Unknown database", password);
    }
    {
        vs::ConnectionPool pool((std::string(argv[3])));
        expectCause(pool, 2003, "HY000", "", password);
    }
    // The legacy constructor (config through VS_CONF) reports the same causes.
    CHECK(setenv("VS_CONF", argv[1], 1) == 0);
    {
        vs::ConnectionPool legacy(2);
        expectCause(legacy, 1045, "28000", "Access denied", password);
    }
    CHECK(setenv("VS_CONF", argv[3], 1) == 0);
    {
        vs::ConnectionPool legacy(2);
        expectCause(legacy, 2003, "HY000", "", password);
    }
    std::printf("cpp connect errors ok\n");
    return 0;
}
