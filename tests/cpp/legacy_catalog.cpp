// Written the way the legacy catalog code uses Connector/C++: a switch to the catalog schema
// (not the connection's default one), CREATE TABLE IF NOT EXISTS, LOCK TABLES ... WRITE /
// UNLOCK TABLES, prepared statements with setString/setInt64, executeQuery +
// getInt64("id"), scoped pointers. Only the includes and the namespace differ from the
// Connector/C++ version.
#include <vs/ConnectionPool.h>

#include <memory>
#include <string>

#include "check.hpp"

namespace {

int64_t insertFile(vs::ConnectionPool &pool, const std::string &schema, const std::string &name,
                   int64_t size) {
    vs::Connection *con = pool.GetConnection();
    std::unique_ptr<vs::Statement> stmt(con->createStatement());
    con->setSchema(schema);
    std::unique_ptr<vs::ResultSet> current(stmt->executeQuery("SELECT DATABASE() AS db"));
    CHECK(current->next() && current->getString("db") == schema);
    stmt->execute(
        "CREATE TABLE IF NOT EXISTS VS_FILE (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
        " name VARCHAR(255) NOT NULL, size BIGINT NOT NULL) ENGINE=InnoDB");
    stmt->execute("LOCK TABLES VS_FILE WRITE");
    std::unique_ptr<vs::PreparedStatement> pstmt(
        con->prepareStatement("INSERT INTO VS_FILE (name, size) VALUES (?, ?)"));
    pstmt->setString(1, name);
    pstmt->setInt64(2, size);
    pstmt->executeUpdate();
    std::unique_ptr<vs::PreparedStatement> query(
        con->prepareStatement("SELECT id FROM VS_FILE WHERE name = ? ORDER BY id DESC LIMIT 1"));
    query->setString(1, name);
    std::unique_ptr<vs::ResultSet> res(query->executeQuery());
    int64_t id = -1;
    while (res->next()) id = res->getInt64("id");
    stmt->execute("UNLOCK TABLES");
    pool.ReleaseConnection(con);
    return id;
}

std::string currentSchema(vs::Connection &con) {
    std::unique_ptr<vs::Statement> stmt(con.createStatement());
    std::unique_ptr<vs::ResultSet> rs(stmt->executeQuery("SELECT DATABASE()"));
    CHECK(rs->next());
    return rs->getString(1);
}

int64_t sessionId(vs::Connection &con) {
    std::unique_ptr<vs::Statement> stmt(con.createStatement());
    std::unique_ptr<vs::ResultSet> rs(stmt->executeQuery("SELECT CONNECTION_ID()"));
    CHECK(rs->next());
    return rs->getInt64(1);
}

}  // namespace

int main(int argc, char **argv) {
    CHECK(argc == 3);
    // argv[2] is the config's DatabaseName; the catalog lives in a schema of its own that
    // each caller switches to, like the legacy CatalogDb.
    const std::string defaultSchema = argv[2];
    const std::string schema = defaultSchema + "_catalog";
    vs::ConnectionPool pool(argv[1]);
    int64_t session = 0;
    {
        vs::Connection *con = pool.GetConnection();
        CHECK(currentSchema(*con) == defaultSchema);
        session = sessionId(*con);
        std::unique_ptr<vs::Statement> stmt(con->createStatement());
        stmt->execute("CREATE DATABASE IF NOT EXISTS `" + schema + "`");
        pool.ReleaseConnection(con);
    }
    int64_t first = insertFile(pool, schema, "/objects/a/b/c/one.data", 10);
    int64_t second = insertFile(pool, schema, "it's \"two\".data", 20);
    CHECK(first == 1 && second == 2);

    // The pool (of one) hands out the same session, back on the default schema.
    {
        vs::Connection *con = pool.GetConnection();
        CHECK(sessionId(*con) == session);
        CHECK(currentSchema(*con) == defaultSchema);
        std::unique_ptr<vs::Statement> stmt(con->createStatement());
        EXPECT_THROW(stmt->executeQuery("SELECT COUNT(*) FROM VS_FILE"), e,
                     CHECK(e.getErrorCode() == 1146));  // the table is in the catalog schema
        pool.ReleaseConnection(con);
    }

    // A caller that forgets UNLOCK TABLES: the pool releases the lock on return, so another
    // connection can write.
    {
        vs::Connection *con = pool.GetConnection();
        con->setSchema(schema);
        std::unique_ptr<vs::Statement> stmt(con->createStatement());
        stmt->execute("LOCK TABLES VS_FILE WRITE");
        pool.ReleaseConnection(con);
    }
    CHECK(insertFile(pool, schema, "three", 30) == 3);

    // Errors throw SQLException with the server's code and SQLSTATE.
    vs::Connection *con = pool.GetConnection();
    std::unique_ptr<vs::Statement> stmt(con->createStatement());
    EXPECT_THROW(stmt->executeQuery("SELECT * FROM no_such_table"), e,
                 CHECK(e.getErrorCode() == 1146 && e.getSQLState() == "42S02" &&
                       std::string(e.what()).find("no_such_table") != std::string::npos));
    EXPECT_THROW(con->prepareStatement("SELEC x"), e, CHECK(e.getErrorCode() == 1064));
    EXPECT_THROW(con->setSchema("no_such_schema"), e, CHECK(e.getErrorCode() == 1049));
    std::unique_ptr<vs::PreparedStatement> p(con->prepareStatement("SELECT ?"));
    EXPECT_THROW(p->setInt(2, 1), e, CHECK(e.status() == VS_ERR_INVALID_ARGUMENT));
    std::unique_ptr<vs::ResultSet> rs(stmt->executeQuery("SELECT 1 AS one"));
    CHECK(rs->next());
    EXPECT_THROW(rs->getInt("two"), e, CHECK(e.status() == VS_ERR_INVALID_ARGUMENT));
    EXPECT_THROW(rs->getInt(0), e, CHECK(e.status() == VS_ERR_INVALID_ARGUMENT));

    // The pool holds one connection (DatabaseMaxPoolSize 1): a second GetConnection throws
    // on timeout instead of returning NULL.
    EXPECT_THROW(pool.GetConnection(200), e, CHECK(e.status() == VS_ERR_TIMEOUT));
    pool.ReleaseConnection(con);
    pool.ReleaseConnection(nullptr);
    std::printf("legacy catalog ok\n");
    return 0;
}
