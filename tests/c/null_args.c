/* Every pointer argument NULL: VS_ERR_INVALID_ARGUMENT and a message, never a crash;
 * every free of NULL is a no-op. argv[1]: a vs_conf.xml for the test database. */
#include "check.h"

static void expect_invalid(enum VsStatus status, const char *what, int line) {
    if (status != VS_ERR_INVALID_ARGUMENT) {
        fprintf(stderr, "line %d: %s returned %d, expected VS_ERR_INVALID_ARGUMENT\n", line, what,
                (int)status);
        exit(1);
    }
    if (strstr(vs_last_error(), "NULL") == NULL && strstr(vs_last_error(), "released") == NULL) {
        fprintf(stderr, "line %d: %s: message does not name the problem: %s\n", line, what,
                vs_last_error());
        exit(1);
    }
}
#define INVALID(call) expect_invalid((call), #call, __LINE__)

int main(int argc, char **argv) {
    CHECK(argc == 2);
    VsConfig *config = NULL;
    VsPool *pool = NULL;
    VsConn *conn = NULL;
    VsStmt *stmt = NULL;
    VsResult *result = NULL;
    VsPoolStats stats;
    bool flag;
    int64_t i;
    uint64_t u;
    double f;
    uint32_t index;
    const char *text;
    size_t len;

    INVALID(vs_config_load(NULL, &config));
    INVALID(vs_config_load(argv[1], NULL));
    INVALID(vs_config_load_default(NULL));
    CHECK_OK(vs_config_load(argv[1], &config));
    VsConfig *capped = NULL;
    INVALID(vs_config_with_max_pool_size(NULL, 1, &capped));
    INVALID(vs_config_with_max_pool_size(config, 1, NULL));
    INVALID(vs_pool_open(NULL, &pool));
    INVALID(vs_pool_open(config, NULL));
    CHECK_OK(vs_pool_open(config, &pool));
    INVALID(vs_pool_get(NULL, 0, &conn));
    INVALID(vs_pool_get(pool, 0, NULL));
    INVALID(vs_pool_stats(NULL, &stats));
    INVALID(vs_pool_stats(pool, NULL));
    CHECK_OK(vs_pool_get(pool, 0, &conn));

    INVALID(vs_conn_execute(NULL, "SELECT 1", NULL));
    INVALID(vs_conn_execute(conn, NULL, NULL));
    INVALID(vs_conn_query(NULL, "SELECT 1", &result));
    INVALID(vs_conn_query(conn, NULL, &result));
    INVALID(vs_conn_query(conn, "SELECT 1", NULL));
    INVALID(vs_conn_ping(NULL));
    INVALID(vs_conn_set_schema(NULL, "x"));
    INVALID(vs_conn_set_schema(conn, NULL));
    INVALID(vs_conn_set_autocommit(NULL, false));
    INVALID(vs_conn_begin(NULL));
    INVALID(vs_conn_commit(NULL));
    INVALID(vs_conn_rollback(NULL));
    INVALID(vs_conn_prepare(NULL, "SELECT ?", &stmt));
    INVALID(vs_conn_prepare(conn, NULL, &stmt));
    INVALID(vs_conn_prepare(conn, "SELECT ?", NULL));

    CHECK_OK(vs_conn_prepare(conn, "SELECT ? AS v", &stmt));
    INVALID(vs_stmt_bind_null(NULL, 1));
    INVALID(vs_stmt_bind_i64(NULL, 1, 1));
    INVALID(vs_stmt_bind_u64(NULL, 1, 1));
    INVALID(vs_stmt_bind_f64(NULL, 1, 1.0));
    INVALID(vs_stmt_bind_text(NULL, 1, "x", 1));
    INVALID(vs_stmt_bind_text(stmt, 1, NULL, 3));
    INVALID(vs_stmt_bind_bytes(NULL, 1, (const uint8_t *)"x", 1));
    INVALID(vs_stmt_bind_bytes(stmt, 1, NULL, 3));
    INVALID(vs_stmt_execute_update(NULL, NULL, NULL));
    INVALID(vs_stmt_execute_query(NULL, &result));
    INVALID(vs_stmt_execute_query(stmt, NULL));
    /* Index 0 and past the placeholders are out of range; unbound parameters are refused. */
    CHECK_STATUS(vs_stmt_bind_i64(stmt, 0, 1), VS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vs_stmt_bind_i64(stmt, 2, 1), VS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vs_stmt_execute_query(stmt, &result), VS_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vs_last_error(), "not bound") != NULL);
    CHECK_OK(vs_stmt_bind_i64(stmt, 1, 5));
    CHECK_OK(vs_stmt_execute_query(stmt, &result));

    INVALID(vs_result_next(NULL, &flag));
    INVALID(vs_result_next(result, NULL));
    CHECK(vs_result_column_count(NULL) == 0);
    INVALID(vs_result_column_index(NULL, "v", &index));
    INVALID(vs_result_column_index(result, NULL, &index));
    INVALID(vs_result_column_index(result, "v", NULL));
    CHECK_OK(vs_result_next(result, &flag));
    INVALID(vs_result_is_null(NULL, 0, &flag));
    INVALID(vs_result_is_null(result, 0, NULL));
    INVALID(vs_result_get_i64(NULL, 0, &i));
    INVALID(vs_result_get_i64(result, 0, NULL));
    INVALID(vs_result_get_u64(NULL, 0, &u));
    INVALID(vs_result_get_u64(result, 0, NULL));
    INVALID(vs_result_get_f64(NULL, 0, &f));
    INVALID(vs_result_get_f64(result, 0, NULL));
    INVALID(vs_result_get_text(NULL, 0, &text, &len));
    INVALID(vs_result_get_text(result, 0, NULL, &len));
    INVALID(vs_result_get_text(result, 0, &text, NULL));
    /* Outputs stay untouched on failure. */
    i = 12345;
    CHECK_STATUS(vs_result_get_i64(result, 7, &i), VS_ERR_INVALID_ARGUMENT);
    CHECK(i == 12345);
    /* The last error is per call: a success clears it. */
    CHECK_OK(vs_result_get_i64(result, 0, &i));
    CHECK(i == 5 && vs_last_error()[0] == '\0' && vs_last_sql_error_code() == 0);

    vs_config_free(NULL);
    vs_pool_close(NULL);
    vs_pool_free(NULL);
    vs_conn_release(NULL);
    vs_stmt_free(NULL);
    vs_result_free(NULL);

    vs_result_free(result);
    vs_stmt_free(stmt);
    vs_conn_release(conn);
    vs_pool_free(pool);
    vs_config_free(config);
    printf("null_args ok\n");
    return 0;
}
