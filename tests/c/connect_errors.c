/* The server's reason for refusing connections reaches vs_last_sql_error_code and
 * vs_last_sqlstate through VS_ERR_UNAVAILABLE / VS_ERR_TIMEOUT: 1045/28000 after a wrong
 * password, 1049/42000 for an unknown database, 2003/HY000 for a server that is down.
 * argv: wrong-password config, unknown-database config, down-server config. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "valuestor.h"

static void expect_cause(const char *path, int code, const char *state) {
    VsConfig *config = NULL;
    VsPool *pool = NULL;
    VsConn *conn = NULL;
    CHECK(vs_config_load(path, &config) == VS_OK);
    CHECK(vs_pool_open(config, &pool) == VS_OK);
    VsStatus status = vs_pool_get(pool, 30000, &conn);
    if ((status != VS_ERR_UNAVAILABLE && status != VS_ERR_TIMEOUT) ||
        vs_last_sql_error_code() != code || strcmp(vs_last_sqlstate(), state) != 0) {
        fprintf(stderr, "%s: expected %d %s, got status %d: %d %s %s\n", path, code, state,
                (int)status, vs_last_sql_error_code(), vs_last_sqlstate(), vs_last_error());
        CHECK(0);
    }
    CHECK(conn == NULL);
    vs_pool_free(pool);
    vs_config_free(config);
}

int main(int argc, char **argv) {
    CHECK(argc == 4);
    expect_cause(argv[1], 1045, "28000");
    expect_cause(argv[2], 1049, "42000");
    expect_cause(argv[3], 2003, "HY000");
    printf("connect_errors ok\n");
    return 0;
}
