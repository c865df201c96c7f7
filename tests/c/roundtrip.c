/* Full round trip: config, pool, DDL, prepared insert of every type, typed reads, NULLs,
 * quotes and multibyte UTF-8, stats. argv[1]: a vs_conf.xml for the test database. */
#include "check.h"

#include <math.h>
#include <stdint.h>

static const char *TEXT = "it's a \"quoted\" \\ caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80";

int main(int argc, char **argv) {
    CHECK(argc == 2);
    CHECK(vs_abi_version() == VS_ABI_VERSION);
    CHECK(strlen(vs_version()) > 0);

    VsConfig *config = NULL;
    CHECK_OK(vs_config_load(argv[1], &config));
    VsPool *pool = NULL;
    CHECK_OK(vs_pool_open(config, &pool));
    vs_config_free(config); /* the pool does not need it any more */

    VsConn *conn = NULL;
    CHECK_OK(vs_pool_get(pool, 0, &conn));
    CHECK_OK(vs_conn_ping(conn));
    uint64_t affected = 99;
    CHECK_OK(vs_conn_execute(conn, "DROP TABLE IF EXISTS c_roundtrip", NULL));
    CHECK_OK(vs_conn_execute(conn,
                             "CREATE TABLE c_roundtrip (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
                             " i BIGINT NULL, u BIGINT UNSIGNED NULL, f DOUBLE NULL,"
                             " t VARCHAR(200) CHARACTER SET utf8mb4 NULL, b VARBINARY(16) NULL)",
                             &affected));
    CHECK(affected == 0);

    VsStmt *insert = NULL;
    CHECK_OK(vs_conn_prepare(conn, "INSERT INTO c_roundtrip (i, u, f, t, b) VALUES (?, ?, ?, ?, ?)",
                             &insert));
    const unsigned char blob[4] = {0x00, 0xFF, 0x10, 0x00};
    CHECK_OK(vs_stmt_bind_i64(insert, 1, INT64_MIN));
    CHECK_OK(vs_stmt_bind_u64(insert, 2, UINT64_MAX));
    CHECK_OK(vs_stmt_bind_f64(insert, 3, 3.25));
    CHECK_OK(vs_stmt_bind_text(insert, 4, TEXT, strlen(TEXT)));
    CHECK_OK(vs_stmt_bind_bytes(insert, 5, blob, sizeof blob));
    uint64_t last_id = 0;
    CHECK_OK(vs_stmt_execute_update(insert, &affected, &last_id));
    CHECK(affected == 1);
    CHECK(last_id == 1);
    /* Second row: all NULL, and an empty text via NULL pointer with length 0. */
    for (uint32_t i = 1; i <= 5; i++) CHECK_OK(vs_stmt_bind_null(insert, i));
    CHECK_OK(vs_stmt_execute_update(insert, NULL, &last_id));
    CHECK(last_id == 2);
    CHECK_OK(vs_stmt_bind_i64(insert, 1, 42));
    CHECK_OK(vs_stmt_bind_text(insert, 4, NULL, 0));
    CHECK_OK(vs_stmt_execute_update(insert, NULL, NULL));
    vs_stmt_free(insert);

    VsStmt *select = NULL;
    CHECK_OK(vs_conn_prepare(conn, "SELECT id, i, u, f, t, b FROM c_roundtrip WHERE id >= ? ORDER BY id",
                             &select));
    CHECK_OK(vs_stmt_bind_i64(select, 1, 1));
    VsResult *result = NULL;
    CHECK_OK(vs_stmt_execute_query(select, &result));
    CHECK(vs_result_column_count(result) == 6);
    uint32_t t_col = 99;
    CHECK_OK(vs_result_column_index(result, "T", &t_col)); /* case-insensitive */
    CHECK(t_col == 4);
    CHECK_STATUS(vs_result_column_index(result, "missing", &t_col), VS_ERR_INVALID_ARGUMENT);

    bool has_row = false;
    int64_t probe = 0;
    CHECK_STATUS(vs_result_get_i64(result, 0, &probe), VS_ERR_INVALID_ARGUMENT); /* no row yet */
    CHECK_OK(vs_result_next(result, &has_row));
    CHECK(has_row);
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    const char *text = NULL;
    size_t len = 0;
    bool is_null = true;
    CHECK_OK(vs_result_get_i64(result, 1, &i));
    CHECK(i == INT64_MIN);
    CHECK_OK(vs_result_get_u64(result, 2, &u));
    CHECK(u == UINT64_MAX);
    CHECK_OK(vs_result_get_f64(result, 3, &f));
    CHECK(fabs(f - 3.25) < 1e-12);
    CHECK_OK(vs_result_get_text(result, 4, &text, &len));
    CHECK(len == strlen(TEXT) && memcmp(text, TEXT, len) == 0 && text[len] == '\0');
    const char *again = NULL;
    CHECK_OK(vs_result_get_text(result, 4, &again, &len));
    CHECK(again == text); /* stable until the next row */
    CHECK_OK(vs_result_get_text(result, 5, &text, &len));
    CHECK(len == sizeof blob && memcmp(text, blob, len) == 0);
    CHECK_OK(vs_result_is_null(result, 1, &is_null));
    CHECK(!is_null);
    CHECK_OK(vs_result_get_text(result, 2, &text, &len)); /* numbers format as text */
    CHECK(strcmp(text, "18446744073709551615") == 0);
    CHECK_STATUS(vs_result_get_i64(result, 2, &i), VS_ERR_TYPE); /* out of range */
    CHECK_STATUS(vs_result_get_i64(result, 4, &i), VS_ERR_TYPE); /* text is not a number */
    CHECK_STATUS(vs_result_get_i64(result, 6, &i), VS_ERR_INVALID_ARGUMENT);

    CHECK_OK(vs_result_next(result, &has_row));
    CHECK(has_row);
    for (uint32_t c = 1; c <= 5; c++) {
        CHECK_OK(vs_result_is_null(result, c, &is_null));
        CHECK(is_null);
    }
    CHECK_STATUS(vs_result_get_i64(result, 1, &i), VS_ERR_TYPE);
    CHECK_OK(vs_result_get_text(result, 4, &text, &len));
    CHECK(len == 0 && text[0] == '\0');

    CHECK_OK(vs_result_next(result, &has_row));
    CHECK(has_row);
    CHECK_OK(vs_result_get_i64(result, 1, &i));
    CHECK(i == 42);
    CHECK_OK(vs_result_is_null(result, 4, &is_null));
    CHECK(!is_null);
    CHECK_OK(vs_result_get_text(result, 4, &text, &len));
    CHECK(len == 0);
    CHECK_OK(vs_result_next(result, &has_row));
    CHECK(!has_row);
    CHECK_OK(vs_result_next(result, &has_row));
    CHECK(!has_row);
    vs_result_free(result);

    /* Text protocol results convert too. */
    CHECK_OK(vs_conn_query(conn, "SELECT COUNT(*) AS n, 'x''y' AS s", &result));
    CHECK_OK(vs_result_next(result, &has_row));
    CHECK(has_row);
    uint32_t n_col = 9;
    CHECK_OK(vs_result_column_index(result, "n", &n_col));
    CHECK_OK(vs_result_get_i64(result, n_col, &i));
    CHECK(i == 1);
    CHECK_OK(vs_result_get_text(result, 1, &text, &len));
    CHECK(strcmp(text, "x'y") == 0);

    /* Transactions: a rolled-back insert is gone. */
    CHECK_OK(vs_conn_begin(conn));
    CHECK_OK(vs_conn_execute(conn, "INSERT INTO c_roundtrip (i) VALUES (7)", &affected));
    CHECK_OK(vs_conn_rollback(conn));
    CHECK_OK(vs_conn_begin(conn));
    CHECK_OK(vs_conn_execute(conn, "INSERT INTO c_roundtrip (i) VALUES (8)", &affected));
    CHECK_OK(vs_conn_commit(conn));
    /* Autocommit off: work waits for commit or rollback; on again: back to autocommit. */
    CHECK_OK(vs_conn_set_autocommit(conn, false));
    CHECK_OK(vs_conn_execute(conn, "INSERT INTO c_roundtrip (i) VALUES (7)", &affected));
    CHECK_OK(vs_conn_rollback(conn));
    CHECK_OK(vs_conn_execute(conn, "INSERT INTO c_roundtrip (i) VALUES (8)", &affected));
    CHECK_OK(vs_conn_commit(conn));
    CHECK_OK(vs_conn_set_autocommit(conn, true));
    VsResult *count = NULL;
    CHECK_OK(vs_conn_query(conn, "SELECT @@autocommit", &count));
    CHECK_OK(vs_result_next(count, &has_row));
    int64_t autocommit = -1;
    CHECK_OK(vs_result_get_i64(count, 0, &autocommit));
    CHECK(autocommit == 1);
    vs_result_free(count);
    CHECK_OK(vs_conn_query(conn, "SELECT SUM(i = 7), SUM(i = 8) FROM c_roundtrip", &count));
    CHECK_OK(vs_result_next(count, &has_row));
    int64_t sevens = -1, eights = -1;
    CHECK_OK(vs_result_get_i64(count, 0, &sevens));
    CHECK_OK(vs_result_get_i64(count, 1, &eights));
    CHECK(sevens == 0 && eights == 2);
    vs_result_free(count);

    /* A statement and a result may outlive the release of their connection. */
    vs_conn_release(conn);
    CHECK_OK(vs_result_next(result, &has_row));
    CHECK(!has_row);
    vs_result_free(result);
    CHECK_STATUS(vs_stmt_execute_query(select, &result), VS_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vs_last_error(), "released") != NULL);
    CHECK(strcmp(vs_last_sqlstate(), "08003") == 0 && vs_last_sql_error_code() == 0);
    CHECK_STATUS(vs_stmt_execute_update(select, NULL, NULL), VS_ERR_INVALID_ARGUMENT);
    CHECK(strcmp(vs_last_sqlstate(), "08003") == 0);
    vs_stmt_free(select);

    VsPoolStats stats;
    memset(&stats, 0xAB, sizeof stats);
    CHECK_OK(vs_pool_stats(pool, &stats));
    CHECK(stats.checkouts == 1);
    CHECK(stats.in_use == 0);
    CHECK(stats.idle >= 1);
    CHECK(stats.created >= 1);
    CHECK(stats.unavailable == 0 && stats.closed == 0);

    vs_pool_close(pool);
    CHECK_STATUS(vs_pool_get(pool, 100, &conn), VS_ERR_CLOSED);
    CHECK_OK(vs_pool_stats(pool, &stats));
    CHECK(stats.closed == 1);
    vs_pool_free(pool);
    printf("roundtrip ok\n");
    return 0;
}
