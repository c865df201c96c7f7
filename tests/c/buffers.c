/* Buffer edges of binds and text reads: length 0 with and without a pointer, NULL with
 * length 0, embedded NULs, text that is not NUL-terminated, every byte value, and outputs
 * left untouched when a read fails. argv[1]: a vs_conf.xml for the test database. */
#include "check.h"

/* Reads column `col` of the current row and checks it is exactly `len` bytes `want`,
 * followed by a NUL that is not part of the value. */
static void expect_bytes(VsResult *result, uint32_t col, const void *want, size_t want_len) {
    const char *text = NULL;
    size_t len = 99;
    CHECK_OK(vs_result_get_text(result, col, &text, &len));
    if (len != want_len || memcmp(text, want, len) != 0 || text[len] != '\0') {
        fprintf(stderr, "column %u: %zu bytes, expected %zu\n", col, len, want_len);
        exit(1);
    }
    bool is_null = true;
    CHECK_OK(vs_result_is_null(result, col, &is_null));
    CHECK(!is_null);
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
                             "DROP TABLE IF EXISTS c_buffers;"
                             " CREATE TABLE c_buffers (id INT PRIMARY KEY,"
                             " t VARCHAR(300) CHARACTER SET utf8mb4 NULL, b VARBINARY(300) NULL)",
                             NULL));

    unsigned char every_byte[256];
    for (int i = 0; i < 256; i++) every_byte[i] = (unsigned char)i;
    const char not_terminated[5] = {'h', 'e', 'l', 'l', 'o'}; /* no NUL after it */
    const char with_nul[] = "a\0b";                          /* 3 bytes of text */
    const char *longer = "abcdef";

    VsStmt *insert = NULL;
    CHECK_OK(vs_conn_prepare(conn, "INSERT INTO c_buffers (id, t, b) VALUES (?, ?, ?)", &insert));
    /* 1: length 0 with a real pointer, for text and bytes */
    CHECK_OK(vs_stmt_bind_i64(insert, 1, 1));
    CHECK_OK(vs_stmt_bind_text(insert, 2, "ignored", 0));
    CHECK_OK(vs_stmt_bind_bytes(insert, 3, every_byte, 0));
    CHECK_OK(vs_stmt_execute_update(insert, NULL, NULL));
    /* 2: NULL with length 0 is the empty value, not SQL NULL */
    CHECK_OK(vs_stmt_bind_i64(insert, 1, 2));
    CHECK_OK(vs_stmt_bind_text(insert, 2, NULL, 0));
    CHECK_OK(vs_stmt_bind_bytes(insert, 3, NULL, 0));
    CHECK_OK(vs_stmt_execute_update(insert, NULL, NULL));
    /* 3: text without a terminating NUL, and a prefix of a longer string */
    CHECK_OK(vs_stmt_bind_i64(insert, 1, 3));
    CHECK_OK(vs_stmt_bind_text(insert, 2, not_terminated, sizeof not_terminated));
    CHECK_OK(vs_stmt_bind_bytes(insert, 3, (const uint8_t *)longer, 3));
    CHECK_OK(vs_stmt_execute_update(insert, NULL, NULL));
    /* 4: embedded NULs in text and every byte value in binary */
    CHECK_OK(vs_stmt_bind_i64(insert, 1, 4));
    CHECK_OK(vs_stmt_bind_text(insert, 2, with_nul, 3));
    CHECK_OK(vs_stmt_bind_bytes(insert, 3, every_byte, sizeof every_byte));
    CHECK_OK(vs_stmt_execute_update(insert, NULL, NULL));
    /* A non-zero length needs a pointer; the failed bind leaves the previous one in place. */
    CHECK_STATUS(vs_stmt_bind_text(insert, 2, NULL, 1), VS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vs_stmt_bind_bytes(insert, 3, NULL, 1), VS_ERR_INVALID_ARGUMENT);
    vs_stmt_free(insert);

    /* What the server stored, measured by the server. */
    VsResult *result = NULL;
    CHECK_OK(vs_conn_query(conn,
                           "SELECT LENGTH(t), LENGTH(b), t IS NULL OR b IS NULL FROM c_buffers ORDER BY id",
                           &result));
    const int64_t lengths[4][2] = {{0, 0}, {0, 0}, {5, 3}, {3, 256}};
    for (int row = 0; row < 4; row++) {
        bool has_row = false;
        CHECK_OK(vs_result_next(result, &has_row));
        CHECK(has_row);
        int64_t t_len = -1, b_len = -1, any_null = -1;
        CHECK_OK(vs_result_get_i64(result, 0, &t_len));
        CHECK_OK(vs_result_get_i64(result, 1, &b_len));
        CHECK_OK(vs_result_get_i64(result, 2, &any_null));
        CHECK(t_len == lengths[row][0] && b_len == lengths[row][1] && any_null == 0);
    }
    vs_result_free(result);

    /* Read back through both protocols: the exact bytes, each followed by a NUL. */
    VsStmt *select = NULL;
    CHECK_OK(vs_conn_prepare(conn, "SELECT t, b FROM c_buffers ORDER BY id", &select));
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            CHECK_OK(vs_conn_query(conn, "SELECT t, b FROM c_buffers ORDER BY id", &result));
        } else {
            CHECK_OK(vs_stmt_execute_query(select, &result));
        }
        bool has_row = false;
        CHECK_OK(vs_result_next(result, &has_row));
        expect_bytes(result, 0, "", 0);
        expect_bytes(result, 1, "", 0);
        CHECK_OK(vs_result_next(result, &has_row));
        expect_bytes(result, 0, "", 0);
        expect_bytes(result, 1, "", 0);
        CHECK_OK(vs_result_next(result, &has_row));
        expect_bytes(result, 0, "hello", 5);
        expect_bytes(result, 1, "abc", 3);
        CHECK_OK(vs_result_next(result, &has_row));
        expect_bytes(result, 0, "a\0b", 3);
        expect_bytes(result, 1, every_byte, sizeof every_byte);

        /* A failed read leaves both outputs as they were. */
        const char *text = (const char *)1;
        size_t len = 12345;
        CHECK_STATUS(vs_result_get_text(result, 2, &text, &len), VS_ERR_INVALID_ARGUMENT);
        CHECK(text == (const char *)1 && len == 12345);
        CHECK_OK(vs_result_next(result, &has_row));
        CHECK(!has_row);
        CHECK_STATUS(vs_result_get_text(result, 0, &text, &len), VS_ERR_INVALID_ARGUMENT);
        CHECK(text == (const char *)1 && len == 12345);
        vs_result_free(result);
    }
    vs_stmt_free(select);

    vs_conn_release(conn);
    vs_pool_free(pool);
    printf("buffers ok\n");
    return 0;
}
