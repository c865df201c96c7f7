#define _POSIX_C_SOURCE 200809L
/* Error paths: SQL error code and SQLSTATE, bad config, timeout on an exhausted pool,
 * unavailable database, result too large.
 * argv[1]: a config for the test database with DatabaseMaxPoolSize 1 and
 *          DatabaseMaxResultSize 64K;
 * argv[2]: a config pointing at a port where no server listens;
 * argv[3]: a malformed config. */
#include "check.h"

#include <pthread.h>
#include <time.h>

/* Presets for outputs that must stay untouched on failure: not NULL, so that a function
 * writing NULL on failure is caught too. */
#define CONFIG_SENTINEL ((VsConfig *)1)
#define STMT_SENTINEL ((VsStmt *)1)
#define RESULT_SENTINEL ((VsResult *)1)
#define CONN_SENTINEL ((VsConn *)1)

/* Fails and succeeds on another thread: this thread's last error must not change. */
static void *other_thread(void *conn) {
    CHECK_STATUS(vs_conn_execute(conn, "SELECT * FROM other_thread_table", NULL), VS_ERR_SQL);
    CHECK(strstr(vs_last_error(), "other_thread_table") != NULL);
    CHECK_OK(vs_conn_ping(conn));
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    CHECK(argc == 4);
    VsConfig *config = CONFIG_SENTINEL;
    CHECK_STATUS(vs_config_load(argv[3], &config), VS_ERR_CONFIG);
    CHECK(config == CONFIG_SENTINEL);
    CHECK(strstr(vs_last_error(), "DatabaseTimeout") != NULL);
    CHECK(strstr(vs_last_error(), "line") != NULL);
    CHECK_STATUS(vs_config_load("/nonexistent/vs_conf.xml", &config), VS_ERR_CONFIG);
    CHECK(config == CONFIG_SENTINEL);

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

    /* The last error's strings stay valid (same pointers, same text) through calls that do
     * not return VsStatus and through other threads' calls, until this thread's next
     * fallible call. Under valgrind a freed string would be an invalid read. */
    const char *message = vs_last_error();
    const char *sqlstate = vs_last_sqlstate();
    char saved[512];
    snprintf(saved, sizeof saved, "%s", message);
    CHECK(vs_last_sql_error_code() == 1146);
    CHECK(vs_last_error() == message && vs_last_sqlstate() == sqlstate);
    CHECK(vs_abi_version() == VS_ABI_VERSION && strlen(vs_version()) > 0);
    CHECK(vs_result_column_count(NULL) == 0 && vs_result_row_count(NULL) == 0);
    vs_result_free(NULL);
    vs_stmt_free(NULL);
    vs_conn_release(NULL);
    vs_pool_close(NULL);
    vs_config_free(NULL);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, other_thread, conn) == 0); /* one thread at a time */
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(vs_last_error() == message && strcmp(message, saved) == 0);
    CHECK(vs_last_sqlstate() == sqlstate && strcmp(sqlstate, "42S02") == 0);
    CHECK(vs_last_sql_error_code() == 1146);
    /* The next fallible call replaces it (message and sqlstate must not be read now). */
    CHECK_OK(vs_conn_ping(conn));
    CHECK(vs_last_error()[0] == '\0' && vs_last_sqlstate()[0] == '\0');

    VsStmt *stmt = STMT_SENTINEL;
    CHECK_STATUS(vs_conn_prepare(conn, "SELEC nonsense", &stmt), VS_ERR_SQL);
    CHECK(stmt == STMT_SENTINEL);
    CHECK(vs_last_sql_error_code() == 1064);
    CHECK(strcmp(vs_last_sqlstate(), "42000") == 0);
    CHECK_STATUS(vs_conn_set_schema(conn, "no_such_schema"), VS_ERR_SQL);
    CHECK(vs_last_sql_error_code() == 1049);
    /* The connection is still usable after errors. */
    CHECK_OK(vs_conn_ping(conn));

    /* A result over DatabaseMaxResultSize is an error, not a huge allocation. */
    VsResult *result = RESULT_SENTINEL;
    CHECK_STATUS(vs_conn_query(conn, "SELECT REPEAT('x', 100000)", &result),
                 VS_ERR_RESULT_TOO_LARGE);
    CHECK(result == RESULT_SENTINEL);
    CHECK_OK(vs_conn_query(conn, "SELECT REPEAT('x', 1000)", &result));
    vs_result_free(result);

    /* Pool of one, held: a second get times out within its timeout, not NULL. */
    VsConn *second = CONN_SENTINEL;
    double started = now_s();
    CHECK_STATUS(vs_pool_get(pool, 300, &second), VS_ERR_TIMEOUT);
    double waited = now_s() - started;
    CHECK(second == CONN_SENTINEL);
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
    conn = CONN_SENTINEL;
    started = now_s();
    CHECK_STATUS(vs_pool_get(pool, 30000, &conn), VS_ERR_UNAVAILABLE);
    CHECK(conn == CONN_SENTINEL);
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
