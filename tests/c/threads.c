/* Several threads share one pool: each takes, queries and releases connections.
 * argv[1]: a vs_conf.xml for the test database (pool of 2). */
#include "check.h"

#include <pthread.h>

enum { THREADS = 6, ROUNDS = 40 };

static VsPool *pool;

static void *work(void *arg) {
    long id = (long)arg;
    for (int round = 0; round < ROUNDS; round++) {
        VsConn *conn = NULL;
        CHECK_OK(vs_pool_get(pool, 0, &conn));
        VsStmt *stmt = NULL;
        CHECK_OK(vs_conn_prepare(conn, "SELECT ? + ?", &stmt));
        CHECK_OK(vs_stmt_bind_i64(stmt, 1, id));
        CHECK_OK(vs_stmt_bind_i64(stmt, 2, round));
        VsResult *result = NULL;
        CHECK_OK(vs_stmt_execute_query(stmt, &result));
        bool has_row = false;
        CHECK_OK(vs_result_next(result, &has_row));
        int64_t sum = -1;
        CHECK_OK(vs_result_get_i64(result, 0, &sum));
        CHECK(sum == id + round);
        /* Release first, free later: allowed in any order. */
        vs_conn_release(conn);
        vs_result_free(result);
        vs_stmt_free(stmt);
    }
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    VsConfig *config = NULL;
    CHECK_OK(vs_config_load(argv[1], &config));
    CHECK_OK(vs_pool_open(config, &pool));
    vs_config_free(config);
    pthread_t threads[THREADS];
    for (long i = 0; i < THREADS; i++) CHECK(pthread_create(&threads[i], NULL, work, (void *)i) == 0);
    for (int i = 0; i < THREADS; i++) CHECK(pthread_join(threads[i], NULL) == 0);
    VsPoolStats stats;
    CHECK_OK(vs_pool_stats(pool, &stats));
    CHECK(stats.checkouts == THREADS * ROUNDS);
    CHECK(stats.in_use == 0);
    CHECK(stats.created <= 2);
    /* Freeing the pool while a connection is out: the connection stays usable. */
    VsConn *late = NULL;
    CHECK_OK(vs_pool_get(pool, 0, &late));
    vs_pool_free(pool);
    CHECK_OK(vs_conn_execute(late, "SELECT 1", NULL));
    vs_conn_release(late);
    printf("threads ok\n");
    return 0;
}
