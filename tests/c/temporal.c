/* Dates and times read as text look the same through a prepared statement (binary protocol)
 * as through a plain query (text protocol), which is how MySQL writes them.
 * argv[1]: a vs_conf.xml for the test database. */
#include "check.h"

enum { COLUMNS = 9 };

static const char *SELECT =
    "SELECT d, dt, dt3, dt6, ts, t, t6, tn, y FROM c_temporal WHERE id = %d";

/* What MySQL's text protocol sends for each column, row 1 then row 2. */
static const char *EXPECTED[2][COLUMNS] = {
    {"2024-03-04", "2024-03-04 05:06:07", "2024-03-04 05:06:07.120", "2024-03-04 05:06:07.000005",
     "2024-03-04 05:06:07", "01:02:03", "01:02:03.000000", "-838:59:59", "2024"},
    {"0000-00-00", "0000-00-00 00:00:00", "2001-02-03 04:05:06.000", "2001-02-03 04:05:06.000000",
     "2038-01-19 03:14:07", "00:00:00", "-00:00:00.500000", "100:00:00", "1999"},
};

static void check_row(VsResult *result, int row, const char *how) {
    bool has_row = false;
    CHECK_OK(vs_result_next(result, &has_row));
    CHECK(has_row);
    CHECK(vs_result_column_count(result) == COLUMNS);
    for (uint32_t c = 0; c < COLUMNS; c++) {
        const char *text = NULL;
        size_t len = 0;
        CHECK_OK(vs_result_get_text(result, c, &text, &len));
        if (len != strlen(EXPECTED[row][c]) || memcmp(text, EXPECTED[row][c], len) != 0) {
            fprintf(stderr, "%s, row %d, column %u: got \"%.*s\", expected \"%s\"\n", how, row + 1,
                    c, (int)len, text, EXPECTED[row][c]);
            exit(1);
        }
    }
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    VsConfig *config = NULL;
    CHECK_OK(vs_config_load(argv[1], &config));
    VsPool *pool = NULL;
    CHECK_OK(vs_pool_open(config, &pool));
    vs_config_free(config);
    VsConn *conn = NULL;
    CHECK_OK(vs_pool_get(pool, 0, &conn));
    CHECK_OK(vs_conn_execute(conn, "SET time_zone = '+00:00'", NULL));
    CHECK_OK(vs_conn_execute(
        conn,
        "DROP TABLE IF EXISTS c_temporal;"
        " CREATE TABLE c_temporal (id INT PRIMARY KEY, d DATE, dt DATETIME, dt3 DATETIME(3),"
        " dt6 DATETIME(6), ts TIMESTAMP NULL, t TIME, t6 TIME(6), tn TIME, y YEAR);"
        " INSERT INTO c_temporal VALUES"
        " (1, '2024-03-04', '2024-03-04 05:06:07', '2024-03-04 05:06:07.12',"
        "  '2024-03-04 05:06:07.000005', '2024-03-04 05:06:07', '01:02:03', '01:02:03',"
        "  '-838:59:59', 2024),"
        " (2, '0000-00-00', '0000-00-00 00:00:00', '2001-02-03 04:05:06',"
        "  '2001-02-03 04:05:06', '2038-01-19 03:14:07', '00:00:00', '-00:00:00.5',"
        "  '100:00:00', 1999)",
        NULL));

    char sql[128];
    for (int row = 0; row < 2; row++) {
        snprintf(sql, sizeof sql, SELECT, row + 1);
        VsResult *text_result = NULL;
        CHECK_OK(vs_conn_query(conn, sql, &text_result));
        check_row(text_result, row, "text protocol");
        vs_result_free(text_result);

        VsStmt *stmt = NULL;
        CHECK_OK(vs_conn_prepare(conn, "SELECT d, dt, dt3, dt6, ts, t, t6, tn, y FROM c_temporal WHERE id = ?",
                                 &stmt));
        CHECK_OK(vs_stmt_bind_i64(stmt, 1, row + 1));
        VsResult *binary_result = NULL;
        CHECK_OK(vs_stmt_execute_query(stmt, &binary_result));
        check_row(binary_result, row, "prepared statement");
        vs_result_free(binary_result);
        vs_stmt_free(stmt);
    }

    vs_conn_release(conn);
    vs_pool_free(pool);
    printf("temporal ok\n");
    return 0;
}
