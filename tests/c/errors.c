#define _POSIX_C_SOURCE 200809L
/* Error paths: SQL error code and SQLSTATE, bad config, timeout on an exhausted pool,
 * unavailable database, result too large.
 * argv[1]: a config for the test database with DatabaseMaxPoolSize 1 and
 *          DatabaseMaxResultSize 64K;
 * argv[2]: a config pointing at a port where no server listens;
 * argv[3]: a malformed config. */
#include "check.h"

#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    CHECK(argc == 4);
    VsConfig *config = NULL;
    CHECK_STATUS(vs_config_load(argv[3], &config), VS_ERR_CONFIG);
    CHECK(config == NULL);
    CHECK(strstr(vs_last_error(), "DatabaseTimeout") != NULL);
    CHECK(strstr(vs_last_error(), "line") != NULL);
    CHECK_STATUS(vs_config_load("/nonexistent/vs_conf.xml", &config), VS_ERR_CONFIG);

    CHECK_OK(vs_config_load(argv[1], &config));
    VsPool *pool = NULL;
    CHECK_OK(vs_pool_open(config, &pool));
    VsConn *conn = NULL;
    CHECK_OK(vs_pool_get(pool, 0, &conn));

    /* Server errors carry the code and SQLSTATE. */
    CHECK_STATUS(vs_conn_execute(conn, "SELECT * FROM no_such_table", NULL), VS_ERR_SQL);
    CHECK(vs_last_sql_error_code() == 1146);
    CHECK(strcmp(vs_last_sqlstate(), "42S02") == 0);
    CHECK(strstr(vs_last_error(), "no_such_table") != NULL);
    VsStmt *stmt = NULL;
    CHECK_STATUS(vs_conn_prepare(conn, "SELEC nonsense", &stmt), VS_ERR_SQL);
    CHECK(stmt == NULL);
    CHECK(vs_last_sql_error_code() == 1064);
    CHECK(strcmp(vs_last_sqlstate(), "42000") == 0);
    CHECK_STATUS(vs_conn_set_schema(conn, "no_such_schema"), VS_ERR_SQL);
    CHECK(vs_last_sql_error_code() == 1049);
    /* The connection is still usable after errors. */
    CHECK_OK(vs_conn_ping(conn));

    /* A result over DatabaseMaxResultSize is an error, not a huge allocation. */
    VsResult *result = NULL;
    CHECK_STATUS(vs_conn_query(conn, "SELECT REPEAT('x', 100000)", &result),
                 VS_ERR_RESULT_TOO_LARGE);
    CHECK(result == NULL);
    CHECK_OK(vs_conn_query(conn, "SELECT REPEAT('x', 1000)", &result));
    vs_result_free(result);

    /* Pool of one, held: a second get times out within its timeout, not NULL. */
    VsConn *second = NULL;
    double started = now_s();
    CHECK_STATUS(vs_pool_get(pool, 300, &second), VS_ERR_TIMEOUT);
    double waited = now_s() - started;
    CHECK(second == NULL);
    CHECK(waited >= 0.25 && waited < 5.0);
    VsPoolStats stats;
    CHECK_OK(vs_pool_stats(pool, &stats));
    CHECK(stats.timeouts == 1 && stats.in_use == 1);
    vs_conn_release(conn);
    CHECK_OK(vs_pool_get(pool, 300, &second));
    vs_conn_release(second);
    vs_pool_free(pool);
    vs_config_free(config);

    /* Nothing listens: the pool opens, and gets fail with UNAVAILABLE well before the
     * timeout once the connect attempts have failed. */
    CHECK_OK(vs_config_load(argv[2], &config));
    CHECK_OK(vs_pool_open(config, &pool));
    started = now_s();
    CHECK_STATUS(vs_pool_get(pool, 30000, &conn), VS_ERR_UNAVAILABLE);
    CHECK(now_s() - started < 10.0);
    CHECK(strlen(vs_last_error()) > 0);
    started = now_s();
    CHECK_STATUS(vs_pool_get(pool, 30000, &conn), VS_ERR_UNAVAILABLE);
    CHECK(now_s() - started < 1.0); /* fails fast now */
    CHECK_OK(vs_pool_stats(pool, &stats));
    CHECK(stats.unavailable == 1 && stats.connect_failures >= 3);
    vs_pool_free(pool);
    vs_config_free(config);
    printf("errors ok\n");
    return 0;
}
