/* Several statements in one string: an error in any of them is reported (VS_ERR_SQL with the
 * server's code and SQLSTATE), never dropped; affected rows are summed over the statements.
 * argv[1]: a vs_conf.xml for the test database. */
#include "check.h"

static int64_t query_i64(VsConn *conn, const char *sql) {
    VsResult *result = NULL;
    CHECK_OK(vs_conn_query(conn, sql, &result));
    bool has_row = false;
    CHECK_OK(vs_result_next(result, &has_row));
    CHECK(has_row);
    int64_t value = -1;
    CHECK_OK(vs_result_get_i64(result, 0, &value));
    vs_result_free(result);
    return value;
}

static void expect_sql_error(int code, const char *sqlstate) {
    if (vs_last_sql_error_code() != code || strcmp(vs_last_sqlstate(), sqlstate) != 0) {
        fprintf(stderr, "expected SQL error %d (%s), got %d (%s): %s\n", code, sqlstate,
                vs_last_sql_error_code(), vs_last_sqlstate(), vs_last_error());
        exit(1);
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

    CHECK_OK(vs_conn_execute(conn,
                             "DROP TABLE IF EXISTS c_multi; DROP PROCEDURE IF EXISTS c_multi_proc;"
                             " CREATE TABLE c_multi (id INT PRIMARY KEY) ENGINE=InnoDB",
                             NULL));

    /* All statements succeed: affected rows are the sum; rows of a SELECT are discarded. */
    uint64_t affected = 99;
    CHECK_OK(vs_conn_execute(conn,
                             "INSERT INTO c_multi VALUES (1); INSERT INTO c_multi VALUES (2), (3);"
                             " SELECT * FROM c_multi; UPDATE c_multi SET id = id + 10 WHERE id > 1",
                             &affected));
    CHECK(affected == 5);

    /* A duplicate key in the second statement. The first one ran (autocommit). */
    affected = 99;
    CHECK_STATUS(vs_conn_execute(conn, "INSERT INTO c_multi VALUES (4); INSERT INTO c_multi VALUES (4)",
                                 &affected),
                 VS_ERR_SQL);
    expect_sql_error(1062, "23000");
    CHECK(strstr(vs_last_error(), "Duplicate") != NULL);
    CHECK(affected == 99); /* outputs are written only on success */
    CHECK(query_i64(conn, "SELECT COUNT(*) FROM c_multi") == 4);

    /* An unknown table after an insert. */
    CHECK_STATUS(vs_conn_execute(conn, "INSERT INTO c_multi VALUES (5); SELECT * FROM no_such_table",
                                 &affected),
                 VS_ERR_SQL);
    expect_sql_error(1146, "42S02");
    CHECK(strstr(vs_last_error(), "no_such_table") != NULL);

    /* The statement after the failing one does not run. */
    CHECK_STATUS(vs_conn_execute(conn,
                                 "INSERT INTO c_multi VALUES (6); INSERT INTO c_multi VALUES (6);"
                                 " INSERT INTO c_multi VALUES (7)",
                                 NULL),
                 VS_ERR_SQL);
    expect_sql_error(1062, "23000");
    CHECK(query_i64(conn, "SELECT COUNT(*) FROM c_multi WHERE id = 7") == 0);

    /* A query whose second statement fails gives the error and no result. */
    VsResult *result = (VsResult *)1; /* sentinel: must stay untouched */
    CHECK_STATUS(vs_conn_query(conn, "SELECT 1; SELECT * FROM no_such_table", &result), VS_ERR_SQL);
    expect_sql_error(1146, "42S02");
    CHECK(result == (VsResult *)1);
    /* ... also when the error comes after a result set with rows and an empty one. */
    CHECK_STATUS(vs_conn_query(conn, "SELECT id FROM c_multi; DO 1; SELECT * FROM no_such_table",
                               &result),
                 VS_ERR_SQL);
    expect_sql_error(1146, "42S02");
    CHECK(result == (VsResult *)1);

    /* Several good statements: the result is the first one's. */
    result = NULL;
    CHECK_OK(vs_conn_query(conn, "SELECT 7 AS a; SELECT 8, 9", &result));
    CHECK(vs_result_column_count(result) == 1 && vs_result_row_count(result) == 1);
    bool has_row = false;
    CHECK_OK(vs_result_next(result, &has_row));
    int64_t value = 0;
    CHECK_OK(vs_result_get_i64(result, 0, &value));
    CHECK(has_row && value == 7);
    vs_result_free(result);

    /* A stored procedure whose second statement fails, through a prepared CALL. */
    CHECK_OK(vs_conn_execute(conn,
                             "CREATE PROCEDURE c_multi_proc() BEGIN SELECT 1 AS one;"
                             " SELECT * FROM no_such_table; END",
                             NULL));
    VsStmt *call = NULL;
    CHECK_OK(vs_conn_prepare(conn, "CALL c_multi_proc()", &call));
    result = (VsResult *)1;
    CHECK_STATUS(vs_stmt_execute_query(call, &result), VS_ERR_SQL);
    expect_sql_error(1146, "42S02");
    CHECK(result == (VsResult *)1);
    uint64_t last_id = 77;
    affected = 99;
    CHECK_STATUS(vs_stmt_execute_update(call, &affected, &last_id), VS_ERR_SQL);
    expect_sql_error(1146, "42S02");
    CHECK(affected == 99 && last_id == 77);
    vs_stmt_free(call);

    /* The connection stays usable after all of that. */
    CHECK_OK(vs_conn_ping(conn));
    CHECK(query_i64(conn, "SELECT COUNT(*) FROM c_multi") == 6);

    vs_conn_release(conn);
    vs_pool_free(pool);
    printf("multi_statement ok\n");
    return 0;
}
